"""Review: claiming the next item under a lease, and recording decisions."""

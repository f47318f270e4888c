"""Admin pages: what only an admin looks after (failed jobs)."""

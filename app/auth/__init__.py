"""Users, passwords, API tokens and who may act on which queue."""

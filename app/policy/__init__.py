"""The policy page: a queue's policy as a form, its preview and its history."""

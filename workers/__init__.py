"""Loupe's RQ side: job functions and the worker entry point."""

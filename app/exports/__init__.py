"""Exports: every final label with its provenance, streamed in flat memory."""

"""Ingest: validating batches of predictions, routing them, storing them in bulk."""

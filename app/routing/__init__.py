"""Routing: whether a person must see an item, and why. Used when items arrive
(app.ingest) and when a new model re-scores the waiting ones (app.learning.rescoring)."""

"""The learning loop: outbox to training examples, training runs, the model registry,
scoring and re-scoring, and the RQ jobs that carry them out."""

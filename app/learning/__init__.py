"""The learning loop: outbox to training examples, snapshots, training, scoring."""

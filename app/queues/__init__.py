"""Queues: their labels, routing policy, membership and counts."""

"""How far a queue's automation can be trusted: audited precision, candidate-set coverage,
drift, and the alarms they raise."""

"""Steps every runbook shares, and the run skeleton (open, lock, close) they all follow."""

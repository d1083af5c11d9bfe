"""Steps every runbook shares; the run skeleton they all follow (open, lock, close) is `remediation.run`."""

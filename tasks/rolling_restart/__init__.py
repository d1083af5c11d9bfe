"""The rolling-restart runbook's steps (flows/rolling_restart.py)."""

"""The high-latency runbook's steps (flows/high_latency.py)."""

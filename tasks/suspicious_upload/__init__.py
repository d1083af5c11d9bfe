"""The suspicious-upload runbook's steps (flows/suspicious_upload.py)."""

"""The database-errors runbook's steps (flows/database_errors.py)."""

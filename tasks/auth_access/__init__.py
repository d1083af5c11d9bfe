"""The authentication/authorization runbook's steps (flows/auth_access.py)."""

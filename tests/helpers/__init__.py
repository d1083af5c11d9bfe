"""Shared test helpers (importable as ``tests.helpers``; run pytest from the repository root)."""

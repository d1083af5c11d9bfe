"""Store errors. Lookups by id raise ``KeyError`` subclasses so callers can treat them as missing keys."""

from __future__ import annotations


class StoreError(Exception):
    """Base class for errors raised by the store (not for driver errors, which propagate as-is)."""


class IncidentNotFound(StoreError, KeyError):
    """A write named an incident id that was never opened."""


class ActionNotFound(StoreError, KeyError):
    """``complete_action`` named an action id that has no ledger row."""


class IncidentExists(StoreError, ValueError):
    """``open_incident`` was called twice with the same incident id."""


class ActionConflict(StoreError, ValueError):
    """An action id is already in the ledger under a different incident."""

"""A finding's figures as people read them, in the CLI, the timeline and the reports.

A reading that could not be taken is ``unknown`` and a check without a limit has ``no threshold``: Python's
``None`` (``threshold None %``) is never shown to the person deciding what to do.
"""

from __future__ import annotations

from remediation.models import Finding, FindingStatus

UNKNOWN = "unknown"
NO_THRESHOLD = "no threshold"


def figure(value: float | str | None) -> str:
    """One number as written by a person (``2.5``, not ``2.5000000001``); None is ``unknown``."""
    if value is None:
        return UNKNOWN
    return f"{value:g}" if isinstance(value, float | int) else str(value)


def observed(f: Finding) -> str:
    """What was read, with its unit: ``12.5 %``; ``unknown`` (no unit) when nothing could be read."""
    return UNKNOWN if f.observed is None else f"{figure(f.observed)} {f.unit}".strip()


def threshold(f: Finding) -> str:
    """The limit the reading was judged against: ``5 %``, ``no threshold``, or ``-`` for context-only readings."""
    if f.status is FindingStatus.INFO:
        return "-"  # a reading for context: it has no threshold to pass or fail
    return NO_THRESHOLD if f.threshold is None else f"{figure(f.threshold)} {f.unit}".strip()


def against(f: Finding) -> str:
    """The timeline's comparison: ``vs threshold 5 %``, ``(informational)`` or ``(no threshold)``."""
    if f.status is FindingStatus.INFO:
        return "(informational)"
    return f"({NO_THRESHOLD})" if f.threshold is None else f"vs threshold {threshold(f)}"

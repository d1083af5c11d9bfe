"""Prefect task steps: `common/` for what every runbook shares, one package per runbook for its own steps.

Each task's name starts with its phase, so a run's graph in the Prefect UI reads like the runbook.
"""

from __future__ import annotations

from remediation.steps import step

__all__ = ["step"]

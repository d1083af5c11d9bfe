"""Drills: runbooks rehearsed while nothing is wrong, and the record of when each last worked.

Two kinds of drill write records here:

* **game day** (``remediate drill --runbook NAME | --all``): each runbook is run against the simulator with its
  fault injected, exactly as ``remediate demo`` runs it (``remediation.demo.DEMOS`` names each runbook's scenarios
  and parameters; approvals are answered the way the demo answers them, through ``remediate approve``);
* **scheduled**: a runbook run with ``drill=true`` (the weekly rolling-restart drill of ``prefect.yaml``) records
  itself when it closes.

Records are JSON lines in ``REMEDIATE_HOME/drills.jsonl``, one per drill, appended and never rewritten: the file
is a log a person can read, copy or ship, it needs no migration, and concurrent appends of whole lines do not
interleave. What a record measures (from the report of the run):

* ``time_to_contain_s``: from the start of the run (the alert) to the first containment that was applied, or to
  the first applied fix when the runbook contains nothing separately (None: nothing was applied);
* ``time_to_recover_s``: from the start of the run to its end, when the outcome is ``recovered`` (None otherwise).

A runbook whose last *successful* drill (outcome ``recovered``) is older than ``REMEDIATE_DRILL_MAX_AGE_DAYS``, or
that never had one, is flagged stale.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from remediation.models import ActionRecord, IncidentReport, Outcome, Phase, utcnow

DRILLS_FILE = "drills.jsonl"


class DrillRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    runbook: str
    scenario: str | None = None
    trigger: str  # "game-day" (remediate drill) or "flow" (a drill=true run, e.g. the weekly schedule)
    incident_id: str
    outcome: str
    started_at: datetime
    finished_at: datetime
    time_to_contain_s: float | None = None
    time_to_recover_s: float | None = None
    detail: str = ""

    @property
    def success(self) -> bool:
        return self.outcome == Outcome.RECOVERED.value


class DrillStatus(BaseModel):
    """Where one runbook stands: its last drill, its last successful one, and whether that is too old."""

    model_config = ConfigDict(frozen=True)

    runbook: str
    last: DrillRecord | None
    last_success: DrillRecord | None
    stale: bool
    why: str


def _first_applied(report: IncidentReport) -> ActionRecord | None:
    applied = [a for a in report.actions if a.applied and a.completed_at is not None]
    contained = [a for a in applied if a.phase is Phase.CONTAIN]
    first = contained or applied
    return first[0] if first else None


def from_report(report: IncidentReport, *, trigger: str, scenario: str | None = None) -> DrillRecord:
    finished = report.finished_at or utcnow()
    first = _first_applied(report)
    contain = (first.completed_at - report.started_at).total_seconds() if first and first.completed_at else None
    recovered = report.outcome is Outcome.RECOVERED
    return DrillRecord(
        runbook=report.runbook, scenario=scenario, trigger=trigger, incident_id=report.incident_id,
        outcome=report.outcome.value, started_at=report.started_at, finished_at=finished,
        time_to_contain_s=round(contain, 3) if contain is not None else None,
        time_to_recover_s=round((finished - report.started_at).total_seconds(), 3) if recovered else None,
        detail=report.escalation or "",
    )


def path(home: Path) -> Path:
    return Path(home) / DRILLS_FILE


def append(home: Path, record: DrillRecord) -> None:
    """One line, written with a single ``write`` on an ``O_APPEND`` descriptor so concurrent writers never mix."""
    target = path(home)
    target.parent.mkdir(parents=True, exist_ok=True)
    line = (record.model_dump_json() + "\n").encode()
    descriptor = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)


def record_report(home: Path, report: IncidentReport, *, trigger: str, scenario: str | None = None) -> DrillRecord:
    record = from_report(report, trigger=trigger, scenario=scenario)
    append(home, record)
    return record


def load(home: Path) -> list[DrillRecord]:
    """Every drill, oldest first; a line that is not a record (a torn write, a hand edit) is skipped. One run can be
    recorded twice (a game day drills a runbook whose run records itself as a drill): the later line wins."""
    target = path(home)
    if not target.is_file():
        return []
    by_run: dict[str, DrillRecord] = {}
    for number, line in enumerate(target.read_text().splitlines()):
        try:
            record = DrillRecord.model_validate(json.loads(line))
        except ValueError:
            continue
        by_run[record.incident_id if record.incident_id != "-" else f"-{number}"] = record
    return sorted(by_run.values(), key=lambda r: r.finished_at)


def status(runbooks: Iterable[str], records: list[DrillRecord], max_age: timedelta,
           now: datetime | None = None) -> list[DrillStatus]:
    now = now or utcnow()
    result = []
    for runbook in sorted(runbooks):
        mine = [r for r in records if r.runbook == runbook]
        last = mine[-1] if mine else None
        wins = [r for r in mine if r.success]
        best = wins[-1] if wins else None
        if best is None:
            stale, why = True, "never drilled successfully" if mine else "never drilled"
        else:
            age = now - best.finished_at
            stale = age > max_age
            why = f"last success {_age(age)} ago" + (f" (older than {_age(max_age)})" if stale else "")
        result.append(DrillStatus(runbook=runbook, last=last, last_success=best, stale=stale, why=why))
    return result


def _age(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f}d"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds:.0f}s"


def scenarios_for(runbook: str) -> list[str]:
    """The simulator scenarios that drill ``runbook`` (the demo's), in DEMOS order."""
    from remediation.demo import DEMOS

    return [name for name, demo in DEMOS.items() if demo.runbook == runbook]


Runner = Callable[[str], IncidentReport]  # scenario -> the report of the runbook run against it


def game_day(runbooks: Iterable[str], home: Path, run: Runner,
             on_missing: Callable[[str], None] | None = None) -> list[DrillRecord]:
    """Drill each runbook once per scenario it has; records every result (a crash is recorded as escalated)."""
    done: list[DrillRecord] = []
    for runbook in runbooks:
        scenarios = scenarios_for(runbook)
        if not scenarios and on_missing is not None:
            on_missing(runbook)
        for scenario in scenarios:
            started = utcnow()
            try:
                record = from_report(run(scenario), trigger="game-day", scenario=scenario)
            except Exception as exc:  # a drill that blows up is a failed drill, and says so
                record = DrillRecord(runbook=runbook, scenario=scenario, trigger="game-day", incident_id="-",
                                     outcome=Outcome.ESCALATED.value, started_at=started, finished_at=utcnow(),
                                     detail=f"the drill itself failed: {type(exc).__name__}: {exc}")
            append(home, record)
            done.append(record)
    return done

"""``remediate drill``: game-day drills of runbooks against the simulator, and the drill status table."""

from __future__ import annotations

import json
from datetime import timedelta

from rich.console import Console
from rich.table import Table

from remediation import catalog, drills
from remediation.models import IncidentReport
from remediation.settings import Settings


def _run_scenario(console: Console) -> drills.Runner:
    def run(scenario: str) -> IncidentReport:
        from remediation.demo import DemoOptions, run_demo

        console.print(f"[bold]Drill: scenario {scenario}[/]")
        return run_demo(DemoOptions(scenario=scenario), console)

    return run


def drill_command(*, runbook: str | None, everything: bool, json_output: bool, console: Console,
                  err: Console, strict: bool = False) -> int:
    """Exit code: 1 when a drill run now failed, or (``strict``) a runbook it answers for is stale; 2 on bad input;
    else 0. ``--runbook X`` answers for X only. Staleness without ``strict`` is a warning line on stderr."""
    settings = Settings()
    if runbook is not None and runbook not in catalog.RUNBOOKS:
        err.print(f"unknown runbook '{runbook}'; known: {', '.join(sorted(catalog.RUNBOOKS))}")
        return 2
    chosen = sorted(catalog.RUNBOOKS) if everything else [runbook] if runbook else []
    out = Console(stderr=True) if json_output else console
    ran = drills.game_day(chosen, settings.home, _run_scenario(out),
                          on_missing=lambda name: out.print(f"[yellow]{name}: no simulator scenario to drill it[/]"))
    board = drills.status(catalog.RUNBOOKS, drills.load(settings.home),
                          timedelta(days=settings.drill_max_age_days))
    if json_output:
        print(json.dumps({"ran": [r.model_dump(mode="json") for r in ran],
                          "status": [s.model_dump(mode="json") for s in board]}, indent=2))
    else:
        _print(ran, board, console)
    failed = any(not r.success for r in ran) or (runbook is not None and not drills.scenarios_for(runbook))
    answered_for = board if runbook is None else [s for s in board if s.runbook == runbook]
    stale = [s.runbook for s in answered_for if s.stale]
    if stale and not strict:
        err.print(f"warning: drill stale for {', '.join(stale)} (--strict makes this exit 1)", soft_wrap=True)
    return 1 if failed or (strict and stale) else 0


def _print(ran: list[drills.DrillRecord], board: list[drills.DrillStatus], console: Console) -> None:
    if ran:
        table = Table(title="Drills run now")
        for column in ("runbook", "scenario", "outcome", "time to contain", "time to recover", "incident"):
            table.add_column(column)
        for r in ran:
            table.add_row(r.runbook, r.scenario or "-", r.outcome, _seconds(r.time_to_contain_s),
                          _seconds(r.time_to_recover_s), r.incident_id)
        console.print(table)
    table = Table(title="Drill status")
    for column in ("runbook", "last drill", "last success", "time to contain", "time to recover", "status"):
        table.add_column(column)
    for s in board:
        best = s.last_success
        table.add_row(s.runbook, f"{s.last.finished_at:%Y-%m-%d %H:%M} {s.last.outcome}" if s.last else "-",
                      f"{best.finished_at:%Y-%m-%d %H:%M}" if best else "-",
                      _seconds(best.time_to_contain_s) if best else "-",
                      _seconds(best.time_to_recover_s) if best else "-",
                      f"[red]STALE[/]: {s.why}" if s.stale else f"ok: {s.why}")
    console.print(table)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"

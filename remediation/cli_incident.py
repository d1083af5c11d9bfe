"""`remediate incident show ID`: one incident's whole story from the store (what it found, did, was told, and when)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)
incident_app = typer.Typer(help="One incident's whole story: `remediate incident show ID`.", no_args_is_help=True)


@incident_app.command("show")
def show(
    incident_id: Annotated[str, typer.Argument(help="The incident (`remediate incidents` lists them)")],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """One incident: its findings, its actions with approvals and undo, and its timeline."""
    from remediation.settings import Settings
    from remediation.store import Store

    store = Store(Settings().resolved_database_url)
    store.migrate()
    summary = store.get_incident(incident_id)
    if summary is None:
        err.print(f"no incident '{escape(incident_id)}' in the store (`remediate incidents` lists them)")
        raise typer.Exit(1)
    report = store.get_report(incident_id)
    actions = store.actions(incident_id)
    approvals = store.approvals(incident_id)
    timeline = store.timeline(incident_id)
    if json_output:
        body: dict[str, Any] = {
            "incident": summary.model_dump(mode="json", exclude={"alert"}),
            "findings": [f.model_dump(mode="json") for f in report.findings] if report else None,
            "escalation": report.escalation if report else None,
            "actions": [a.model_dump(mode="json") for a in actions],
            "approvals": [a.model_dump(mode="json", exclude={"answer_id"}) for a in approvals],
            "timeline": [t.model_dump(mode="json") for t in timeline],
        }
        typer.echo(json.dumps(body, indent=2))
        return
    outcome = summary.outcome.value if summary.outcome else "-"
    console.print(f"[bold]{escape(summary.id)}[/] {escape(summary.runbook)} on {escape(summary.service)} · "
                  f"{summary.severity.value.upper()} · {summary.status.value} · outcome {outcome}", soft_wrap=True)
    console.print(f"  opened {summary.opened_at:%Y-%m-%d %H:%M:%S}"
                  + (f", closed {summary.closed_at:%H:%M:%S}" if summary.closed_at else "")
                  + f" · flow run {summary.flow_run_id or '-'}", soft_wrap=True)
    if report and report.escalation:
        console.print(f"  escalated: {escape(report.escalation)}", soft_wrap=True)
    console.print("\n[bold]Findings[/]")
    if report is None:
        console.print("  (the run is still open: its findings are in the timeline below)")
    for f in report.findings if report else []:
        informational = f.status.value == "info"  # context only: it has no threshold to pass or fail
        threshold = "" if f.threshold is None or informational else f" (threshold {f.threshold} {f.unit})"
        console.print(f"  {escape(f.check)}: {f.status.value}, {f.observed} {f.unit}{threshold}".rstrip(),
                      soft_wrap=True)
    console.print("\n[bold]Actions[/]")
    if not actions:
        console.print("  none")
    for a in actions:
        undo = a.plan.undo()
        console.print(f"  {a.phase.value}: {escape(a.plan.summary())} ({a.risk.value}) · {a.decision.value} · "
                      f"{a.state.value}" + (f" · approved by {escape(a.approver)}" if a.approver else ""),
                      soft_wrap=True)
        if a.error:
            console.print(f"    error: {escape(a.error)}", soft_wrap=True)
        if undo is not None and a.state.value == "applied":
            console.print(f"    undo: {escape(undo.summary())}", soft_wrap=True)
    if approvals:
        console.print("\n[bold]Approval answers[/]")
        for ap in approvals:
            console.print(f"  {ap.at:%H:%M:%S} {ap.answer.value} by {escape(ap.approver or '-')}: "
                          f"{escape(ap.reason)}", soft_wrap=True)
    console.print("\n[bold]Timeline[/]")
    for t in timeline:
        console.print(f"  {t.at:%H:%M:%S} {t.phase.value:<11} {escape(t.event)}"
                      + (f" [dim]{escape(t.detail)}[/]" if t.detail else ""), soft_wrap=True)

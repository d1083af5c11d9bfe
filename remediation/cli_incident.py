"""`remediate incident show ID`: one incident's whole story from the store (what it found, did, was told, and when)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from remediation import figures, render

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
    _story(summary, report, actions, approvals, timeline)


def _story(summary: Any, report: Any, actions: list[Any], approvals: list[Any], timeline: list[Any]) -> None:
    """The incident as text within the terminal's width: prose wraps at spaces (ids stay whole on their line), and
    what people or vendors wrote is never read as markup (remediation.render.say)."""
    outcome = summary.outcome.value if summary.outcome else "-"
    render.say(console, f"{summary.id} {summary.runbook} on {summary.service} · {summary.severity.value.upper()} · "
               f"{summary.status.value} · outcome {outcome}", hang="  ", style="bold")
    render.say(console, f"opened {summary.opened_at:%Y-%m-%d %H:%M:%S}"
               + (f", closed {summary.closed_at:%H:%M:%S}" if summary.closed_at else "")
               + f" · flow run {summary.flow_run_id or '-'}", indent="  ", hang="    ")
    if report and report.escalation:
        render.say(console, f"escalated: {report.escalation}", indent="  ", hang="    ")
    console.print("\n[bold]Findings[/]")
    if report is None:
        console.print("  (the run is still open: its findings are in the timeline below)")
    for f in report.findings if report else []:
        threshold = "" if f.threshold is None or f.status.value == "info" else f" (threshold {figures.threshold(f)})"
        render.say(console, f"{f.check}: {f.status.value}, {figures.observed(f)}{threshold}", indent="  ",
                   hang="    ")
    console.print("\n[bold]Actions[/]")
    if not actions:
        console.print("  none")
    for a in actions:
        undo = a.plan.undo()
        render.say(console, f"{a.phase.value}: {a.plan.summary()} ({a.risk.value}) · {a.decision.value} · "
                   f"{a.state.value}" + (f" · approved by {a.approver}" if a.approver else ""), indent="  ",
                   hang="    ")
        if a.error:
            render.say(console, f"error: {a.error}", indent="    ", hang="      ")
        if undo is not None and a.state.value == "applied":
            render.say(console, f"undo: {undo.summary()}", indent="    ", hang="      ")
    if approvals:
        console.print("\n[bold]Approval answers[/]")
        for ap in approvals:
            render.say(console, f"{ap.at:%H:%M:%S} {ap.answer.value} by {ap.approver or '-'}: {ap.reason}",
                       indent="  ", hang="    ")
    console.print("\n[bold]Timeline[/]")
    for t in timeline:
        render.say(console, f"{t.at:%H:%M:%S} {t.phase.value:<11} {t.event}", indent="  ", hang=" " * 23)
        if t.detail:
            render.say(console, t.detail, indent=" " * 23, style="dim")

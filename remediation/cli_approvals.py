"""`remediate approve`, `remediate approvals` (the inbox) and `remediate approvers` (enrolment).

Every command reads the server's store (``REMEDIATE_DATABASE_URL`` or the default under ``REMEDIATE_HOME``); what
counts as an approval is decided by the run, never here.
"""

from __future__ import annotations

import io
import json
import re
import textwrap
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from remediation import render
from remediation.store import PendingStep, Store

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)

approvals_app = typer.Typer(help="The approvals inbox: every step waiting for people, with what they approve.",
                            invoke_without_command=True, no_args_is_help=False)
approvers_app = typer.Typer(help="Enrolled approvers and their second factor.", no_args_is_help=True)


def _store() -> Store:
    from remediation.settings import Settings

    store = Store(Settings().resolved_database_url)
    store.migrate()
    return store


def approve(
    flow_run_id: Annotated[str, typer.Argument(help="The run waiting for approval (`remediate approvals`)")],
    as_: Annotated[str, typer.Option("--as", help="Your approver name")],
    code: Annotated[str, typer.Option("--code", help="The 6-digit code your authenticator app shows now")] = "",
    deny: Annotated[bool, typer.Option("--deny", help="Deny instead of approve")] = False,
    reason: Annotated[str, typer.Option(help="Ticket or justification")] = "",
    wait: Annotated[float, typer.Option(help="Seconds to wait for the run's verdict")] = 30.0,
) -> None:
    """Answer a waiting step. The run decides whether the answer counts; the exit code says what it decided.

    Exit 0: counted (approved or denied); 1: refused by the run; 2: not delivered; 3: no verdict in time."""
    from remediation import approval_client

    store = _store()
    try:
        found = approval_client.answer(flow_run_id, as_, not deny, reason, store, code=code.strip(), wait_s=wait)
    except approval_client.CannotAnswer as exc:
        err.print(str(exc), soft_wrap=True)
        raise typer.Exit(approval_client.NOT_DELIVERED) from None
    status, line = approval_client.describe(found)
    (console if status == approval_client.COUNTED else err).print(line, soft_wrap=True)
    raise typer.Exit(status)


@approvals_app.callback()
def approvals(
    ctx: typer.Context,
    json_output: Annotated[bool, typer.Option("--json", help="Print the waiting steps as JSON")] = False,
) -> None:
    """List every step waiting for approval: runbook, incident, severity, step, risk, why, undo, deadline."""
    if ctx.invoked_subcommand is not None:
        return
    steps = _store().pending_steps()
    if json_output:
        console.print_json(json.dumps([_as_json(s) for s in steps]))
        return
    if not steps:
        console.print("nothing is waiting for approval")
        return
    now = datetime.now(UTC)
    for step in steps:
        console.print(inbox_entry(step, now, console.width), soft_wrap=True)


@approvals_app.command("show")
def show(
    flow_run_id: Annotated[str, typer.Argument(help="The waiting run")],
    json_output: Annotated[bool, typer.Option("--json", help="Print as JSON")] = False,
) -> None:
    """Everything about one waiting step: the question as the Resume form shows it, and the answers so far."""
    from remediation.approval_text import approval_description
    from remediation.settings import Settings

    store = _store()
    steps = store.pending_steps(flow_run_id)
    if not steps:
        err.print(f"run {escape(flow_run_id)} is not waiting for an approval (`remediate approvals` lists those "
                  "that are)")
        raise typer.Exit(1)
    step = steps[-1]
    answers = [a for a in store.approvals(step.incident_id) if a.at >= step.requested_at]
    if json_output:
        body = {**_as_json(step), "answers": [a.model_dump(mode="json", exclude={"answer_id"}) for a in answers]}
        console.print_json(json.dumps(body))
        return
    settings = Settings()
    timeout_s = (step.deadline - step.requested_at).total_seconds()
    # The dialog's sentence naming the shell command would wrap like prose; the command is printed whole below.
    question = re.sub(r" From a shell: `[^`]*`\.$", "", approval_description(step, (), settings, timeout_s),
                      flags=re.MULTILINE)
    for line in _plain(question).splitlines():
        render.say(console, line, hang="  " if line.startswith("- ") else "")
    console.print("From a shell:")
    render.command(console, f"{approve_command(step.flow_run_id)} --reason TEXT", indent="  ")
    console.print("")
    console.print("Answers so far:" if answers else "No answers yet.")
    for a in answers:  # whatever an answerer typed is shown as typed (say() never reads markup)
        render.say(console, f"{a.at:%H:%M:%S} {a.answer.value} by {a.approver}: {a.reason}", indent="  ",
                   hang="    ")


def inbox_entry(step: PendingStep, now: datetime, width: int = 80) -> str:
    """One waiting step as Rich markup, each line within ``width`` columns (a single longer word stays whole), but
    the approve command: that is alone on the last line, whole, to be copied."""
    left = max(0, int((step.deadline - now).total_seconds()))
    approved = ", ".join(step.approved_by) or "nobody yet"
    width = max(width, 40)

    def field(label: str, value: str) -> list[str]:
        lines = textwrap.wrap(value, width, initial_indent=f"  {label:<10}", subsequent_indent=" " * 12,
                              break_long_words=False, break_on_hyphens=False)
        return [escape(line) for line in lines] or [f"  {label}"]

    lines = [
        f"[bold]{escape(step.flow_run_id or '(no run)')}[/]",
        *field("runbook", f"{step.runbook} · incident {step.incident_id} · {step.severity.upper()}"),
        *field("step", f"{step.summary} ({step.risk})"),
        *field("why", step.why),
        *[line for evidence in step.evidence for line in field("evidence", evidence)],
        *field("undo", step.undo),
        *field("needs", f"{step.still_needed} more of {step.needed} (approved: {approved})"),
        *field("deadline", _deadline(step, now, left)),
        "  answer",
        # Alone on its line and never wrapped (the caller prints with soft_wrap): it is copied and pasted whole.
        escape(f"    {approve_command(step.flow_run_id)}"),
    ]
    return "\n".join(lines)


def approve_command(flow_run_id: str | None) -> str:
    return f"remediate approve {flow_run_id or '<flow run id>'} --as NAME --code CODE [--deny]"


def _deadline(step: PendingStep, now: datetime, left: int) -> str:
    if step.deadline > now:
        return f"{step.deadline:%H:%M:%S} UTC, in {left // 60}m{left % 60:02d}s; then it counts as deny"
    # A live run answers itself with a deny at its deadline and leaves the inbox: this one's process may be gone.
    return (f"passed at {step.deadline:%H:%M:%S} UTC and the run has not closed the step: is its process alive? "
            "(remediate reconcile)")


def _as_json(step: PendingStep) -> dict[str, Any]:
    return {"flow_run_id": step.flow_run_id, "incident_id": step.incident_id, "action_id": step.action_id,
            "runbook": step.runbook, "service": step.service, "severity": step.severity, "phase": step.phase,
            "step": step.summary, "binding": step.step, "risk": step.risk, "why": step.why,
            "evidence": list(step.evidence), "undo": step.undo, "statement": step.statement,
            "needed": step.needed, "approved_by": list(step.approved_by), "still_needed": step.still_needed,
            "requested_at": step.requested_at.isoformat(), "deadline": step.deadline.isoformat()}


def _plain(markdown: str) -> str:
    """The Resume dialog's Markdown for a terminal (printed as plain text): no emphasis markers, headings as lines."""
    return re.sub(r"\*\*|`|^### ", "", markdown, flags=re.MULTILINE)


@approvers_app.command("enroll")
def enroll(
    name: Annotated[str, typer.Argument(help="The approver's name, as in [approvers.NAME]")],
    prefect_secret: Annotated[str | None, typer.Option(
        "--prefect-secret", help="Also save the secret in this Prefect Secret block")] = None,
    service: Annotated[str, typer.Option(help="Shown in the authenticator app")] = "kamkmserve",
) -> None:
    """Create a TOTP secret for NAME: the otpauth:// URI and a QR code for an authenticator app."""
    from remediation import approvers

    if not approvers.valid_name(name):
        err.print(f"'{name}' is not a valid approver name: letters, digits and . _ @ -, at most "
                  f"{approvers.NAME_MAX} characters")
        raise typer.Exit(2)
    secret = approvers.new_secret()
    uri = approvers.provisioning_uri(name, secret, service)
    console.print(f"Scan this with {name}'s authenticator app (or enter the URI by hand):\n")
    console.print(terminal_qr(uri), soft_wrap=True, markup=False)
    console.print(uri, soft_wrap=True, markup=False)
    env = "REMEDIATE_TOTP_" + re.sub(r"[^A-Z0-9]", "_", name.upper())
    if prefect_secret:
        from prefect.blocks.system import Secret

        Secret(value=secret).save(prefect_secret, overwrite=True)
        ref = f'{{ prefect_secret = "{prefect_secret}" }}'
        console.print(f"\nSaved in the Prefect Secret block '{prefect_secret}'.")
    else:
        ref = f'{{ env = "{env}" }}'
        console.print(f"\nGive the server the secret in its environment, never in a file under version control:\n"
                      f"  {env}={secret}", soft_wrap=True, markup=False)
    console.print(f"\nThen add to remediate.toml (and restart serve):\n  [approvers.{name}]\n  totp = {ref}",
                  soft_wrap=True, markup=False)
    console.print(f"\nCheck it: the code now is {approvers.code_at(secret, datetime.now(UTC))}; "
                  "it should match the app.", soft_wrap=True, markup=False)


def terminal_qr(data: str) -> str:
    import qrcode

    qr = qrcode.QRCode(border=2)
    qr.add_data(data)
    out = io.StringIO()
    qr.print_ascii(out=out, invert=True)
    return out.getvalue()


@approvers_app.command("list")
def list_approvers() -> None:
    """Every approver the server knows, and what proves their answers."""
    from remediation.approver_status import approver_rows
    from remediation.settings import Settings

    settings = Settings()
    for row in approver_rows(settings):
        console.print(f"{row.name:<20} {row.status:<8} {row.detail}", soft_wrap=True, markup=False)

"""The ``remediate`` command."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console

from remediation import cli_approvals, cli_incident
from remediation.models import Mode, Outcome


class _Remediate(typer.Typer):
    """The CLI, where a wrong configuration is one clear line (exit 2), never a traceback, in every command."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        from remediation.config_file import ConfigError

        _embedded_prefect_defaults()
        try:
            given = kwargs.get("args", args[0] if args else None)  # click's main(args=None): the command line
            _check_configuration(sys.argv[1:] if given is None else list(given))
            return super().__call__(*args, **kwargs)
        except ConfigError as exc:
            Console(stderr=True, highlight=False).print(f"configuration error: {exc}", soft_wrap=True, markup=False)
            raise SystemExit(2) from None
        except ValidationError as exc:
            if exc.title != "Settings":
                raise
            from remediation.settings import error_lines

            stderr = Console(stderr=True, highlight=False)
            for line in error_lines(exc):
                stderr.print(f"configuration error: {line}", soft_wrap=True, markup=False)
            raise SystemExit(2) from None


app = _Remediate(no_args_is_help=True, add_completion=False, help="Automated incident remediation for kamkmserve")
console = Console()
err = Console(stderr=True)


def _embedded_prefect_defaults() -> None:
    """Defaults for Prefect's temporary local API, used when PREFECT_API_URL is not set."""
    import os

    # Telemetry only produces "database is locked" noise on the temporary SQLite server.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # SQLite lock contention is retried by Prefect's client; the server would still print each retried lock
    # as an ERROR traceback. Production uses PostgreSQL.
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    # A first start migrates a new database: 12-15 s alone, more on a busy 2-core host, where Prefect's
    # default 20 s wait for its temporary server is too tight.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    global _looked_for_serve
    if not _looked_for_serve and _command(sys.argv) in FINDS_SERVE:
        _looked_for_serve = True  # commands call this again before importing Prefect: one look, one note
        _use_running_serve()


#: Commands that act on serve's runs: without PREFECT_API_URL they use the API of the serve recorded in the state
#: directory (serve.json), not a temporary one that knows none of its runs. Not serve itself, nor demo and drill,
#: which run simulated incidents on their own API (they would take the real service's remediation slot).
FINDS_SERVE = frozenset({"paused", "approve", "approvals", "approvers", "check", "reconcile", "run"})
_looked_for_serve = False


#: Commands that read no setting of ours: a wrong configuration does not stop them.
READS_NO_SETTINGS = frozenset({"sim", "replay"})


def _check_configuration(args: list[str]) -> None:
    """Read the settings once before the command imports anything heavy (Prefect alone costs ~1.5 s of CPU): a
    typo is then said in under a second, and the same way by every command; so is a ``REMEDIATE_*`` variable that no
    setting reads (a warning: the command goes on, on the defaults). Help stays available whatever the configuration
    says."""
    command = _command(["remediate", *args])
    if command is None or command in READS_NO_SETTINGS or "--help" in args:
        return
    from remediation.settings import Settings
    from remediation.unread_env import unread_variables

    settings = Settings()
    if command != "check":  # check shows them in its configuration row
        for unread in unread_variables(settings):
            err.print(f"warning: {unread.describe()}", soft_wrap=True, markup=False, highlight=False)


def _command(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the CLI has no options of its own before it)."""
    return next((arg for arg in argv[1:] if not arg.startswith("-")), None)


def _use_running_serve() -> None:
    from remediation.orchestration import serve_record
    from remediation.settings import Settings

    try:
        home = Settings().home
    except Exception:  # a wrong configuration: the command itself says what is wrong, in one line
        return
    found = serve_record.use_running_serve(home)
    if found.note:
        err.print(found.note, soft_wrap=True, markup=False, highlight=False)


@app.command()
def demo(
    approve_as: Annotated[str, typer.Option("--approve-as", help="Approver the demo answers as")] = "demo.oncall",
    interactive: Annotated[bool, typer.Option("--interactive", help="Prompt for the approval instead")] = False,
    deny: Annotated[bool, typer.Option("--deny", help="Answer the approval with a deny")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the IncidentReport as JSON")] = False,
    scenario: Annotated[str, typer.Option("--scenario", help="Simulator scenario; picks the runbook")] = "bad-release",
    seed: Annotated[int | None, typer.Option("--seed", help="Simulated users' random seed (default: the one the "
                                             "demo's story is told with)")] = None,
) -> None:
    """Run a runbook end to end against a simulator scenario (default: elevated 5xx after a bad release)."""
    import os

    # Quiet Prefect's own console lines (the run's logs still reach its API).
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    _embedded_prefect_defaults()
    from remediation.demo import DEMO_SEED, DEMOS, DemoOptions, SimulatorMissing, print_report, run_demo

    if scenario not in DEMOS:
        err.print(f"no demo for scenario '{scenario}'; known: {', '.join(sorted(DEMOS))}")
        raise typer.Exit(2)
    out = Console(stderr=True) if json_output else console
    try:
        report = run_demo(DemoOptions(approve_as=approve_as, interactive=interactive, deny=deny, scenario=scenario,
                                      seed=DEMO_SEED if seed is None else seed),
                          out, ask=lambda q: typer.prompt(q, default=""))
    except SimulatorMissing as exc:
        err.print(f"demo: {exc}", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(1) from None
    if json_output:
        typer.echo(json.dumps(report.summary_json(), indent=2))
    else:
        print_report(report, console)
    expected = Outcome.DENIED if deny else Outcome.RECOVERED
    raise typer.Exit(0 if report.outcome is expected else 1)


#: The simulator's scenarios (kamkmserve_sim.scenarios.SCENARIOS), named here so `remediate sim --help` lists them
#: without importing the simulator on every command; a unit test keeps the two lists equal.
SIM_SCENARIOS = ("healthy", "bad-release", "bad-release-no-recovery", "load-spike", "slow-query", "lock-contention",
                 "malware-burst", "auth-misconfig", "auth-misconfig-no-recovery", "auth-key-rotated", "rolling-restart")


@app.command()
def sim(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 3000,
    scenario: Annotated[str, typer.Option(help=f"Scenario: {', '.join(SIM_SCENARIOS)}")] = "healthy",
    as_is: Annotated[bool, typer.Option("--as-is", help="Request/DB metrics silent, like the real app")] = False,
    rps: Annotated[float, typer.Option(help="Simulated user requests per second")] = 20.0,
    rate_limit: Annotated[int, typer.Option(help="API requests per minute per IP")] = 100,
) -> None:
    """Run the kamkmserve simulator standalone (Ctrl-C to stop)."""
    try:
        from kamkmserve_sim import SCENARIOS, SimConfig, run_forever
    except ImportError as exc:
        from remediation.demo import missing_simulator

        err.print(f"sim: {missing_simulator(exc)}", soft_wrap=True, markup=False, highlight=False)
        raise typer.Exit(1) from None

    if scenario not in SCENARIOS:
        err.print(f"unknown scenario '{scenario}'; known: {', '.join(sorted(SCENARIOS))}")
        raise typer.Exit(2)
    run_forever(SimConfig(port=port, scenario=scenario, request_metrics=not as_is, rps=rps,
                          rate_limit=rate_limit, echo_logs=True))


@app.command()
def replay(
    directory: Annotated[str, typer.Argument(help="Folder of captured .http exchanges (tests/fixtures/kamkmserve)")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1")] = 3000,
    rate_limited: Annotated[bool, typer.Option("--rate-limited", help="Answer every /api/* with the 429")] = False,
    pattern: Annotated[str, typer.Option(help="Which captured run to serve")] = "default-*.http",
    log: Annotated[str | None, typer.Option(help="Append each request received to this JSONL file")] = None,
) -> None:
    """Serve the real app's captured answers (Ctrl-C to stop); each request received is printed."""
    import contextlib
    from pathlib import Path

    from remediation.replay import ReplayServer

    try:
        server = ReplayServer(Path(directory), port=port, rate_limited=rate_limited, pattern=pattern,
                              log_path=Path(log) if log else None, echo=typer.echo).bind()
    except (ValueError, OSError) as exc:
        err.print(f"replay: {exc}")
        raise typer.Exit(2) from None
    typer.echo(f"replaying {sum(map(len, server.captures.values()))} captures of {directory} on {server.url}"
               f"{' (rate-limited)' if rate_limited else ''}")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


def _parse_params(values: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"'{item}' is not KEY=VALUE")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


@app.command()
def run(
    runbook: Annotated[str, typer.Argument(help="Runbook name, e.g. elevated-error-rate")],
    service: Annotated[str, typer.Option(help="Service to remediate")] = "kamkmserve",
    mode: Annotated[Mode, typer.Option(help="dry_run, approve or auto")] = Mode.APPROVE,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="Extra flow parameter KEY=VALUE")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the IncidentReport as JSON")] = False,
) -> None:
    """Run a runbook now, in this process, against REMEDIATE_APP_URL. Approve from another terminal."""
    _embedded_prefect_defaults()  # before Prefect is imported: its settings are read once, at import
    from remediation import catalog, composition, runtime
    from remediation.settings import Settings

    try:
        flow = catalog.load(runbook)
    except catalog.UnknownRunbook as exc:
        err.print(str(exc))
        raise typer.Exit(2) from None
    settings = Settings()
    providers = composition.connect(settings)
    err.print(f"running {runbook} on {service} ({mode.value}) against {settings.app_url}; "
              "approve paused steps with `remediate approve RUN_ID --as NAME`")
    with runtime.use(providers):
        summary = asyncio.run(flow(service=service, mode=mode, **_parse_params(param or [])))
    if json_output:
        typer.echo(json.dumps(summary, indent=2))
    else:
        report = providers.store.get_report(summary["incident_id"])
        if report is not None:
            from remediation.demo import print_report

            print_report(report, console)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Receiver address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Receiver port")] = 8080,
    poll: Annotated[float, typer.Option(help="Served runner poll interval, seconds")] = 1.0,
    max_parallel: Annotated[int, typer.Option(help="Runs the warm executor runs at once")] = 4,
) -> None:
    """The embedded stack: alert receiver + warm executor + served runbook deployments (+ a local Prefect
    server when PREFECT_API_URL is unset). Stops cleanly on SIGTERM/SIGINT."""
    import os

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from remediation.intake import create_app
    from remediation.orchestration.stack import run_stack
    from remediation.settings import Settings
    from remediation.store import Store

    settings = Settings()
    store = Store(settings.resolved_database_url)
    store.migrate()
    try:
        code = run_stack(settings, host=host, port=port, query_seconds=poll, max_parallel=max_parallel,
                         app_factory=lambda starter: create_app(settings, store, starter))
    finally:
        store.dispose()  # the receiver's own pool; run_stack closed the runbooks'
    raise typer.Exit(code)


@app.command()
def incidents(
    limit: Annotated[int, typer.Option(help="How many, newest first")] = 50,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    unrouted: Annotated[bool, typer.Option("--unrouted", help="Also list alerts no route matched")] = False,
) -> None:
    """List incidents with their alert counts, flow runs and outcomes."""
    from remediation import render
    from remediation.settings import Settings
    from remediation.store import Store

    store = Store(Settings().resolved_database_url)
    store.migrate()
    rows = store.list_incidents(limit=limit)
    stray = store.unrouted_alerts(limit=limit) if unrouted else []
    if json_output:
        body: dict[str, Any] = {"incidents": [r.model_dump(mode="json", exclude={"alert"}) for r in rows]}
        if unrouted:
            body["unrouted"] = [a.model_dump(mode="json", exclude={"payload"}) for a in stray]
        typer.echo(json.dumps(body, indent=2))
        return
    # Ids are copied into `remediate incident show` and `remediate approve`: a table too wide for the terminal
    # becomes one block per incident rather than cutting them.
    render.records(console, ("incident", "runbook", "service", "sev", "status", "alerts", "flow run", "outcome",
                             "opened"),
                   [(r.id, r.runbook, r.service, r.severity.value, r.status.value, str(r.alert_count),
                     r.flow_run_id or "-", r.outcome.value if r.outcome else "-", f"{r.opened_at:%Y-%m-%d %H:%M:%S}")
                    for r in rows], title="Incidents")
    if unrouted:
        for a in stray:
            render.say(console, f"unrouted {a.received_at:%H:%M:%S} {a.source} {a.name}: {a.reason}", hang="  ")


@app.command()
def reconcile(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only report what would be closed")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    claim_unowned: Annotated[bool, typer.Option(
        "--claim-unowned", help="Close incidents with no recorded Prefect API whose run is missing here (incidents "
        "from before owners were recorded; only against the API they ran on)")] = False,
    close_only: Annotated[bool, typer.Option(
        "--close-only", help="Never start a continuation run: close every dead run's incident as escalated")] = False,
) -> None:
    """Take over incidents whose run died without closing them. One whose fix was applied is continued at recover by
    a new run (verify again, then undo the containment); any other is closed as escalated, naming half-done actions
    and what is still in effect with its undo. Only runs of this Prefect API (PREFECT_API_URL) are judged; each open
    incident is reported with what was found."""
    from remediation.orchestration.continuation import PrefectContinuer
    from remediation.orchestration.prefect_identity import current_api
    from remediation.reconcile import RunVerdict
    from remediation.reconcile import reconcile as run_reconcile
    from remediation.settings import Settings
    from remediation.store import Store

    _embedded_prefect_defaults()
    store = Store(Settings().resolved_database_url)
    store.migrate()
    here = current_api()
    found = run_reconcile(store, here=here, dry_run=dry_run, include_alive=True, claim_unowned=claim_unowned,
                          continue_run=None if close_only else PrefectContinuer())
    if json_output:
        typer.echo(json.dumps({"api": {"url": here.url, "id": here.id},
                               "incidents": [r.model_dump(mode="json") for r in found]}, indent=2))
        return
    console.print(f"Prefect API {here.url} (identity {here.id})")
    if not found:
        console.print("no open incident")
    for r in found:
        head = f"{r.incident_id} ({r.runbook}, {r.service}): run {r.flow_run_id or '-'} {r.run_state}"
        crashed = " [crashed in Prefect]" if r.crashed else ""
        if r.verdict is RunVerdict.CONTINUED:
            verb = "would continue" if dry_run else f"continued by run {r.continued_by}"
            console.print(f"[yellow]{verb}[/] {head}{crashed}: {r.detail}; {r.takeover}")
        elif r.verdict is RunVerdict.DEAD:
            verb = "would close" if dry_run else "closed"
            console.print(f"[red]{verb}[/] {head}{crashed}: {r.detail}; not continued: {r.takeover}")
        else:
            console.print(f"[green]{r.verdict.value.replace('_', ' ')}[/] {head}: {r.detail}")
        for item in r.dangling:
            console.print(f"  [yellow]half-done:[/] {item}")
        for item in r.in_effect:
            console.print(f"  [yellow]in effect:[/] {item}")


@app.command()
def drill(
    runbook: Annotated[str | None, typer.Option("--runbook", help="Drill this runbook against the simulator")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Drill every runbook that has a simulator scenario")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the records and the status as JSON")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Also exit 1 when a runbook's drill is stale")] = False,
) -> None:
    """Game day: run runbooks against the simulator with their fault injected (as `remediate demo` does), record
    time-to-contain and time-to-recover in REMEDIATE_HOME/drills.jsonl, and flag runbooks whose last successful
    drill is older than REMEDIATE_DRILL_MAX_AGE_DAYS. Without --runbook or --all: the status only. Exit 1 when a
    drill run now failed; a stale runbook is a warning, or a failure with --strict."""
    import os

    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    _embedded_prefect_defaults()
    from remediation.drills_cli import drill_command

    if runbook and all_:
        err.print("give either --runbook NAME or --all")
        raise typer.Exit(2)
    raise typer.Exit(drill_command(runbook=runbook, everything=all_, json_output=json_output, console=console,
                                   err=err, strict=strict))


@app.command()
def paused() -> None:
    """List runs waiting for approval (the inbox, `remediate approvals`, says what each one asks)."""
    from remediation import approval_client
    from remediation.settings import Settings

    Settings()  # a configuration that cannot be right is said before anything else

    runs = approval_client.paused_runs()
    for run in runs:
        console.print(f"{run.id}  {run.name}  paused since {run.state.timestamp if run.state else '?'}")
    if not runs:
        from prefect.settings import get_current_settings

        # Say which API was asked: an empty answer from the wrong one looks the same as "nothing waits".
        api = get_current_settings().api.url or "a temporary local API (no serve found, PREFECT_API_URL unset)"
        err.print(f"no run is paused on the Prefect API at {api}", soft_wrap=True, markup=False, highlight=False)


@app.command()
def check(
    json_output: Annotated[bool, typer.Option("--json", help="Print the rows as JSON")] = False,
    service: Annotated[str, typer.Option(help="Service whose capacity, jobs and instances are read")] = "kamkmserve",
) -> None:
    """Validate every configured capability read-only: reachable, authorised, what is missing. Exit 1 if any fails."""
    from remediation.check import check_command

    raise typer.Exit(check_command(service=service, json_output=json_output, console=console))


app.command()(cli_approvals.approve)
app.add_typer(cli_incident.incident_app, name="incident")
app.add_typer(cli_approvals.approvals_app, name="approvals")
app.add_typer(cli_approvals.approvers_app, name="approvers")


if __name__ == "__main__":
    app()

"""``remediate check``: build every configured capability and ask each one cheap read-only question.

One row per capability: which implementation serves it, whether it answered (reachable), whether it let us in
(authorised) and what is missing. Nothing is changed anywhere: releases are listed, not promoted; the audit table
is read with a one-row limit; Slack gets an empty post it refuses before posting; PagerDuty gets no event at all.
The store is pinged, not migrated.

Every message is scrubbed of every secret setting's value before it is shown (vendors echo things back).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr
from rich.console import Console
from rich.text import Text

from remediation import composition, config_file, levers, notify
from remediation import render as render_kit
from remediation.notify.probe import ProbeResult
from remediation.notify.redact import redact
from remediation.orchestration.prefect_api import api_host, is_loopback_host, unauthenticated_answer
from remediation.providers.metrics import METRICS_PATH
from remediation.providers.platform import PlatformError
from remediation.runtime import Source
from remediation.settings import Settings, error_lines
from remediation.settings_vendors import flat_values
from remediation.unread_env import unread_variables

Status = Literal["ok", "degraded", "failing", "absent", "not checked"]
#: Runbooks that read the app's request series (http_requests_total, http_request_duration) for their decisions.
REQUEST_SERIES_READERS = ("elevated-error-rate", "high-latency", "rolling-restart")
AUTH_MARKERS = ("HTTP 401", "HTTP 403", "Unauthorized", "Forbidden", "AccessDenied", "InvalidClientTokenId",
                "UnrecognizedClient", "ExpiredToken", "SignatureDoesNotMatch", "Could not authenticate",
                "invalid_token", "password authentication failed", "permission denied")
UNREACHABLE_MARKERS = ("unreachable", "timed out", "ConnectError", "Connection refused", "connection refused",
                       "got no answer", "EndpointConnectionError", "Name or service not known", "could not connect",
                       "Could not connect", "no answer within")


class CheckRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    capability: str
    implementation: str
    status: Status
    reachable: bool | None = None
    authorised: bool | None = None
    detail: str = ""
    missing: tuple[str, ...] = ()


class CheckReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    config_file: str | None
    platform: str
    rows: tuple[CheckRow, ...]

    @property
    def ok(self) -> bool:
        return not any(row.status == "failing" for row in self.rows)


def _secrets(settings: Settings) -> list[str]:
    values = flat_values(settings).values()  # the vendor groups' secrets too (settings.slack.webhook_url)
    return [v.get_secret_value() for v in values if isinstance(v, SecretStr) and len(v.get_secret_value()) >= 4]


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return redact(text)[:400]


def classify(text: str) -> ProbeResult:
    """A failure message, judged: refused (reachable, not authorised), unreachable, or an unexplained error."""
    if "not configured" in text or "no API token configured" in text or "No credentials" in text:
        return ProbeResult(reachable=None, authorised=None, detail=text, missing=(text,))
    if any(marker in text for marker in AUTH_MARKERS):
        return ProbeResult.refused(text)
    if any(marker in text for marker in UNREACHABLE_MARKERS):
        return ProbeResult.unreachable(text)
    if "HTTP 409" in text:  # it answered and let us in; the lever is not usable in the current state
        said = text.split("HTTP 409: ", 1)[-1]
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            said = str(json.loads(said).get("error", said))
        return ProbeResult.fine(f"answered; not usable now: {said[:120]}")
    if "HTTP 404" in text:
        return ProbeResult(reachable=True, authorised=None, detail=text,
                           missing=("a resource the settings name does not exist (check the ids)",))
    return ProbeResult(reachable=None, authorised=None, detail=f"error: {text}", missing=())


def _report(available: bool, reason: str, fine: str) -> ProbeResult:
    """Reads that never raise (metrics, database, audit, quarantine) say ``available=False`` with a reason."""
    return ProbeResult.fine(fine) if available else classify(reason or "unavailable")


Probe = Callable[[Any, Settings, str], Awaitable[ProbeResult]]


async def _metrics(m: Any, s: Settings, service: str) -> ProbeResult:
    """The question every runbook asks first: the metrics page (within the budget), then the health page."""
    r = await m.request_stats(s.metrics_window_records)
    if r.rate_limited:
        return ProbeResult(reachable=True, authorised=False, detail=f"{METRICS_PATH}: {r.reason}",
                           missing=("the app's rate limit (429): wait for Retry-After, lower "
                                    "REMEDIATE_METRICS_BUDGET_PER_MIN or stop other readers",))
    if not (r.available or r.no_request_series):
        return classify(f"{METRICS_PATH}: {r.reason}")
    h = await m.health()
    memory = "?" if h.memory_pct is None else f"{h.memory_pct:.0f}"
    health = f"health page: status {h.status}, memory {memory}%" if h.available else f"health page: {h.reason}"
    if not r.available:
        return ProbeResult(reachable=True, authorised=True, degraded=True, detail=(
            f"{METRICS_PATH} answers without the request series (http_requests_total, http_request_duration): "
            f"{', '.join(REQUEST_SERIES_READERS)} read their findings as unknown; {health}"))
    return ProbeResult.fine(f"{METRICS_PATH}: {r.records} request record(s); {health}")


async def _deploys(d: Any, s: Settings, service: str) -> ProbeResult:
    releases = await levers.ask("deploys", d, service)
    current = next((r.version for r in releases if r.state == "current"), releases[0].version if releases else "?")
    return ProbeResult.fine(f"{len(releases)} release(s), current {current}")


async def _edge(e: Any, s: Settings, service: str) -> ProbeResult:
    return ProbeResult.fine(f"maintenance on {len(await levers.ask('edge', e, service))} path prefix(es)")


async def _logs(logs: Any, s: Settings, service: str) -> ProbeResult:
    return ProbeResult.fine(f"{len(await logs.lines(limit=1))} line read (limit 1)")


async def _errors(e: Any, s: Settings, service: str) -> ProbeResult:
    from remediation.providers.clock import RealClock

    issues = await e.issues(since=RealClock().now() - timedelta(minutes=15))
    return ProbeResult.fine(f"{len(issues)} unresolved issue(s) seen in the last 15 min")


async def _capacity(c: Any, s: Settings, service: str) -> ProbeResult:
    return ProbeResult.fine(f"{await levers.ask('capacity', c, service)} replica(s) of {service}")


async def _jobs(j: Any, s: Settings, service: str) -> ProbeResult:
    return ProbeResult.fine(f"{len(await levers.ask('jobs', j, service))} job pool(s)")


async def _instances(i: Any, s: Settings, service: str) -> ProbeResult:
    return ProbeResult.fine(f"{len(await levers.ask('instances', i, service))} instance(s) behind the balancer")


async def _database(d: Any, s: Settings, service: str) -> ProbeResult:
    r = await levers.ask("database", d, service)
    return _report(r.available, r.reason, f"pg_locks readable: {len(r.waits)} lock wait(s)")


async def _audit(a: Any, s: Settings, service: str) -> ProbeResult:
    from remediation.providers.clock import RealClock

    r = await a.events(since=RealClock().now() - timedelta(minutes=5), limit=1)
    if r.table_missing:
        return ProbeResult.fine("reachable; the kamkmserve_audit_log table does not exist (no audit evidence)")
    return _report(r.available, r.reason, "kamkmserve_audit_log readable (limit 1)")


async def _blocks(b: Any, s: Settings, service: str) -> ProbeResult:
    return ProbeResult.fine(f"{len(await levers.ask('blocks', b, service))} active block(s)")


async def _uploads(u: Any, s: Settings, service: str) -> ProbeResult:
    allow = await levers.ask("uploads", u, service)
    return ProbeResult.fine(f"allowlist: {len(allow.extensions)} extension(s), {len(allow.mime_types)} MIME type(s)")


async def _antivirus(a: Any, s: Settings, service: str) -> ProbeResult:
    if not await levers.ask("antivirus", a, service):
        return ProbeResult.unreachable("no PONG from the scanner")
    return ProbeResult.fine(f"PONG; {await a.version() or 'version unknown'}")


async def _identity(i: Any, s: Settings, service: str) -> ProbeResult:
    c = await levers.ask("identity", i, service)
    found = f"; it reports {len(c.problems)} configuration problem(s) (an incident finding, not a check failure)"
    return _report(c.available, c.reason, "configuration readable" + (found if c.problems else ""))


async def _quarantine(q: Any, s: Settings, service: str) -> ProbeResult:
    from remediation.providers.clock import RealClock

    r = await q.samples(since=RealClock().now() - timedelta(minutes=5), limit=1)
    return _report(r.available, r.reason, "quarantine readable (limit 1)")


async def _status_page(p: Any, s: Settings, service: str) -> ProbeResult:
    if hasattr(p, "probe"):
        result: ProbeResult = await p.probe()
        return result
    await p.plane.json("GET", "/status")  # the simulated status page
    return ProbeResult.fine("status page readable")


PROBES: dict[str, Probe] = {
    "metrics": _metrics, "deploys": _deploys, "edge": _edge, "logs": _logs, "errors": _errors,
    "capacity": _capacity, "jobs": _jobs, "instances": _instances, "database": _database, "audit": _audit,
    "blocks": _blocks, "uploads": _uploads, "antivirus": _antivirus, "identity": _identity,
    "quarantine": _quarantine, "status_page": _status_page,
}
NOT_PROBED = {"probe": "sends page requests to the app; metrics covers reachability",
              "access": "signs in test identities; not a read-only question",
              "instance_metrics": "per-instance pages; covered by instances"}


def _row(capability: str, implementation: str, result: ProbeResult, secrets: list[str], *,
         absent_ok: bool = False) -> CheckRow:
    """``absent_ok``: an optional lever nobody asked for; what it would need is information, not a failure."""
    if result.missing and implementation == "none" and absent_ok:
        status: Status = "absent"
    elif result.missing or result.reachable is False or result.authorised is False \
            or result.detail.startswith("error:"):
        status = "failing"
    elif result.degraded:
        status = "degraded"
    else:
        status = "ok"
    return CheckRow(capability=capability, implementation=implementation, status=status, reachable=result.reachable,
                    authorised=result.authorised, detail=_scrub(result.detail, secrets),
                    missing=tuple(_scrub(m, secrets) for m in result.missing))


async def _probe(name: str, adapter: Any, probe: Probe, settings: Settings, service: str, source: Source,
                 secrets: list[str]) -> CheckRow:
    budget = max(settings.http_timeout_s * 2, 2.0)
    try:
        result = await asyncio.wait_for(probe(adapter, settings, service), timeout=budget)
    except TimeoutError:
        result = ProbeResult.unreachable(f"no answer within {budget:g}s")
    except (PlatformError, OSError, RuntimeError, ValueError) as exc:
        result = classify(str(exc))
    except Exception as exc:  # an adapter bug must not hide the other rows
        result = classify(f"{type(exc).__name__}: {exc}")
    if source.read_only:
        result = result.model_copy(update={"detail": f"{result.detail} ({source.detail})"})
    return _row(name, source.implementation, result, secrets)


def _absent(name: str, source: Source) -> CheckRow:
    """Not built: switched off, not on this platform, no platform chosen, or missing settings. Absent, never ok;
    failing when the configuration asked for it by name and it cannot be built."""
    status: Status = "failing" if source.explicit and source.missing else "absent"
    return CheckRow(capability=name, implementation=source.implementation, status=status,
                    detail=source.detail or "not available on this platform", missing=source.missing)


def _configuration(settings: Settings) -> tuple[str | None, list[CheckRow]]:
    try:
        path = config_file.config_path()
    except config_file.ConfigError as exc:
        return None, [CheckRow(capability="configuration", implementation="file", status="failing", detail=str(exc))]
    # A variable nothing reads (a typo leaves the default in force): said in the row, which is then degraded.
    unread = "".join(f"; {found.describe()}" for found in unread_variables(settings))
    if path is None:
        return None, [CheckRow(capability="configuration", implementation="env", status="degraded" if unread else "ok",
                               detail="no remediate.toml (REMEDIATE_CONFIG unset): environment and defaults only"
                                      + unread)]
    loaded = config_file.load(path, Settings)
    resolved = config_file.check_secrets(loaded)
    problems = tuple(r.problem for r in resolved if not r.ok
                     and f"REMEDIATE_{r.ref.setting.upper()}" not in os.environ)
    detail = (f"{path}: {len(loaded.values)} setting(s), {len(resolved)} secret reference(s) "
              f"({sum(r.ok for r in resolved)} resolved)" + unread)
    status: Status = "failing" if problems else "degraded" if unread else "ok"
    return str(path), [CheckRow(capability="configuration", implementation="file", status=status, detail=detail,
                                missing=problems)]


async def _store(providers: Any, secrets: list[str]) -> CheckRow:
    from sqlalchemy.engine import make_url

    url = make_url(providers.settings.resolved_database_url)
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database and not await asyncio.to_thread(Path(url.database).exists):
        # Opening it would create it: a write. The first run (or remediate serve) creates and migrates it.
        return CheckRow(capability="store", implementation="sqlite", status="ok", reachable=None, detail=(
            f"{url.database}: not created yet (the first run creates and migrates it)"))
    try:
        await asyncio.to_thread(providers.store.ping)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return CheckRow(capability="store", implementation=url.get_backend_name(), status="failing", reachable=False,
                        detail=_scrub(f"{shown}: {first}", secrets))
    return CheckRow(capability="store", implementation=url.get_backend_name(), status="ok", reachable=True,
                    authorised=True, detail=f"{shown}: answers")


async def _prefect() -> CheckRow:
    from prefect.settings import get_current_settings

    api = get_current_settings().api.url
    if not api:
        return CheckRow(capability="approvals", implementation="prefect", status="not checked",
                        detail="no PREFECT_API_URL: runs start a temporary local Prefect API")
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        failure = await client.api_healthcheck()
    if failure is not None:
        return CheckRow(capability="approvals", implementation="prefect", status="failing", reachable=False,
                        detail=f"Prefect API {api}: {type(failure).__name__}")
    return CheckRow(capability="approvals", implementation="prefect", status="ok", reachable=True,
                    detail=f"Prefect API {api} healthy")


def _approvers(settings: Settings) -> CheckRow:
    from remediation.approver_status import summary

    status, detail = summary(settings)
    return CheckRow(capability="approvers", implementation="totp/slack", status=status,
                    detail=detail)


async def prefect_api_exposure(api: str | None, *, timeout_s: float,
                               is_loopback: Callable[[str], bool] = is_loopback_host) -> CheckRow:
    """Does the configured Prefect API answer a request without credentials, from where? Prefect OSS has no users:
    whoever gets an answer can resume paused runs, i.e. approve. Degraded when it answers on an address other
    machines can reach; ok on loopback or when it asks for the shared secret (401)."""
    if not api:
        return CheckRow(capability="prefect api", implementation="prefect", status="not checked",
                        detail="no PREFECT_API_URL: each run starts a temporary Prefect API inside its own process")
    import httpx

    try:
        status = await unauthenticated_answer(api, timeout_s=timeout_s)
    except httpx.HTTPError as exc:
        return CheckRow(capability="prefect api", implementation="prefect", status="failing", reachable=False,
                        detail=f"Prefect API {api}: unreachable ({type(exc).__name__})")
    host = api_host(api)
    if status in (401, 403):
        return CheckRow(capability="prefect api", implementation="prefect", status="ok", reachable=True,
                        detail=f"Prefect API {api} refuses requests without credentials (HTTP {status})")
    if not 200 <= status < 300:
        return CheckRow(capability="prefect api", implementation="prefect", status="degraded", reachable=True,
                        detail=f"Prefect API {api} answered HTTP {status} to a flow-run query without credentials: "
                               "cannot tell whether it asks for them")
    if is_loopback(host):
        return CheckRow(capability="prefect api", implementation="prefect", status="ok", reachable=True,
                        authorised=True, detail=f"Prefect API {api} answers without credentials, on loopback only")
    return CheckRow(capability="prefect api", implementation="prefect", status="degraded", reachable=True,
                    authorised=True, detail=(
                        f"Prefect API {api} answers without credentials on {host}, which other machines can reach: "
                        "anyone there can answer approvals; set PREFECT_SERVER_API_AUTH_STRING on the server and "
                        "PREFECT_API_AUTH_STRING here (docs/running-for-real.md, Securing the Prefect API)"))


async def run_check(settings: Settings, *, service: str = "kamkmserve") -> CheckReport:
    secrets = _secrets(settings)
    path, rows = _configuration(settings)
    platform = settings.platform or "none"
    try:
        providers = composition.connect(settings, migrate=False, local_budget=True)
    except Exception as exc:  # a configuration that cannot even be built: say why, stop there
        rows.append(CheckRow(capability="platform", implementation=platform, status="failing",
                             detail=_scrub(f"{type(exc).__name__}: {exc}", secrets)))
        return CheckReport(config_file=path, platform=platform, rows=tuple(rows))
    if settings.platform is None:
        rows.append(CheckRow(capability="platform", implementation="none", status="absent",
                             detail="REMEDIATE_PLATFORM unset: no lever; runs read, plan, record and escalate",
                             missing=("REMEDIATE_PLATFORM (sim, aws or vercel)",)))
    rows.append(_approvers(settings))
    from prefect.settings import get_current_settings

    exposure = prefect_api_exposure(get_current_settings().api.url, timeout_s=max(settings.http_timeout_s, 2.0))
    jobs: list[Awaitable[CheckRow]] = [_store(providers, secrets), _prefect(), exposure]
    for name, probe in PROBES.items():
        source = providers.sources.get(name) or Source(implementation="app", explicit=False)
        adapter = getattr(providers, name, None)
        if adapter is None or source.missing or source.implementation == "none":
            rows.append(_absent(name, source))
        else:
            jobs.append(_probe(name, adapter, probe, settings, service, source, secrets))
    selected = notify.selected_channels(settings)
    for channel in notify.CHANNELS:
        jobs.append(_channel(channel, channel in selected, settings, secrets))
    probed = await asyncio.gather(*jobs)
    for name, why in NOT_PROBED.items():
        if getattr(providers, name, None) is not None:
            known = providers.sources.get(name)
            rows.append(CheckRow(capability=name, implementation=known.implementation if known else "app",
                                 status="not checked", detail=why))
    order = ["configuration", "platform", "store", "approvals", "prefect api", "approvers", *PROBES, *NOT_PROBED,
             *(f"notify:{c}" for c in notify.CHANNELS)]
    everything = sorted([*rows, *probed], key=lambda r: order.index(r.capability) if r.capability in order else 99)
    return CheckReport(config_file=path, platform=platform, rows=tuple(everything))


CHANNEL_NEEDS = {"slack": ("REMEDIATE_SLACK_WEBHOOK_URL",),
                 "statuspage": ("REMEDIATE_STATUSPAGE_API_KEY", "REMEDIATE_STATUSPAGE_PAGE_ID"),
                 "pagerduty": ("REMEDIATE_PAGERDUTY_ROUTING_KEY",)}


async def _channel(name: str, selected: bool, settings: Settings, secrets: list[str]) -> CheckRow:
    if not selected:  # not in use: what it would need is information, not a failure
        return CheckRow(capability=f"notify:{name}", implementation="none", status="absent", detail="not in use",
                        missing=CHANNEL_NEEDS[name])
    channel: Any = notify.channel(name, settings)
    try:
        result: ProbeResult = await asyncio.wait_for(channel.probe(), timeout=max(settings.notify_timeout_s, 2.0))
    except TimeoutError:
        result = ProbeResult.unreachable(f"no answer within {max(settings.notify_timeout_s, 2.0):g}s")
    return _row(f"notify:{name}", name, result, secrets)


def _mark(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "NO")


_STATUS_STYLE = {"degraded": "yellow", "failing": "red"}
_STATUS_SHOWN = {"failing": "FAILING"}


def render(report: CheckReport, console: Console) -> None:
    """A table on a wide terminal; on a narrow one (80 columns) one block per capability, so that no capability
    name, status or word of the detail is cut or split (remediation.render)."""
    columns = [render_kit.Column(c) for c in ("capability", "implementation", "status", "reachable", "authorised")]
    columns.append(render_kit.Column("detail / missing", wraps=True))
    rows = [(row.capability, row.implementation, _status(row), _mark(row.reachable), _mark(row.authorised),
             _detail(row)) for row in report.rows]
    if render_kit.table_fits(columns, rows, console.width):
        render_kit.records(console, columns, rows, title=f"remediate check · platform {report.platform}")
    else:
        console.print(f"remediate check · platform {report.platform}", style="italic", markup=False)
        for row in report.rows:
            console.print(Text(f"{row.capability}: ") + _status(row) + Text(f" ({row.implementation})"),
                          soft_wrap=True)
            if row.reachable is not None or row.authorised is not None:
                console.print(f"  reachable {_mark(row.reachable)}, authorised {_mark(row.authorised)}",
                              markup=False, soft_wrap=True)
            render_kit.say(console, _detail(row), indent="  ")
    failing = [r.capability for r in report.rows if r.status == "failing"]
    degraded = [r.capability for r in report.rows if r.status == "degraded"]
    render_kit.say(console, f"failing: {', '.join(failing)}" if failing else "all configured capabilities answered"
                   + (f" (degraded: {', '.join(degraded)})" if degraded else ""), hang="  ")


def _status(row: CheckRow) -> Text:
    return Text(_STATUS_SHOWN.get(row.status, row.status), style=_STATUS_STYLE.get(row.status, ""))


def _detail(row: CheckRow) -> str:
    return row.detail + (f"; missing: {', '.join(row.missing)}" if row.missing else "")


def check_command(*, service: str, json_output: bool, console: Console) -> int:
    from pydantic import ValidationError

    try:
        settings = Settings()
    except config_file.ConfigError as exc:  # the configuration itself is wrong: say where
        console.print(f"configuration error: {exc}", soft_wrap=True, markup=False)
        return 2
    except ValidationError as exc:
        for line in error_lines(exc):
            console.print(f"configuration error: {line}", soft_wrap=True, markup=False)
        return 2
    report = asyncio.run(run_check(settings, service=service))
    if json_output:
        print(json.dumps({"ok": report.ok, **report.model_dump(mode="json")}, indent=2))
    else:
        render(report, console)
    return 0 if report.ok else 1

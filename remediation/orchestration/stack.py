"""``remediate serve`` as one function: Prefect API, bootstrap, served runbooks, warm executor, alert receiver.

Start order, and the reverse on shutdown (SIGTERM/SIGINT in the main thread, or ``stop_event`` from anywhere):

  1. a local ``prefect server start`` subprocess, only when no Prefect API is configured (PostgreSQL when
     ``REMEDIATE_PREFECT_DATABASE_URL`` is set, else SQLite under ``REMEDIATE_HOME/prefect``), listening on
     127.0.0.1 only and, when ``PREFECT_SERVER_API_AUTH_STRING`` is set, asking for it; once ``/api/health``
     answers, ``PREFECT_API_URL`` (and ``PREFECT_API_AUTH_STRING``) are exported for this process and the runs it
     spawns. Its port is ``REMEDIATE_PREFECT_PORT`` (4200; the next free one, with a warning, when taken), so links
     in earlier notifications survive a restart. It dies with this process even on SIGKILL (``parent_death``), and
     its environment holds none of our secrets (``server_environment``).
  2. ``bootstrap`` (work pool, service limits, zombie automation)
  3. the runbook deployments served in a thread (Prefect's own path: event triggers, UI "Run", fallbacks)
  4. the ``WarmExecutor`` (fast path), falling back to ``DeploymentStarter``
  5. uvicorn serving ``app_factory(executor)`` on ``host:port``

Shutdown stops uvicorn (no new alerts), then serving (served runs waiting for an approval that may be run again
are suspended, the others cancelled, as Prefect's ``serve`` does on SIGTERM), then the executor (the same for its
runs, which are otherwise marked Crashed), then the server subprocess; exit code 0 (``resumable``).
Flows find their providers through ``remediation.runtime``: this function binds ``composition.connect(settings)``
process-wide for the executor's threads; served child processes build theirs from the environment.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from remediation.orchestration import parent_death, serve_record
from remediation.orchestration.prefect_api import is_loopback_host
from remediation.settings import Settings

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("remediation.orchestration")

AppFactory = Callable[[Any], Any]  # (RunStarter) -> ASGI app
DEFAULT_HEARTBEAT_S = "30"  # the minimum; with it the zombie automation marks a SIGKILLed run Crashed in ~1 min


class StackStartFailed(RuntimeError):
    pass


@dataclass
class LocalPrefectServer:
    """A ``prefect server start`` subprocess in its own session, stopped by its process group id."""

    api_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.process.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(wait_s)
                return
            except subprocess.TimeoutExpired:
                continue


def prefect_database_url(settings: Settings, home: Path) -> str:
    """Async SQLAlchemy URL for the Prefect server: ``REMEDIATE_PREFECT_DATABASE_URL`` (any postgres driver
    spelling becomes asyncpg, which Prefect's server needs) or SQLite at ``home/prefect.db``."""
    url = settings.prefect_database_url
    if not url:
        return f"sqlite+aiosqlite:///{(home / 'prefect.db').resolve()}"
    scheme, sep, rest = str(url).partition("://")
    if scheme in {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2", "postgresql+asyncpg"}:
        return f"postgresql+asyncpg{sep}{rest}"
    return str(url)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


#: How far past the configured port ``serve`` looks for a free one before giving up.
PORT_SEARCH_SPAN = 50

#: Environment the Prefect server is given, by exact name and by prefix: what it needs to run Python, find its
#: settings, speak the locale and reach its database (``PG*``: libpq-style settings asyncpg reads, e.g. PGPASSWORD
#: or PGSSLROOTCERT for a PostgreSQL URL that leaves them out). Nothing else: our own secrets (REMEDIATE_*, the
#: intake token, Slack, Sentry, PagerDuty, cloud credentials) would otherwise sit in its /proc/<pid>/environ.
SERVER_ENV_NAMES = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TEMP",
                              "TMP", "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR", "SYSTEMROOT"})
SERVER_ENV_PREFIXES = ("PREFECT_", "PYTHON", "LC_", "PG")
#: Client-side Prefect settings (the API key or auth string *we* send) and what we set on the command line.
SERVER_ENV_DROPPED_PREFIXES = ("PREFECT_API_", "PREFECT_SERVER_API_HOST", "PREFECT_SERVER_API_PORT",
                               "PREFECT_SERVER_API_AUTH_STRING")


def server_environment(environ: dict[str, str] | os._Environ[str], *, home: Path, host: str, port: int,
                       database_url: str, auth_string: str | None) -> dict[str, str]:
    """The Prefect server's whole environment: the allow-list above from ``environ``, plus its own settings."""
    env = {name: value for name, value in environ.items()
           if (name in SERVER_ENV_NAMES or name.startswith(SERVER_ENV_PREFIXES))
           and not name.startswith(SERVER_ENV_DROPPED_PREFIXES)}
    # --host on the command line already wins over PREFECT_SERVER_API_HOST; the settings say the same, so that
    # nothing reading them (the UI's API URL, a future Prefect) can pick another address.
    env.update({"PREFECT_HOME": str(home.resolve()), "PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url,
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_API_URL": f"http://{host}:{port}/api",
                "PREFECT_SERVER_API_HOST": host, "PREFECT_SERVER_API_PORT": str(port)})
    if auth_string:
        env["PREFECT_SERVER_API_AUTH_STRING"] = auth_string
    return env


def port_is_free(host: str, port: int) -> bool:
    """Whether ``prefect server start`` could bind ``host:port`` (same test it makes: a bind with SO_REUSEADDR)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
    except OSError:
        return False
    return True


def first_free_port(host: str, wanted: int, span: int = PORT_SEARCH_SPAN) -> int:
    """``wanted`` if free, else the next free port above it, with a warning naming both (links in notifications sent
    before this restart point at ``wanted``). Raises ``StackStartFailed`` when none of ``span`` ports is free."""
    for candidate in range(wanted, min(wanted + span, 65536)):
        if port_is_free(host, candidate):
            if candidate != wanted:
                log.warning("port %d is taken (another Prefect server? a leftover of an earlier serve?): the local "
                            "Prefect server listens on port %d instead; set REMEDIATE_PREFECT_PORT to choose",
                            wanted, candidate)
            return candidate
    raise StackStartFailed(f"no free port in {wanted}-{wanted + span - 1} on {host} for the Prefect server")


def start_local_prefect_server(home: Path, *, database_url: str, host: str = "127.0.0.1", port: int | None = None,
                               timeout_s: float = 120.0, stop_event: threading.Event | None = None,
                               auth_string: str | None = None) -> LocalPrefectServer:
    """Start ``prefect server start`` with its own ``PREFECT_HOME`` and wait for ``/api/health`` (SQLite: ~11 s on
    a new database, ~4 s on an existing one; docs/reference/prefect.md §2). Raises ``StackStartFailed`` if it dies
    or is slow.

    It listens on ``host``, which must be a loopback address: Prefect OSS has no users, so anyone who reaches the
    API can answer approvals (``ValueError`` otherwise; a shared server is started by you, docs/running-for-real.md).
    The server asks for ``auth_string`` (``user:password``) when given, and for nothing else: an auth string inherited
    from the environment is dropped, so the caller always knows what its clients must send.

    ``port``: the first free one from there up (a warning names the port used when it is not ``port``); None: any
    free port. The server dies with this process, even on SIGKILL (``parent_death``): call this from a thread that
    lives as long as the server should (the main thread). Its environment is ``server_environment``: never our
    secrets.
    """
    if not is_loopback_host(host):
        raise ValueError(f"the local Prefect server listens on loopback only, not {host!r}: anyone who reaches a "
                         "Prefect API can answer approvals (for a shared server see docs/running-for-real.md)")
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "server.log"
    wanted = port
    for _attempt in range(3):
        chosen = first_free_port(host, wanted) if wanted is not None else free_port(host)
        env = server_environment(os.environ, home=home, host=host, port=chosen, database_url=database_url,
                                 auth_string=auth_string)
        log_start = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                parent_death.command(os.getpid(), [sys.executable, "-m", "prefect", "server", "start",
                                                   "--host", host, "--port", str(chosen)]),
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                # Its own session: a terminal's Ctrl-C reaches us only, and we stop the server last, in order.
                start_new_session=True,
            )
        server = LocalPrefectServer(api_url=f"http://{host}:{chosen}/api", process=process, log_path=log_path)
        try:
            _wait_healthy(server, log_start=log_start, timeout_s=timeout_s, stop_event=stop_event,
                          home=home.resolve(), auth_string=auth_string)
            return server
        except _PortTaken:
            # Someone bound the port between our check and the server's own: take the next one.
            log.info("port %d was taken while the Prefect server started; trying the next one", chosen)
            wanted = chosen + 1 if wanted is not None else None
    raise StackStartFailed(f"the Prefect server could not bind a port; see {log_path}")


class _PortTaken(Exception):
    """The server exited because its port was taken after we checked it."""


def _log_since(log_path: Path, offset: int) -> str:
    try:
        with log_path.open("rb") as lines:
            lines.seek(offset)
            return lines.read().decode(errors="replace")
    except OSError:
        return ""


def _wait_healthy(server: LocalPrefectServer, *, log_start: int, timeout_s: float,
                  stop_event: threading.Event | None, home: Path, auth_string: str | None) -> None:
    """Until our server answers on its port; ``_PortTaken`` when it exited saying the port is in use (its output
    since ``log_start``), ``StackStartFailed`` when it exited otherwise, was stopped or stayed unhealthy.

    A healthy answer alone does not prove the server is ours: another process (a second serve, a test) can bind the
    port between our check and our server's own bind, and would answer ``/api/health`` while ours is still
    importing, only to die a moment later with "address already in use". So the answer must also name our
    ``PREFECT_HOME`` (``/api/admin/settings``, asked with our auth string)."""
    import httpx

    from remediation.providers.tls import shared_ssl_context

    process, log_path = server.process, server.log_path
    deadline = time.monotonic() + timeout_s
    # As Prefect's own client sends it: the whole string, base64-encoded, whatever it holds.
    headers = {"Authorization": "Basic " + base64.b64encode(auth_string.encode()).decode()} if auth_string else {}
    # The process's one TLS context: a client per poll would build one (~40 ms of CPU) each time.
    with httpx.Client(timeout=2.0, verify=shared_ssl_context(), headers=headers) as client:
        while True:
            if process.poll() is not None:
                if "already in use" in _log_since(log_path, log_start):
                    raise _PortTaken()
                raise StackStartFailed(f"prefect server exited with {process.returncode}; see {log_path}")
            if stop_event is not None and stop_event.is_set():
                server.stop()
                raise StackStartFailed("stopped while the Prefect server was starting")
            if _answers_as(client, server.api_url, home):
                return
            if time.monotonic() > deadline:
                server.stop()
                raise StackStartFailed(f"prefect server not healthy after {timeout_s:g}s; see {log_path}")
            time.sleep(0.25)


def _answers_as(client: httpx.Client, api_url: str, home: Path) -> bool:
    """Whether the server at ``api_url`` is healthy and runs with ``home`` as its ``PREFECT_HOME``."""
    import httpx

    try:
        if client.get(f"{api_url}/health").status_code != 200:
            return False
        answer = client.get(f"{api_url}/admin/settings")
        if answer.status_code != 200:  # 401: someone else's server, asking for another auth string
            return False
        said = answer.json().get("home")
    except (httpx.HTTPError, ValueError, AttributeError):
        return False
    return isinstance(said, str) and Path(said) == home


def drain_prefect_workers(timeout_s: float = 5.0) -> None:
    """Send the logs and events Prefect still buffers (run logs, state events) while the API is still up."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=timeout_s, at_exit=False)
        except Exception:  # best effort at shutdown
            log.debug("could not drain %s", worker.__name__, exc_info=True)


def _api_configured() -> bool:
    from prefect.settings import get_current_settings

    return bool(get_current_settings().api.url)


def server_auth_string() -> str | None:
    """``PREFECT_SERVER_API_AUTH_STRING`` as Prefect resolves it for this process (environment, profile,
    ``prefect.toml``), for the server we start: its own ``PREFECT_HOME`` would not see the user's profile."""
    from prefect.settings import get_current_settings

    secret = get_current_settings().server.api.auth_string
    return (secret.get_secret_value() or None) if secret is not None else None


def export_prefect_api(api_url: str, home: Path, *, auth_string: str | None = None) -> None:
    """Make our server's URL (and the secret it asks for) visible to every thread of this process and to the runs
    it spawns.

    Only used when this process started the server (nothing else configured Prefect), so rebuilding Prefect's
    process-wide settings from the environment loses nothing. ``auth_string`` is the server's: clients must send
    exactly it, so it replaces a different ``PREFECT_API_AUTH_STRING`` (with a warning) rather than leave every
    call, approvals included, answered 401. Heartbeats every 30 s (Prefect's minimum) unless set: the zombie
    automation's window is derived from it (docs/reference/prefect.md §8).
    """
    from prefect.context import refresh_global_settings_context

    os.environ["PREFECT_API_URL"] = api_url
    if auth_string:
        if os.environ.get("PREFECT_API_AUTH_STRING", auth_string) != auth_string:
            log.warning("PREFECT_API_AUTH_STRING differs from PREFECT_SERVER_API_AUTH_STRING; using the server's, "
                        "which the Prefect server started here asks for")
        os.environ["PREFECT_API_AUTH_STRING"] = auth_string
    os.environ.setdefault("PREFECT_HOME", str(home.resolve()))
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", DEFAULT_HEARTBEAT_S)
    refresh_global_settings_context()


@contextmanager
def _stop_on_signals(stop_event: threading.Event) -> Iterator[None]:
    """Until uvicorn installs its own handlers (and after it restores them), SIGTERM/SIGINT mean "stop"."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(sig: int, frame: FrameType | None) -> None:
        log.info("received %s: shutting down", signal.Signals(sig).name)
        stop_event.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _uvicorn_server(app: Any, host: str, port: int, stop_event: threading.Event, read_timeout_s: float) -> Any:
    import uvicorn

    from remediation.intake.deadlines import http_protocol

    class _Server(uvicorn.Server):
        """Exits 0 on SIGTERM/SIGINT: stock uvicorn re-raises the signal after shutdown, which would kill the
        process before the executor and the Prefect server are stopped. The first signal only starts the drain
        (``run_stack`` stops the server after it); a second SIGINT exits at once."""

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if stop_event.is_set() and sig == signal.SIGINT:
                self.should_exit = self.force_exit = True
            stop_event.set()

    # The h11 protocol with a read deadline: a partial head or a connection that never sends is closed, not kept.
    config = uvicorn.Config(app, host=host, port=port, lifespan="on", log_level="info", access_log=False,
                            http=http_protocol(read_timeout_s))
    return _Server(config)


class Draining:
    """ASGI wrapper: once ``draining`` is set, new alerts get ``503`` + ``Retry-After`` (Alertmanager and Sentry
    redeliver) and ``/healthz`` answers 503 so a load balancer stops sending here, while requests already inside
    finish normally. kamkmserve's own readiness never flips (docs/reference/kamkmserve.md §9); ours does."""

    def __init__(self, app: Any, draining: threading.Event, retry_after_s: int = 5) -> None:
        self.app = app
        self.draining = draining
        self.retry_after_s = retry_after_s

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.draining.is_set():
            from starlette.responses import JSONResponse

            path = scope.get("path", "")
            if path.startswith("/alerts/") or path == "/healthz":
                response = JSONResponse({"error": "shutting down: deliver again later", "draining": True},
                                        status_code=503, headers={"Retry-After": str(self.retry_after_s)})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _reconcile_periodically(providers: Any, stop_event: threading.Event, here: Any, every_s: float) -> None:
    """At start-up (runs a previous process left behind) and then every ``every_s``: take over the incidents of dead
    runs of this Prefect API (``remediation.reconcile``: final, missing, or whose lease lapsed, which are crashed
    first): continued at recover by a new run when the fix was applied, else closed escalated with what is still in
    effect, so that a crashed run never blocks its service's next remediation; and let expired actor blocks lapse.

    With the default lease (60 s) and interval (30 s), a run whose process was SIGKILLed is crashed and its incident
    closed at most ~90 s later. Incidents of other APIs sharing the store are named once, then left alone."""
    from remediation.orchestration.continuation import PrefectContinuer
    from remediation.reconcile import RunVerdict, reconcile

    told: set[str] = set()
    continuer = PrefectContinuer()
    while True:
        try:
            for found in reconcile(providers.store, here=here, continue_run=continuer):
                if found.verdict is RunVerdict.CONTINUED:
                    log.warning("took over incident %s: run %s %s (%s); run %s continues it at recover",
                                found.incident_id, found.flow_run_id, found.run_state, found.detail,
                                found.continued_by)
                elif found.verdict is RunVerdict.DEAD:
                    log.warning("reconciled incident %s: run %s %s (%s); %d half-done action(s)", found.incident_id,
                                found.flow_run_id, found.run_state, found.detail, len(found.dangling))
                elif found.incident_id not in told:
                    told.add(found.incident_id)
                    log.info("incident %s (run %s): %s", found.incident_id, found.flow_run_id, found.detail)
        except Exception:
            log.exception("reconciling incidents failed; retrying in %gs", every_s)
        if providers.blocks is not None:
            # Some block lists have no TTL of their own (a WAF IP set): reading ours carries out due expiries.
            try:
                asyncio.run(providers.blocks.blocks())
            except Exception as exc:  # one line a minute, not a traceback: `remediate check` says more
                log.warning("sweeping expired blocks failed (%s: %s); retrying in %gs", type(exc).__name__,
                            str(exc)[:300], every_s)
        if stop_event.wait(every_s):
            return


def _announce_when_ready(receiver: Any, stop_event: threading.Event, settings: Settings, host: str, port: int,
                         api_url: str) -> None:
    """Once the receiver listens: record this serve in ``serve.json`` (other shells find its API there) and print
    the banner, the one place a user reads where the UI and the endpoints are (INFO logs are not shown)."""
    from remediation.orchestration import banner

    while not receiver.started:
        if stop_event.wait(0.1):
            return
    try:
        recorded = serve_record.write(settings.home, api_url=api_url, receiver_url=banner.receiver_url(host, port))
    except OSError as exc:
        log.warning("could not record this serve in %s (%s): other shells will not find its Prefect API",
                    serve_record.path(settings.home), exc)
        recorded = None
    try:
        text = banner.render(banner.facts(settings, host=host, port=port, api_url=api_url,
                                          state_file=str(recorded.resolve()) if recorded else None))
    except Exception:  # the banner is a convenience: never a reason for serve to fail
        log.exception("could not print the start-up banner")
        return
    print(text, flush=True)


def _close_providers(providers: Any) -> None:
    """Close what the providers hold open (database pools), so the process leaves no half-open sessions."""
    try:
        providers.store.dispose()
        log.info("closed the store's database connections")
    except Exception:
        log.exception("could not close the store")


def run_stack(settings: Settings, *, host: str, port: int, app_factory: AppFactory,
              stop_event: threading.Event | None = None, query_seconds: float = 1.0, max_parallel: int = 4,
              grace_s: float = 10.0, drain_s: float = 5.0, receiver_drain_s: float = 2.0) -> int:
    """Run everything until SIGTERM/SIGINT (main thread) or ``stop_event``; return the exit code (0).

    On shutdown the receiver first drains for ``receiver_drain_s`` (new alerts 503, health 503, requests in
    flight finish), then stops; warm runs get ``drain_s`` to finish by themselves before they are crashed
    (``grace_s`` more for the engine to report it); then the providers' database pools are closed, sentry-sdk
    is flushed and the Prefect server (if ours) stops. Keep the sum within the supervisor's kill timeout
    (Kubernetes and ECS: 30 s by default).
    """
    from deployments.bootstrap import bootstrap
    from deployments.serve import serve_runbooks
    from remediation import composition, runtime
    from remediation.observability import flush_sentry, init_sentry
    from remediation.orchestration import prefect_identity, resumable
    from remediation.orchestration.leases import RunLeases, process_keeper
    from remediation.orchestration.warm import WarmExecutor

    stop_event = stop_event or threading.Event()
    init_sentry(settings)
    # ExitStack unwinds in reverse: serve stops first, then the executor, then the providers, then sentry-sdk is
    # flushed, then the server.
    with ExitStack() as cleanup, _stop_on_signals(stop_event):
        if not _api_configured():
            home = settings.home / "prefect"
            auth_string = server_auth_string()
            try:
                server = start_local_prefect_server(home, database_url=prefect_database_url(settings, home),
                                                    port=settings.prefect_port, stop_event=stop_event,
                                                    auth_string=auth_string)
            except StackStartFailed:
                if stop_event.is_set():  # SIGTERM while the server was starting: a clean stop, not a failure
                    return 0
                raise
            cleanup.callback(server.stop)
            cleanup.callback(drain_prefect_workers)
            export_prefect_api(server.api_url, home, auth_string=auth_string)
            log.info("Prefect API (local server) at %s (loopback only; %s)", server.api_url,
                     "basic auth: PREFECT_SERVER_API_AUTH_STRING" if auth_string else "no auth string")
        cleanup.callback(flush_sentry)
        if stop_event.is_set():
            return 0
        bootstrap(settings)
        providers = composition.connect(settings)
        cleanup.callback(_close_providers, providers)
        cleanup.enter_context(runtime.use(providers))
        # Whose runs these are (reconcile judges no other API's), and the leases of the runs executed here; the
        # keeper stops after the executor (leases still held then are given back).
        here = prefect_identity.current_api()
        keeper = process_keeper(settings)
        cleanup.callback(keeper.close)
        log.info("Prefect API %s (identity %s); run leases %gs, renewed every %gs; reconciling every %gs", here.url,
                 here.id, settings.run_lease_s, settings.run_lease_renew_s, settings.reconcile_interval_s)
        reconciling = threading.Thread(target=_reconcile_periodically, name="reconcile", daemon=True,
                                       args=(providers, stop_event, here, settings.reconcile_interval_s))
        reconciling.start()
        cleanup.callback(reconciling.join, 5.0)
        # A run waiting for approval, having changed nothing yet, is suspended at shutdown rather than crashed.
        executor = WarmExecutor(max_parallel=max_parallel, park=resumable.nothing_applied(providers.store),
                                leases=RunLeases(keeper, providers.store, here))
        cleanup.callback(executor.shutdown, grace_s, drain_s)

        serve_stop, serve_ready = threading.Event(), threading.Event()
        # Served runs waiting for approval, by the same rule, are suspended too (by their own processes).
        serving = threading.Thread(target=serve_runbooks, args=(settings,), name="serve-runbooks", daemon=True,
                                   kwargs={"query_seconds": query_seconds, "stop": serve_stop, "ready": serve_ready,
                                           "parking": resumable.served_parking(providers.store)})
        serving.start()
        cleanup.callback(serving.join, 30.0)
        cleanup.callback(serve_stop.set)
        while not serve_ready.wait(0.2):
            if not serving.is_alive():
                raise StackStartFailed("serving the runbook deployments failed; see the log above")
            if stop_event.is_set():
                return 0
        executor.open()  # after serve registered the deployments, so it finds their ids

        draining = threading.Event()
        receiver = _uvicorn_server(Draining(app_factory(executor), draining), host, port, stop_event,
                                   settings.intake_read_timeout_s)

        def stop_receiver() -> None:
            stop_event.wait()
            draining.set()
            log.info("draining the receiver for %gs: new alerts get 503", receiver_drain_s)
            time.sleep(receiver_drain_s)
            receiver.should_exit = True

        threading.Thread(target=stop_receiver, name="stack-stop", daemon=True).start()
        cleanup.callback(serve_record.remove, settings.home)
        threading.Thread(target=_announce_when_ready, name="stack-banner", daemon=True,
                         args=(receiver, stop_event, settings, host, port, here.url)).start()
        if not stop_event.is_set():
            receiver.run()
        stop_event.set()
        log.info("receiver stopped; stopping serve, the executor and the Prefect server")
    return 0

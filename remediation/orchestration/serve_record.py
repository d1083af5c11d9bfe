"""``serve.json`` in the state directory: how a second shell finds the Prefect API a running ``remediate serve`` uses.

Without it, every command run without ``PREFECT_API_URL`` starts its own temporary Prefect API, which knows nothing
of serve's runs: ``remediate paused`` listed nothing and ``remediate approve`` failed. ``serve`` writes the file
once it is ready and removes it on a clean exit; :func:`discover` trusts it only while its process lives and its
API answers, so a file left by a killed serve is ignored (and said so). An explicit ``PREFECT_API_URL`` always wins.
The file holds no secret: an API that asks for an auth string still needs ``PREFECT_API_AUTH_STRING``.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, MutableMapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

FILE_NAME = "serve.json"


@dataclass(frozen=True)
class ServeRecord:
    prefect_api_url: str
    pid: int
    host: str
    receiver_url: str
    started_at: str


def path(home: Path) -> Path:
    return home / FILE_NAME


def write(home: Path, *, api_url: str, receiver_url: str, pid: int | None = None) -> Path:
    """Record this process as the serve of ``home`` (atomically: a reader never sees half a file)."""
    record = ServeRecord(prefect_api_url=api_url, pid=pid or os.getpid(), host=socket.gethostname(),
                         receiver_url=receiver_url, started_at=datetime.now(UTC).isoformat(timespec="seconds"))
    home.mkdir(parents=True, exist_ok=True)
    target = path(home)
    partial = target.with_name(f".{FILE_NAME}.{record.pid}")
    partial.write_text(json.dumps(asdict(record), indent=2) + "\n")
    partial.replace(target)
    return target


def remove(home: Path, pid: int | None = None) -> None:
    """Remove the record if it is this process's (a later serve of the same home may have replaced it)."""
    found = read(home)
    if found is not None and found.pid == (pid or os.getpid()):
        path(home).unlink(missing_ok=True)


def read(home: Path) -> ServeRecord | None:
    try:
        raw = json.loads(path(home).read_text())
        return ServeRecord(prefect_api_url=str(raw["prefect_api_url"]), pid=int(raw["pid"]), host=str(raw["host"]),
                           receiver_url=str(raw.get("receiver_url", "")), started_at=str(raw.get("started_at", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def api_answers(api_url: str, timeout_s: float = 2.0) -> bool:
    """Whether ``api_url/health`` answers 200 (Prefect keeps it public even behind an auth string)."""
    import httpx

    try:
        return httpx.get(f"{api_url.rstrip('/')}/health", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass(frozen=True)
class Found:
    api_url: str | None  # the API to use; None: none found (the caller goes on as before)
    note: str | None  # one line for stderr, when something was found but not used


def discover(home: Path, environ: MutableMapping[str, str], *, alive: Callable[[int], bool] = pid_alive,
             answers: Callable[[str], bool] = api_answers) -> Found:
    """The Prefect API of the serve recorded under ``home``, unless ``PREFECT_API_URL`` is set already."""
    if environ.get("PREFECT_API_URL"):
        return Found(None, None)
    record = read(home)
    if record is None:
        return Found(None, None)
    where = f"{path(home)} (serve pid {record.pid}, started {record.started_at})"
    if record.host == socket.gethostname() and not alive(record.pid):
        return Found(None, f"ignoring {where}: that process is gone")
    if not answers(record.prefect_api_url):
        return Found(None, f"ignoring {where}: its Prefect API {record.prefect_api_url} does not answer")
    return Found(record.prefect_api_url, None)


def use_running_serve(home: Path, environ: MutableMapping[str, str] | None = None) -> Found:
    """:func:`discover`, and point this process's Prefect client at what it found (before Prefect reads its
    settings; refreshed if Prefect is imported already)."""
    import sys

    environ = os.environ if environ is None else environ
    found = discover(home, environ)
    if found.api_url:
        environ["PREFECT_API_URL"] = found.api_url
        if "prefect.context" in sys.modules and environ is os.environ:
            from prefect.context import refresh_global_settings_context

            refresh_global_settings_context()
    return found

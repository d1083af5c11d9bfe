"""The Prefect API that ``remediate serve`` starts for itself is not an open door: it listens on loopback only,
whatever the environment says, and with ``PREFECT_SERVER_API_AUTH_STRING`` set it asks for that secret while serve's
own clients (bootstrap, serving, the warm executor, the runs) send it."""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from remediation.orchestration.stack import free_port, start_local_prefect_server
from tests.helpers import local_http
from tests.helpers.prefect_templates import seed_prefect_home
from tests.orchestration.orchkit import key

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = "elevated-error-rate/elevated-error-rate"
SECRET = "admin:serve-SECRET-42"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "prefect.internal", ""])
def test_the_local_server_refuses_a_non_loopback_address_before_starting_anything(tmp_path: Path, host: str) -> None:
    home = tmp_path / "prefect"
    with pytest.raises(ValueError, match="loopback only"):
        start_local_prefect_server(home, database_url=f"sqlite+aiosqlite:///{home / 'prefect.db'}", host=host)
    assert not home.exists(), "refused before any file or process was made"


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket in LISTEN state on ``port``, from /proc/net/tcp{,6} (no traffic sent)."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        if not os.path.exists(table):
            continue
        with open(table) as lines:
            next(lines)
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                address, _, hex_port = local.partition(":")
                if state != "0A" or int(hex_port, 16) != port or len(address) != width:
                    continue
                # The kernel prints each 32-bit word of the address in host (little-endian) byte order.
                raw = b"".join(bytes.fromhex(address[i:i + 8])[::-1] for i in range(0, width, 8))
                found.add(str(ipaddress.ip_address(raw)))
    return found


def wait_for(what: str, condition: Callable[[], Any], process: subprocess.Popen[str], timeout_s: float) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the stack exited early while waiting for {what}"
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout_s:g}s")


Stack = tuple[subprocess.Popen[str], list[str], int]  # the process, its output lines so far, the receiver's port


@contextmanager
def running_stack(tmp_path: Path, env_updates: dict[str, str]) -> Iterator[Stack]:
    """``run_stack`` in a subprocess (its own Prefect server), its output collected line by line as it comes."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "REMEDIATE_", "SENTRY_"))}
    env.update({"REMEDIATE_HOME": str(tmp_path), "REMEDIATE_APP_URL": "http://127.0.0.1:9",
                "REMEDIATE_HTTP_TIMEOUT_S": "0.5", **env_updates})
    seed_prefect_home(tmp_path / "prefect")  # serve's server database, migrated: it starts without migrating
    process = subprocess.Popen([sys.executable, "-m", "tests.orchestration.orch_stack_main", "127.0.0.1", str(port)],
                               cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout or ()), daemon=True)
    reader.start()
    try:
        yield process, output, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # the polite way, so that it stops its Prefect server too
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(10)


@pytest.mark.prefect_server
def test_serve_starts_a_loopback_server_that_asks_for_the_auth_string_and_its_own_clients_send_it(
    tmp_path: Path
) -> None:
    basic = {"Authorization": f"Basic {base64.b64encode(SECRET.encode()).decode()}"}
    # PREFECT_SERVER_API_HOST asks for every interface: the server serve starts must ignore it.
    with running_stack(tmp_path, {"PREFECT_SERVER_API_AUTH_STRING": SECRET,
                                  "PREFECT_SERVER_API_HOST": "0.0.0.0"}) as (process, output, port):
        line = wait_for("the Prefect API's address in the log", lambda: next(
            (m for m in (re.search(r"Prefect API \(local server\) at (\S+)", ln) for ln in list(output)) if m), None),
            process, timeout_s=120)
        api = line.group(1)
        # Bootstrap, serving and the warm executor all talk to the API before /healthz lists the runbooks.
        health = wait_for("the receiver's health", lambda: _json(f"http://127.0.0.1:{port}/healthz"), process, 180)
        assert health["healthy"] is True and RUNBOOK in health["loaded"]

        api_port = httpx.URL(api).port
        assert api_port is not None
        addresses = listening_addresses(api_port)
        assert addresses and all(ipaddress.ip_address(a).is_loopback for a in addresses), addresses
        assert local_http.post(f"{api}/flow_runs/filter", json={"limit": 1}, timeout=10).status_code == 401
        found = local_http.post(f"{api}/flow_runs/filter", json={"limit": 1}, headers=basic, timeout=10)
        assert found.status_code == 200

        started = local_http.post(f"http://127.0.0.1:{port}/start", timeout=30, json={
            "deployment": RUNBOOK, "key": key("auth"),
            "parameters": {"service": "kamkmserve", "mode": "dry_run", "sample_interval_s": 0.1, "confirm_samples": 1,
                           "alert_name": "HighErrorRate", "incident_id": "inc-auth"}})
        assert started.status_code == 200, started.text
        run_id = started.json()["run_id"]

        def final_state() -> str | None:
            state = local_http.get(f"{api}/flow_runs/{run_id}", headers=basic, timeout=10).json().get("state") or {}
            return state.get("type") if state.get("type") in FINAL else None

        assert wait_for("the run to finish", final_state, process, timeout_s=120) == "COMPLETED"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, "".join(output)
    text = "".join(output)
    assert "loopback only; basic auth: PREFECT_SERVER_API_AUTH_STRING" in text
    assert SECRET not in text, "the secret is never logged"
    assert "Unauthorized" not in text, "no client of serve was refused"


def _json(url: str) -> Any:
    try:
        response = local_http.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None

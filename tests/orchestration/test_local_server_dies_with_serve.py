"""The Prefect server ``remediate serve`` starts dies with it, even on SIGKILL, holds none of serve's secrets in its
environment, and keeps a stable port (the configured one, else the next free one, said in a warning)."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from remediation.orchestration import parent_death
from remediation.orchestration.stack import first_free_port, free_port, server_environment
from tests.helpers import local_http
from tests.helpers.prefect_templates import seed_prefect_home
from tests.orchestration.orchkit import wait_for

REPO = Path(__file__).resolve().parents[2]
#: Secrets serve holds; the values are unique, so finding one in the server's environment is unambiguous.
SEEDED = {
    "REMEDIATE_INTAKE_TOKEN": "seed-intake-token-7f3a",
    "REMEDIATE_SLACK_WEBHOOK_URL": "https://hooks.slack.example/seed-slack-91c2",
    "REMEDIATE_SLACK_SIGNING_SECRET": "seed-signing-55d0",
    "REMEDIATE_PAGERDUTY_ROUTING_KEY": "seed-pagerduty-0b7e",
    "SENTRY_DSN": "https://seed-sentry-key-3e1d@sentry.example/1",
    "AWS_SECRET_ACCESS_KEY": "seed-aws-secret-c4f8",
}


def process_gone(pid: int) -> bool:
    """No such process, or only its zombie (its parent is dead; whoever adopted it reaps it when it does)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def environ_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as raw:
        pairs = [item.decode(errors="replace").partition("=") for item in raw.read().split(b"\0") if item]
    return {name: value for name, _, value in pairs}


@pytest.fixture
def occupied_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.prefect_server
def test_a_sigkilled_serve_takes_its_prefect_server_along_and_never_gave_it_its_secrets(
    tmp_path: Path, occupied_port: int
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "REMEDIATE_", "SENTRY_"))}
    env.update(SEEDED)
    seed_prefect_home(tmp_path)  # a migrated database: the server starts without migrating
    serve = subprocess.Popen([sys.executable, "-m", "tests.orchestration.local_server_main", str(tmp_path),
                              str(occupied_port)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(serve.stdout or ()), daemon=True)
    reader.start()
    server_pid = 0
    try:
        started = wait_for(lambda: next((line for line in list(output) if line.startswith("SERVER ")), None),
                           timeout_s=120, interval_s=0.2, what="the Prefect server to start")
        _, pid, api_url = started.split()
        server_pid = int(pid)
        assert local_http.get(f"{api_url}/health", timeout=5).status_code == 200

        server_env = environ_of(server_pid)
        leaked = {name for name, secret in SEEDED.items() if any(secret in value for value in server_env.values())}
        assert not leaked, f"the Prefect server's environment holds {sorted(leaked)}"
        assert not any(name.startswith("REMEDIATE_") for name in server_env), sorted(server_env)
        assert server_env["PREFECT_HOME"] == str(tmp_path.resolve()) and "PATH" in server_env

        # The configured port was taken: the next free one, and a warning that names both.
        used_port = httpx.URL(api_url).port
        assert used_port is not None and used_port > occupied_port
        assert any(f"port {occupied_port} is taken" in line and f"port {used_port} instead" in line
                   for line in output), "".join(output)

        serve.send_signal(signal.SIGKILL)
        serve.wait(10)
        wait_for(lambda: process_gone(server_pid), timeout_s=15, interval_s=0.1,
                 what=f"the Prefect server (pid {server_pid}) to exit after its parent was SIGKILLed")
        with pytest.raises(httpx.ConnectError):
            local_http.get(f"{api_url}/health", timeout=2)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        if server_pid and not process_gone(server_pid):  # the behaviour under test failed: do not leave an orphan
            os.kill(server_pid, signal.SIGKILL)
        reader.join(5)


def test_the_server_environment_is_an_allow_list(tmp_path: Path) -> None:
    inherited = {**SEEDED, "PATH": "/usr/bin", "HOME": "/home/x", "LC_ALL": "C.UTF-8", "TZ": "UTC",
                 "PYTHONPATH": "/src", "PGPASSWORD": "prefect-db", "PREFECT_LOGGING_LEVEL": "INFO",
                 "PREFECT_API_KEY": "client-side", "PREFECT_API_AUTH_STRING": "client:side",
                 "PREFECT_SERVER_API_HOST": "0.0.0.0", "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    env = server_environment(inherited, home=tmp_path, host="127.0.0.1", port=4200,
                             database_url="sqlite+aiosqlite:///x.db", auth_string="admin:s")
    assert {"PATH", "HOME", "LC_ALL", "TZ", "PYTHONPATH", "PGPASSWORD", "PREFECT_LOGGING_LEVEL"} <= set(env)
    assert not set(SEEDED) & set(env)
    assert "PREFECT_API_KEY" not in env and "PREFECT_API_AUTH_STRING" not in env
    assert "KUBERNETES_SERVICE_HOST" not in env
    assert env["PREFECT_SERVER_API_HOST"] == "127.0.0.1" and env["PREFECT_SERVER_API_PORT"] == "4200"
    assert env["PREFECT_SERVER_API_AUTH_STRING"] == "admin:s"


def test_the_configured_port_is_kept_when_free_and_the_next_free_one_is_named_when_not(
    occupied_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    free = free_port()
    with caplog.at_level(logging.WARNING, logger="remediation.orchestration"):
        assert first_free_port("127.0.0.1", free) == free
        assert not caplog.records
        chosen = first_free_port("127.0.0.1", occupied_port)
    assert chosen > occupied_port
    assert [r.getMessage() for r in caplog.records if "is taken" in r.getMessage()] == [
        f"port {occupied_port} is taken (another Prefect server? a leftover of an earlier serve?): the local Prefect "
        f"server listens on port {chosen} instead; set REMEDIATE_PREFECT_PORT to choose"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_command_under_the_wrapper_gets_sigterm_when_its_parent_is_sigkilled(tmp_path: Path) -> None:
    """The wrapper alone, with a trivial command: no Prefect server needed."""
    marker = tmp_path / "child.pid"
    # parent: a Python process that starts `sleep` under the wrapper and then waits to be killed.
    parent_code = (
        "import os, subprocess, sys, threading\n"
        "from remediation.orchestration import parent_death\n"
        f"p = subprocess.Popen(parent_death.command(os.getpid(), ['sleep', '300']))\n"
        f"open({str(marker)!r}, 'w').write(str(p.pid))\n"
        "threading.Event().wait()\n")
    parent = subprocess.Popen([sys.executable, "-c", parent_code], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        child_pid = int(wait_for(lambda: marker.exists() and marker.read_text(), timeout_s=30, what="the child"))
        wait_for(lambda: _cmdline(child_pid).startswith("sleep"), timeout_s=10, what="the wrapper to exec sleep")
        assert not process_gone(child_pid)
        parent.kill()
        parent.wait(10)
        wait_for(lambda: process_gone(child_pid), timeout_s=10, what="the child to die with its parent")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    assert parent_death.command(1, ["x"])[-2:] == ["--", "x"]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as raw:
            return raw.read().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""

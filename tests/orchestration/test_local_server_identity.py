"""``serve`` takes a healthy answer on its Prefect server's port for its own server only when that answer names its
``PREFECT_HOME``: another process that grabbed the port first (a second serve, with or without an auth string) is
not mistaken for it, and the start moves on once its own server reports the port taken.

The server here is a stand-in (a small HTTP server and a process that exits as ``prefect server start`` does when
its port is taken), so the race that failed CI once is played in order, not hoped for."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from remediation.orchestration import stack
from remediation.orchestration.stack import LocalPrefectServer
from tests.helpers.fake_notify import FakeServer, Reply, Request

#: Waits for a marker file, then says what uvicorn says when its port is taken and exits 1.
LOSER = ("import pathlib, sys, time\n"
         "marker, log = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])\n"
         "while not marker.exists(): time.sleep(0.02)\n"
         "log.open('a').write('ERROR: [Errno 98] error while attempting to bind: address already in use\\n')\n"
         "sys.exit(1)\n")


class Impostor(FakeServer):
    """A healthy Prefect API whose settings name ``home``, asking for ``auth_string`` when given (the project's
    local fake server: every request is recorded); it touches ``asked`` once its settings were read or refused."""

    def __init__(self, home: str, auth_string: str | None, asked: Path) -> None:
        super().__init__()
        self.home, self.asked = home, asked
        self.expected = "Basic " + base64.b64encode(auth_string.encode()).decode() if auth_string else None

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def settings_requests(self) -> int:
        return sum(1 for r in self.requests if r.path == "/api/admin/settings")

    def handle(self, request: Request) -> Reply:
        if request.path == "/api/health":
            return Reply(200, True)
        if request.path != "/api/admin/settings":
            return Reply(404, {"detail": "Not Found"})
        self.asked.touch()
        if self.expected is not None and request.headers.get("authorization") != self.expected:
            return Reply(401, {"exception_message": "Unauthorized"})
        return Reply(200, {"home": self.home, "debug_mode": False})


@pytest.fixture
def our_home(tmp_path: Path) -> Path:
    home = tmp_path / "prefect"
    home.mkdir()
    return home.resolve()


@contextmanager
def _losing_server(tmp_path: Path, api_url: str, asked: Path) -> Iterator[LocalPrefectServer]:
    log_path = tmp_path / "server.log"
    log_path.write_text("")
    process = subprocess.Popen([sys.executable, "-c", LOSER, str(asked), str(log_path)])
    try:
        yield LocalPrefectServer(api_url=api_url, process=process, log_path=log_path)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(10)


@pytest.mark.parametrize(("their_home", "their_auth"), [("/elsewhere/prefect", None), (None, "admin:theirs")],
                         ids=["another-home", "another-auth-string"])
def test_a_server_that_is_not_ours_on_our_port_is_not_taken_for_ours(
    tmp_path: Path, our_home: Path, their_home: str | None, their_auth: str | None
) -> None:
    asked = tmp_path / "asked"
    with (Impostor(their_home or str(our_home), their_auth, asked) as impostor,
          _losing_server(tmp_path, impostor.api_url, asked) as server, pytest.raises(stack._PortTaken)):
        stack._wait_healthy(server, log_start=0, timeout_s=60, stop_event=None, home=our_home,
                            auth_string="admin:ours" if their_auth else None)
    assert impostor.settings_requests >= 1


@pytest.mark.parametrize("auth_string", [None, "admin:s3cr:et"], ids=["no-auth", "auth-string-with-colons"])
def test_our_own_server_is_recognised_by_its_home_and_auth_string(
    tmp_path: Path, our_home: Path, auth_string: str | None
) -> None:
    asked = tmp_path / "asked"
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        with Impostor(str(our_home), auth_string, asked) as ours:
            server = LocalPrefectServer(api_url=ours.api_url, process=process, log_path=tmp_path / "server.log")
            stack._wait_healthy(server, log_start=0, timeout_s=60, stop_event=None, home=our_home,
                                auth_string=auth_string)
    finally:
        process.kill()
        process.wait(10)
    assert ours.settings_requests == 1

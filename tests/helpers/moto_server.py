"""moto 5.2.5 in server mode for the AWS tests: a real HTTP endpoint on 127.0.0.1 that boto3 talks to.

One ``moto.server`` subprocess per test session (its own process, so its request handling does not compete with
the flows under test for the GIL), started on first use on a free port and wiped between tests with
``POST /moto-api/reset``. Clients find it through ``endpoint_url``; credentials are moto's dummy ones, set in
the environment so the adapters' standard credential chain finds them (never passed as parameters).
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from remediation.orchestration.stack import free_port
from tests.helpers import local_http

REGION = "us-east-1"
ACCOUNT = "123456789012"
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}


class MotoServer:
    def __init__(self) -> None:
        self.port = 0
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> MotoServer:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **DUMMY_CREDENTIALS}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self._process.returncode}")
            try:
                if local_http.get(f"{self.url}/moto-api/data.json", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto_server did not answer on {self.url} within {timeout_s:g}s")

    def reset(self) -> None:
        local_http.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def client(self, service: str) -> Any:
        """A plain boto3 client for seeding and inspecting the emulator from a test."""
        import boto3

        return boto3.client(service, region_name=REGION, endpoint_url=self.url, **_credentials())


def _credentials() -> dict[str, str]:
    return {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "aws_session_token": "testing"}


_shared: MotoServer | None = None
_lock = threading.Lock()


def shared_moto() -> MotoServer:
    """The session's moto server, started on first use and stopped when the test process exits."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = MotoServer().start()
            atexit.register(_shared.stop)
        return _shared


@pytest.fixture
def moto(monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    """A wiped moto server, and the dummy credentials in the environment for the adapters' credential chain."""
    for name, value in DUMMY_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE",
                 "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    server = shared_moto()
    server.reset()
    yield server

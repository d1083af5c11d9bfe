"""A second shell finds the Prefect API of the running `remediate serve` through serve.json, and only a live one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from remediation.orchestration import serve_record


@pytest.fixture
def health_api() -> Iterator[str]:
    """A stand-in Prefect API whose /api/health answers 200."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/api/health" else 404)
            self.end_headers()
            self.wfile.write(b"true")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api"
    finally:
        server.shutdown()
        server.server_close()


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_live_serve_with_a_healthy_api_is_used(tmp_path: Path, health_api: str) -> None:
    serve_record.write(tmp_path, api_url=health_api, receiver_url="http://127.0.0.1:8080")
    environ: dict[str, str] = {}
    found = serve_record.use_running_serve(tmp_path, environ)
    assert found.api_url == health_api and found.note is None
    assert environ["PREFECT_API_URL"] == health_api


def test_an_explicit_prefect_api_url_wins_over_the_record(tmp_path: Path, health_api: str) -> None:
    serve_record.write(tmp_path, api_url=health_api, receiver_url="http://127.0.0.1:8080")
    environ = {"PREFECT_API_URL": "http://elsewhere:4200/api"}
    found = serve_record.use_running_serve(tmp_path, environ)
    assert found.api_url is None and found.note is None
    assert environ["PREFECT_API_URL"] == "http://elsewhere:4200/api"


def test_a_record_of_a_dead_process_is_ignored_with_one_note(tmp_path: Path, health_api: str) -> None:
    pid = _dead_pid()
    serve_record.write(tmp_path, api_url=health_api, receiver_url="http://127.0.0.1:8080", pid=pid)
    environ: dict[str, str] = {}
    found = serve_record.use_running_serve(tmp_path, environ)
    assert found.api_url is None
    assert found.note is not None and f"serve pid {pid}" in found.note and "process is gone" in found.note
    assert "PREFECT_API_URL" not in environ


def test_a_record_whose_api_does_not_answer_is_ignored_with_one_note(tmp_path: Path) -> None:
    from remediation.orchestration.stack import free_port

    silent = f"http://127.0.0.1:{free_port()}/api"
    serve_record.write(tmp_path, api_url=silent, receiver_url="http://127.0.0.1:8080")
    environ: dict[str, str] = {}
    found = serve_record.use_running_serve(tmp_path, environ)
    assert found.api_url is None and found.note is not None and "does not answer" in found.note
    assert "PREFECT_API_URL" not in environ


def test_no_record_and_a_garbled_record_mean_nothing_found(tmp_path: Path) -> None:
    assert serve_record.discover(tmp_path, {}) == serve_record.Found(None, None)
    serve_record.path(tmp_path).write_text("{not json")
    assert serve_record.discover(tmp_path, {}) == serve_record.Found(None, None)


def test_remove_leaves_the_record_of_another_serve(tmp_path: Path) -> None:
    serve_record.write(tmp_path, api_url="http://a/api", receiver_url="http://r", pid=os.getpid() + 1)
    serve_record.remove(tmp_path)
    assert json.loads(serve_record.path(tmp_path).read_text())["pid"] == os.getpid() + 1
    serve_record.write(tmp_path, api_url="http://a/api", receiver_url="http://r")
    serve_record.remove(tmp_path)
    assert not serve_record.path(tmp_path).exists()


def test_state_dir_is_another_name_for_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from remediation.settings import Settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REMEDIATE_HOME", raising=False)
    monkeypatch.delenv("REMEDIATE_CONFIG", raising=False)
    monkeypatch.setenv("REMEDIATE_STATE_DIR", str(tmp_path / "state"))
    assert Settings().home == tmp_path / "state"
    monkeypatch.setenv("REMEDIATE_HOME", str(tmp_path / "home"))
    assert Settings().home == tmp_path / "home"


def test_the_cli_looks_for_serve_only_for_commands_that_act_on_its_runs() -> None:
    from remediation.cli import FINDS_SERVE, _command

    assert _command(["remediate", "paused"]) == "paused"
    assert _command(["remediate", "--help"]) is None
    assert {"paused", "approve", "approvals", "reconcile", "run"} <= FINDS_SERVE
    assert not {"serve", "demo", "drill"} & FINDS_SERVE

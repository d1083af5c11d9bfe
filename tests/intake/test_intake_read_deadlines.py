"""Read deadlines and disconnects over real HTTP against real uvicorn.

Slow senders: the receiver runs in its own process (``receiver_process.py``), so its open file descriptors can be
counted in ``/proc/<pid>/fd`` apart from the test's client sockets. Each stall kind opens ``STALLED`` connections
that send a partial request and go quiet; the receiver must answer and close every one of them once the read
timeout has passed, its descriptors must come back to the baseline, and a normal alert must be accepted while
they are held.

Disconnects: the receiver runs in a thread of the test process, so its log records can be captured.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from remediation.intake import create_app
from remediation.providers.clock import VirtualClock
from remediation.store import Store
from tests.helpers import local_http
from tests.intake.intakekit import TOKEN, FakeStarter, serve_app, settings, wait_until

RECEIVER = Path(__file__).with_name("receiver_process.py")
# Short so the test is quick, long enough that opening every stalled connection on a busy machine finishes first.
READ_TIMEOUT_S = 2.0
STALLED = 200
# A few descriptors may come and go on their own (the store's pooled connection for the alert sent meanwhile).
FD_MARGIN = 5
RECOVERY_MARGIN_S = 3.0

ALERT = {"name": "HighErrorRate", "service": "kamkmserve", "severity": "sev2"}


@dataclass
class Receiver:
    process: subprocess.Popen[str]
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    def settled_fds(self, polls: int = 10) -> int:
        """The count once it has held still for ``polls`` polls in a row: the receiver closes the socket of a
        connection it has just answered an instant after the client has read the answer."""
        counts: list[int] = []

        def settled() -> bool:
            counts.append(self.open_fds())
            return len(counts) >= polls and len(set(counts[-polls:])) == 1

        wait_until(settled, 10, "the receiver's descriptor count settling")
        return counts[-1]


def _port_line(process: subprocess.Popen[str], timeout_s: float) -> int:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        assert selector.select(timeout_s), "the receiver process printed no port"
    line = process.stdout.readline()
    assert line.startswith("PORT "), f"unexpected first line from the receiver: {line!r}"
    return int(line.split()[1])


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    """One receiver process for the module (starting one takes seconds); each test takes its own baseline."""
    database = tmp_path_factory.mktemp("receiver") / "intake.db"
    command = [sys.executable, str(RECEIVER), f"sqlite:///{database}", str(READ_TIMEOUT_S), TOKEN]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        running = Receiver(process, _port_line(process, 30))

        def healthy() -> bool:
            try:
                return local_http.get(running.base_url + "/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, 30, "the receiver answering /healthz")
        # One delivery first, so the store's connections are open before the baseline is taken.
        assert _send_alert(running).status_code == 200
        yield running
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _send_alert(receiver: Receiver) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return local_http.post(receiver.base_url + "/alerts/generic", json=ALERT, headers=headers, timeout=5)


def _head(path: str, *, authorized: bool, content_length: int = 1000) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: intake", "Content-Type: application/json",
             f"Content-Length: {content_length}"]
    if authorized:
        lines.append(f"Authorization: Bearer {TOKEN}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# What each stalled connection sends before going quiet, and the status it must be answered with.
STALLS = {
    # The app is never called: the HTTP protocol's head deadline answers.
    "partial-head": (b"POST /alerts/sentry HTTP/1.1\r\nHost: intake\r\nContent-Le", 408),
    # The app is reading the body (Sentry reads before it authenticates): the body deadline answers.
    "partial-body-being-read": (_head("/alerts/sentry", authorized=False) + b'{"action": "crit', 408),
    # The app answered 401 before reading: the rest of the body must still arrive in time, else the close.
    "partial-body-after-an-early-answer": (_head("/alerts/generic", authorized=False) + b'{"name": "Hi', 401),
}


def _stall(port: int, sent: bytes) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=5)
    client.sendall(sent)
    return client


def _read_to_close(client: socket.socket, timeout_s: float) -> bytes:
    """Everything the receiver sent until it closed the connection."""
    client.settimeout(timeout_s)
    received = b""
    while chunk := client.recv(65536):
        received += chunk
    return received


@pytest.mark.parametrize(("sent", "status"), list(STALLS.values()), ids=list(STALLS))
def test_stalled_connections_are_answered_and_closed_after_the_read_timeout_and_descriptors_return(
    receiver: Receiver, sent: bytes, status: int
) -> None:
    baseline = receiver.settled_fds()
    started = time.monotonic()
    clients = [_stall(receiver.port, sent) for _ in range(STALLED)]
    try:
        wait_until(lambda: receiver.open_fds() >= baseline + STALLED, READ_TIMEOUT_S,
                   "the receiver holding every stalled connection")

        reply = _send_alert(receiver)
        assert reply.status_code == 200, reply.text
        assert receiver.open_fds() >= baseline + STALLED, "the alert was accepted only after the stalls were cut"

        wait_until(lambda: receiver.open_fds() <= baseline + FD_MARGIN, READ_TIMEOUT_S + RECOVERY_MARGIN_S,
                   f"descriptors back near the baseline of {baseline}")
        recovered_after_s = time.monotonic() - started
        assert recovered_after_s >= READ_TIMEOUT_S * 0.9, "closed before the read timeout: legitimate senders too"

        answers = [_read_to_close(client, RECOVERY_MARGIN_S) for client in clients]
        assert all(answer.startswith(b"HTTP/1.1 %d " % status) for answer in answers), answers[0]
        if status == 408:
            assert b"connection: close" in answers[0].lower()
            body = json.loads(answers[0].split(b"\r\n\r\n", 1)[1])
            assert body["error"] == "request timeout" and f"within {READ_TIMEOUT_S:g} s" in body["detail"]
    finally:
        for client in clients:
            client.close()


TRICKLES = {
    "head": b"POST /alerts/sentry HTTP/1.1\r\nHost: intake\r\nX-Padding: " + b"a" * 1000,
    "body": _head("/alerts/sentry", authorized=False) + b"{" + b" " * 998 + b"}",
}


@pytest.mark.parametrize("request_bytes", list(TRICKLES.values()), ids=list(TRICKLES))
def test_a_sender_trickling_bytes_cannot_push_the_deadline_back(receiver: Receiver, request_bytes: bytes) -> None:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=5) as client:
        answered = False
        for byte in request_bytes:  # one byte, then up to 50 ms for an answer: 1,000+ bytes would take 50 s
            client.sendall(bytes([byte]))
            if _readable(client, 0.05):
                answered = True
                break
        answered_after_s = time.monotonic() - started
        answer = _read_to_close(client, RECOVERY_MARGIN_S)
    assert answered, "the whole request was accepted byte by byte"
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert READ_TIMEOUT_S * 0.9 <= answered_after_s <= READ_TIMEOUT_S + RECOVERY_MARGIN_S, answered_after_s


def _readable(client: socket.socket, timeout_s: float) -> bool:
    with selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ)
        return bool(selector.select(timeout_s))


def test_an_idle_connection_that_never_sends_is_closed_silently(receiver: Receiver) -> None:
    baseline = receiver.settled_fds()
    client = socket.create_connection(("127.0.0.1", receiver.port), timeout=5)
    try:
        wait_until(lambda: receiver.open_fds() > baseline, READ_TIMEOUT_S, "the receiver accepting it")
        assert _read_to_close(client, READ_TIMEOUT_S + RECOVERY_MARGIN_S) == b""  # no unsolicited 408
        wait_until(lambda: receiver.open_fds() <= baseline, RECOVERY_MARGIN_S, "its descriptor closed")
    finally:
        client.close()


def test_a_body_that_arrives_slowly_but_within_the_timeout_is_accepted(receiver: Receiver) -> None:
    body = json.dumps(ALERT).encode()
    with _stall(receiver.port, _head("/alerts/generic", authorized=True, content_length=len(body))) as client:
        for start in range(0, len(body), 10):
            client.sendall(body[start:start + 10])
            time.sleep(READ_TIMEOUT_S / 2 / (len(body) / 10))  # the whole body in about half the timeout
        answer = client.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 "), answer


# -- client disconnects: INFO, no traceback ------------------------------------------------------------------


@pytest.fixture
def intake_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Records of the intake logger from INFO, and of uvicorn's (which does not propagate to the root)."""
    uvicorn_logger = logging.getLogger("uvicorn")
    uvicorn_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="remediation.intake"):
            yield caplog
    finally:
        uvicorn_logger.removeHandler(caplog.handler)


@pytest.mark.parametrize(
    ("path", "authorized"),
    [("/alerts/sentry", False), ("/alerts/generic", True)],
    ids=["sentry-reads-before-auth", "generic-after-auth"],
)
def test_a_client_that_disconnects_mid_body_is_logged_at_info_without_a_traceback(
    store: Store, clock: VirtualClock, intake_logs: pytest.LogCaptureFixture, path: str, authorized: bool
) -> None:
    app = create_app(settings(), store, FakeStarter(), clock=clock)
    intake_logs.clear()  # create_app's warnings about unconfigured integrations are not the point here
    with serve_app(app) as base:
        port = int(base.rsplit(":", 1)[1])
        client = _stall(port, _head(path, authorized=authorized) + b'{"na')
        client.close()  # hang up with 995 bytes of the body still owed

        def disconnect_logged() -> list[logging.LogRecord]:
            return [r for r in intake_logs.records if "disconnected" in r.getMessage()]

        wait_until(disconnect_logged, 10, "the disconnect being logged")
    [record] = disconnect_logged()
    assert record.levelno == logging.INFO and record.name == "remediation.intake"
    assert record.exc_info is None and record.exc_text is None
    assert record.getMessage() == f"POST {path}: the client disconnected before its request was read"
    problems = [(r.name, r.levelname, r.getMessage()) for r in intake_logs.records if r.levelno >= logging.WARNING]
    assert problems == []
    assert store.list_incidents() == [] and store.unrouted_alerts() == []

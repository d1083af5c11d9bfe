"""Slowloris against the alert receiver: N connections send part of a request and stall. Prints what it cost.

Starts the receiver in its own process (``tests/intake/receiver_process.py``: the real app under uvicorn with the
intake read deadlines, on a throwaway SQLite store), takes its open file descriptors as the baseline, then opens
``--connections`` connections that each send part of a request and go quiet:

* ``body`` (default): a Sentry request head and the start of its body (Sentry reads before it authenticates,
  so no credentials are needed: the issue's reproduction);
* ``head``: the start of a request head;
* ``answered``: a generic-alert head without credentials and the start of its body (answered 401 at once).

While they are held it sends normal alerts, then it waits until the descriptors are back at the baseline (or
``--give-up`` seconds). Prints descriptors before / at the peak / after, the time from the first stalled
connection to recovery, the normal alerts' statuses and latencies, and what the stalled clients were answered.
``--read-timeout 3600`` shows the receiver without a usable deadline, as it was before.

    .venv/bin/python bench/intake_slowloris.py [--connections 1000] [--read-timeout 10] [--stall body]
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
RECEIVER = REPO / "tests" / "intake" / "receiver_process.py"
TOKEN = "slowloris-bench-token"
ALERT = {"name": "HighErrorRate", "service": "kamkmserve", "severity": "sev2"}


def stalled_request(kind: str) -> bytes:
    if kind == "head":
        return b"POST /alerts/sentry HTTP/1.1\r\nHost: intake\r\nContent-Le"
    path, start = ("/alerts/sentry", b'{"action": "crit') if kind == "body" else ("/alerts/generic", b'{"name": "Hi')
    head = f"POST {path} HTTP/1.1\r\nHost: intake\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    return head.encode() + start


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_fds(pid: int, polls: int = 10) -> int:
    """The count once it has not changed for ``polls`` polls in a row (answered connections close a moment later)."""
    counts = [open_fds(pid)]
    while len(counts) < polls or len(set(counts[-polls:])) > 1:
        time.sleep(0.02)
        counts.append(open_fds(pid))
    return counts[-1]


def start_receiver(database: Path, read_timeout_s: float) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, str(RECEIVER), f"sqlite:///{database}", str(read_timeout_s), TOKEN]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(60):
            raise SystemExit("the receiver did not start")
    base = f"http://127.0.0.1:{process.stdout.readline().split()[1]}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the receiver never answered /healthz")
        time.sleep(0.05)


def send_alert(base: str) -> tuple[int | str, float]:
    started = time.monotonic()
    try:
        reply = httpx.post(base + "/alerts/generic", json=ALERT, headers={"Authorization": f"Bearer {TOKEN}"},
                           timeout=10)
        status: int | str = reply.status_code
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    return status, time.monotonic() - started


def answer_of(client: socket.socket, timeout_s: float) -> str:
    """The status line the receiver answered a stalled client with, "closed, no answer", or "still open"."""
    client.settimeout(timeout_s)
    received = b""
    try:
        while chunk := client.recv(65536):
            received += chunk
    except TimeoutError:
        return "still open"
    except ConnectionResetError:
        return "reset"
    return received.split(b"\r\n", 1)[0].decode() if received else "closed, no answer"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--read-timeout", type=float, default=10.0, help="REMEDIATE_INTAKE_READ_TIMEOUT_S")
    parser.add_argument("--stall", choices=("body", "head", "answered"), default="body")
    parser.add_argument("--alerts", type=int, default=5, help="normal alerts sent while the stalls are held")
    parser.add_argument("--margin", type=int, default=5, help="descriptors above the baseline that count as back")
    parser.add_argument("--give-up", type=float, default=0.0, help="seconds to wait for recovery (0: timeout + 30)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.connections * 2 + 256)), hard))

    with tempfile.TemporaryDirectory(prefix="bench-slowloris-") as scratch:
        process, base = start_receiver(Path(scratch) / "intake.db", args.read_timeout)
        try:
            assert send_alert(base)[0] == 200, "warm-up alert refused"
            baseline = settled_fds(process.pid)
            started = time.monotonic()
            sent = stalled_request(args.stall)
            clients = []
            for _ in range(args.connections):
                client = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=10)
                client.sendall(sent)
                clients.append(client)
            opened_s = time.monotonic() - started
            held = open_fds(process.pid)
            alerts = [send_alert(base) for _ in range(args.alerts)]
            held_after_alerts = open_fds(process.pid)

            give_up = args.give_up or args.read_timeout + 30
            peak = max(held, held_after_alerts)
            recovered_s: float | None = None
            while time.monotonic() - started < give_up:
                count = open_fds(process.pid)
                peak = max(peak, count)
                if count <= baseline + args.margin:
                    recovered_s = time.monotonic() - started
                    break
                time.sleep(0.05)
            after = open_fds(process.pid)
            # One budget for all: a receiver that holds them all must not cost a timeout per client here.
            answers_by = time.monotonic() + 2.0
            answers = Counter(answer_of(client, max(0.001, answers_by - time.monotonic())) for client in clients)
            for client in clients:
                client.close()
        finally:
            process.terminate()
            process.wait(15)

    statuses = Counter(str(status) for status, _ in alerts)
    latencies = sorted(latency for _, latency in alerts)
    print(f"stalled connections    {args.connections} ({args.stall}), opened in {opened_s:.2f} s; "
          f"read timeout {args.read_timeout:g} s")
    print(f"receiver fds           before {baseline}, held {held}, peak {peak}, after {after}")
    if recovered_s is None:
        print(f"recovery               NOT back within {give_up:g} s of the first stalled connection")
    else:
        print(f"recovery               back to baseline+{args.margin} {recovered_s:.2f} s after the first stalled "
              f"connection ({recovered_s - args.read_timeout:+.2f} s past the read timeout)")
    print(f"normal alerts meanwhile {dict(statuses)}, latency max {latencies[-1] * 1000:.0f} ms, "
          f"fds still held after them {held_after_alerts}")
    print(f"stalled clients got    {dict(answers)}")


if __name__ == "__main__":
    main()

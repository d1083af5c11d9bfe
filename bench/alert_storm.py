"""Alert storm: N Alertmanager alerts over F fingerprints against running receivers on the PostgreSQL store.

Prints alerts/s, p50/p99 latency per delivery, incidents created (must equal the distinct incident keys), runs
started (must equal incidents) and alerts lost (must be 0). The load generator is deliberately lean (asyncio streams,
one kept-alive connection per worker and receiver, request bytes built once per distinct body, minimal response
parsing) so that it costs a small fraction of the receiver's CPU on a shared machine. Usage:

    .venv/bin/python bench/alert_storm.py [--alerts 10000] [--fingerprints 100] [--groups 25] [--concurrency 32]
        [--per-delivery 1] [--replicas 1] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[1]
ADMIN_URL = os.environ.get("REMEDIATE_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TOKEN = "storm-token"
_REQUEST_TIMEOUT_S = 30.0


def labels_of(group: int, instance: int) -> dict[str, str]:
    return {"alertname": "KamkmserveHigh5xxRate", "service": f"svc-{group:03d}", "instance": f"web-{instance}",
            "severity": "critical", "runbook": "elevated-error-rate"}


def delivery(group: int, instances: list[int], status: str = "firing") -> dict[str, object]:
    """One notification of a group carrying the given alerts of it, as Alertmanager sends them."""
    alerts = [{"status": status, "labels": labels_of(group, instance), "annotations": {"summary": "5xx ratio above 5%"},
               "startsAt": "2026-11-26T16:03:00Z", "endsAt": "0001-01-01T00:00:00Z",
               "generatorURL": "http://prometheus.example/graph", "fingerprint": f"{group:08x}{instance:08x}"}
              for instance in instances]
    common = {k: v for k, v in labels_of(group, instances[0]).items() if k != "instance" or len(instances) == 1}
    group_labels = {"alertname": common["alertname"], "service": common["service"]}
    return {"receiver": "remediation", "status": status, "alerts": alerts, "groupLabels": group_labels,
            "commonLabels": common, "commonAnnotations": alerts[0]["annotations"], "externalURL": "http://am:9093",
            "version": "4", "truncatedAlerts": 0,
            "groupKey": f'{{}}:{{alertname="{common["alertname"]}", service="{common["service"]}"}}'}


def bodies(alerts: int, fingerprints: int, groups: int, per_delivery: int) -> list[dict[str, object]]:
    """Deliveries of ``per_delivery`` alerts each, cycling over the fingerprints group by group."""
    per_group = max(1, fingerprints // groups)
    out = []
    for d in range(alerts // per_delivery):
        if per_delivery == 1:
            fp = d % fingerprints
            out.append(delivery(fp // per_group, [fp % per_group]))
        else:
            group, turn = d % groups, d // groups
            out.append(delivery(group, [(turn * per_delivery + j) % per_group for j in range(per_delivery)]))
    return out


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


class Connection:
    """One persistent HTTP/1.1 keep-alive connection to a receiver, over asyncio streams.

    The client side of the bench must cost a small fraction of the receiver's CPU, or it measures itself: requests
    are bytes built once per distinct body, and a response is read as little as HTTP/1.1 allows (status line,
    ``Content-Length`` or chunks, ``Connection: close``).
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> int:
        """Send one request and read its whole response; its status. Raises OSError/EOFError on a broken one."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self._reader, self._writer
        assert reader is not None
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, close = _framing(head)
        if chunked:
            while size := int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16):
                await reader.readexactly(size + 2)
            await reader.readuntil(b"\r\n")  # the last chunk's CRLF (no trailers are sent to us)
        elif length:
            await reader.readexactly(length)
        if close:
            self.close()
        return status

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def _framing(head: bytes) -> tuple[int, bool, bool]:
    """(Content-Length, chunked, Connection: close) of a response head."""
    length, chunked, close = 0, False, False
    for line in head.lower().split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value
        elif name == b"connection":
            close = b"close" in value
    return length, chunked, close


def encode_requests(ports: list[int], deliveries: list[dict[str, object]]) -> list[bytes]:
    """The request bytes of every delivery (to ``ports[i % len(ports)]``), each distinct one built once."""
    built: dict[tuple[int, bytes], bytes] = {}
    out = []
    for i, delivery_body in enumerate(deliveries):
        port = ports[i % len(ports)]  # replicas behind a round-robin balancer
        body = json.dumps(delivery_body, separators=(",", ":")).encode()
        request = built.get((port, body))
        if request is None:
            head = (f"POST /alerts/alertmanager HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
                    f"User-Agent: alert-storm\r\nContent-Length: {len(body)}\r\n\r\n")
            request = built[(port, body)] = head.encode() + body
        out.append(request)
    return out


async def storm(
    ports: list[int], requests: list[bytes], concurrency: int
) -> tuple[list[float], dict[int, int], float]:
    """Post every request with ``concurrency`` in flight, each worker on its own kept-alive connection per port."""
    next_index = iter(range(len(requests)))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    last_error = [""]
    clock = time.perf_counter

    async def worker() -> None:
        connections = {port: Connection(port) for port in ports}
        try:
            for i in next_index:
                connection, request = connections[ports[i % len(ports)]], requests[i]
                for attempt in range(5):  # what Alertmanager does on a 5xx or a failed connection: deliver again
                    started = clock()
                    try:
                        async with asyncio.timeout(_REQUEST_TIMEOUT_S):  # no task per request, unlike wait_for
                            status = await connection.exchange(request)
                    except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                            TimeoutError, ValueError) as exc:
                        connection.close()  # a fresh connection for the redelivery
                        statuses[-1] = statuses.get(-1, 0) + 1  # -1: connection-level failure, retried
                        last_error[0] = f"{type(exc).__name__}: {exc}"
                        await asyncio.sleep(0.05 * (attempt + 1))
                        continue
                    latencies.append(clock() - started)
                    statuses[status] = statuses.get(status, 0) + 1
                    if status < 500:
                        break
                    await asyncio.sleep(0.05 * (attempt + 1))
        finally:
            for connection in connections.values():
                connection.close()

    began = clock()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if last_error[0]:
        print(f"last connection-level error (retried): {last_error[0]}")
    return latencies, statuses, clock() - began


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children still alive (uvicorn workers), from /proc (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(int(child)) for child in children)


def wait_healthy(base: str, receiver: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or receiver.poll() is not None:
            raise SystemExit("receiver did not start")
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--fingerprints", type=int, default=100)
    parser.add_argument("--groups", type=int, default=25)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--per-delivery", type=int, default=1,
                        help="alerts of one group per delivery (Alertmanager sends a group's alerts together); "
                             "at most fingerprints/groups")
    parser.add_argument("--replicas", type=int, default=1, help="receiver processes on one store, round-robin")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes per replica")
    parser.add_argument("--port", type=int, default=18777)
    args = parser.parse_args()
    if not 1 <= args.per_delivery <= max(1, args.fingerprints // args.groups):
        parser.error("--per-delivery must be between 1 and fingerprints/groups")
    deliveries = bodies(args.alerts, args.fingerprints, args.groups, args.per_delivery)
    alerts = len(deliveries) * args.per_delivery

    name = f"remediate_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db_url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    ports = [args.port + r for r in range(args.replicas)]
    receivers = []
    try:
        for port in ports:  # one at a time: the first one migrates the database
            receivers.append(subprocess.Popen([sys.executable, str(REPO / "bench" / "_storm_receiver.py"), db_url,
                                               str(port), TOKEN, str(args.workers)], cwd=REPO))
            wait_healthy(f"http://127.0.0.1:{port}", receivers[-1])
        requests = encode_requests(ports, deliveries)
        cpu_before = sum(cpu_seconds(r.pid) for r in receivers)
        client_before = time.process_time()
        latencies, statuses, elapsed = asyncio.run(storm(ports, requests, args.concurrency))
        receiver_cpu = sum(cpu_seconds(r.pid) for r in receivers) - cpu_before
        client_cpu = time.process_time() - client_before
    finally:
        for receiver in receivers:
            receiver.terminate()
        for receiver in receivers:
            receiver.wait(timeout=10)
    engine = create_engine(db_url)
    with engine.connect() as conn:
        incidents = conn.execute(text("SELECT count(*) FROM incidents")).scalar_one()
        runs = conn.execute(text("SELECT count(*) FROM incidents WHERE flow_run_id IS NOT NULL")).scalar_one()
        stored = conn.execute(text("SELECT count(*) FROM alerts")).scalar_one()
        counted = conn.execute(text("SELECT coalesce(sum(alert_count), 0) FROM incidents")).scalar_one()
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    distinct_keys = min(args.groups, args.fingerprints)
    accepted = statuses.get(200, 0) * args.per_delivery
    print(f"alerts sent            {alerts} ({args.fingerprints} fingerprints in {distinct_keys} groups, "
          f"{args.per_delivery} per delivery, {len(deliveries)} deliveries, concurrency {args.concurrency}, "
          f"{args.replicas} replica(s) x {args.workers} worker(s))")
    print(f"HTTP statuses          {dict(sorted(statuses.items()))}")
    print(f"throughput             {alerts / elapsed:,.0f} alerts/s, {len(deliveries) / elapsed:,.0f} deliveries/s "
          f"({elapsed:.1f} s)")
    print(f"latency per delivery   p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {percentile(latencies, 99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    print(f"CPU per delivery       receiver(s) {receiver_cpu / len(deliveries) * 1000:.2f} ms, load generator "
          f"{client_cpu / len(deliveries) * 1000:.2f} ms; load average {os.getloadavg()[0]:.2f}")
    print(f"incidents created      {incidents} (distinct keys {distinct_keys}) "
          f"{'OK' if incidents == distinct_keys else 'MISMATCH'}")
    print(f"runs started           {runs} {'OK' if runs == incidents else 'MISMATCH'}")
    print(f"alerts stored/counted  {stored}/{counted}; accepted deliveries {accepted}")
    print(f"alerts lost            {alerts - accepted} {'OK' if accepted == alerts == stored == counted else 'LOST'}")


if __name__ == "__main__":
    main()

"""Alert storm: N Alertmanager alerts over F fingerprints against running receivers on the PostgreSQL store.

Prints alerts/s, p50/p99 latency per delivery, incidents created (must equal the distinct incident keys), runs
started (must equal incidents) and alerts lost (must be 0). Usage:

    .venv/bin/python bench/alert_storm.py [--alerts 10000] [--fingerprints 100] [--groups 25] [--concurrency 32]
        [--per-delivery 1] [--replicas 1] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
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


async def storm(
    urls: list[str], deliveries: list[dict[str, object]], concurrency: int
) -> tuple[list[float], dict[int, int], float]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(deliveries)):
        queue.put_nowait(i)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    last_error = [""]

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            body, url = deliveries[i], urls[i % len(urls)]  # replicas behind a round-robin balancer
            for attempt in range(5):  # what Alertmanager does on a 5xx: deliver again
                started = time.perf_counter()
                try:
                    response = await client.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"})
                except httpx.TransportError as exc:
                    statuses[-1] = statuses.get(-1, 0) + 1  # -1: connection-level failure, retried
                    last_error[0] = f"{type(exc).__name__}: {exc}"
                    await asyncio.sleep(0.05 * (attempt + 1))
                    continue
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code < 500:
                    break
                await asyncio.sleep(0.05 * (attempt + 1))

    began = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    if last_error[0]:
        print(f"last connection-level error (retried): {last_error[0]}")
    return latencies, statuses, time.perf_counter() - began


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
        cpu_before = sum(cpu_seconds(r.pid) for r in receivers)
        client_before = time.process_time()
        latencies, statuses, elapsed = asyncio.run(
            storm([f"http://127.0.0.1:{p}/alerts/alertmanager" for p in ports], deliveries, args.concurrency))
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

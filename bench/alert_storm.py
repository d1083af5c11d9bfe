"""Alert storm: N Alertmanager alerts over F fingerprints against a running receiver on the PostgreSQL store.

Prints alerts/s, p50/p99 ingest latency, incidents created (must equal the distinct incident keys), runs
started (must equal incidents) and alerts lost (must be 0). Usage:

    .venv/bin/python bench/alert_storm.py [--alerts 10000] [--fingerprints 100] [--groups 25] [--concurrency 32]
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


def delivery(group: int, instance: int, status: str = "firing") -> dict[str, object]:
    labels = {"alertname": "KamkmserveHigh5xxRate", "service": f"svc-{group:03d}", "instance": f"web-{instance}",
              "severity": "critical", "runbook": "elevated-error-rate"}
    group_labels = {"alertname": labels["alertname"], "service": labels["service"]}
    alert = {"status": status, "labels": labels, "annotations": {"summary": "5xx ratio above 5%"},
             "startsAt": "2026-11-26T16:03:00Z", "endsAt": "0001-01-01T00:00:00Z",
             "generatorURL": "http://prometheus.example/graph", "fingerprint": f"{group:08x}{instance:08x}"}
    return {"receiver": "remediation", "status": status, "alerts": [alert], "groupLabels": group_labels,
            "commonLabels": labels, "commonAnnotations": alert["annotations"], "externalURL": "http://am:9093",
            "version": "4", "truncatedAlerts": 0,
            "groupKey": f'{{}}:{{alertname="{labels["alertname"]}", service="{labels["service"]}"}}'}


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


async def storm(
    url: str, alerts: int, fingerprints: int, groups: int, concurrency: int
) -> tuple[list[float], dict[int, int], float]:
    per_group = max(1, fingerprints // groups)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(alerts):
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
            fp = i % fingerprints
            body = delivery(fp // per_group, fp % per_group)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--fingerprints", type=int, default=100)
    parser.add_argument("--groups", type=int, default=25)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--port", type=int, default=18777)
    args = parser.parse_args()

    name = f"remediate_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db_url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    receiver = subprocess.Popen([sys.executable, str(REPO / "bench" / "_storm_receiver.py"), db_url,
                                 str(args.port), TOKEN], cwd=REPO)
    try:
        base = f"http://127.0.0.1:{args.port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or receiver.poll() is not None:
                raise SystemExit("receiver did not start")
            time.sleep(0.2)
        latencies, statuses, elapsed = asyncio.run(
            storm(f"{base}/alerts/alertmanager", args.alerts, args.fingerprints, args.groups, args.concurrency))
    finally:
        receiver.terminate()
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
    accepted = statuses.get(200, 0)
    print(f"alerts sent            {args.alerts} ({args.fingerprints} fingerprints in {distinct_keys} groups, "
          f"concurrency {args.concurrency})")
    print(f"HTTP statuses          {dict(sorted(statuses.items()))}")
    print(f"throughput             {args.alerts / elapsed:,.0f} alerts/s ({elapsed:.1f} s)")
    print(f"ingest latency         p50 {statistics.median(latencies) * 1000:.1f} ms, "
          f"p99 {percentile(latencies, 99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    print(f"incidents created      {incidents} (distinct keys {distinct_keys}) "
          f"{'OK' if incidents == distinct_keys else 'MISMATCH'}")
    print(f"runs started           {runs} {'OK' if runs == incidents else 'MISMATCH'}")
    print(f"alerts stored/counted  {stored}/{counted}; accepted deliveries {accepted}")
    print(f"alerts lost            {args.alerts - accepted} {'OK' if accepted == args.alerts else 'LOST'}")


if __name__ == "__main__":
    main()

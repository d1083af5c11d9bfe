"""Steady load for ``bench/drill.py``, in its own process: ``python bench/_drill_load.py URL --rps 20``.

Open loop: one request every ``1/rps`` seconds whatever the answers do (a closed loop would slow down exactly when
the service struggles and hide the failures). Public pages only (``/api`` is rate-limited per client IP). Runs
until SIGTERM/SIGINT, then waits for the requests still in flight and prints one JSON line: requests sent, answered
per status, failed (5xx or no answer) with the first few failures, and the latency p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time

import httpx

PATHS = ("/", "/services", "/blog", "/pricing", "/about")


async def generate(url: str, rps: float, timeout_s: float) -> dict[str, object]:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    statuses: dict[str, int] = {}
    failures: list[dict[str, object]] = []
    latencies: list[float] = []
    tasks: set[asyncio.Task[None]] = set()
    sent = 0

    async def one(client: httpx.AsyncClient, path: str) -> None:
        started = time.monotonic()
        try:
            answer = await client.get(f"{url}{path}")
            status = str(answer.status_code)
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        latencies.append(time.monotonic() - started)
        statuses[status] = statuses.get(status, 0) + 1
        if not status.isdigit() or int(status) >= 500:
            failures.append({"at": time.time(), "path": path, "status": status})

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=16)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:
        started = time.monotonic()
        while not stop.is_set():
            task = asyncio.create_task(one(client, PATHS[sent % len(PATHS)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
            next_at = started + sent / rps
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(0.0, next_at - time.monotonic()))
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s + 1)
        duration = time.monotonic() - started
    ordered = sorted(latencies)

    def pct(p: float) -> float | None:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 1) if ordered else None

    return {"sent": sent, "answered": len(latencies), "failed": len(failures), "statuses": statuses,
            "failures": failures[:20], "duration_s": round(duration, 2), "p50_ms": pct(0.50), "p99_ms": pct(0.99)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    result = asyncio.run(generate(args.url.rstrip("/"), args.rps, args.timeout))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

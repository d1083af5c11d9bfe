"""One reader process of the shared-budget tests: reads the app through ``app_budget`` and reports what happened.

Run as ``python budget_reader.py '<json>'`` with ``store_url``, ``app_url``, ``per_minute``, ``reads`` and
``wall`` (a fixed epoch second, or null for the real clock). It prints ``ready``, waits for a line on stdin so
that the test can start every reader at once, then prints one JSON line: what was sent and what was refused.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict
from typing import Any

from remediation.providers.budget import app_budget
from remediation.providers.http import AppHttp
from remediation.settings import Settings
from remediation.store import Store


async def read(args: dict[str, Any]) -> dict[str, Any]:
    store = Store(args["store_url"])
    fixed = args["wall"]
    settings = Settings.model_construct(app_url=args["app_url"], metrics_budget_per_min=args["per_minute"])
    budget = app_budget(settings, store, wall=(lambda: float(fixed)) if fixed is not None else time.time)
    http = AppHttp(args["app_url"], budget, timeout_s=10.0)
    store.ping()  # connect before the start line, so that the readers really race for the budget
    print("ready", flush=True)
    sys.stdin.readline()
    sent, refusals, held_by_app = 0, [], 0
    for _ in range(args["reads"]):
        fetched = await http.get("/api/monitoring/metrics")
        if fetched.ok:
            sent += 1
        else:
            refusals.append(fetched.error)
            held_by_app += fetched.rate_limited
    store.dispose()
    return {"sent": sent, "refusals": refusals, "held_by_app": held_by_app, "tally": asdict(http.reads())}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(read(json.loads(sys.argv[1])))), flush=True)

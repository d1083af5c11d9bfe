"""Rolling-restart drill under steady load, against a naive restart of the same fleet in the same run.

Six simulated instances behind the simulator's load balancer (ALB semantics), simulated users plus a separate
load-generator process (``bench/_drill_load.py``) sending public pages at a steady rate. Two phases:

1. **naive**: every instance restarted in turn *without* a drain (still registered), the next one once the load
   balancer sees the previous one healthy again: what a person restarting by hand does;
2. **drill**: the ``rolling-restart`` runbook with ``drill=true`` (pre-approved), one instance at a time.

Printed per phase: requests the generator sent / failed (goal 0 in the drill; the naive phase must show failures),
the load balancer's own 5xx; for the drill, its duration against the sum of the waits it cannot avoid (goal <= 1.15x):

  per batch  drain      deregistration -> deregistration complete (the simulator's events: requests in flight)
             restart    SIGTERM to exit (``shutdown_s``) + the new process's start (``restart_s``)
             health     registration -> healthy (the simulator's events: ``healthy_threshold`` passing checks)
             warm-up    ``min_records`` requests at the restarted instance's share of the traffic
             stable     (``stable_checks`` - 1) x ``check_interval_s``: the runbook's own stability window

The drill's duration is the sum of its batches (first drain to stable), from the run's report.

    .venv/bin/python bench/drill.py [--instances 6] [--restart-s 5] [--rps 20] [--sim-rps 40] [--json out.json]

Uses ``PREFECT_API_URL`` when set, else starts a Prefect server (SQLite in a temp dir, or
``REMEDIATE_PREFECT_DATABASE_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _fleet(url: str) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{url}/_sim/instances", timeout=10).json()
    return body


def _events(body: dict[str, Any], since: float) -> dict[str, list[tuple[float, str]]]:
    found: dict[str, list[tuple[float, str]]] = {}
    for instance in body["instances"]:
        events = [(datetime.fromisoformat(e["at"].replace("Z", "+00:00")).timestamp(), str(e["event"]))
                  for e in instance["events"]]
        found[instance["id"]] = [(at, what) for at, what in events if at >= since]
    return found


def _span(events: list[tuple[float, str]], start: str, end: str) -> float:
    begin = next(at for at, what in events if what.startswith(start))
    finish = next(at for at, what in events if at >= begin and what.startswith(end))
    return finish - begin


class Load:
    """The load generator process; ``stop()`` returns its JSON summary."""

    def __init__(self, url: str, rps: float) -> None:
        self.process = subprocess.Popen([sys.executable, str(REPO / "bench" / "_drill_load.py"), url, "--rps",
                                         str(rps)], stdout=subprocess.PIPE, text=True)

    def stop(self) -> dict[str, Any]:
        self.process.send_signal(signal.SIGTERM)
        output, _ = self.process.communicate(timeout=60)
        summary: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
        return summary


def naive(url: str, rps: float, settle_s: float) -> dict[str, Any]:
    before = _fleet(url)["load_balancer"]
    load = Load(url, rps)
    time.sleep(settle_s)
    for instance in [i["id"] for i in _fleet(url)["instances"]]:
        generation = next(i["generation"] for i in _fleet(url)["instances"] if i["id"] == instance)
        httpx.post(f"{url}/_sim/instances/{instance}/restart", timeout=10).raise_for_status()
        while True:
            state = httpx.get(f"{url}/_sim/instances/{instance}", timeout=10).json()
            if state["generation"] > generation and state["lb_state"] == "healthy":
                break
            time.sleep(0.1)
    time.sleep(settle_s)
    summary = load.stop()
    after = _fleet(url)["load_balancer"]
    return {"load": summary, "elb_5xx": after["elb_5xx"] - before["elb_5xx"],
            "requests": after["requests"] - before["requests"]}


def drill(url: str, args: argparse.Namespace, home: Path) -> dict[str, Any]:
    from flows.rolling_restart import rolling_restart
    from remediation import composition, runtime
    from remediation.models import Mode
    from remediation.settings import Settings

    # Six instances take 18 actions (drain, restart, restore each): the hourly cap must allow them.
    settings = Settings(app_url=url, platform="sim", sim_url=url, home=home, mode=Mode.AUTO,
                        drill_preapproved=["kamkmserve"], metrics_budget_per_min=100,
                        max_actions_per_service_per_hour=3 * args.instances + 2)
    providers = composition.connect(settings)
    before = _fleet(url)
    load = Load(url, args.rps)
    time.sleep(args.settle)
    wall = time.time()
    started = time.monotonic()
    with runtime.use(providers):
        report = asyncio.run(rolling_restart(
            service="kamkmserve", drill=True, mode=Mode.AUTO, check_interval_s=args.check_interval,
            stable_checks=args.stable_checks, min_records=args.min_records, window_records=50,
            stable_timeout_s=60.0, restart_timeout_s=60.0, alert_name="bench"))
    flow_s = time.monotonic() - started
    time.sleep(args.settle)
    summary = load.stop()
    after = _fleet(url)
    batches: list[dict[str, Any]] = next((e["items"] for e in report["evidence"] if e["source"] == "batches"), [])
    requests = after["load_balancer"]["requests"] - before["load_balancer"]["requests"]
    rate = requests / max(flow_s + 2 * args.settle, 1e-9)
    events = _events(after, wall)
    per_batch = []
    for batch in batches:
        (instance,) = batch["instances"]
        mine = events[instance]
        required = {
            "drain": _span(mine, "deregistered", "deregistration complete"),
            "restart": after["restart"]["shutdown_s"] + after["restart"]["restart_s"],
            "health": _span(mine, "registered", "healthy"),
            "warm-up": args.min_records * args.instances / rate,
            "stable": (args.stable_checks - 1) * args.check_interval,
        }
        per_batch.append({"instance": instance, "took_s": batch["total_s"], "required_s": sum(required.values()),
                          "required": {k: round(v, 3) for k, v in required.items()}, "measured": batch})
    took = sum(b["took_s"] for b in per_batch)
    required_total = sum(b["required_s"] for b in per_batch)
    return {"outcome": report["outcome"], "escalation": report["escalation"], "load": summary,
            "elb_5xx": after["load_balancer"]["elb_5xx"] - before["load_balancer"]["elb_5xx"],
            "requests": requests, "flow_s": round(flow_s, 2), "drill_s": round(took, 2),
            "required_s": round(required_total, 2),
            "ratio": round(took / required_total, 3) if required_total else None,
            "batches": per_batch, "generations": {i["id"]: i["generation"] for i in after["instances"]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=6)
    parser.add_argument("--restart-s", type=float, default=5.0, help="a process's start time in the simulator")
    parser.add_argument("--deregistration-delay", type=float, default=10.0)
    parser.add_argument("--rps", type=float, default=20.0, help="the load generator's requests per second")
    parser.add_argument("--sim-rps", type=float, default=40.0, help="the simulated users' requests per second")
    parser.add_argument("--check-interval", type=float, default=1.0)
    parser.add_argument("--stable-checks", type=int, default=2)
    parser.add_argument("--min-records", type=int, default=10)
    parser.add_argument("--settle", type=float, default=2.0, help="load before and after each phase (s)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")

    from kamkmserve_sim import SimConfig, SimServer
    from kamkmserve_sim.instances_config import FleetConfig

    from remediation.orchestration.stack import export_prefect_api, prefect_database_url, start_local_prefect_server
    from remediation.settings import Settings

    home = Path(tempfile.mkdtemp(prefix="bench-drill-"))
    server = None
    if not os.environ.get("PREFECT_API_URL"):
        prefect_home = home / "prefect"
        database = prefect_database_url(Settings(), prefect_home)
        print(f"starting a Prefect server ({database.split(':')[0]}) ...", flush=True)
        server = start_local_prefect_server(prefect_home, database_url=database)
        export_prefect_api(server.api_url, prefect_home)
    fleet = FleetConfig(instances=args.instances, restart_s=args.restart_s, shutdown_s=0.05,
                        deregistration_delay_s=args.deregistration_delay, health_interval_s=1.0,
                        healthy_threshold=2, unhealthy_threshold=2)
    try:
        with SimServer(SimConfig(scenario="rolling-restart", rps=args.sim_rps, seed=1, fleet=fleet)) as sim:
            print(f"simulator at {sim.url}: {args.instances} instances; naive restart under load ...", flush=True)
            before = naive(sim.url, args.rps, args.settle)
            print("rolling-restart drill under load ...", flush=True)
            after = drill(sim.url, args, home)
    finally:
        if server is not None:
            server.stop()
    print()
    print(render(args, before, after))
    if args.json:
        args.json.write_text(json.dumps({"naive": before, "drill": after}, indent=2))
    ok = (after["outcome"] == "recovered" and after["load"]["failed"] == 0 and after["elb_5xx"] == 0
          and before["load"]["failed"] + before["elb_5xx"] > 0 and (after["ratio"] or 99) <= 1.15)
    return 0 if ok else 1


def render(args: argparse.Namespace, naive_phase: dict[str, Any], drill_phase: dict[str, Any]) -> str:
    n, d = naive_phase["load"], drill_phase["load"]
    lines = [
        f"fleet                  {args.instances} instances, restart {args.restart_s:g}s, load generator "
        f"{args.rps:g} rps + simulated users {args.sim_rps:g} rps",
        f"naive restart          generator: {n['sent']} sent, {n['failed']} failed {n['statuses']}; "
        f"load balancer 5xx {naive_phase['elb_5xx']} of {naive_phase['requests']}",
        f"drill                  generator: {d['sent']} sent, {d['failed']} failed {d['statuses']}; "
        f"load balancer 5xx {drill_phase['elb_5xx']} of {drill_phase['requests']}; outcome {drill_phase['outcome']}",
        f"drill duration         {drill_phase['drill_s']:.1f}s for {len(drill_phase['batches'])} batches "
        f"(whole run {drill_phase['flow_s']:.1f}s)",
        f"required waits         {drill_phase['required_s']:.1f}s -> ratio {drill_phase['ratio']}x (goal <= 1.15x)",
        "per batch              instance  took   required (drain/restart/health/warm-up/stable)",
    ]
    for b in drill_phase["batches"]:
        r = b["required"]
        lines.append(f"                       {b['instance']:<9} {b['took_s']:5.2f}s {b['required_s']:5.2f}s "
                     f"({r['drain']:.2f}/{r['restart']:.2f}/{r['health']:.2f}/{r['warm-up']:.2f}/{r['stable']:.2f})")
    lines.append(f"latency p50/p99        naive {n['p50_ms']}/{n['p99_ms']} ms, drill {d['p50_ms']}/{d['p99_ms']} ms")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

"""The rolling restart on AWS levers (moto) over a simulated fleet: what AWS itself would do to the app, as bridges.

* **instances at their addresses**: each EC2 instance on moto has a loopback private IP; a small server there (on
  the target group's port) is that instance's app: it forwards to the simulator's instance, bypassing its load
  balancer (``/_sim/instances/<id>/direct/...``), as a request to the instance's private address would.
* **AWS -> fleet** (:class:`AwsFront`, the endpoint the adapters are given, forwarding everything to moto): ELBv2
  ``DeregisterTargets`` drains the simulated instance and answers once it is out of rotation (what AWS's
  ``draining`` phase does; moto has none), ``RegisterTargets`` puts it back, EC2 ``RebootInstances`` restarts its
  process. moto never touches a process, so without it a reboot would change nothing.
* **ALB -> CloudWatch** (:func:`alb_publishes`): the simulated load balancer's counters are published into
  ``AWS/ApplicationELB`` as an ALB publishes its own; moto keeps that namespace empty.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

import httpx

from tests.helpers import local_http
from tests.helpers.elb_targets import publish_alb
from tests.helpers.local_server import LocalHttpServer
from tests.helpers.moto_server import MotoServer

HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


def relay(handler: BaseHTTPRequestHandler, response: httpx.Response) -> None:
    body = response.content
    handler.send_response(response.status_code)
    for name, value in response.headers.items():
        if name.lower() not in HOP_BY_HOP | {"content-encoding"}:
            handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class InstanceApp(LocalHttpServer):
    """One instance's app at its private address: every request goes to that simulated instance directly."""

    def __init__(self, host: str, port: int, sim_url: str, sim_id: str) -> None:
        super().__init__()
        self.host, self.bind_port = host, port
        self.direct = f"{sim_url}/_sim/instances/{sim_id}/direct"
        self.paths: list[str] = []

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.paths.append(handler.path)
        relay(handler, local_http.get(f"{self.direct}{handler.path}", timeout=10))


class AwsFront(LocalHttpServer):
    """moto's endpoint as the adapters see it, with the effects AWS would have on the instances (see the module)."""

    def __init__(self, moto: MotoServer, sim_url: str, fleet: dict[str, str]) -> None:
        super().__init__()
        self.moto = moto
        self.sim = f"{sim_url}/_sim/instances"
        self.fleet = fleet  # EC2 instance id -> simulated instance id
        self.done: list[tuple[str, str]] = []  # (action, EC2 instance id), in order

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        form = parse_qs(body.decode("utf-8", "replace")) if b"Action=" in body else {}
        action = (form.get("Action") or [""])[0]
        ids = [values[0] for key, values in sorted(form.items())
               if key.endswith(".Id") or key.startswith("InstanceId.")]
        if action == "DeregisterTargets":
            for instance in ids:
                self._drain(instance)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        answer = local_http.request(handler.command, f"{self.moto.url}{handler.path}", headers=headers, content=body,
                               timeout=30)
        if answer.status_code == 200 and action in ("RegisterTargets", "RebootInstances"):
            for instance in ids:
                verb = "restore" if action == "RegisterTargets" else "restart"
                local_http.post(f"{self.sim}/{self.fleet[instance]}/{verb}", timeout=5).raise_for_status()
                self._record(verb, instance)
        relay(handler, answer)

    def _drain(self, instance: str) -> None:
        simulated = self.fleet[instance]
        local_http.post(f"{self.sim}/{simulated}/drain", timeout=5).raise_for_status()
        deadline = time.monotonic() + 15
        while local_http.get(f"{self.sim}/{simulated}", timeout=5).json()["lb_state"] != "unused":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{simulated} did not drain")
            time.sleep(0.02)
        self._record("drain", instance)

    def _record(self, action: str, instance: str) -> None:
        with self.lock:
            self.done.append((action, instance))


def lb_counters(sim_url: str) -> dict[str, int]:
    body: dict[str, Any] = local_http.get(f"{sim_url}/_sim/instances", timeout=5).json()["load_balancer"]
    return {name: int(body[name]) for name in ("requests", "elb_5xx", "target_5xx")}


@contextmanager
def alb_publishes(moto: MotoServer, sim_url: str, load_balancer: str) -> Iterator[list[dict[str, int]]]:
    """Publish the simulated load balancer's counters to CloudWatch every 0.25 s, as increments, while the block
    runs; yields the increments published (the first one is there before the block starts)."""
    published: list[dict[str, int]] = []
    stop = threading.Event()
    last = {name: 0 for name in ("requests", "elb_5xx", "target_5xx")}

    def publish() -> None:
        now = lb_counters(sim_url)
        step = {name: now[name] - last[name] for name in now}
        publish_alb(moto, load_balancer, requests=step["requests"], elb_5xx=step["elb_5xx"],
                    target_5xx=step["target_5xx"])
        last.update(now)
        published.append(step)

    def run() -> None:
        while not stop.wait(0.25):
            publish()

    publish()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield published
    finally:
        stop.set()
        thread.join(5)


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)

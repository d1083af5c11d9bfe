"""The load balancer in front of the simulated instances, as ASGI middleware of the simulator's app.

Without a fleet (every scenario but ``rolling-restart``) it passes everything through untouched. With one:

* ``/_sim/...`` is the platform's control plane and never goes through the load balancer;
* ``/_sim/instances/<id>/direct/<path>`` reaches one instance directly, bypassing the load balancer, the way a
  Prometheus scrape reaches a target by its private address: our per-instance metric reads use it;
* everything else is routed by :meth:`Fleet.route`. A target whose process is gone answers with the load
  balancer's own ``502 Bad Gateway`` page (connection refused), as does a request the instance was serving
  when its process exited or when a drain ran out of time; no registered target at all is a ``503``.

The pages are byte for byte what an AWS Application Load Balancer sends (``Server: awselb/2.0``).
"""

from __future__ import annotations

import json
import re
import time
from typing import TYPE_CHECKING, Any

from kamkmserve_sim.httpshape import http_date

if TYPE_CHECKING:
    from kamkmserve_sim.instances import Fleet, Target
    from kamkmserve_sim.state import SimState

_DIRECT = re.compile(r"^/_sim/instances/([^/]+)/direct(/.*)?$")
_REASONS = {502: "Bad Gateway", 503: "Service Temporarily Unavailable"}

Scope = dict[str, Any]


def alb_page(status: int) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body of an ALB-generated error response."""
    title = f"{status} {_REASONS[status]}"
    body = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            "</body>\r\n</html>\r\n").encode()
    headers = [(b"Server", b"awselb/2.0"), (b"Date", http_date(time.time()).encode()),
               (b"Content-Type", b"text/html"), (b"Content-Length", str(len(body)).encode()),
               (b"Connection", b"keep-alive")]
    return headers, body


async def _send_page(send: Any, status: int) -> None:
    headers, body = alb_page(status)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send: Any, status: int, payload: dict[str, object]) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class LoadBalancer:
    def __init__(self, app: Any, sim: SimState) -> None:
        self.app = app
        self.sim = sim

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        fleet = self.sim.fleet
        if scope["type"] != "http" or fleet is None:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        direct = _DIRECT.match(path)
        if direct is not None:
            await self._direct(fleet, direct.group(1), direct.group(2) or "/", scope, receive, send)
        elif path == "/_sim" or path.startswith("/_sim/"):
            await self.app(scope, receive, send)
        else:
            await self._balanced(fleet, scope, receive, send)

    async def _direct(self, fleet: Fleet, target_id: str, path: str, scope: Scope, receive: Any, send: Any) -> None:
        target = fleet.targets.get(target_id)
        if target is None:
            await _send_json(send, 404, {"error": f"unknown instance {target_id}"})
            return
        now = fleet.advance()
        life = target.lifetime
        if life is None or not life.alive_at(now):
            await _send_json(send, 502, {"error": f"connection refused: instance {target_id} is not running"})
            return
        inner = {**scope, "path": path, "raw_path": path.encode()}
        with fleet.serving_on(life.runtime):
            await self.app(inner, receive, send)

    async def _balanced(self, fleet: Fleet, scope: Scope, receive: Any, send: Any) -> None:
        now = fleet.now()
        fleet.counters.requests += 1
        target = fleet.route(now)
        if target is None:
            fleet.counters.elb_503 += 1
            await _send_page(send, 503)
            return
        life = target.lifetime
        if life is None or not life.alive_at(now):
            fleet.counters.elb_502 += 1
            target.failed += 1
            await _send_page(send, 502)
            return
        started = now
        replaced = False
        target.http_in_flight += 1

        async def guarded(message: dict[str, Any]) -> None:
            nonlocal replaced
            if replaced:
                return  # the client already got the load balancer's 502; the rest of the app's answer is lost
            if message["type"] == "http.response.start":
                at = fleet.advance()
                if _cut(target, life.down_at_ms, started, at):
                    replaced = True
                    fleet.counters.elb_502 += 1
                    target.failed += 1
                    await _send_page(send, 502)
                    return
                target.served += 1
                if int(message["status"]) >= 500:
                    fleet.counters.target_5xx += 1
            await send(message)

        try:
            with fleet.serving_on(life.runtime):
                await self.app(scope, receive, guarded)
        finally:
            target.http_in_flight -= 1
            target.last_request_end_ms = max(target.last_request_end_ms, fleet.now())


def _cut(target: Target, down_at_ms: int | None, started_ms: int, now_ms: int) -> bool:
    """Whether a request that started at ``started_ms`` lost its connection before its answer: the process
    exited meanwhile, or the target's drain ran out of time while it was still in flight."""
    if down_at_ms is not None and down_at_ms <= now_ms:
        return True
    drained = target.drained_at_ms
    return not target.registered and drained is not None and started_ms <= drained <= now_ms

"""AWS levers (moto) over the simulator on virtual time: the bridges standing in for what AWS does to the app.

On the wall clock, background threads would poll moto and the simulator's server and copy one into the other. On
virtual time the simulated world moves only when someone advances it, so the bridges act where AWS would: at the AWS
call itself. :class:`AwsFront` is moto's endpoint as the adapters see it (every call forwarded to moto unchanged); a
bridge hooks an operation, before or after moto answers it (``UpdateService`` sets the simulated replica count,
``FilterLogEvents`` first ships what the app printed, ...).

A bridge runs on the front's server thread, while the runbook waits for its AWS call in a worker thread. It reaches
the in-process simulator through :class:`SideDoor`, which runs each request on the test's event loop (the loop the
runbook and the simulator live on), so the simulator is only ever touched from that one thread, as a real server's
single event loop would be.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qs

import httpx

from remediation import composition, runtime
from remediation.settings import Settings
from tests.contracts import awskit
from tests.flows.timekit import VirtualWorld
from tests.helpers import local_http
from tests.helpers.elb_targets import publish_alb
from tests.helpers.local_server import LocalHttpServer
from tests.helpers.moto_server import MotoServer

#: How long a bridge waits for the test's loop to serve one of its requests to the simulator (wall seconds).
SIDE_DOOR_TIMEOUT_S = 30.0
#: A drain the front waits for: virtual seconds in steps of ``DRAIN_STEP_S``.
DRAIN_WITHIN_S = 30.0
DRAIN_STEP_S = 0.1


class SideDoor:
    """The in-process simulator for another thread: each request runs on the test's event loop, the caller waits."""

    def __init__(self, world: VirtualWorld, loop: asyncio.AbstractEventLoop) -> None:
        self.world = world
        self.loop = loop

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            raise RuntimeError("the side door is for other threads: on the test's loop, await the world instead")

        async def send() -> httpx.Response:
            async with self.world.client(timeout=10) as client:
                response = await client.request(method, path, **kwargs)
                await response.aread()
                return response

        return asyncio.run_coroutine_threadsafe(send(), self.loop).result(SIDE_DOOR_TIMEOUT_S)

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        response.raise_for_status()
        return response.json()

    def advance(self, seconds: float) -> None:
        self.json("POST", "/_sim/time/advance", json={"seconds": seconds})


#: Request headers that belong to one connection, not to the call: dropped when a call is forwarded.
HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


def relay(handler: BaseHTTPRequestHandler, response: httpx.Response) -> None:
    """Answer ``handler`` with ``response`` (its body already decoded, so without its content-encoding)."""
    body = response.content
    handler.send_response(response.status_code)
    for name, value in response.headers.items():
        if name.lower() not in HOP_BY_HOP | {"content-encoding"}:
            handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@dataclass(frozen=True)
class Call:
    """One AWS call the front forwarded: its operation, the instance ids a query-protocol call names, moto's status."""

    operation: str
    ids: list[str]
    status: int = 0


Hook = Callable[[Call], None]


@dataclass
class Hooks:
    before: dict[str, list[Hook]] = field(default_factory=dict)
    after: dict[str, list[Hook]] = field(default_factory=dict)


def _operation(handler: BaseHTTPRequestHandler, body: bytes) -> tuple[str, list[str]]:
    """The operation of a JSON (``X-Amz-Target``), query/EC2 (``Action=``) or RPC-v2-CBOR (``/operation/X``) call."""
    target = handler.headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1], []
    if "/operation/" in handler.path:
        return handler.path.rsplit("/operation/", 1)[1].split("?")[0], []
    if b"Action=" in body:
        form = parse_qs(body.decode("utf-8", "replace"))
        ids = [values[0] for key, values in sorted(form.items())
               if key.endswith(".Id") or key.startswith("InstanceId.")]
        return (form.get("Action") or [""])[0], ids
    return "", []


class AwsFront(LocalHttpServer):
    """moto's endpoint as the adapters see it: every call forwarded unchanged, with the bridges hooked on it."""

    def __init__(self, moto: MotoServer) -> None:
        super().__init__()
        self.moto = moto
        self.hooks = Hooks()

    @contextmanager
    def hooked(self, operations: tuple[str, ...], hook: Hook, *,
               when: Literal["before", "after"] = "after") -> Iterator[None]:
        """Run ``hook`` for each of ``operations`` (``before`` moto sees it, or ``after`` it answered) in the block."""
        table = self.hooks.before if when == "before" else self.hooks.after
        with self.lock:
            for name in operations:
                table.setdefault(name, []).append(hook)
        try:
            yield
        finally:
            with self.lock:
                for name in operations:
                    table[name].remove(hook)

    def _run(self, table: dict[str, list[Hook]], call: Call) -> None:
        with self.lock:
            hooks = list(table.get(call.operation, ()))
        for hook in hooks:
            hook(call)

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        operation, ids = _operation(handler, body)
        self._run(self.hooks.before, Call(operation, ids))
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
        answer = local_http.request(handler.command, f"{self.moto.url}{handler.path}", headers=headers, content=body,
                                    timeout=30)
        self._run(self.hooks.after, Call(operation, ids, answer.status_code))
        relay(handler, answer)


def aws_providers(world: VirtualWorld, front: AwsFront, *, settings: dict[str, Any],
                  aws: dict[str, Any]) -> runtime.Providers:
    """The composition root's bundle for ``REMEDIATE_PLATFORM=aws`` (``aws``: its ``aws_*`` settings; the endpoint is
    the front), on the simulator's virtual time: its clock, and the app's own readers (metrics, probe, access, whose
    request budget and timings follow that clock) are those of the world's bundle, built the same way."""
    virtual = world.providers(**settings)
    flat = {name: getattr(virtual.settings, name) for name in (
        "app_url", "home", "mode", "approvers", "approval_timeout_s", "approval_poll_s", "verify_interval_s",
        "verify_consecutive", "verify_deadline_s", "metrics_budget_per_min")}
    wanted = Settings(**{**flat, **settings, **aws, "aws_endpoint_url": front.url, "platform": "aws"})
    # Nothing in the AWS bundle should reach the app (its readers are replaced below): if it did, in-process.
    live = composition.connect(wanted, clock=virtual.clock, transport=world.runbook_transport())
    return live.with_(metrics=virtual.metrics, probe=virtual.probe, access=virtual.access,
                      approvals=virtual.approvals)


# -- the app on ECS, its logs in CloudWatch, its edge behind WAF (test_aws_end_to_end) ------------------------------


def ecs_desired(moto: MotoServer) -> int:
    ecs = moto.client("ecs")
    return int(ecs.describe_services(cluster=awskit.CLUSTER, services=[awskit.WEB])["services"][0]["desiredCount"])


@asynccontextmanager
async def ecs_runs_the_app(front: AwsFront, door: SideDoor, *,
                           surge_ends_at: int | None = None) -> AsyncIterator[list[int]]:
    """ECS starting or stopping the app's tasks: once ``UpdateService`` is answered, the simulator runs the service's
    ``desiredCount`` of replicas. Yields the counts ECS went through. ``surge_ends_at``: the surge calms down once ECS
    runs that many tasks (the world moving on while scaled)."""
    seen: list[int] = []

    def mirror(call: Call) -> None:
        desired = ecs_desired(front.moto)
        if seen and seen[-1] == desired:
            return
        seen.append(desired)
        door.json("POST", "/_sim/capacity", json={"service": "kamkmserve", "replicas": desired})
        if surge_ends_at is not None and desired >= surge_ends_at:
            door.world.inside().state.load.traffic_multiplier = 1.0

    await asyncio.to_thread(mirror, Call("", []))
    with front.hooked(("UpdateService",), mirror):
        yield seen


@asynccontextmanager
async def waf_guards_the_app(front: AwsFront, door: SideDoor) -> AsyncIterator[None]:
    """The web ACL in front of the app and the edge reading the allowlist: after every WAF or SSM write, the WAF IP
    set and the SSM allowlist on moto are what the simulator's edge holds."""

    def mirror(call: Call) -> None:
        wanted = {address.removesuffix("/32") for address in awskit.waf_addresses(front.moto)}
        held = {b["value"] for b in door.json("GET", "/_sim/blocks")["blocks"] if b["kind"] == "ip"}
        for address in wanted - held:  # the sim's own TTL is long: WAF (and our TTL records) decide
            door.json("POST", "/_sim/blocks", json={"kind": "ip", "value": address, "ttl_s": 86_400,
                                                     "reason": "WAF IP set"})
        for address in held - wanted:
            door.request("DELETE", "/_sim/blocks", params={"kind": "ip", "value": address})
        stored = awskit.ssm_value(front.moto, f"{awskit.PREFIX}/uploads/allowlist")
        if stored is not None:
            body = json.loads(stored)
            if door.json("GET", "/_sim/uploads/allowlist") != body:
                door.json("PUT", "/_sim/uploads/allowlist", json=body)

    await asyncio.to_thread(mirror, Call("", []))
    with front.hooked(("UpdateIPSet", "PutParameter", "DeleteParameter", "DeleteParameters"), mirror):
        yield


def _printed_ms(line: str) -> int | None:
    try:
        stamp = str(json.loads(line)["timestamp"])
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
    except (ValueError, KeyError, TypeError):
        return None


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


@contextmanager
def awslogs_driver(front: AwsFront, door: SideDoor) -> Iterator[list[int]]:
    """The awslogs driver: before any read of CloudWatch Logs, every line the app printed so far is in the log group,
    one event per line at the (virtual) time it was printed. Yields how many were shipped."""
    shipped = [0]
    last_ms, at_last = [0], set[str]()

    def ship(call: Call) -> None:
        params = {"limit": "5000", **({"since": _iso(last_ms[0])} if last_ms[0] else {})}
        text = door.request("GET", "/_sim/logs", params=params).text
        events = []
        for line in text.splitlines():
            at = _printed_ms(line)
            if at is None or (at == last_ms[0] and line in at_last):
                continue
            events.append((at, line))
        if events:
            awskit.ship_logs(front.moto, events)
            shipped[0] += len(events)
            newest = max(at for at, _ in events)
            now = {line for at, line in events if at == newest}
            if newest == last_ms[0]:
                at_last.update(now)
            else:
                at_last.clear()
                at_last.update(now)
            last_ms[0] = newest

    with front.hooked(("FilterLogEvents",), ship, when="before"):
        yield shipped


# -- the fleet behind an ALB (test_rolling_restart_aws) -------------------------------------------------------------


class InstanceApp(LocalHttpServer):
    """One instance's app at its private address: every request goes to that simulated instance directly."""

    def __init__(self, host: str, port: int, door: SideDoor, sim_id: str) -> None:
        super().__init__()
        self.host, self.bind_port = host, port
        self.door = door
        self.direct = f"/_sim/instances/{sim_id}/direct"
        self.paths: list[str] = []

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.paths.append(handler.path)
        relay(handler, self.door.request("GET", f"{self.direct}{handler.path}"))


@contextmanager
def fleet_follows_aws(front: AwsFront, door: SideDoor, fleet: dict[str, str]) -> Iterator[list[tuple[str, str]]]:
    """What AWS does to the instances, at the call that does it (``fleet``: EC2 instance id -> simulated id):
    ``DeregisterTargets`` drains the simulated instance and is answered once it is out of rotation (AWS's
    ``draining`` phase, which moto lacks: the front advances virtual time until then), ``RegisterTargets`` puts it
    back, ``RebootInstances`` restarts its process. Yields what was done, ``(action, EC2 instance id)`` in order."""
    done: list[tuple[str, str]] = []

    def drain(call: Call) -> None:
        for instance in call.ids:
            simulated = f"/_sim/instances/{fleet[instance]}"
            door.json("POST", f"{simulated}/drain")
            waited = 0.0
            while door.json("GET", simulated)["lb_state"] != "unused":
                if waited >= DRAIN_WITHIN_S:
                    raise RuntimeError(f"{fleet[instance]} did not drain within {DRAIN_WITHIN_S:g} virtual seconds")
                door.advance(DRAIN_STEP_S)
                waited += DRAIN_STEP_S
            done.append(("drain", instance))

    def follow(call: Call) -> None:
        if call.status != 200:
            return
        verb = "restore" if call.operation == "RegisterTargets" else "restart"
        for instance in call.ids:
            door.json("POST", f"/_sim/instances/{fleet[instance]}/{verb}")
            done.append((verb, instance))

    with front.hooked(("DeregisterTargets",), drain, when="before"), \
            front.hooked(("RegisterTargets", "RebootInstances"), follow):
        yield done


def _counters(fleet: dict[str, Any]) -> dict[str, int]:
    body: dict[str, Any] = fleet["load_balancer"]
    return {name: int(body[name]) for name in ("requests", "elb_5xx", "target_5xx")}


async def lb_counters(world: VirtualWorld) -> dict[str, int]:
    """The simulated load balancer's counters (its requests, its own 5xx, its targets' 5xx)."""
    return _counters(await world.read("/_sim/instances"))


@asynccontextmanager
async def alb_publishes(front: AwsFront, door: SideDoor, load_balancer: str) -> AsyncIterator[list[dict[str, int]]]:
    """The simulated load balancer's counters published to CloudWatch, as increments, before every read of
    CloudWatch metrics in the block (and once as it starts); yields the increments published."""
    published: list[dict[str, int]] = []
    last = {name: 0 for name in ("requests", "elb_5xx", "target_5xx")}

    def publish(call: Call) -> None:
        now = _counters(door.json("GET", "/_sim/instances"))
        step = {name: now[name] - last[name] for name in now}
        publish_alb(front.moto, load_balancer, requests=step["requests"], elb_5xx=step["elb_5xx"],
                    target_5xx=step["target_5xx"])
        last.update(now)
        published.append(step)

    await asyncio.to_thread(publish, Call("", []))
    with front.hooked(("GetMetricData", "GetMetricStatistics", "ListMetrics"), publish, when="before"):
        yield published

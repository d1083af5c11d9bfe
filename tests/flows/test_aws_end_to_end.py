"""Runbooks end to end with ``REMEDIATE_PLATFORM=aws``: the levers are AWS (moto 5.2.5 in server mode), the app is
the simulator.

The runs go through ``runtime.connect`` exactly as production does: metrics from the app's own HTTP endpoints
(``REMEDIATE_APP_URL``, the simulator), capacity from ECS, logs from CloudWatch. Two small bridges stand in for
what AWS itself would do to the app, so the app reacts to the levers as it would in production:

* **ECS -> app**: the web service's ``desiredCount`` on moto is mirrored into the simulator's replica count (ECS
  starting or stopping tasks that serve the app). moto never launches tasks, so without it nothing would change.
* **app -> CloudWatch**: the simulator's stdout is shipped into the log group as the awslogs driver ships it, one
  event per line at the time it was printed, so the runbook's log reads go through CloudWatch.
* **WAF/SSM -> edge**: the WAF IP set and the SSM allowlist on moto are mirrored into the simulator's edge (the
  web ACL in front of the app refusing blocked clients; the edge reading the allowlist).

Every replica count asserted is read from ECS on moto, not from the report.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from kamkmserve_sim import SimServer
from kamkmserve_sim.security import EICAR

from flows.high_latency import high_latency
from flows.suspicious_upload import suspicious_upload
from remediation import runtime
from remediation.providers.aws import CloudWatchLogs, EcsCapacity, SsmParameters, SsmUploadPolicy, WafBlocks
from remediation.providers.aws.session import AwsConfig, AwsSession
from remediation.providers.sim_platform import ControlPlane
from remediation.providers.sim_security import SimAntivirus, SimAuditLog, SimQuarantine
from tests.contracts import awskit
from tests.flows.latencykit import FAST_LATENCY, replicas, wait_for_spike
from tests.flows.uploadkit import ATTACKER, DEFAULT_EXT, UPLOAD_FAST, allowlist, blocks, upload, wait_for_burst
from tests.helpers.moto_server import REGION, MotoServer, moto  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("prefect_api")

Sim = Callable[..., SimServer]
Build = Callable[..., runtime.Providers]


def ecs_desired(aws: MotoServer) -> int:
    ecs = aws.client("ecs")
    return int(ecs.describe_services(cluster=awskit.CLUSTER, services=[awskit.WEB])["services"][0]["desiredCount"])


@contextmanager
def ecs_runs_the_app(aws: MotoServer, server: SimServer, *, surge_ends_at: int | None = None) -> Iterator[list[int]]:
    """Mirror ECS's desiredCount into the simulator; yields the counts ECS went through. ``surge_ends_at``: the
    surge calms down once ECS runs that many tasks (the world moving on while scaled: no race with a timer on a
    busy 2-core machine)."""
    seen: list[int] = []
    stop = threading.Event()

    def mirror() -> None:
        while not stop.is_set():
            desired = ecs_desired(aws)
            if not seen or seen[-1] != desired:
                seen.append(desired)
                httpx.post(f"{server.url}/_sim/capacity", json={"service": "kamkmserve", "replicas": desired},
                           timeout=5).raise_for_status()
                if surge_ends_at is not None and desired >= surge_ends_at and server.state is not None:
                    server.state.load.traffic_multiplier = 1.0
            stop.wait(0.05)

    thread = threading.Thread(target=mirror, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(5)


@contextmanager
def waf_guards_the_app(aws: MotoServer, server: SimServer) -> Iterator[None]:
    """Mirror the WAF IP set and the SSM allowlist into the simulator's edge while the block runs."""
    stop = threading.Event()
    base = f"{server.url}/_sim"

    def mirror() -> None:
        while not stop.is_set():
            wanted = {address.removesuffix("/32") for address in awskit.waf_addresses(aws)}
            held = {b["value"] for b in httpx.get(f"{base}/blocks", timeout=5).json()["blocks"] if b["kind"] == "ip"}
            for address in wanted - held:  # the sim's own TTL is long: WAF (and our TTL records) decide
                httpx.post(f"{base}/blocks", json={"kind": "ip", "value": address, "ttl_s": 86_400,
                                                   "reason": "WAF IP set"}, timeout=5).raise_for_status()
            for address in held - wanted:
                httpx.delete(f"{base}/blocks", params={"kind": "ip", "value": address}, timeout=5)
            stored = awskit.ssm_value(aws, f"{awskit.PREFIX}/uploads/allowlist")
            if stored is not None:
                body = json.loads(stored)
                if httpx.get(f"{base}/uploads/allowlist", timeout=5).json() != body:
                    httpx.put(f"{base}/uploads/allowlist", json=body, timeout=5).raise_for_status()
            stop.wait(0.05)

    thread = threading.Thread(target=mirror, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def _printed_ms(line: str) -> int | None:
    try:
        stamp = str(json.loads(line)["timestamp"])
        return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
    except (ValueError, KeyError, TypeError):
        return None


@contextmanager
def awslogs_driver(aws: MotoServer, server: SimServer) -> Iterator[list[int]]:
    """Ship the simulator's JSON log lines into CloudWatch while the block runs; yields how many were shipped."""
    shipped = [0]
    stop = threading.Event()

    def ship() -> None:
        last_ms, at_last = 0, set()
        while not stop.is_set():
            params = {"limit": "5000", **({"since": _iso(last_ms)} if last_ms else {})}
            text = httpx.get(f"{server.url}/_sim/logs", params=params, timeout=5).text
            events = []
            for line in text.splitlines():
                at = _printed_ms(line)
                if at is None or (at == last_ms and line in at_last):
                    continue
                events.append((at, line))
            if events:
                awskit.ship_logs(aws, events)
                shipped[0] += len(events)
                newest = max(at for at, _ in events)
                at_last = {line for at, line in events if at == newest} | (at_last if newest == last_ms else set())
                last_ms = newest
            stop.wait(0.2)

    thread = threading.Thread(target=ship, daemon=True)
    thread.start()
    try:
        yield shipped
    finally:
        stop.set()
        thread.join(10)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


def seed(aws: MotoServer) -> None:
    """kamkmserve's AWS estate: the web service at 2 tasks and its log group (before the app starts printing)."""
    awskit.seed_ecs(aws, replicas=2)
    awskit.seed_log_group(aws)


def aws_world(aws: MotoServer, build: Build, server: SimServer, **settings: Any) -> runtime.Providers:
    started = time.monotonic()
    shared = awskit.aws_settings(aws).aws.model_dump(include={
        "endpoint_url", "region", "max_attempts", "ecs_cluster", "ecs_service", "ssm_prefix", "log_group"})
    overrides = {**{f"aws_{name}": value for name, value in shared.items()}, "platform": "aws", **settings}
    live = build(server.url, **overrides)
    assert time.monotonic() - started < 3, "connecting must not eat the load spike"
    return live


async def test_high_latency_scales_the_ecs_service_up_for_its_ttl_and_back_down(
    sim: Sim, providers: Build, moto: MotoServer,  # noqa: F811
) -> None:
    """The load spike is identified from the app's metrics and CloudWatch's copy of its logs; the scale-up lands on
    the ECS service (2 -> 4), is kept through a healthy watch until its TTL ends, and is undone (4 -> 2) once the
    surge is over."""
    seed(moto)
    server = sim("load-spike")
    live = aws_world(moto, providers, server)
    assert isinstance(live.capacity, EcsCapacity) and isinstance(live.logs, CloudWatchLogs)
    with ecs_runs_the_app(moto, server, surge_ends_at=4) as counts, awslogs_driver(moto, server) as shipped:
        wait_for_spike(server)
        with runtime.use(live):
            report = await high_latency(**{**FAST_LATENCY, "watch_s": 8.0, "ttl_s": 3})

    assert report["outcome"] == "recovered", report["escalation"]
    assert [a["kind"] for a in report["actions"] if a["state"] == "applied"] == ["scale_up", "scale_down"]
    assert report["actions"][0]["target"] == "kamkmserve 2->4 replicas for 3s"
    assert counts[:3] == [2, 4, 2], "ECS's desiredCount went 2 -> 4 -> 2"
    assert ecs_desired(moto) == 2 and replicas(server) == 2
    found = {f["check"]: f for f in report["findings"]}
    assert found["latency_p95"]["status"] == "breach"
    assert found["slow_request_logs"]["status"] == "breach" and found["slow_request_logs"]["observed"] > 0, \
        "the Slow request lines were read from CloudWatch"
    assert shipped[0] > 0
    assert report["verification"]["healthy"] is True


async def test_without_an_ecs_service_the_scale_up_fails_at_the_gate_and_nothing_changes(
    sim: Sim, providers: Build, moto: MotoServer,  # noqa: F811
) -> None:
    """A misnamed ECS service: reading the replica count fails with the platform's words, so the runbook sheds the
    hottest path instead (maintenance in SSM) and escalates; nothing is scaled."""
    seed(moto)
    server = sim("load-spike")
    live = aws_world(moto, providers, server, aws_ecs_service="kamkmserve-missing")
    wait_for_spike(server)
    with runtime.use(live):
        report = await high_latency(**{**FAST_LATENCY, "watch_s": 2.0})
    (enable,) = report["actions"]
    assert enable["kind"] == "enable_maintenance" and enable["applied"]
    notes = " ".join(f"{t['event']} {t.get('detail') or ''}" for t in report["timeline"])
    assert "kamkmserve-missing" in notes and "not found" in notes
    path = enable["target"]
    stored = moto.client("ssm").get_parameters_by_path(Path=f"{awskit.PREFIX}/maintenance", Recursive=True)
    assert [p["Value"] for p in stored["Parameters"]] == [path], "the maintenance switch is in SSM"
    assert ecs_desired(moto) == 2
    assert report["outcome"] == "escalated"


async def test_malware_uploader_is_blocked_in_the_waf_ip_set_and_the_block_expires(
    sim: Sim, providers: Build, moto: MotoServer,  # noqa: F811
) -> None:
    """The upload runbook on AWS levers: the uploader's address goes into the WAF IP set with its TTL recorded in
    SSM, the allowlist is tightened and restored in SSM, and the run recovers. Once the TTL has passed, the next
    read of the block list takes the address out of the IP set, and the client reaches the app again."""
    seed(moto)
    awskit.seed_waf(moto)
    awskit.seed_allowlist(moto)
    server = sim("malware-burst", rps=60)
    live = aws_world(moto, providers, server, aws_waf_ip_set_name=awskit.IP_SET)
    plane = ControlPlane(server.url)
    # The app's own signals still come from the simulator: its audit rows, its upload scanner's quarantine, and
    # (standing in for REMEDIATE_CLAMD_HOST) its antivirus.
    live = live.with_(audit=SimAuditLog(plane), quarantine=SimQuarantine(plane), antivirus=SimAntivirus(plane))
    assert isinstance(live.blocks, WafBlocks) and isinstance(live.uploads, SsmUploadPolicy)
    with waf_guards_the_app(moto, server), awslogs_driver(moto, server):
        wait_for_burst(server)
        with runtime.use(live):
            report = await suspicious_upload(**UPLOAD_FAST)
        assert report["outcome"] == "recovered", report["escalation"]
        assert [a["kind"] for a in report["actions"] if a["state"] == "applied"] == [
            "block_actor", "set_upload_allowlist", "reload_signatures", "set_upload_allowlist"]
        assert awskit.waf_addresses(moto) == {f"{ATTACKER}/32"}
        record = json.loads(awskit.ssm_value(moto, f"{awskit.PREFIX}/blocks/ip/{ATTACKER}_32") or "{}")
        ttl = datetime.fromisoformat(record["expires_at"]) - datetime.fromisoformat(record["created_at"])
        assert abs(ttl.total_seconds() - 3600) < 2
        assert json.loads(awskit.ssm_value(moto, f"{awskit.PREFIX}/uploads/allowlist") or "{}")["extensions"] \
            == DEFAULT_EXT, "the tightened allowlist was restored in SSM"
        assert [b["value"] for b in blocks(server)] == [ATTACKER] and allowlist(server)["extensions"] == DEFAULT_EXT
        assert upload(server, "x.png", "image/png", EICAR, forwarded_for=ATTACKER).status_code == 403

        # An hour and a second later, whoever reads the block list next (a drill, a run, `remediate check`)
        # carries out the expiry: the address leaves the IP set and its record is deleted.
        later = datetime.now(UTC) + timedelta(seconds=3601)
        session = AwsSession(AwsConfig(region=REGION, endpoint_url=moto.url))
        expiring = WafBlocks(session, SsmParameters(session, awskit.PREFIX), awskit.IP_SET, now=lambda: later)
        assert await expiring.blocks() == []
        assert awskit.waf_addresses(moto) == set()
        assert awskit.ssm_value(moto, f"{awskit.PREFIX}/blocks/ip/{ATTACKER}_32") is None
        deadline = time.monotonic() + 10
        while blocks(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert upload(server, "x.png", "image/png", EICAR, forwarded_for=ATTACKER).status_code != 403

"""Runbooks end to end with ``REMEDIATE_PLATFORM=aws``: the levers are AWS (moto 5.2.5 in server mode), the app is
the simulator, in-process on virtual time (tests.flows.timekit): the runbook's own waits move it.

The runs go through ``composition.connect`` exactly as production does for AWS: capacity from ECS, logs from
CloudWatch, blocks in WAF; the app's own HTTP endpoints (``REMEDIATE_APP_URL``, the simulator) are read by the
readers of the virtual world's bundle, on its clock. Small bridges stand in for what AWS itself would do to the app,
so the app reacts to the levers as it would in production; on virtual time each acts at the AWS call that causes it
(tests.flows.awsvirtualkit):

* **ECS -> app**: once ``UpdateService`` is answered, the web service's ``desiredCount`` on moto is the simulator's
  replica count (ECS starting or stopping tasks that serve the app). moto never launches tasks, so without it
  nothing would change.
* **app -> CloudWatch**: before each log read, the simulator's stdout is shipped into the log group as the awslogs
  driver ships it, one event per line at the time it was printed, so the runbook's log reads go through CloudWatch.
* **WAF/SSM -> edge**: after each WAF or SSM write, the WAF IP set and the SSM allowlist on moto are mirrored into the
  simulator's edge (the web ACL in front of the app refusing blocked clients; the edge reading the allowlist).

Every replica count asserted is read from ECS on moto, not from the report.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kamkmserve_sim.security import EICAR

from flows.high_latency import high_latency
from flows.suspicious_upload import suspicious_upload
from remediation import runtime
from remediation.providers.aws import CloudWatchLogs, EcsCapacity, SsmParameters, SsmUploadPolicy, WafBlocks
from remediation.providers.aws.session import AwsConfig, AwsSession
from tests.contracts import awskit
from tests.flows.awsvirtualkit import (
    AwsFront,
    SideDoor,
    aws_providers,
    awslogs_driver,
    ecs_desired,
    ecs_runs_the_app,
    waf_guards_the_app,
)
from tests.flows.latencykit import FAST_LATENCY, replicas_now, spike_serving
from tests.flows.timekit import VirtualWorld
from tests.flows.uploadkit import ATTACKER, DEFAULT_EXT, UPLOAD_FAST, allowlist_in, blocks_in, burst_in, upload_in
from tests.helpers.moto_server import REGION, MotoServer, moto  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("prefect_api")



@pytest.fixture
def front(moto: MotoServer) -> Iterator[AwsFront]:  # noqa: F811
    """moto's endpoint as the adapters see it, with the bridges hooked on the calls."""
    with AwsFront(moto) as started:
        yield started


def seed(aws: MotoServer) -> None:
    """kamkmserve's AWS estate: the web service at 2 tasks and its log group (before the app starts printing)."""
    awskit.seed_ecs(aws, replicas=2)
    awskit.seed_log_group(aws)


def aws_world(aws: MotoServer, world: VirtualWorld, front: AwsFront, **settings: Any) -> runtime.Providers:
    started = time.monotonic()
    shared = awskit.aws_settings(aws).aws.model_dump(include={
        "region", "max_attempts", "ecs_cluster", "ecs_service", "ssm_prefix", "log_group"})
    aws_settings = {f"aws_{name}": value for name, value in shared.items()}
    aws_settings.update({name: value for name, value in settings.items() if name.startswith("aws_")})
    others = {name: value for name, value in settings.items() if not name.startswith("aws_")}
    live = aws_providers(world, front, settings=others, aws=aws_settings)
    assert time.monotonic() - started < 3, "connecting must not eat the load spike"
    return live


async def test_high_latency_scales_the_ecs_service_up_for_its_ttl_and_back_down(
    world: VirtualWorld, front: AwsFront, moto: MotoServer,  # noqa: F811
) -> None:
    """The load spike is identified from the app's metrics and CloudWatch's copy of its logs; the scale-up lands on
    the ECS service (2 -> 4), is kept through a healthy watch until its TTL ends, and is undone (4 -> 2) once the
    surge is over."""
    seed(moto)
    world.start("load-spike")
    door = SideDoor(world, asyncio.get_running_loop())
    live = aws_world(moto, world, front)
    assert isinstance(live.capacity, EcsCapacity) and isinstance(live.logs, CloudWatchLogs)
    async with ecs_runs_the_app(front, door, surge_ends_at=4) as counts:
        with awslogs_driver(front, door) as shipped:
            await spike_serving(world)
            with runtime.use(live):
                report = await high_latency(**{**FAST_LATENCY, "watch_s": 8.0, "ttl_s": 3})

    assert report["outcome"] == "recovered", report["escalation"]
    assert [a["kind"] for a in report["actions"] if a["state"] == "applied"] == ["scale_up", "scale_down"]
    assert report["actions"][0]["target"] == "kamkmserve 2->4 replicas for 3s"
    assert counts[:3] == [2, 4, 2], "ECS's desiredCount went 2 -> 4 -> 2"
    assert ecs_desired(moto) == 2 and await replicas_now(world) == 2
    found = {f["check"]: f for f in report["findings"]}
    assert found["latency_p95"]["status"] == "breach"
    assert found["slow_request_logs"]["status"] == "breach" and found["slow_request_logs"]["observed"] > 0, \
        "the Slow request lines were read from CloudWatch"
    assert shipped[0] > 0
    assert report["verification"]["healthy"] is True


async def test_without_an_ecs_service_the_scale_up_fails_at_the_gate_and_nothing_changes(
    world: VirtualWorld, front: AwsFront, moto: MotoServer,  # noqa: F811
) -> None:
    """A misnamed ECS service: reading the replica count fails with the platform's words, so the runbook sheds the
    hottest path instead (maintenance in SSM) and escalates; nothing is scaled."""
    seed(moto)
    world.start("load-spike")
    live = aws_world(moto, world, front, aws_ecs_service="kamkmserve-missing")
    await spike_serving(world)
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
    world: VirtualWorld, front: AwsFront, moto: MotoServer,  # noqa: F811
) -> None:
    """The upload runbook on AWS levers: the uploader's address goes into the WAF IP set with its TTL recorded in
    SSM, the allowlist is tightened and restored in SSM, and the run recovers. Once the TTL has passed, the next
    read of the block list takes the address out of the IP set, and the client reaches the app again."""
    seed(moto)
    awskit.seed_waf(moto)
    awskit.seed_allowlist(moto)
    world.start("malware-burst", rps=60)
    door = SideDoor(world, asyncio.get_running_loop())
    live = aws_world(moto, world, front, aws_waf_ip_set_name=awskit.IP_SET)
    # The app's own signals still come from the simulator: its audit rows, its upload scanner's quarantine, and
    # (standing in for REMEDIATE_CLAMD_HOST) its antivirus; the world's bundle has them, on its clock.
    app = world.providers()
    live = live.with_(audit=app.audit, quarantine=app.quarantine, antivirus=app.antivirus)
    assert isinstance(live.blocks, WafBlocks) and isinstance(live.uploads, SsmUploadPolicy)
    async with waf_guards_the_app(front, door):
        with awslogs_driver(front, door):
            await burst_in(world)
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
            assert [b["value"] for b in await blocks_in(world)] == [ATTACKER]
            assert (await allowlist_in(world))["extensions"] == DEFAULT_EXT
            assert (await upload_in(world, "x.png", "image/png", EICAR, forwarded_for=ATTACKER)).status_code == 403

            # An hour and a second later (on the run's clock, which recorded the TTL: the simulator's), whoever
            # reads the block list next (a drill, a run, `remediate check`) carries out the expiry: the address
            # leaves the IP set and its record is deleted.
            later = datetime.fromtimestamp(await world.now_s(), UTC) + timedelta(seconds=3601)
            session = AwsSession(AwsConfig(region=REGION, endpoint_url=front.url))
            expiring = WafBlocks(session, SsmParameters(session, awskit.PREFIX), awskit.IP_SET, now=lambda: later)
            assert await expiring.blocks() == []
            assert awskit.waf_addresses(moto) == set()
            assert awskit.ssm_value(moto, f"{awskit.PREFIX}/blocks/ip/{ATTACKER}_32") is None
            assert await blocks_in(world) == [], "the WAF's IP set no longer refuses the client at the edge"
            assert (await upload_in(world, "x.png", "image/png", EICAR, forwarded_for=ATTACKER)).status_code != 403

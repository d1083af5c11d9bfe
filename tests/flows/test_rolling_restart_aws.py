"""The rolling restart with ``REMEDIATE_PLATFORM=aws``: drain and restore through the ELBv2 target group, restart
through EC2, and the stability readings from each instance's own metrics page at the private address EC2 gives
for it, plus the ALB's counters from CloudWatch (moto 5.2.5 in server mode; the app is the simulator's fleet,
in-process on virtual time: see ``awsvirtualkit`` for the bridges standing in for what AWS does to the instances,
each acting at the AWS call that causes it). The bundle is the composition root's for ``REMEDIATE_PLATFORM=aws``:
instances and instance metrics both from ``aws_levers``; its clock is the simulator's.

Every target state asserted is read from moto, every restart and load balancer 5xx from the simulator, every page
read from the server at that instance's address; not from the report.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from flows.rolling_restart import rolling_restart
from remediation import runtime
from remediation.providers.aws import ElbInstanceMetrics, ElbInstances
from tests.flows.awsvirtualkit import (
    AwsFront,
    InstanceApp,
    SideDoor,
    alb_publishes,
    aws_providers,
    fleet_follows_aws,
    lb_counters,
)
from tests.flows.restartkit import FAST_RESTART, FLEET, kinds
from tests.flows.timekit import VirtualWorld
from tests.helpers.elb_targets import Targets, bind_on_one_port, loopback_hosts, seed_targets
from tests.helpers.moto_server import REGION, MotoServer, moto  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("prefect_api")

SIM_IDS = ["i-01", "i-02"]


@dataclass
class World:
    world: VirtualWorld
    door: SideDoor
    targets: Targets
    apps: list[InstanceApp]  # in the order of targets.instance_ids
    front: AwsFront
    done: list[tuple[str, str]]  # what AWS did to the instances: (action, EC2 instance id), in order
    live: runtime.Providers

    def target_health(self) -> dict[str, tuple[str, int]]:
        """Each registered target's state and port, as ELBv2 on moto holds them."""
        elb = self.front.moto.client("elbv2")
        found = elb.describe_target_health(TargetGroupArn=self.targets.group_arn)["TargetHealthDescriptions"]
        return {t["Target"]["Id"]: (t["TargetHealth"]["State"], t["Target"]["Port"]) for t in found}

    async def instances(self) -> dict[str, dict[str, Any]]:
        return {i["id"]: i for i in (await self.world.read("/_sim/instances"))["instances"]}

    async def generations(self) -> dict[str, int]:
        return {name: int(i["generation"]) for name, i in (await self.instances()).items()}

    async def lb_states(self) -> dict[str, str]:
        return {name: str(i["lb_state"]) for name, i in (await self.instances()).items()}

    async def both_served(self, records: int) -> None:
        await self.world.advance_until(
            "traffic on both instances", lambda body: all(int(i["served"]) >= records for i in body["instances"]),
            reading="/_sim/instances")



@pytest.fixture
async def aws_fleet(world: VirtualWorld, moto: MotoServer) -> AsyncIterator[World]:  # noqa: F811
    """Two simulated instances as two EC2 instances behind an ALB on moto, each app at its own private address on
    the target group's port; the providers are the composition root's AWS bundle (``REMEDIATE_PLATFORM=aws``,
    ``REMEDIATE_AWS_TARGET_GROUP_ARN``) pointed at the AWS front, on the simulator's virtual time."""
    world.start("rolling-restart", fleet=FLEET.model_copy(update={"instances": 2}))
    door = SideDoor(world, asyncio.get_running_loop())
    hosts = loopback_hosts(2)
    apps = bind_on_one_port(hosts, lambda host, port: InstanceApp(host, port, door, SIM_IDS[hosts.index(host)]))
    targets = seed_targets(moto, hosts, group_port=apps[0].port, health_interval_s=5, healthy_threshold=2,
                           deregistration_delay_s=int(FLEET.deregistration_delay_s))
    front = AwsFront(moto).start()
    live = aws_providers(world, front, settings={"drill_preapproved": ["kamkmserve"]},
                         aws={"aws_region": REGION, "aws_max_attempts": 2, "aws_target_group_arn": targets.group_arn,
                              "aws_drain_poll_s": 0.1})
    try:
        with fleet_follows_aws(front, door, dict(zip(targets.instance_ids, SIM_IDS, strict=True))) as done:
            yield World(world, door, targets, apps, front, done, live)
    finally:
        front.stop()
        for app in apps:
            app.stop()


async def test_a_drill_on_aws_restarts_both_ec2_instances_reading_each_ones_own_page(aws_fleet: World) -> None:
    """Drain (deregister), restart (EC2 reboot), restore (register) one instance at a time; the new process is seen
    on the instance's own page, read at its private IP and the group's port; the ALB's counters come from
    CloudWatch; nothing is dropped and both targets end healthy on their port."""
    world = aws_fleet
    assert isinstance(world.live.instances, ElbInstances)
    assert isinstance(world.live.instance_metrics, ElbInstanceMetrics)
    assert world.targets.load_balancer is not None
    await world.both_served(30)
    async with alb_publishes(world.front, world.door, world.targets.load_balancer) as published:
        with runtime.use(world.live):
            report = await rolling_restart(drill=True, **FAST_RESTART)

    assert report["outcome"] == "recovered", report["escalation"]
    first, second = sorted(world.targets.instance_ids)
    assert kinds(report, "applied") == ["drain_instance", "restart_instance", "restore_instance"] * 2
    assert [a["target"].split()[0] for a in report["actions"]] == [first] * 3 + [second] * 3
    assert world.done == [(verb, ec2) for ec2 in (first, second) for verb in ("drain", "restart", "restore")]
    assert await world.generations() == {"i-01": 1, "i-02": 1}, "each process was restarted once, by the reboot"
    assert await world.lb_states() == {"i-01": "healthy", "i-02": "healthy"}
    port = world.apps[0].port
    assert world.target_health() == {first: ("healthy", port), second: ("healthy", port)}
    assert (await lb_counters(world.world))["elb_5xx"] == 0, "drained first: the load balancer never answered 5xx"

    for app in world.apps:
        assert app.paths and set(app.paths) == {"/api/monitoring/metrics"}, "each page read at its own address"
    notes = [f"{t['event']} {t.get('detail') or ''}" for t in report["timeline"]]
    assert sum("runs a new process" in note for note in notes) == 2
    counted = [int(n) for note in notes for n in re.findall(r"load balancer 5xx 0/(\d+)", note)]
    assert max(counted) > 0 and sum(s["requests"] for s in published) > 0, "the ALB's requests, from CloudWatch"
    inventory = next(e for e in report["evidence"] if e["source"] == "instances")
    assert "deregistration delay 2s, health checks every 5s (2 to pass)" in inventory["summary"]
    assert all(item["uptime_s"] is not None for item in inventory["items"])


async def test_on_aws_an_instance_whose_page_cannot_be_read_stops_the_restart_before_anything(
    aws_fleet: World,
) -> None:
    """One instance's address answers nothing: its stability is unknown, not healthy, so the drill restarts
    nothing and escalates; both targets stay registered on moto."""
    world = aws_fleet
    assert world.targets.load_balancer is not None
    await world.both_served(30)
    world.apps[1].stop()
    async with alb_publishes(world.front, world.door, world.targets.load_balancer):
        with runtime.use(world.live):
            report = await rolling_restart(drill=True, **FAST_RESTART)

    assert report["outcome"] == "escalated"
    baseline = next(f for f in report["findings"] if f["check"] == "slo_baseline")
    assert baseline["status"] == "unknown"
    assert world.targets.instance_ids[1] in baseline["detail"] and "unreachable" in baseline["detail"]
    assert "cannot be read" in report["escalation"]
    assert report["actions"] == [] and world.done == []
    assert await world.generations() == {"i-01": 0, "i-02": 0}
    assert {state for state, _ in world.target_health().values()} == {"healthy"}


async def test_on_aws_without_the_albs_counters_in_cloudwatch_nothing_is_restarted(aws_fleet: World) -> None:
    """CloudWatch holds nothing for the load balancer (here: nothing published): its own 5xx are unknown, so the
    restart is not started even though every page reads fine."""
    world = aws_fleet
    await world.both_served(30)
    with runtime.use(world.live):
        report = await rolling_restart(drill=True, **FAST_RESTART)

    assert report["outcome"] == "escalated"
    assert "CloudWatch holds no AWS/ApplicationELB RequestCount" in report["escalation"]
    assert report["actions"] == [] and world.done == []
    assert await world.generations() == {"i-01": 0, "i-02": 0}

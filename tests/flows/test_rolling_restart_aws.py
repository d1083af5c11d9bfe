"""The rolling restart with ``REMEDIATE_PLATFORM=aws``: drain and restore through the ELBv2 target group, restart
through EC2, and the stability readings from each instance's own metrics page at the private address EC2 gives
for it, plus the ALB's counters from CloudWatch (moto 5.2.5 in server mode; the app is the simulator's fleet, see
``awsrestartkit`` for the bridges standing in for what AWS does to the instances). The bundle is the composition
root's for ``REMEDIATE_PLATFORM=aws``: instances and instance metrics both from ``aws_levers``.

Every target state asserted is read from moto, every restart and load balancer 5xx from the simulator, every page
read from the server at that instance's address; not from the report.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
from kamkmserve_sim import SimServer

from flows.rolling_restart import rolling_restart
from remediation import runtime
from remediation.providers.aws import ElbInstanceMetrics, ElbInstances
from tests.flows.awsrestartkit import AwsFront, InstanceApp, alb_publishes, lb_counters, wait_until
from tests.flows.restartkit import FAST_RESTART, FLEET, generations, kinds, lb_states
from tests.helpers.elb_targets import Targets, bind_on_one_port, loopback_hosts, seed_targets
from tests.helpers.moto_server import REGION, MotoServer, moto  # noqa: F401  (the fixture)

pytestmark = pytest.mark.usefixtures("prefect_api")

Sim = Callable[..., SimServer]
Build = Callable[..., runtime.Providers]
SIM_IDS = ["i-01", "i-02"]


@dataclass
class World:
    server: SimServer
    targets: Targets
    apps: list[InstanceApp]  # in the order of targets.instance_ids
    front: AwsFront
    live: runtime.Providers

    def target_health(self) -> dict[str, tuple[str, int]]:
        """Each registered target's state and port, as ELBv2 on moto holds them."""
        elb = self.front.moto.client("elbv2")
        found = elb.describe_target_health(TargetGroupArn=self.targets.group_arn)["TargetHealthDescriptions"]
        return {t["Target"]["Id"]: (t["TargetHealth"]["State"], t["Target"]["Port"]) for t in found}


@pytest.fixture
def aws_fleet(sim: Sim, providers: Build, moto: MotoServer) -> Iterator[World]:  # noqa: F811
    """Two simulated instances as two EC2 instances behind an ALB on moto, each app at its own private address on
    the target group's port; the providers are the composition root's AWS bundle (``REMEDIATE_PLATFORM=aws``,
    ``REMEDIATE_AWS_TARGET_GROUP_ARN``) pointed at the AWS front."""
    server = sim("rolling-restart", fleet=FLEET.model_copy(update={"instances": 2}))
    hosts = loopback_hosts(2)
    apps = bind_on_one_port(hosts, lambda host, port: InstanceApp(host, port, server.url, SIM_IDS[hosts.index(host)]))
    targets = seed_targets(moto, hosts, group_port=apps[0].port, health_interval_s=5, healthy_threshold=2,
                           deregistration_delay_s=int(FLEET.deregistration_delay_s))
    front = AwsFront(moto, server.url, dict(zip(targets.instance_ids, SIM_IDS, strict=True))).start()
    live = providers(server.url, platform="aws", aws_endpoint_url=front.url,
                     aws_region=REGION, aws_max_attempts=2, aws_target_group_arn=targets.group_arn,
                     aws_drain_poll_s=0.1, drill_preapproved=["kamkmserve"])
    try:
        yield World(server, targets, apps, front, live)
    finally:
        front.stop()
        for app in apps:
            app.stop()


def both_served(server: SimServer, records: int) -> bool:
    body = httpx.get(f"{server.url}/_sim/instances", timeout=5).json()
    return all(int(i["served"]) >= records for i in body["instances"])


async def test_a_drill_on_aws_restarts_both_ec2_instances_reading_each_ones_own_page(aws_fleet: World) -> None:
    """Drain (deregister), restart (EC2 reboot), restore (register) one instance at a time; the new process is seen
    on the instance's own page, read at its private IP and the group's port; the ALB's counters come from
    CloudWatch; nothing is dropped and both targets end healthy on their port."""
    world = aws_fleet
    assert isinstance(world.live.instances, ElbInstances)
    assert isinstance(world.live.instance_metrics, ElbInstanceMetrics)
    assert world.targets.load_balancer is not None
    wait_until(lambda: both_served(world.server, 30), "traffic on both instances")
    with alb_publishes(world.front.moto, world.server.url, world.targets.load_balancer) as published, \
            runtime.use(world.live):
        report = await rolling_restart(drill=True, **FAST_RESTART)

    assert report["outcome"] == "recovered", report["escalation"]
    first, second = sorted(world.targets.instance_ids)
    assert kinds(report, "applied") == ["drain_instance", "restart_instance", "restore_instance"] * 2
    assert [a["target"].split()[0] for a in report["actions"]] == [first] * 3 + [second] * 3
    assert world.front.done == [(verb, ec2) for ec2 in (first, second) for verb in ("drain", "restart", "restore")]
    assert generations(world.server) == {"i-01": 1, "i-02": 1}, "each process was restarted once, by the reboot"
    assert lb_states(world.server) == {"i-01": "healthy", "i-02": "healthy"}
    port = world.apps[0].port
    assert world.target_health() == {first: ("healthy", port), second: ("healthy", port)}
    assert lb_counters(world.server.url)["elb_5xx"] == 0, "drained first: the load balancer never answered 5xx"

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
    wait_until(lambda: both_served(world.server, 30), "traffic on both instances")
    world.apps[1].stop()
    with alb_publishes(world.front.moto, world.server.url, world.targets.load_balancer), runtime.use(world.live):
        report = await rolling_restart(drill=True, **FAST_RESTART)

    assert report["outcome"] == "escalated"
    baseline = next(f for f in report["findings"] if f["check"] == "slo_baseline")
    assert baseline["status"] == "unknown"
    assert world.targets.instance_ids[1] in baseline["detail"] and "unreachable" in baseline["detail"]
    assert "cannot be read" in report["escalation"]
    assert report["actions"] == [] and world.front.done == []
    assert generations(world.server) == {"i-01": 0, "i-02": 0}
    assert {state for state, _ in world.target_health().values()} == {"healthy"}


async def test_on_aws_without_the_albs_counters_in_cloudwatch_nothing_is_restarted(aws_fleet: World) -> None:
    """CloudWatch holds nothing for the load balancer (here: nothing published): its own 5xx are unknown, so the
    restart is not started even though every page reads fine."""
    world = aws_fleet
    wait_until(lambda: both_served(world.server, 30), "traffic on both instances")
    with runtime.use(world.live):
        report = await rolling_restart(drill=True, **FAST_RESTART)

    assert report["outcome"] == "escalated"
    assert "CloudWatch holds no AWS/ApplicationELB RequestCount" in report["escalation"]
    assert report["actions"] == [] and world.front.done == []
    assert generations(world.server) == {"i-01": 0, "i-02": 0}

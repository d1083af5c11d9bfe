"""``ElbInstanceMetrics`` against moto in server mode: each target's own metrics page read at the address ELBv2 and
EC2 give for it (EC2 instances whose private IPs are loopback addresses with a page server on each), and the ALB's
counters from CloudWatch (published into moto as the ALB would). A page that cannot be read, or counters that are
not there, make the stability reading unknown, never healthy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from remediation.models import FindingStatus
from remediation.providers.aws import AwsConfig, AwsSession, ElbInstanceMetrics, aws_levers
from remediation.providers.instances import uptime_s, user_request_stats
from remediation.providers.platform import PlatformError
from remediation.runtime import Providers
from remediation.settings import Settings
from tasks.rolling_restart.checks import Slo, read_slo
from tests.helpers.app_pages import app_page
from tests.helpers.elb_targets import PageServer, Targets, loopback_hosts, publish_alb, seed_targets
from tests.helpers.moto_server import REGION, MotoServer
from tests.sim.simkit import load_fixture

SERVICE = "kamkmserve"
#: The real app's page, captured (tests/fixtures/kamkmserve): fresh, no request records (its request metrics are dead).
CAPTURED = load_fixture("default-1a-metrics-fresh-1.http").body + "\n"
#: An instance that has served 20 user requests, one of them a 500.
BUSY = app_page([("GET", "/", 200, 40 + n) for n in range(19)] + [("POST", "/api/checkout", 500, 300)])
SLO = Slo(error_pct=10.0, p95_ms=500.0, min_records=10, window=50)


@pytest.fixture
def pages() -> Iterator[list[PageServer]]:
    """Two instances' apps, each at a loopback address of its own (its EC2 private IP)."""
    servers = [PageServer(host, page).start() for host, page in zip(loopback_hosts(2), (CAPTURED, BUSY), strict=True)]
    yield servers
    for server in servers:
        server.stop()


def session(moto: MotoServer) -> AwsSession:
    return AwsSession(AwsConfig(region=REGION, endpoint_url=moto.url, max_attempts=2))


def seed(moto: MotoServer, pages: list[PageServer], **options: Any) -> Targets:
    """The pages' instances in a target group (port 3000), each registered on its own server's port."""
    return seed_targets(moto, [p.host for p in pages], group_port=3000, ports=[p.port for p in pages], **options)


def probe(adapter: ElbInstanceMetrics) -> Providers:
    """What ``read_slo`` uses of the providers: the instance metrics only."""
    return cast(Providers, SimpleNamespace(instance_metrics=adapter))


async def test_each_target_is_read_at_its_own_registered_address(moto: MotoServer, pages: list[PageServer]) -> None:
    """ELBv2 target -> EC2 private IP + registered port: each instance's own page comes back, byte for byte, and
    its stability is its own (the fresh one records no requests: unknown; the busy one has its 20)."""
    targets = seed(moto, pages)
    adapter = ElbInstanceMetrics(session(moto), targets.group_arn)
    fresh_id, busy_id = targets.instance_ids

    fresh = await adapter.metrics_page(SERVICE, fresh_id)
    busy = await adapter.metrics_page(SERVICE, busy_id)

    assert (fresh.instance_id, fresh.text, fresh.error) == (fresh_id, CAPTURED, None)
    assert busy.text == BUSY and busy.error is None
    assert [p.reads for p in pages] == [1, 1], "each page was read once, at its own address"
    assert uptime_s(fresh.text or "") == 6.86705338
    unknown = user_request_stats(fresh.text or "", 50)
    assert not unknown.available and "no request records" in unknown.reason
    stats = user_request_stats(busy.text or "", 50)
    assert stats.available and stats.records == 20 and stats.errors_5xx == 1


async def test_ip_targets_are_read_at_their_id(moto: MotoServer, pages: list[PageServer]) -> None:
    """ECS tasks (awsvpc) register by IP: the target id is the address, no EC2 lookup."""
    ec2, elb = moto.client("ec2"), moto.client("elbv2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    group = elb.create_target_group(Name="kamkmserve-tasks", Protocol="HTTP", Port=3000, VpcId=vpc,
                                    TargetType="ip")["TargetGroups"][0]["TargetGroupArn"]
    busy = pages[1]
    elb.register_targets(TargetGroupArn=group, Targets=[{"Id": busy.host, "Port": busy.port}])

    page = await ElbInstanceMetrics(session(moto), group).metrics_page(SERVICE, busy.host)
    assert page.text == BUSY and busy.reads == 1


async def test_a_drained_target_is_still_read_at_its_address(moto: MotoServer, pages: list[PageServer]) -> None:
    """While an instance is out of the load balancer (the rolling restart reads it then to see the new process),
    ELBv2 no longer lists it: the adapter reads it at the address it had, or (a fresh adapter) at the group's port."""
    fresh = pages[0]
    targets = seed_targets(moto, [fresh.host], group_port=fresh.port)
    (instance,) = targets.instance_ids
    remembered = ElbInstanceMetrics(session(moto), targets.group_arn)
    assert (await remembered.metrics_page(SERVICE, instance)).text == CAPTURED
    moto.client("elbv2").deregister_targets(TargetGroupArn=targets.group_arn, Targets=[{"Id": instance}])

    assert (await remembered.metrics_page(SERVICE, instance)).text == CAPTURED
    assert (await ElbInstanceMetrics(session(moto), targets.group_arn).metrics_page(SERVICE, instance)).text == CAPTURED
    assert fresh.reads == 3


async def test_an_unreachable_target_is_unknown_not_healthy(moto: MotoServer, pages: list[PageServer]) -> None:
    """One instance answers nothing: its page is an error (no exception), and the SLO reading over both is unknown
    although the other one is busy and healthy and the load balancer's counters are there."""
    gone, busy = pages
    healthy_page = BUSY.replace('status="500"} 1', 'status="200"} 1').replace('status="500"} 300',
                                                                              'status="200"} 30')
    gone.page = busy.page = healthy_page
    targets = seed(moto, pages)
    assert targets.load_balancer is not None
    publish_alb(moto, targets.load_balancer, requests=40)
    adapter = ElbInstanceMetrics(session(moto), targets.group_arn, timeout_s=2.0)
    both = await read_slo(probe(adapter), SERVICE, targets.instance_ids, SLO, None)
    assert both.status is FindingStatus.OK, both.detail
    gone.stop()

    page = await adapter.metrics_page(SERVICE, targets.instance_ids[0])
    assert page.text is None and page.error is not None and "unreachable" in page.error
    assert gone.host in page.error
    reading = await read_slo(probe(adapter), SERVICE, targets.instance_ids, SLO, both.lb)
    assert reading.status is FindingStatus.UNKNOWN
    assert targets.instance_ids[0] in reading.detail and "unreachable" in reading.detail


async def test_an_address_that_stops_answering_is_looked_up_again(moto: MotoServer, pages: list[PageServer]) -> None:
    """The instance's app moves to another port (re-registered there): the first read after it fails, the next one
    finds it at the new address."""
    targets = seed(moto, pages[:1])
    (instance,) = targets.instance_ids
    adapter = ElbInstanceMetrics(session(moto), targets.group_arn, timeout_s=2.0)
    assert (await adapter.metrics_page(SERVICE, instance)).text == CAPTURED
    old = pages[0]
    old.stop()
    moved = PageServer(old.host, BUSY).start()
    try:
        elb = moto.client("elbv2")
        elb.deregister_targets(TargetGroupArn=targets.group_arn, Targets=[{"Id": instance, "Port": old.port}])
        elb.register_targets(TargetGroupArn=targets.group_arn, Targets=[{"Id": instance, "Port": moved.port}])

        assert (await adapter.metrics_page(SERVICE, instance)).error is not None
        assert (await adapter.metrics_page(SERVICE, instance)).text == BUSY
    finally:
        moved.stop()


async def test_what_is_not_an_instance_of_the_group_has_no_page(moto: MotoServer, pages: list[PageServer]) -> None:
    targets = seed(moto, pages)
    adapter = ElbInstanceMetrics(session(moto), targets.group_arn)
    missing = await adapter.metrics_page(SERVICE, "i-0000000000000dead")
    assert missing.text is None and "no EC2 instance i-0000000000000dead" in (missing.error or "")
    lambda_target = await adapter.metrics_page(SERVICE, "arn:aws:lambda:us-east-1:123456789012:function:f")
    assert lambda_target.text is None and "neither an EC2 instance id nor an IP address" in (lambda_target.error or "")
    assert [p.reads for p in pages] == [0, 0]


async def test_each_instance_has_its_own_budget_and_the_apps_429_holds_reads_back(
    moto: MotoServer, pages: list[PageServer]
) -> None:
    """The app limits each client per instance: every instance's reads have their own budget (spending one leaves
    the other readable), and the app's 429 stops further reads of that instance until its Retry-After."""
    targets = seed(moto, pages)
    first, second = targets.instance_ids
    adapter = ElbInstanceMetrics(session(moto), targets.group_arn, budget_per_min=2)
    assert all([(await adapter.metrics_page(SERVICE, first)).text for _ in range(2)])
    spent = await adapter.metrics_page(SERVICE, first)
    assert spent.text is None and "local budget of 2 requests/min spent" in (spent.error or "")
    assert pages[0].reads == 2, "the third read was never sent"
    assert (await adapter.metrics_page(SERVICE, second)).text == BUSY

    pages[1].status, pages[1].headers = 429, {"Retry-After": "30"}
    limited = await adapter.metrics_page(SERVICE, second)
    assert limited.text is None and "rate limited by the app (429" in (limited.error or "")
    held = await adapter.metrics_page(SERVICE, second)
    assert "the app answered 429" in (held.error or "") and pages[1].reads == 2


async def test_load_balancer_settings_and_running_totals_from_cloudwatch(
    moto: MotoServer, pages: list[PageServer]
) -> None:
    """Settings from the target group; counters are the ALB's CloudWatch sums since the first reading, so two
    readings differ by what the ALB published in between, also a datapoint that arrives late for an earlier
    moment."""
    targets = seed(moto, pages, health_interval_s=10, healthy_threshold=3, deregistration_delay_s=30)
    assert targets.load_balancer is not None
    publish_alb(moto, targets.load_balancer, requests=100, elb_5xx=2, target_5xx=1)
    read_at: list[datetime] = []

    def now() -> datetime:
        read_at.append(datetime.now(UTC))
        return read_at[-1]

    adapter = ElbInstanceMetrics(session(moto), targets.group_arn, now=now)
    first = await adapter.load_balancer(SERVICE)
    assert (first.deregistration_delay_s, first.health_interval_s, first.healthy_threshold) == (30.0, 10.0, 3)

    publish_alb(moto, targets.load_balancer, requests=50, elb_5xx=3)
    publish_alb(moto, targets.load_balancer, requests=7, target_5xx=4, at=read_at[0])  # late, for the first reading
    second = await adapter.load_balancer(SERVICE)
    assert (second.requests - first.requests, second.elb_5xx - first.elb_5xx,
            second.target_5xx - first.target_5xx) == (57, 3, 4)


async def test_totals_of_a_long_lived_adapter_keep_counting_past_the_re_read_window(
    moto: MotoServer, pages: list[PageServer]
) -> None:
    """A worker keeps its adapter for weeks: minutes older than the re-read window are added up once and carried,
    so the totals neither shrink nor count anything twice."""
    targets = seed(moto, pages)
    assert targets.load_balancer is not None
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=90)
    clock = [start]
    adapter = ElbInstanceMetrics(session(moto), targets.group_arn, now=lambda: clock[0])
    publish_alb(moto, targets.load_balancer, requests=1, at=start - timedelta(minutes=1))  # before: not counted
    first = await adapter.load_balancer(SERVICE)
    for minutes, requests, elb_5xx in ((1, 10, 1), (65, 5, 0), (69, 3, 2)):
        publish_alb(moto, targets.load_balancer, requests=requests, elb_5xx=elb_5xx,
                    at=start + timedelta(minutes=minutes))

    clock[0] = start + timedelta(minutes=70)  # past the window: minutes before 65 are carried
    later = await adapter.load_balancer(SERVICE)
    again = await adapter.load_balancer(SERVICE)
    assert (first.requests, first.elb_5xx) == (0, 0)
    assert (later.requests, later.elb_5xx) == (18, 3)
    assert (again.requests, again.elb_5xx) == (18, 3), "read again: the same totals"


async def test_load_balancer_counters_that_are_not_there_are_unknown_not_zero(
    moto: MotoServer, pages: list[PageServer]
) -> None:
    """No load balancer in front of the group, or one CloudWatch holds nothing for (moto, an account without the
    metrics): reading it raises, and the SLO reading is unknown even with every page readable."""
    alone = seed(moto, pages, behind_alb=False)
    with pytest.raises(PlatformError, match="behind no load balancer"):
        await ElbInstanceMetrics(session(moto), alone.group_arn).load_balancer(SERVICE)

    moto.reset()
    behind = seed(moto, pages)
    adapter = ElbInstanceMetrics(session(moto), behind.group_arn)
    with pytest.raises(PlatformError, match=r"CloudWatch holds no AWS/ApplicationELB RequestCount .*unknown"):
        await adapter.load_balancer(SERVICE)
    reading = await read_slo(probe(adapter), SERVICE, behind.instance_ids, SLO, None)
    assert reading.status is FindingStatus.UNKNOWN and "load balancer unreadable" in reading.detail


async def test_an_unknown_target_group_is_a_platform_error(moto: MotoServer) -> None:
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/nope/0123456789abcdef"
    adapter = ElbInstanceMetrics(session(moto), arn)
    with pytest.raises(PlatformError, match="no target group"):
        await adapter.load_balancer(SERVICE)
    assert "no target group" in ((await adapter.metrics_page(SERVICE, "10.0.0.1")).error or "")


def test_aws_levers_build_instance_metrics_for_the_configured_target_group() -> None:
    """The composition root finds it next to the instances lever, on the same target group; none without one."""
    arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/kamkmserve-web/0123456789abcdef"
    levers = aws_levers(Settings(platform="aws", aws_region=REGION, aws_target_group_arn=arn, http_timeout_s=3.0))
    assert isinstance(levers.instance_metrics, ElbInstanceMetrics)
    assert levers.instance_metrics.target_group_arn == arn and levers.instance_metrics.timeout_s == 3.0
    assert levers.instance_metrics.session is levers.session
    assert aws_levers(Settings(platform="aws", aws_region=REGION)).instance_metrics is None

"""Load balancer targets whose addresses are real: EC2 instances on moto with private IPs in 127.0.0.0/8 (moto
takes any ``PrivateIpAddress``, and every 127.x.y.z is loopback on Linux), each with a small HTTP server at that
address serving the instance's own metrics page; an ALB in front of the target group; and what the ALB would
publish to CloudWatch (moto keeps ``AWS/ApplicationELB`` empty).

So the AWS adapter under test resolves each target exactly as in production (ELBv2 target -> EC2 private IP ->
``http://IP:PORT/api/monitoring/metrics``) and no address-mapping hook is needed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import TypeVar

from remediation.providers.metrics import METRICS_PATH
from tests.contracts import awskit
from tests.helpers.local_server import LocalHttpServer
from tests.helpers.moto_server import MotoServer

S = TypeVar("S", bound=LocalHttpServer)
#: What the app answers its metrics page with (docs/reference/kamkmserve.md §2.1; captured fixture default-1a).
PAGE_TYPE = "text/plain; version=0.0.4"


def loopback_hosts(count: int) -> list[str]:
    """``count`` distinct random loopback addresses (random, so parallel test runs do not meet at one address)."""
    rng = random.Random()
    hosts: set[str] = set()
    while len(hosts) < count:
        hosts.add(f"127.{rng.randrange(1, 255)}.{rng.randrange(0, 256)}.{rng.randrange(2, 255)}")
    return sorted(hosts)


class PageServer(LocalHttpServer):
    """One instance's app at its own address: ``/api/monitoring/metrics`` answers ``page`` (or ``status`` with
    ``headers``, e.g. the app's 429); counts the reads it got."""

    def __init__(self, host: str, page: str, *, bind_port: int = 0) -> None:
        super().__init__()
        self.host, self.bind_port = host, bind_port
        self.page = page
        self.status = 200
        self.headers: dict[str, str] = {"ratelimit-limit": "100", "ratelimit-remaining": "99"}
        self.reads = 0

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.reads += 1
            status, page, headers = self.status, self.page, dict(self.headers)
        if handler.path.split("?")[0] != METRICS_PATH:
            status, page = 404, "Not Found"
        body = (page if status == 200 else "Too Many Requests" if status == 429 else page).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", PAGE_TYPE if status == 200 else "text/plain")
        handler.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)


def bind_on_one_port(hosts: list[str], make: Callable[[str, int], S], attempts: int = 20) -> list[S]:
    """Servers on every host at one shared port (an ELBv2 target group's default port), started."""
    for _ in range(attempts):
        first = make(hosts[0], 0).start()
        started = [first]
        try:
            for host in hosts[1:]:
                started.append(make(host, first.port).start())
            return started
        except OSError:  # that port is taken on another loopback address: try another
            for server in started:
                server.stop()
    raise RuntimeError(f"no port free on all of {hosts}")


@dataclass(frozen=True)
class Targets:
    group_arn: str
    instance_ids: list[str]  # in the order of the hosts they were given
    load_balancer: str | None  # CloudWatch's LoadBalancer dimension, when an ALB forwards to the group


def seed_targets(moto: MotoServer, hosts: list[str], *, group_port: int, ports: list[int | None] | None = None,
                 behind_alb: bool = True, health_interval_s: int = 10, healthy_threshold: int = 3,
                 deregistration_delay_s: int | None = None) -> Targets:
    """One EC2 instance per host (its private IP), registered in a new target group (each on ``ports[i]``, or on
    the group's port when None); with ``behind_alb`` an ALB listener forwards to the group."""
    ec2, elb = moto.client("ec2"), moto.client("elbv2")
    vpc = ec2.describe_vpcs()["Vpcs"][0]["VpcId"]
    group = elb.create_target_group(Name="kamkmserve-web", Protocol="HTTP", Port=group_port, VpcId=vpc,
                                    TargetType="instance", HealthCheckPath="/monitoring/ready",
                                    HealthCheckIntervalSeconds=health_interval_s,
                                    HealthyThresholdCount=healthy_threshold)["TargetGroups"][0]["TargetGroupArn"]
    if deregistration_delay_s is not None:
        elb.modify_target_group_attributes(TargetGroupArn=group, Attributes=[
            {"Key": "deregistration_delay.timeout_seconds", "Value": str(deregistration_delay_s)}])
    ids = [ec2.run_instances(ImageId=awskit.AMI, MinCount=1, MaxCount=1, InstanceType="t3.small",
                             PrivateIpAddress=host)["Instances"][0]["InstanceId"] for host in hosts]
    wanted = ports or [None] * len(ids)
    elb.register_targets(TargetGroupArn=group, Targets=[{"Id": i, **({"Port": p} if p else {})}
                                                        for i, p in zip(ids, wanted, strict=True)])
    balancer = None
    if behind_alb:
        found = ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])["Subnets"]
        subnets = [s["SubnetId"] for s in found]
        arn = elb.create_load_balancer(Name="kamkmserve", Subnets=subnets[:2], Type="application",
                                       Scheme="internet-facing")["LoadBalancers"][0]["LoadBalancerArn"]
        elb.create_listener(LoadBalancerArn=arn, Protocol="HTTP", Port=80,
                            DefaultActions=[{"Type": "forward", "TargetGroupArn": group}])
        balancer = str(arn).split(":loadbalancer/", 1)[1]
    return Targets(str(group), [str(i) for i in ids], balancer)


def publish_alb(moto: MotoServer, load_balancer: str, *, requests: float, elb_5xx: float = 0,
                target_5xx: float = 0, at: datetime | None = None) -> None:
    """What an ALB publishes to CloudWatch for one moment: the sums of its counters (a zero 5xx is not sent,
    as ALB does not send it)."""
    stamp = at or datetime.now(UTC)
    dimensions = [{"Name": "LoadBalancer", "Value": load_balancer}]
    data = [{"MetricName": name, "Dimensions": dimensions, "Value": float(value), "Unit": "Count", "Timestamp": stamp}
            for name, value in (("RequestCount", requests), ("HTTPCode_ELB_5XX_Count", elb_5xx),
                                ("HTTPCode_Target_5XX_Count", target_5xx)) if value or name == "RequestCount"]
    moto.client("cloudwatch").put_metric_data(Namespace="AWS/ApplicationELB", MetricData=data)

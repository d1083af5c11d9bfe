"""Every implementation of every capability the contract suites run against, as data.

To put a new implementation (Vercel, a fake, ...) under a capability's contract: write a factory
``def build(request: pytest.FixtureRequest) -> <Capability>Harness`` that sets up its world (ask pytest for any
fixture with ``request.getfixturevalue``) and returns the adapter plus the hooks that seed, observe and move that
world, then append ``Impl("<id>", build)`` to the capability's list below. The suites
(``tests/contracts/test_contract_*.py``) are parametrised over these lists and never name an implementation.

Observers read the world itself (the simulator's state, moto through a plain boto3 client), not the adapter under
test, so a contract proves the effect landed on the platform and not only that the adapter says so.
"""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kamkmserve_sim import SimConfig, SimServer
from kamkmserve_sim.capacity import MAX_REPLICAS
from kamkmserve_sim.clock import WallClock
from kamkmserve_sim.instances_config import FleetConfig

from remediation.providers.aws import (
    AsgCapacity,
    AwsConfig,
    AwsSession,
    CloudWatchLogs,
    EcsCapacity,
    EcsDeploys,
    EcsJobs,
    ElbInstances,
    SsmEdge,
    SsmParameters,
    SsmUploadPolicy,
    WafBlocks,
)
from remediation.providers.capabilities import (
    ActorBlocks,
    Capacity,
    Deploys,
    EdgeControls,
    Instances,
    Jobs,
    Logs,
    UploadPolicy,
)
from remediation.providers.clock import VirtualClock
from remediation.providers.security import UploadAllowlist
from remediation.providers.sim_capacity import SimCapacity
from remediation.providers.sim_database import SimJobs
from remediation.providers.sim_instances import SimInstances
from remediation.providers.sim_platform import ControlPlane, SimDeploys, SimEdge, SimLogs
from remediation.providers.sim_security import SimBlocks, SimUploadPolicy
from tests.contracts import awskit, saaskit
from tests.helpers import local_http
from tests.helpers.moto_server import REGION, MotoServer


@dataclass(frozen=True)
class Impl:
    id: str
    build: Callable[[pytest.FixtureRequest], Any]
    traits: frozenset[str] = frozenset()  # optional behaviours a suite checks only where promised ("ceiling", ...)


def params(impls: list[Impl], needs: str | None = None) -> list[Any]:
    """pytest params for the implementations (those with trait ``needs``, when given)."""
    return [pytest.param(impl, id=impl.id) for impl in impls if needs is None or needs in impl.traits]


# -- harnesses: what a suite needs beyond the Protocol --------------------------------------------------------------
@dataclass
class CapacityHarness:
    adapter: Capacity
    service: str
    unknown_service: str
    ceiling: int | None  # the platform's own maximum, None when it has none below our caps
    observe: Callable[[], int]  # the replica count as the platform itself holds it


@dataclass
class DeploysHarness:
    adapter: Deploys
    current_version: str  # seeded: previous_version went out, then current_version
    previous_version: str
    unknown_release: str
    observe_current: Callable[[], str]  # the version the platform serves


@dataclass
class EdgeHarness:
    adapter: EdgeControls
    observe_maintenance: Callable[[], set[str]]
    observe_flag: Callable[[str], bool | None]


@dataclass
class JobsHarness:
    adapter: Jobs
    service: str
    expected: dict[str, tuple[int, bool]]  # pool -> (workers, heavy) as seeded
    observe: Callable[[str], int]


@dataclass
class LogsHarness:
    adapter: Logs
    printed: Callable[[], list[str]]  # every line the app printed so far (JSON or not), oldest first


@dataclass
class BlocksHarness:
    adapter: ActorBlocks
    advance: Callable[[float], None]  # move the platform's clock forward
    refuses: Callable[[str], bool]  # does the edge refuse this client address right now


@dataclass
class UploadsHarness:
    adapter: UploadPolicy
    observe: Callable[[], UploadAllowlist]


@dataclass
class InstancesHarness:
    adapter: Instances
    service: str
    ids: list[str]
    observe: Callable[[str], str]  # the balancer's state of one target
    extra: dict[str, Any] = field(default_factory=dict)


# -- the simulated platform ------------------------------------------------------------------------------------------
def _sim(request: pytest.FixtureRequest) -> tuple[SimServer, ControlPlane]:
    server: SimServer = request.getfixturevalue("contract_sim")
    return server, ControlPlane(server.url)


def _get(server: SimServer, path: str) -> Any:
    return local_http.get(f"{server.url}/_sim{path}", timeout=5).json()


def sim_capacity(request: pytest.FixtureRequest) -> CapacityHarness:
    server, plane = _sim(request)
    return CapacityHarness(SimCapacity(plane), "kamkmserve", "nope", MAX_REPLICAS,
                           lambda: int(_get(server, "/capacity")["replicas"]))


def sim_deploys(request: pytest.FixtureRequest) -> DeploysHarness:
    server, plane = _sim(request)
    local_http.post(f"{server.url}/_sim/releases", json={"version": "v1.4.3"}, timeout=5).raise_for_status()

    def current() -> str:
        body = _get(server, "/releases")
        return str(next(r["version"] for r in body["releases"] if r["state"] == "current"))

    return DeploysHarness(SimDeploys(plane), "v1.4.3", "v1.4.2", "dpl_doesnotexist", current)


def sim_edge(request: pytest.FixtureRequest) -> EdgeHarness:
    server, plane = _sim(request)

    def flag(name: str) -> bool | None:
        state = _get(server, "/flags")["flags"].get(name)
        return None if state is None else bool(state["enabled"])

    return EdgeHarness(SimEdge(plane), lambda: set(_get(server, "/maintenance")["prefixes"]), flag)


def sim_jobs(request: pytest.FixtureRequest) -> JobsHarness:
    server, plane = _sim(request)
    expected = {name: (workers, heavy) for name, (workers, heavy, _) in awskit.WORKERS.items()}
    return JobsHarness(SimJobs(plane), "kamkmserve", expected,
                       lambda job: next(int(j["workers"]) for j in _get(server, "/jobs")["jobs"] if j["name"] == job))


def _sim_lines(server: SimServer) -> list[str]:
    text = local_http.get(f"{server.url}/_sim/logs", params={"limit": "5000"}, timeout=5).text
    return text.splitlines()


def _wait_for_lines(server: SimServer, count: int) -> list[str]:
    deadline = time.monotonic() + 15
    while True:
        lines = [line for line in _sim_lines(server) if line.startswith("{")]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def sim_logs(request: pytest.FixtureRequest) -> LogsHarness:
    server, plane = _sim(request)
    _wait_for_lines(server, 12)
    return LogsHarness(SimLogs(plane), lambda: _sim_lines(server))


def sim_blocks(request: pytest.FixtureRequest) -> BlocksHarness:
    server, plane = _sim(request)
    assert server.state is not None
    state = server.state
    offset = [0.0]

    def advance(seconds: float) -> None:
        offset[0] += seconds
        state.clock.pin(WallClock().now_ms() + round(offset[0] * 1000))

    def refuses(address: str) -> bool:
        return state.security.blocks.refuses(address, state.clock.now_ms())

    request.addfinalizer(lambda: state.clock.pin(None))
    return BlocksHarness(SimBlocks(plane), advance, refuses)


def sim_uploads(request: pytest.FixtureRequest) -> UploadsHarness:
    server, plane = _sim(request)
    assert server.state is not None
    allowlist = server.state.security.allowlist
    return UploadsHarness(SimUploadPolicy(plane), lambda: UploadAllowlist(extensions=allowlist.extensions,
                                                                          mime_types=allowlist.mime_types))


def sim_instances(request: pytest.FixtureRequest) -> InstancesHarness:
    """The simulator's load balancer with two instances and compressed ALB timings (rolling-restart scenario)."""
    fleet = FleetConfig(instances=2, deregistration_delay_s=0.3, restart_s=0.2, health_interval_s=0.1,
                        healthy_threshold=1)
    server = SimServer(SimConfig(scenario="rolling-restart", rps=20.0, seed=7, fleet=fleet)).start()
    request.addfinalizer(server.stop)
    plane = ControlPlane(server.url)

    def listing() -> dict[str, str]:
        return {t["id"]: t["lb_state"] for t in _get(server, "/instances")["instances"]}

    return InstancesHarness(SimInstances(plane, poll_s=0.05), "kamkmserve", sorted(listing()),
                            lambda instance: listing().get(instance, "unused"))


# -- AWS on moto (server mode) ---------------------------------------------------------------------------------------
def _moto(request: pytest.FixtureRequest) -> tuple[MotoServer, AwsSession]:
    moto: MotoServer = request.getfixturevalue("moto")
    return moto, AwsSession(AwsConfig(region=REGION, endpoint_url=moto.url, max_attempts=2))


def _ecs_desired(moto: MotoServer, service: str) -> int:
    described = moto.client("ecs").describe_services(cluster=awskit.CLUSTER, services=[service])["services"]
    return int(described[0]["desiredCount"])


def aws_ecs_capacity(request: pytest.FixtureRequest) -> CapacityHarness:
    moto, session = _moto(request)
    awskit.seed_ecs(moto)
    return CapacityHarness(EcsCapacity(session, awskit.CLUSTER, {"kamkmserve": awskit.WEB}), "kamkmserve", "nope",
                           None, lambda: _ecs_desired(moto, awskit.WEB))


def aws_asg_capacity(request: pytest.FixtureRequest) -> CapacityHarness:
    moto, session = _moto(request)
    awskit.seed_asg(moto, low=1, high=6, desired=2)

    def desired() -> int:
        groups = moto.client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[awskit.ASG])
        return int(groups["AutoScalingGroups"][0]["DesiredCapacity"])

    return CapacityHarness(AsgCapacity(session, {"kamkmserve": awskit.ASG}), "kamkmserve", "nope", 6, desired)


def aws_deploys(request: pytest.FixtureRequest) -> DeploysHarness:
    moto, session = _moto(request)
    awskit.seed_ecs(moto, versions=("v1.4.2", "v1.4.3"))

    def current() -> str:
        ecs = moto.client("ecs")
        revision = ecs.describe_services(cluster=awskit.CLUSTER, services=[awskit.WEB])["services"][0]["taskDefinition"]
        image = ecs.describe_task_definition(taskDefinition=revision)["taskDefinition"]["containerDefinitions"][0]
        return str(image["image"].rsplit(":", 1)[1])

    return DeploysHarness(EcsDeploys(session, awskit.CLUSTER, awskit.WEB), "v1.4.3", "v1.4.2",
                          f"{awskit.FAMILY}:99", current)


def aws_edge(request: pytest.FixtureRequest) -> EdgeHarness:
    moto, session = _moto(request)
    ssm = moto.client("ssm")

    def maintenance() -> set[str]:
        found = ssm.get_parameters_by_path(Path=f"{awskit.PREFIX}/maintenance", Recursive=True)["Parameters"]
        return {p["Value"] for p in found}

    def flag(name: str) -> bool | None:
        value = awskit.ssm_value(moto, f"{awskit.PREFIX}/flags/{name}")
        return None if value is None else value == "true"

    return EdgeHarness(SsmEdge(SsmParameters(session, awskit.PREFIX)), maintenance, flag)


def aws_jobs(request: pytest.FixtureRequest) -> JobsHarness:
    moto, session = _moto(request)
    awskit.seed_ecs(moto)
    awskit.seed_workers(moto)
    expected = {name: (workers, heavy) for name, (workers, heavy, _) in awskit.WORKERS.items()}
    return JobsHarness(EcsJobs(session, awskit.CLUSTER, list(awskit.WORKERS)), "kamkmserve", expected,
                       lambda job: _ecs_desired(moto, job))


def _line_ms(line: str, fallback: int) -> int:
    try:
        stamp = json.loads(line)["timestamp"]
        return int(datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp() * 1000)
    except (ValueError, KeyError, TypeError):
        return fallback


def aws_logs(request: pytest.FixtureRequest) -> LogsHarness:
    """The simulator's stdout shipped into CloudWatch as the awslogs driver would: the same bytes, two platforms."""
    moto, session = _moto(request)
    server, _ = _sim(request)
    lines = _wait_for_lines(server, 12)
    awskit.seed_log_group(moto)
    now = int(time.time() * 1000)
    awskit.ship_logs(moto, [(_line_ms(line, now), line) for line in lines])
    return LogsHarness(CloudWatchLogs(session, awskit.LOG_GROUP), lambda: list(lines))


def aws_blocks(request: pytest.FixtureRequest) -> BlocksHarness:
    moto, session = _moto(request)
    awskit.seed_waf(moto)
    offset = [0.0]

    def now() -> datetime:
        return datetime.now(UTC) + timedelta(seconds=offset[0])

    def advance(seconds: float) -> None:
        offset[0] += seconds

    def refuses(address: str) -> bool:
        client = ipaddress.ip_address(address)
        return any(client in ipaddress.ip_network(a, strict=False) for a in awskit.waf_addresses(moto))

    adapter = WafBlocks(session, SsmParameters(session, awskit.PREFIX), awskit.IP_SET, now=now)
    return BlocksHarness(adapter, advance, refuses)


def aws_uploads(request: pytest.FixtureRequest) -> UploadsHarness:
    moto, session = _moto(request)
    awskit.seed_allowlist(moto)

    def stored() -> UploadAllowlist:
        body = json.loads(awskit.ssm_value(moto, f"{awskit.PREFIX}/uploads/allowlist") or "{}")
        return UploadAllowlist(extensions=tuple(body["extensions"]), mime_types=tuple(body["mime_types"]))

    return UploadsHarness(SsmUploadPolicy(SsmParameters(session, awskit.PREFIX)), stored)


def aws_instances(request: pytest.FixtureRequest) -> InstancesHarness:
    moto, session = _moto(request)
    arn, ids = awskit.seed_target_group(moto)
    elb = moto.client("elbv2")

    def state(instance: str) -> str:
        health = elb.describe_target_health(TargetGroupArn=arn, Targets=[{"Id": instance}])
        return str(health["TargetHealthDescriptions"][0]["TargetHealth"]["State"])

    adapter = ElbInstances(session, {"kamkmserve": arn}, poll_s=1.0, clock=VirtualClock())
    return InstancesHarness(adapter, "kamkmserve", ids, state, {"target_group": arn})


# -- the lists the suites run over (append new implementations here) -----------------------------------------------
# Traits: "ceiling" = the platform refuses counts above its own maximum; "actor-blocks" = it also blocks users and
# sessions (the WAF holds addresses only: AWS blocks users at the identity provider).
CAPACITY: list[Impl] = [Impl("sim", sim_capacity, frozenset({"ceiling"})), Impl("aws-ecs", aws_ecs_capacity),
                        Impl("aws-asg", aws_asg_capacity, frozenset({"ceiling"}))]
DEPLOYS: list[Impl] = [Impl("sim", sim_deploys), Impl("aws-ecs", aws_deploys), Impl("vercel", saaskit.vercel_deploys)]
EDGE: list[Impl] = [Impl("sim", sim_edge), Impl("aws-ssm", aws_edge), Impl("vercel-edge-config", saaskit.vercel_edge)]
JOBS: list[Impl] = [Impl("sim", sim_jobs), Impl("aws-ecs", aws_jobs)]
LOGS: list[Impl] = [Impl("sim", sim_logs), Impl("aws-cloudwatch", aws_logs)]
BLOCKS: list[Impl] = [Impl("sim", sim_blocks, frozenset({"actor-blocks"})), Impl("aws-waf", aws_blocks),
                      Impl("vercel-firewall", saaskit.vercel_blocks),
                      Impl("vercel-firewall+clerk", saaskit.vercel_clerk_blocks, frozenset({"actor-blocks"}))]
UPLOADS: list[Impl] = [Impl("sim", sim_uploads), Impl("aws-ssm", aws_uploads),
                       Impl("vercel-edge-config", saaskit.vercel_uploads)]
INSTANCES: list[Impl] = [Impl("sim", sim_instances), Impl("aws-elbv2", aws_instances)]
# Errors and Identity (suites test_contract_errors_saas.py / test_contract_identity_saas.py; harnesses in saaskit).
ERRORS: list[Impl] = [Impl("sim", saaskit.sim_errors), Impl("sentry", saaskit.sentry_errors)]
IDENTITY: list[Impl] = [Impl("sim", saaskit.sim_identity), Impl("clerk", saaskit.clerk_identity)]

"""ECS job services on moto: a pause remembers the running count on the service itself (a tag), a resume clears
it, and only the configured worker services can be touched: never the web service."""

from __future__ import annotations

import pytest

from remediation.providers.aws.jobs import PAUSED_FROM, EcsJobs
from remediation.providers.aws.session import AwsConfig, AwsSession
from remediation.providers.platform import PlatformError
from tests.contracts import awskit
from tests.helpers.moto_server import REGION, MotoServer


def tags(moto: MotoServer, service: str) -> dict[str, str]:
    ecs = moto.client("ecs")
    arn = ecs.describe_services(cluster=awskit.CLUSTER, services=[service])["services"][0]["serviceArn"]
    return {t["key"]: t["value"] for t in ecs.list_tags_for_resource(resourceArn=arn)["tags"]}


@pytest.fixture
def jobs(moto: MotoServer) -> EcsJobs:
    awskit.seed_ecs(moto)
    awskit.seed_workers(moto)
    return EcsJobs(AwsSession(AwsConfig(region=REGION, endpoint_url=moto.url)), awskit.CLUSTER, list(awskit.WORKERS))


async def test_a_pause_leaves_the_count_to_restore_on_the_service(jobs: EcsJobs, moto: MotoServer) -> None:
    assert await jobs.set_workers("kamkmserve", "report-export", 0) == 2
    assert tags(moto, "report-export")[PAUSED_FROM] == "2"
    assert await jobs.paused_from("report-export") == 2
    assert await jobs.set_workers("kamkmserve", "report-export", 2) == 0
    assert PAUSED_FROM not in tags(moto, "report-export")
    assert await jobs.paused_from("report-export") is None


async def test_a_second_pause_keeps_the_first_remembered_count(jobs: EcsJobs, moto: MotoServer) -> None:
    await jobs.set_workers("kamkmserve", "report-export", 0)
    await jobs.set_workers("kamkmserve", "report-export", 0)
    assert tags(moto, "report-export")[PAUSED_FROM] == "2"


async def test_the_web_service_is_not_a_job_pool(jobs: EcsJobs, moto: MotoServer) -> None:
    with pytest.raises(PlatformError, match="not a configured job service"):
        await jobs.set_workers("kamkmserve", awskit.WEB, 0)
    assert moto.client("ecs").describe_services(cluster=awskit.CLUSTER,
                                                services=[awskit.WEB])["services"][0]["desiredCount"] == 2

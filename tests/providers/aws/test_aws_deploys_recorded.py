"""ECS releases and rollback against AWS's own answer shapes (recorded): the service reports ARNs (moto reports bare
``family:revision``), revisions carry ``registeredAt`` (moto's are empty), and a deployment's start is its
promotion time. moto cannot show a rollback that does not take, so that answer is recorded too."""

from __future__ import annotations

from datetime import timedelta

import pytest
from botocore.stub import ANY

from remediation.providers.aws.deploys import EcsDeploys, parse_revision
from remediation.providers.platform import PlatformError
from tests.providers.aws.stubkit import ARN, T0, ecs_service, offline_session, stubbed, task_definition

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/kamkmserve"
CURRENT = f"{ARN}:task-definition/kamkmserve-web:42"


def describe(stub: object, revision: str, **kwargs: object) -> None:
    stub.add_response("describe_services", ecs_service(revision, **kwargs),  # type: ignore[attr-defined]
                      {"cluster": "kamkmserve", "services": ["kamkmserve-web"], "include": ["TAGS"]})


def test_a_revision_is_read_from_an_arn_or_the_bare_form() -> None:
    assert parse_revision(CURRENT) == ("kamkmserve-web", 42)
    assert parse_revision("kamkmserve-web:7") == ("kamkmserve-web", 7)
    with pytest.raises(PlatformError):
        parse_revision("kamkmserve-web")


async def test_releases_carry_the_image_tag_and_the_times_aws_recorded() -> None:
    session = offline_session()
    with stubbed(session, "ecs") as stub:
        describe(stub, CURRENT, deployed_at=T0)
        stub.add_response("list_task_definitions", {"taskDefinitionArns": [
            f"{ARN}:task-definition/kamkmserve-web:40", f"{ARN}:task-definition/kamkmserve-web:41", CURRENT,
            f"{ARN}:task-definition/kamkmserve-web-worker:3"]},
            {"familyPrefix": "kamkmserve-web", "status": "ACTIVE"})
        stub.add_response("describe_task_definition",
                          task_definition("kamkmserve-web", 42, f"{IMAGE}:v1.4.3", T0 - timedelta(minutes=5)),
                          {"taskDefinition": "kamkmserve-web:42"})
        stub.add_response("describe_task_definition",
                          task_definition("kamkmserve-web", 41, f"{IMAGE}:v1.4.2", T0 - timedelta(days=2)),
                          {"taskDefinition": "kamkmserve-web:41"})
        stub.add_response("describe_task_definition",
                          task_definition("kamkmserve-web", 40, f"{IMAGE}@sha256:0123456789abcdef0123",
                                          T0 - timedelta(days=9)),
                          {"taskDefinition": "kamkmserve-web:40"})
        releases = await EcsDeploys(session, "kamkmserve", "kamkmserve-web").releases()
    assert [(r.id, r.version, r.state) for r in releases] == [
        ("kamkmserve-web:42", "v1.4.3", "current"), ("kamkmserve-web:41", "v1.4.2", "previous"),
        ("kamkmserve-web:40", "sha256:0123456789ab", "superseded")]
    assert releases[0].promoted_at == T0 and releases[0].created_at == T0 - timedelta(minutes=5)
    assert releases[1].promoted_at == T0 - timedelta(days=2)


async def test_rollback_updates_the_service_and_reads_the_arn_back() -> None:
    session = offline_session()
    with stubbed(session, "ecs") as stub:
        describe(stub, CURRENT)
        stub.add_response("describe_task_definition",
                          task_definition("kamkmserve-web", 41, f"{IMAGE}:v1.4.2", T0 - timedelta(days=2)),
                          {"taskDefinition": "kamkmserve-web:41"})
        stub.add_response("update_service", {"service": ecs_service(CURRENT)["services"][0]},
                          {"cluster": "kamkmserve", "service": "kamkmserve-web", "taskDefinition": "kamkmserve-web:41"})
        describe(stub, f"{ARN}:task-definition/kamkmserve-web:41", deployed_at=T0 + timedelta(seconds=5))
        release = await EcsDeploys(session, "kamkmserve", "kamkmserve-web").rollback("kamkmserve-web:41")
    assert (release.id, release.version, release.state) == ("kamkmserve-web:41", "v1.4.2", "current")
    assert release.promoted_at == T0 + timedelta(seconds=5)


async def test_rolling_back_to_the_revision_already_running_makes_no_update() -> None:
    session = offline_session()
    with stubbed(session, "ecs") as stub:  # no update_service queued: calling it would fail the test
        describe(stub, f"{ARN}:task-definition/kamkmserve-web:41")
        stub.add_response("describe_task_definition",
                          task_definition("kamkmserve-web", 41, f"{IMAGE}:v1.4.2", T0), {"taskDefinition": ANY})
        release = await EcsDeploys(session, "kamkmserve", "kamkmserve-web").rollback("kamkmserve-web:41")
    assert release.state == "current"


async def test_a_rollback_the_service_did_not_take_is_a_platform_error() -> None:
    session = offline_session()
    with stubbed(session, "ecs") as stub:
        describe(stub, CURRENT)
        stub.add_response("describe_task_definition",
                          task_definition("kamkmserve-web", 41, f"{IMAGE}:v1.4.2", T0), {"taskDefinition": ANY})
        stub.add_response("update_service", {"service": ecs_service(CURRENT)["services"][0]}, None)
        describe(stub, CURRENT)
        with pytest.raises(PlatformError, match="runs kamkmserve-web:42 after the rollback"):
            await EcsDeploys(session, "kamkmserve", "kamkmserve-web").rollback("kamkmserve-web:41")


async def test_another_family_is_refused_before_any_change() -> None:
    session = offline_session()
    with stubbed(session, "ecs") as stub:
        describe(stub, CURRENT)
        with pytest.raises(PlatformError, match="not a revision of kamkmserve-web"):
            await EcsDeploys(session, "kamkmserve", "kamkmserve-web").rollback("kamkmserve-worker:3")

"""Recorded AWS responses for the calls moto does not implement or does not model faithfully: botocore's Stubber
on the very client an :class:`AwsSession` builds, so the adapter's own call path (threads, error translation) runs.
Stubber validates every recorded response against the service model, so the shapes are AWS's."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from botocore.stub import Stubber

from remediation.providers.aws.session import AwsConfig, AwsSession

# No AWS is reachable from here; a stub that is not consumed would try this closed port and fail loudly.
OFFLINE = AwsConfig(region="us-east-1", endpoint_url="http://127.0.0.1:9", max_attempts=1)
T0 = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
ARN = "arn:aws:ecs:us-east-1:123456789012"


def offline_session() -> AwsSession:
    return AwsSession(OFFLINE)


@contextmanager
def stubbed(session: AwsSession, service: str, *, retries: bool = True) -> Iterator[Stubber]:
    """A Stubber on the session's client; on exit every queued response must have been used, and nothing more."""
    stubber = Stubber(session.client(service, retries=retries))
    with stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def ecs_service(task_definition: str, desired: int = 2, deployed_at: datetime = T0, **extra: Any) -> dict[str, Any]:
    return {"services": [{
        "serviceArn": f"{ARN}:service/kamkmserve/kamkmserve-web", "serviceName": "kamkmserve-web",
        "status": "ACTIVE", "desiredCount": desired, "runningCount": desired, "taskDefinition": task_definition,
        "deployments": [{"id": "ecs-svc/1", "status": "PRIMARY", "taskDefinition": task_definition,
                         "desiredCount": desired, "createdAt": deployed_at, "rolloutState": "COMPLETED"}],
        **extra}], "failures": []}


def task_definition(family: str, revision: int, image: str, registered: datetime) -> dict[str, Any]:
    return {"taskDefinition": {
        "taskDefinitionArn": f"{ARN}:task-definition/{family}:{revision}", "family": family, "revision": revision,
        "status": "ACTIVE", "registeredAt": registered,
        "containerDefinitions": [{"name": "web", "image": image, "essential": True}]}}

"""Background jobs on AWS: each worker pool is an ECS service; pausing it is ``desiredCount`` 0, resuming is the
count it had before.

The caller remembers that count (``PauseJobs.previous``, in the ledger). The platform remembers it too: a pause
tags the service ``remediate:paused-from=<count>`` before it scales to 0 (and a resume removes the tag), so a
person looking at the console, or a run whose store was lost, can still see what to restore.

Only services listed in ``REMEDIATE_AWS_JOB_SERVICES`` are job pools; anything else is refused, so a typo can
never scale the web service to 0. Tags say which pools are heavy (``remediate:heavy=true``) and what they do
(``remediate:description``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from remediation.providers.aws.capacity import describe_ecs_service
from remediation.providers.aws.session import AwsSession
from remediation.providers.platform import Job, PlatformError

PAUSED_FROM = "remediate:paused-from"
HEAVY = "remediate:heavy"
DESCRIPTION = "remediate:description"


def _tags(described: dict[str, Any]) -> dict[str, str]:
    return {str(t.get("key")): str(t.get("value", "")) for t in described.get("tags") or []}


class EcsJobs:
    """:class:`~remediation.providers.capabilities.Jobs` over ECS worker services of one cluster."""

    def __init__(self, session: AwsSession, cluster: str, job_services: Sequence[str]) -> None:
        self.session = session
        self.cluster = cluster
        self.job_services = list(dict.fromkeys(job_services))

    async def jobs(self, service: str) -> list[Job]:
        found: list[Job] = []
        for name in self.job_services:
            described = await describe_ecs_service(self.session, self.cluster, name)
            tags = _tags(described)
            found.append(Job(name=name, workers=int(described["desiredCount"]),
                             heavy=tags.get(HEAVY, "").lower() == "true", description=tags.get(DESCRIPTION, "")))
        return found

    async def set_workers(self, service: str, job: str, workers: int) -> int:
        if job not in self.job_services:
            raise PlatformError(f"{job!r} is not a configured job service ({', '.join(self.job_services) or 'none'})")
        if workers < 0:
            raise PlatformError(f"workers must not be negative, not {workers}")
        described = await describe_ecs_service(self.session, self.cluster, job)
        previous = int(described["desiredCount"])
        if previous == workers:
            return previous  # read before write: a repeated pause or resume changes nothing
        arn = str(described["serviceArn"])
        if workers == 0:
            await self.session.call("ecs", "tag_resource", resourceArn=arn,
                                    tags=[{"key": PAUSED_FROM, "value": str(previous)}])
        await self.session.call("ecs", "update_service", cluster=self.cluster, service=job, desiredCount=workers)
        if workers > 0 and PAUSED_FROM in _tags(described):
            await self.session.call("ecs", "untag_resource", resourceArn=arn, tagKeys=[PAUSED_FROM])
        return previous

    async def paused_from(self, job: str) -> int | None:
        """The count a pause recorded on the service, if it is paused by us."""
        described = await describe_ecs_service(self.session, self.cluster, job)
        value = _tags(described).get(PAUSED_FROM)
        return int(value) if value and value.isdigit() else None

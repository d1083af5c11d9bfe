"""Deploys on AWS: an ECS service's task-definition revisions are its releases; rollback is an update of the
service back to an earlier revision of the same family.

A release id is ``family:revision`` (``web:41``), the form ``update_service`` takes. The service answers with an
ARN on AWS and with the bare ``family:revision`` on moto (docs/reference/integrations.md §3.3); both are understood.

What ECS does not keep, we do not invent: ``promoted_at`` is the PRIMARY deployment's start for the current
revision and the registration time for the others (when a revision was registered is when it was built to go
out; ECS keeps no promotion history once a deployment finishes). moto reports no registration time, so there
``created_at`` is the epoch and earlier revisions carry no ``promoted_at``: never mistaken for a recent deploy.
Rollback does not wait for the rollout (moto never completes one); recovery checks watch the app itself.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from remediation.providers.aws.capacity import describe_ecs_service
from remediation.providers.aws.session import AwsError, AwsSession
from remediation.providers.platform import PlatformError, Release

_REVISION = re.compile(r"(?:^|task-definition/)([A-Za-z0-9_-]{1,255}):(\d+)$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_revision(text: str) -> tuple[str, int]:
    """``arn:...:task-definition/web:3`` or ``web:3`` -> ``("web", 3)``."""
    match = _REVISION.search(text.strip())
    if match is None:
        raise PlatformError(f"{text!r} is not a task-definition revision (family:revision)")
    return match.group(1), int(match.group(2))


class EcsDeploys:
    """:class:`~remediation.providers.capabilities.Deploys` over one ECS service's task-definition family."""

    def __init__(self, session: AwsSession, cluster: str, service: str, *, max_releases: int = 10) -> None:
        self.session = session
        self.cluster = cluster
        self.service = service
        self.max_releases = max_releases

    async def _current(self) -> tuple[str, int, dict[str, Any]]:
        described = await describe_ecs_service(self.session, self.cluster, self.service)
        family, revision = parse_revision(str(described["taskDefinition"]))
        return family, revision, described

    async def releases(self) -> list[Release]:
        family, current, described = await self._current()
        arns = await self.session.pages("ecs", "list_task_definitions", "taskDefinitionArns",
                                        familyPrefix=family, status="ACTIVE")
        # familyPrefix is a prefix ("web" also lists "web-worker"), and moto ignores sort=DESC: filter, sort here.
        revisions = sorted({rev for fam, rev in map(parse_revision, arns) if fam == family} | {current},
                           reverse=True)[: self.max_releases]
        if current not in revisions:
            revisions.append(current)
        below = [r for r in revisions if r < current]
        previous = max(below) if below else None
        # One at a time: at most max_releases small reads, in an order recorded responses can replay.
        described_defs = [await self._definition(f"{family}:{r}") for r in revisions]
        started = _primary_started(described)
        return [
            _release(family, rev, definition,
                     "current" if rev == current else "previous" if rev == previous else "superseded",
                     started if rev == current else None)
            for rev, definition in zip(revisions, described_defs, strict=True)
        ]

    async def rollback(self, to_release: str) -> Release:
        family, target = parse_revision(to_release)
        current_family, current, described = await self._current()
        if family != current_family:
            raise PlatformError(f"{to_release} is not a revision of {current_family}, the family the ECS service "
                                f"{self.service!r} runs")
        definition = await self._definition(f"{family}:{target}")
        if current != target:
            # Read-before-write above makes a repeated rollback a no-op; update_service itself is idempotent too.
            await self.session.call("ecs", "update_service", cluster=self.cluster, service=self.service,
                                    taskDefinition=f"{family}:{target}")
            _, now_current, described = await self._current()
            if now_current != target:
                raise PlatformError(f"ECS service {self.service!r} runs {family}:{now_current} after the rollback "
                                    f"to {family}:{target}")
        return _release(family, target, definition, "current", _primary_started(described))

    async def _definition(self, revision: str) -> dict[str, Any]:
        try:
            body = await self.session.call("ecs", "describe_task_definition", taskDefinition=revision)
        except AwsError as exc:
            if exc.kind == "client":
                raise PlatformError(f"task definition {revision} does not exist ({exc.code})") from exc
            raise
        definition: dict[str, Any] = body["taskDefinition"]
        return definition


def _primary_started(described: dict[str, Any]) -> datetime | None:
    for deployment in described.get("deployments", []):
        if deployment.get("status") == "PRIMARY" and isinstance(deployment.get("createdAt"), datetime):
            return _utc(deployment["createdAt"])
    return None


def _release(family: str, revision: int, definition: dict[str, Any], state: str,
             started: datetime | None) -> Release:
    registered = definition.get("registeredAt")
    created = _utc(registered) if isinstance(registered, datetime) else EPOCH
    promoted = started if state == "current" else (created if created != EPOCH else None)
    return Release(id=f"{family}:{revision}", version=_version(definition, revision), created_at=created,
                   promoted_at=promoted, state=state)


def _version(definition: dict[str, Any], revision: int) -> str:
    """The image tag of the first essential container (what people call the version), else ``rev N``."""
    containers = definition.get("containerDefinitions") or []
    essential = [c for c in containers if c.get("essential", True)] or containers
    image = str(essential[0].get("image", "")) if essential else ""
    tail = image.rsplit("/", 1)[-1]
    if "@" in tail:
        return tail.split("@", 1)[1][:19]  # a digest: its first characters identify it
    if ":" in tail:
        return tail.rsplit(":", 1)[1]
    return f"rev {revision}"


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)

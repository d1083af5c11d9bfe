"""Capacity over the simulated platform's ``/_sim/capacity``: the replica count of a service.

kamkmserve on Vercel has no scale knob (docs/reference/kamkmserve.md §12); in the simulator this stands for the
platform's (ECS desiredCount / an Auto Scaling group later). Answers are validated: a platform that answers something
other than a replica count is a PlatformError, never a guess.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from remediation.providers.platform import PlatformError
from remediation.providers.sim_platform import ControlPlane


class _CapacityBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    service: str
    replicas: int = Field(ge=1)


class SimCapacity:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def replicas(self, service: str) -> int:
        body = await self.plane.json("GET", "/capacity", params={"service": service})
        return _parse(body, service).replicas

    async def scale(self, service: str, replicas: int) -> int:
        body = await self.plane.json("POST", "/capacity", json_body={"service": service, "replicas": replicas})
        return _parse(body, service).replicas


def _parse(body: Any, service: str) -> _CapacityBody:
    try:
        parsed = _CapacityBody.model_validate(body)
    except ValidationError as exc:
        raise PlatformError(f"/_sim/capacity: not a replica count ({str(exc)[:160]})") from exc
    if parsed.service != service:
        raise PlatformError(f"/_sim/capacity answered for service {parsed.service!r}, not {service!r}")
    return parsed

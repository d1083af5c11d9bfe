"""SSM Parameter Store as a small typed key-value store: the edge's maintenance prefixes, feature flags, the
upload allowlist and the TTLs of our WAF blocks all live under one prefix (``REMEDIATE_AWS_SSM_PREFIX``).

Standard-tier ``String`` parameters only (no secrets are kept here). A missing parameter is ``None`` on read and
``False`` on delete: the state is what we wanted either way, which keeps retried writes free of double actions.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from remediation.providers.aws.session import AwsError, AwsSession
from remediation.providers.platform import PlatformError

_NAME_PART = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


@dataclass(frozen=True)
class Parameter:
    name: str
    value: str
    version: int
    modified: datetime | None


def key_part(text: str, what: str) -> str:
    """``text`` as one component of a parameter name; refused (PlatformError) when SSM would not take it."""
    if not _NAME_PART.match(text):
        raise PlatformError(f"{what} {text!r} must be 1-100 letters, digits, '_', '.' or '-' (an SSM name part)")
    return text


def hashed_part(text: str) -> str:
    """A readable, collision-free name part for any string (a path prefix): a slug plus a short hash."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:40] or "root"
    return f"{slug}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


class SsmParameters:
    def __init__(self, session: AwsSession, prefix: str) -> None:
        cleaned = "/" + prefix.strip().strip("/")
        if cleaned == "/":
            raise PlatformError("the SSM prefix must name a path such as /kamkmserve/remediation")
        self.session = session
        self.prefix = cleaned

    def name(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    async def get(self, name: str) -> Parameter | None:
        try:
            body = await self.session.call("ssm", "get_parameter", Name=name)
        except AwsError as exc:
            if exc.is_("ParameterNotFound"):
                return None
            raise
        return _parameter(body["Parameter"])

    async def put(self, name: str, value: str, *, overwrite: bool = True) -> int:
        """Write ``value``; returns the new version. ``overwrite=False`` refuses (PlatformError) an existing one."""
        body = await self.session.call("ssm", "put_parameter", Name=name, Value=value, Type="String",
                                       Overwrite=overwrite)
        return int(body.get("Version", 0))

    async def delete(self, name: str) -> bool:
        try:
            await self.session.call("ssm", "delete_parameter", Name=name)
        except AwsError as exc:
            if exc.is_("ParameterNotFound"):
                return False
            raise
        return True

    async def under(self, path: str) -> list[Parameter]:
        items = await self.session.pages("ssm", "get_parameters_by_path", "Parameters", Path=path, Recursive=True)
        return [_parameter(item) for item in items]

    async def history(self, name: str) -> list[Parameter]:
        items = await self.session.pages("ssm", "get_parameter_history", "Parameters", Name=name)
        return sorted((_parameter(item) for item in items), key=lambda p: p.version)


def _parameter(item: dict[str, Any]) -> Parameter:
    modified = item.get("LastModifiedDate")
    if isinstance(modified, datetime):
        modified = modified.astimezone(UTC) if modified.tzinfo else modified.replace(tzinfo=UTC)
    else:
        modified = None
    return Parameter(name=str(item["Name"]), value=str(item.get("Value", "")), version=int(item.get("Version", 0)),
                     modified=modified)

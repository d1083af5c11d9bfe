"""Edge levers on AWS: maintenance mode, feature flags and the upload allowlist in SSM Parameter Store, and the
WAFv2 IP-set block list (:class:`~remediation.providers.aws.waf.WafBlocks`, re-exported here).

kamkmserve reads none of these itself (docs/reference/kamkmserve.md §13); whatever serves the edge (a CloudFront
function or the load balancer's rules reading the parameters) enforces them. Layout under the prefix, documented for
that reader:

    <prefix>/maintenance/<slug>-<hash>   value: the path prefix under maintenance (one parameter per prefix, so
                                         two runs never overwrite each other's list)
    <prefix>/flags/<name>                value: "true" or "false"; the parameter's history is the flag history
    <prefix>/uploads/allowlist           value: {"extensions": [".png", ...], "mime_types": ["image/png", ...]}

Every write reads first and changes nothing when the state is already right, so a retried call never acts twice.
"""

from __future__ import annotations

import json

from remediation.providers.aws.params import SsmParameters, hashed_part, key_part
from remediation.providers.aws.session import AwsError
from remediation.providers.aws.waf import WafBlocks
from remediation.providers.platform import FlagChange, PlatformError
from remediation.providers.security import UploadAllowlist, valid_allowlist

__all__ = ["SsmEdge", "SsmUploadPolicy", "WafBlocks"]

_BOOL = {"true": True, "false": False}


class SsmEdge:
    """:class:`~remediation.providers.capabilities.EdgeControls` over SSM parameters."""

    def __init__(self, params: SsmParameters) -> None:
        self.params = params

    async def maintenance_prefixes(self) -> list[str]:
        found = await self.params.under(self.params.name("maintenance"))
        # Oldest first, as the simulated edge lists them: the order they were switched on.
        return [p.value for p in sorted(found, key=lambda p: (p.modified is None, p.modified, p.name))]

    async def set_maintenance(self, prefix: str, enabled: bool) -> bool:
        if not prefix.startswith("/"):
            raise PlatformError(f"maintenance prefix {prefix!r} must start with '/'")
        name = self.params.name("maintenance", hashed_part(prefix))
        if not enabled:
            return await self.params.delete(name)
        if await self.params.get(name) is not None:
            return False
        try:
            await self.params.put(name, prefix, overwrite=False)
        except AwsError as exc:
            if exc.is_("ParameterAlreadyExists"):  # another writer (or our own retried request) got there first
                return False
            raise
        return True

    async def flag_history(self) -> list[FlagChange]:
        changes: list[FlagChange] = []
        for flag in await self.params.under(self.params.name("flags")):
            flag_name = flag.name.rsplit("/", 1)[-1]
            before: bool | None = None
            for version in await self.params.history(flag.name):
                enabled = _flag_value(version.name, version.value)
                if enabled != before and version.modified is not None:
                    changes.append(FlagChange(name=flag_name, enabled=enabled, at=version.modified))
                before = enabled
        return sorted(changes, key=lambda c: (c.at, c.name))

    async def flag(self, name: str) -> bool | None:
        current = await self.params.get(self.params.name("flags", key_part(name, "flag name")))
        return None if current is None else _flag_value(current.name, current.value)

    async def set_flag(self, name: str, enabled: bool) -> bool:
        parameter = self.params.name("flags", key_part(name, "flag name"))
        current = await self.params.get(parameter)
        if current is not None and _flag_value(current.name, current.value) == enabled:
            return False
        await self.params.put(parameter, "true" if enabled else "false")
        return True


def _flag_value(name: str, value: str) -> bool:
    try:
        return _BOOL[value.strip().lower()]
    except KeyError:
        raise PlatformError(f"SSM parameter {name} holds {value[:40]!r}, not true/false") from None


class SsmUploadPolicy:
    """:class:`~remediation.providers.capabilities.UploadPolicy`: the allowlist as one JSON parameter."""

    def __init__(self, params: SsmParameters) -> None:
        self.params = params

    @property
    def parameter(self) -> str:
        return self.params.name("uploads", "allowlist")

    async def allowlist(self) -> UploadAllowlist:
        current = await self.params.get(self.parameter)
        if current is None:
            raise PlatformError(f"SSM parameter {self.parameter} does not exist: the upload allowlist is not managed "
                                "at the edge yet (create it with the app's UPLOAD_ALLOWED_EXT/MIME values)")
        try:
            body = json.loads(current.value)
            return valid_allowlist(UploadAllowlist(extensions=tuple(body["extensions"]),
                                                      mime_types=tuple(body["mime_types"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise PlatformError(f"SSM parameter {self.parameter} is not an allowlist: {exc}") from exc

    async def set_allowlist(self, allowlist: UploadAllowlist) -> UploadAllowlist:
        wanted = valid_allowlist(allowlist)
        previous = await self.allowlist()  # also refuses a change whose "previous" (the undo) is unknown
        if previous == wanted:
            return previous
        value = json.dumps({"extensions": list(wanted.extensions), "mime_types": list(wanted.mime_types)})
        await self.params.put(self.parameter, value)
        return previous


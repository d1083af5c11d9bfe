"""Vercel Edge Config as the edge's switchboard: maintenance prefixes, feature flags and the upload allowlist.

kamkmserve has no maintenance mode, no flags and env-only upload allowlists (docs/reference/kamkmserve.md §13); an Edge
Config read by the edge middleware is where these levers live on Vercel. Layout (item keys must match ``^[\\w-]+$``, so
a path cannot be a key):

- ``maintenance_prefixes``: a list of path prefixes answered with the maintenance page, in the order added;
- ``flag_<name>``: one boolean item per feature flag (one item each, so each flag has its own ``updatedAt``);
- ``upload_allowlist``: ``{"extensions": [...], "mime_types": [...]}``; absent means the app's own defaults
  (docs/reference/kamkmserve.md §7: ``UPLOAD_ALLOWED_EXT`` / ``UPLOAD_ALLOWED_MIME`` defaults), which is what it
  enforces then.

Endpoints: ``GET /v1/edge-config/{id}`` (does it exist: an item's 404 alone could be a wrong id),
``GET /v1/edge-config/{id}/items``, ``GET /v1/edge-config/{id}/item/{key}`` (404: no such item),
``PATCH /v1/edge-config/{id}/items`` with ``{"items": [{"operation": "upsert"|"delete", "key", "value"}]}``,
``GET /v1/edge-config/{id}/backups`` (``backups[{id, lastModified}]``, ``pagination.next``) and
``GET /v1/edge-config/{id}/backups/{versionId}`` (``backup.items{key: {value, createdAt, updatedAt}}``).

Writes read first and send nothing when the value is already what we want (idempotent, and no needless backup).
Edge Config has no compare-and-set, so two writers could race; one active remediation per service keeps us the
only writer. Updates take a few seconds to reach every edge region (Vercel's documented propagation).

**Flag history, honestly.** Edge Config keeps no change log. What it does keep: backups, full snapshots taken on
writes (each item with its ``updatedAt``) and kept for a plan-dependent retention, and the current items.
:meth:`VercelEdge.flag_history` walks the newest ``max_backups`` backups and the current state and records a change
whenever a flag item was written with a new value, at that write's ``updatedAt``. What it cannot see: changes older
than the oldest backup read (only that backup's latest write of each flag shows), and a flag written twice between
two snapshots (only the second write shows). Who changed it is not in the items either.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from remediation.providers.platform import FlagChange, PlatformError
from remediation.providers.saas_client import NotConfigured, epoch_ms
from remediation.providers.security import UploadAllowlist, valid_allowlist
from remediation.providers.vercel import VercelApi

MAINTENANCE_KEY = "maintenance_prefixes"
FLAG_PREFIX = "flag_"
UPLOAD_KEY = "upload_allowlist"
# kamkmserve's defaults when UPLOAD_ALLOWED_EXT / UPLOAD_ALLOWED_MIME are unset (docs/reference/kamkmserve.md §7).
APP_DEFAULT_UPLOADS = UploadAllowlist(extensions=(".png", ".jpg", ".jpeg", ".webp", ".pdf"),
                                      mime_types=("image/png", "image/jpeg", "image/webp", "application/pdf"))


class EdgeItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    value: Any
    updated_at: datetime | None = None


class EdgeConfig:
    """Items of one Edge Config (``ecfg_...``) through the Vercel REST API."""

    def __init__(self, api: VercelApi, edge_config_id: str | None) -> None:
        self.api = api
        self.edge_config_id = edge_config_id
        self._confirmed = False

    def _base(self) -> str:
        if not self.edge_config_id:
            raise self.api.rest.error("vercel: no Edge Config configured (set REMEDIATE_VERCEL_EDGE_CONFIG_ID)",
                                      NotConfigured)
        return f"/v1/edge-config/{self.edge_config_id}"

    async def items(self) -> dict[str, EdgeItem]:
        body = await self.api.get(f"{self._base()}/items")
        if not isinstance(body, list):
            raise PlatformError(f"vercel GET edge-config items: not an item list: {str(body)[:200]}")
        items = [_item(entry) for entry in body if isinstance(entry, dict) and "key" in entry]
        return {item.key: item for item in items}

    async def item(self, key: str) -> EdgeItem | None:
        response = await self.api.rest.request("GET", f"{self._base()}/item/{key}", params=self.api.scoped(),
                                               accept=(404,))
        if response.status_code == 404:
            await self._exists()  # a missing item, or a wrong Edge Config id? only the former means "unset"
            return None
        try:
            body = response.json()
        except ValueError as exc:
            raise PlatformError(f"vercel GET edge-config item {key}: not JSON") from exc
        if not isinstance(body, dict):
            raise PlatformError(f"vercel GET edge-config item {key}: not an item: {str(body)[:200]}")
        return _item(body)

    async def _exists(self) -> None:
        if not self._confirmed:
            await self.api.get(self._base())  # GET /v1/edge-config/{id}: 404 (a PlatformError) when it is not there
            self._confirmed = True

    async def upsert(self, key: str, value: Any) -> None:
        await self._patch([{"operation": "upsert", "key": key, "value": value}])

    async def delete(self, key: str) -> None:
        await self._patch([{"operation": "delete", "key": key}])

    async def _patch(self, operations: list[dict[str, Any]]) -> None:
        body = await self.api.send("PATCH", f"{self._base()}/items", {"items": operations})
        if isinstance(body, dict) and body.get("status") not in (None, "ok"):
            raise PlatformError(f"vercel PATCH edge-config items: {str(body)[:200]}")

    async def snapshots(self, limit: int) -> list[tuple[datetime, dict[str, EdgeItem]]]:
        """Up to ``limit`` newest backups as (lastModified, {key: item}), oldest first."""
        listed: list[tuple[datetime, str]] = []
        cursor: str | None = None
        while len(listed) < limit:
            params: dict[str, Any] = {"limit": str(min(50, limit - len(listed)))}
            if cursor:
                params["next"] = cursor
            body = await self.api.get(f"{self._base()}/backups", params)
            backups = body.get("backups") if isinstance(body, dict) else None
            if not isinstance(backups, list):
                raise PlatformError(f"vercel GET edge-config backups: not a backup list: {str(body)[:200]}")
            for entry in backups:
                moment = epoch_ms(entry.get("lastModified")) if isinstance(entry, dict) else None
                if moment is not None and entry.get("id"):
                    listed.append((moment, str(entry["id"])))
            page = body.get("pagination") if isinstance(body.get("pagination"), dict) else {}
            cursor = page.get("next") if page and page.get("hasNext") else None
            if not cursor or not backups:
                break
        snapshots = []
        for moment, version in sorted(listed[:limit]):
            body = await self.api.get(f"{self._base()}/backups/{version}")
            backup = body.get("backup") if isinstance(body, dict) else None
            items = backup.get("items") if isinstance(backup, dict) else None
            if not isinstance(items, dict):
                raise PlatformError(f"vercel GET edge-config backup {version}: no items")
            snapshots.append((moment, {k: _item({**v, "key": k}) for k, v in items.items() if isinstance(v, dict)}))
        return snapshots


def _item(entry: dict[str, Any]) -> EdgeItem:
    return EdgeItem(key=str(entry["key"]), value=entry.get("value"), updated_at=epoch_ms(entry.get("updatedAt")))


def flag_key(name: str) -> str:
    key = f"{FLAG_PREFIX}{name}"
    if not name or not all(c.isalnum() or c in "_-" for c in name) or len(key) > 256:
        raise PlatformError(f"flag name {name!r} cannot be an Edge Config key (letters, digits, _ and - only)")
    return key


class VercelEdge:
    """:class:`~remediation.providers.capabilities.EdgeControls` on Edge Config items."""

    def __init__(self, config: EdgeConfig, *, max_backups: int = 20) -> None:
        self.config = config
        self.max_backups = max_backups

    async def maintenance_prefixes(self) -> list[str]:
        item = await self.config.item(MAINTENANCE_KEY)
        return _prefixes(item)

    async def set_maintenance(self, prefix: str, enabled: bool) -> bool:
        if not prefix.startswith("/"):
            raise PlatformError(f"maintenance prefix {prefix!r} must start with '/'")
        prefixes = _prefixes(await self.config.item(MAINTENANCE_KEY))
        if enabled == (prefix in prefixes):
            return False
        updated = [*prefixes, prefix] if enabled else [p for p in prefixes if p != prefix]
        await self.config.upsert(MAINTENANCE_KEY, updated)
        return True

    async def set_flag(self, name: str, enabled: bool) -> bool:
        key = flag_key(name)
        item = await self.config.item(key)
        if item is not None and item.value is enabled:
            return False
        await self.config.upsert(key, enabled)
        return True

    async def flag(self, name: str) -> bool | None:
        item = await self.config.item(flag_key(name))
        if item is None or item.value is None:
            return None
        if not isinstance(item.value, bool):
            raise PlatformError(f"Edge Config item {flag_key(name)} holds {str(item.value)[:40]!r}, not true/false")
        return item.value

    async def flags(self) -> dict[str, bool]:
        items = await self.config.items()
        return {k[len(FLAG_PREFIX):]: bool(i.value) for k, i in items.items() if k.startswith(FLAG_PREFIX)}

    async def flag_history(self) -> list[FlagChange]:
        """Flag changes Edge Config still lets us see, oldest first (see the module docstring for the limits)."""
        states = [items for _, items in await self.config.snapshots(self.max_backups)]
        states.append(await self.config.items())  # the current state closes the sequence
        changes: list[FlagChange] = []
        seen: dict[str, tuple[Any, datetime | None]] = {}
        for items in states:
            for key, item in sorted(items.items()):
                if not key.startswith(FLAG_PREFIX) or item.updated_at is None:
                    continue
                before = seen.get(key)
                if before is not None and before[1] == item.updated_at:
                    continue  # not written since the previous state
                seen[key] = (item.value, item.updated_at)
                if before is None or before[0] is not item.value:
                    changes.append(FlagChange(name=key[len(FLAG_PREFIX):], enabled=bool(item.value),
                                              at=item.updated_at))
        return sorted(changes, key=lambda c: (c.at, c.name))


def _prefixes(item: EdgeItem | None) -> list[str]:
    if item is None or item.value is None:
        return []
    if not isinstance(item.value, list) or not all(isinstance(p, str) for p in item.value):
        raise PlatformError(f"Edge Config item {MAINTENANCE_KEY} is not a list of path prefixes: {item.value!r}")
    return list(item.value)


class VercelUploadPolicy:
    """:class:`~remediation.providers.capabilities.UploadPolicy` as the ``upload_allowlist`` Edge Config item."""

    def __init__(self, config: EdgeConfig) -> None:
        self.config = config

    async def allowlist(self) -> UploadAllowlist:
        return _allowlist(await self.config.item(UPLOAD_KEY))

    async def set_allowlist(self, allowlist: UploadAllowlist) -> UploadAllowlist:
        allowlist = valid_allowlist(allowlist)
        previous = _allowlist(await self.config.item(UPLOAD_KEY))
        if previous != allowlist:
            await self.config.upsert(UPLOAD_KEY, {"extensions": list(allowlist.extensions),
                                                  "mime_types": list(allowlist.mime_types)})
        return previous


def _allowlist(item: EdgeItem | None) -> UploadAllowlist:
    if item is None:
        return APP_DEFAULT_UPLOADS
    try:
        return UploadAllowlist.model_validate(item.value)
    except ValidationError as exc:
        raise PlatformError(f"Edge Config item {UPLOAD_KEY} is not an allowlist: {str(item.value)[:200]}") from exc


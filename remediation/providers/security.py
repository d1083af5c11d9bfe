"""Security capabilities for the upload/malware and auth runbooks: actor blocks, upload allowlists, antivirus,
the audit table and the identity provider's configuration.

kamkmserve has none of these levers itself (docs/reference/kamkmserve.md §4, §13): no block list, allowlists are env
vars that need a redeploy, no real scanner, no demote/ban endpoint. They come from the platform (a WAF IP set, edge
config), a real clamd, the app's PostgreSQL and Clerk. Each is one Protocol; the simulator implements them all.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from remediation.providers.platform import PlatformError

BlockKind = Literal["ip", "user", "session"]


class Block(BaseModel):
    """One entry of the edge's block list. ``expires_at`` None means it never expires (we never create those)."""

    model_config = ConfigDict(frozen=True)

    kind: BlockKind
    value: str
    expires_at: datetime | None = None
    reason: str = ""


class UploadAllowlist(BaseModel):
    """What ``/api/uploads`` accepts (docs/reference/kamkmserve.md §7): extensions with their dot, lower-case; MIME
    types."""

    model_config = ConfigDict(frozen=True)

    extensions: tuple[str, ...]
    mime_types: tuple[str, ...]


def valid_allowlist(allowlist: UploadAllowlist) -> UploadAllowlist:
    """The edge's rules (those of the simulated edge): lower-case ``.ext`` and ``type/subtype``, duplicates dropped.
    SSM and Edge Config store anything, so a typo has to be caught by the adapter, before anything is written."""
    for ext in allowlist.extensions:
        if not ext.startswith(".") or len(ext) < 2 or ext != ext.lower() or any(c in ext for c in " ,/"):
            raise PlatformError(f"extension {ext!r} must be lower case and start with a dot, like '.png'")
    for mime in allowlist.mime_types:
        kind, _, sub = mime.partition("/")
        if mime != mime.lower() or not kind or not sub or "/" in sub or any(c in mime for c in " ,"):
            raise PlatformError(f"MIME type {mime!r} must be lower case type/subtype, like 'image/png'")
    return UploadAllowlist(extensions=tuple(dict.fromkeys(allowlist.extensions)),
                           mime_types=tuple(dict.fromkeys(allowlist.mime_types)))


class ScanVerdict(BaseModel):
    """An antivirus answer. ``unavailable`` (daemon down) and ``error`` are never a clean bill of health."""

    model_config = ConfigDict(frozen=True)

    status: Literal["ok", "found", "error", "unavailable"]
    signature: str | None = None
    detail: str = ""

    @property
    def clean(self) -> bool:
        return self.status == "ok"


class AuditEvent(BaseModel):
    """One ``kamkmserve_audit_log`` row, exactly as stored (``metadata`` is a JSON *string*,
    docs/reference/kamkmserve.md §5.1)."""

    model_config = ConfigDict(frozen=True)

    id: str
    event: str
    action: str
    resource: str
    allowed: bool
    actor_user_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    metadata: str | None = None
    created_at: datetime


class AuditReport(BaseModel):
    """Reads never raise: a missing table or an unreachable database is ``available=False`` with the reason."""

    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    table_missing: bool = False
    events: tuple[AuditEvent, ...] = ()


class IdentityCheck(BaseModel):
    """The identity provider's configuration as the app uses it, judged: every problem found, in words."""

    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    settings: dict[str, Any] = Field(default_factory=dict)  # secrets redacted
    jwks_reachable: bool | None = None
    problems: tuple[str, ...] = ()
    # Recent changes of the settings ({name, previous, value, at}; secrets redacted): what changed before an incident.
    changes: tuple[dict[str, Any], ...] = ()


#: Where kamkmserve's middleware looks for the role in the session claims, in order (docs/reference/kamkmserve.md
#: §6.1 step 4).
APP_ROLE_CLAIMS = ("role", "publicMetadata.role", "privateMetadata.role")
#: The claim names a Clerk session token template may put the role in so that the app finds it: only a top-level
#: ``role`` (the token carries no ``publicMetadata``/``privateMetadata`` objects unless the template adds them).
ACCEPTED_ROLE_CLAIMS = ("role",)


def frontend_api(publishable_key: str) -> str | None:
    """The Frontend API host a Clerk publishable key encodes (``pk_live_`` + base64 of ``<host>$``), or None."""
    for prefix in ("pk_live_", "pk_test_"):
        if publishable_key.startswith(prefix):
            encoded = publishable_key.removeprefix(prefix)
            try:
                decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True).decode("ascii")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return None
            return decoded.removesuffix("$") if decoded.endswith("$") else None
    return None


def expected_jwks_url(publishable_key: str) -> str | None:
    """Where the Clerk instance of ``publishable_key`` publishes its signing keys (None: not a publishable key)."""
    host = frontend_api(publishable_key)
    return f"https://{host}/.well-known/jwks.json" if host else None



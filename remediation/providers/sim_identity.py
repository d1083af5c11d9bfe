"""The simulated identity provider (Clerk as kamkmserve is configured against it) and status page, over ``/_sim/``.

``SimIdentity`` reads the configuration the app authenticates with (``GET /_sim/identity``: settings with secrets
redacted, plus what the provider knows about them: which instance each key belongs to, whether the JWKS URL
answers) and judges it with :func:`judge`, the same rules a Clerk adapter will apply to what Clerk's Backend API
and the app's environment say. ``SimStatusPage`` posts and updates incidents on the simulated status page (the
Statuspage adapter comes later).

The probe sessions below are the simulator's stand-in for Clerk test users: a real deployment would mint a
session token for a dedicated test user (Clerk Backend API ``POST /v1/sessions/{id}/tokens``) and send it as the
``__session`` cookie; the simulator accepts ``sim_session_<user id>`` for the users it knows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from remediation.providers.platform import PlatformError
from remediation.providers.security import (
    ACCEPTED_ROLE_CLAIMS,
    APP_ROLE_CLAIMS,
    IdentityCheck,
    expected_jwks_url,
    frontend_api,
)
from remediation.providers.sim_platform import ControlPlane

SESSION_COOKIE = "__session"
SESSION_PREFIX = "sim_session_"
PROBE_USER_ID = "user_probe_member"  # a signed-in customer: role USER, no admin rights anywhere
PROBE_ADMIN_ID = "user_probe_admin"  # a dedicated admin test user (publicMetadata.role = ADMIN)
PROBE_USER_SESSION = SESSION_PREFIX + PROBE_USER_ID
PROBE_ADMIN_SESSION = SESSION_PREFIX + PROBE_ADMIN_ID


def judge(settings: Mapping[str, Any], facts: Mapping[str, Any]) -> tuple[str, ...]:
    """Every problem with the identity configuration, in words an on-call engineer can act on."""
    problems: list[str] = []
    publishable = str(settings.get("publishable_key") or "")
    host = frontend_api(publishable)
    if not publishable:
        problems.append("the publishable key (NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY) is not set")
    elif host is None:
        problems.append(f"the publishable key {publishable[:16]}… is not a Clerk publishable key")
    if not settings.get("secret_key"):
        problems.append("the secret key (CLERK_SECRET_KEY) is not set")
    else:
        status = facts.get("secret_key_status")
        instance = facts.get("secret_key_instance")
        if status == "revoked":
            problems.append(f"the secret key {settings['secret_key']} was revoked (rotated at the identity provider "
                            "without updating the app's CLERK_SECRET_KEY)")
        elif status != "active" or instance is None:
            problems.append(f"the secret key {settings['secret_key']} is not a key the identity provider knows")
        elif host is not None and instance != host:
            problems.append(f"the secret key belongs to {instance} but the publishable key to {host}: "
                            "keys of two different instances")
    if facts.get("jwks_reachable") is False:
        want = expected_jwks_url(publishable)
        problems.append(f"the JWKS URL {settings.get('jwks_url')} does not answer"
                        + (f" (the instance publishes its keys at {want})" if want else ""))
    claim = settings.get("role_claim")
    if claim not in ACCEPTED_ROLE_CLAIMS:
        problems.append(f"the session token carries the role in claim {claim!r}, but the app reads "
                        f"{', '.join(APP_ROLE_CLAIMS)}: every admin check falls back to the database role")
    return tuple(problems)


class SimIdentity:
    """Identity over ``/_sim/identity``: read and judge the configuration, change one setting, look users up."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def check(self) -> IdentityCheck:
        try:
            body = await self.plane.json("GET", "/identity")
        except PlatformError as exc:
            return IdentityCheck(available=False, reason=str(exc))
        settings = dict(body.get("settings", {}))
        facts = dict(body.get("facts", {}))
        return IdentityCheck(available=True, settings=settings, jwks_reachable=facts.get("jwks_reachable"),
                             problems=judge(settings, facts), changes=tuple(body.get("history", ())))

    async def set_setting(self, name: str, value: str) -> str | None:
        body = await self.plane.json("PATCH", "/identity", json_body={"name": name, "value": value})
        previous = body.get("previous")
        return None if previous is None else str(previous)

    async def user_roles(self, user_ids: Sequence[str]) -> dict[str, str | None]:
        if not user_ids:
            return {}
        body = await self.plane.json("GET", "/identity/users", params={"ids": ",".join(sorted(set(user_ids)))})
        return {str(k): (None if v is None else str(v)) for k, v in dict(body.get("roles", {})).items()}


class SimStatusPage:
    """Status updates over ``/_sim/status`` (a Statuspage-like incident list)."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    async def post(self, title: str, body: str, status: str) -> str:
        answer = await self.plane.json("POST", "/status", json_body={"title": title, "body": body, "status": status})
        return str(answer["id"])

    async def update(self, incident_id: str, body: str, status: str) -> None:
        await self.plane.json("PATCH", f"/status/{incident_id}", json_body={"body": body, "status": status})

"""Clerk Backend API (httpx): is the app's Clerk configuration sound, and the ban / revoke levers.

kamkmserve needs ``CLERK_SECRET_KEY`` and ``NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY`` (docs/reference/kamkmserve.md §14) and
has no ban or demote endpoint of its own (§6.4, §13); Clerk's Backend API (``https://api.clerk.com/v1``,
``Authorization: Bearer <secret key>``) has both. Endpoints used: ``GET/PATCH /instance``, ``GET /jwks``,
``GET /users/{id}``, ``GET /users?banned=true``, ``POST /users/{id}/ban`` and ``/unban``, ``PATCH /users/{id}/metadata``
(merges; a ``null`` value removes a key), ``GET /sessions/{id}`` and ``POST /sessions/{id}/revoke``. Errors come as
``{"errors": [{"message", "long_message", "code"}]}``.

:meth:`ClerkIdentity.check` judges the keys without changing anything: both present; the publishable key
(``pk_<test|live>_<base64 of "<frontend API host>$">``) and the secret key (``sk_<test|live>_...``) of the same
kind; the secret key accepted and its instance's ``environment_type`` matching (development: test keys,
production: live keys); the instance JWKS (``GET /jwks``) and the frontend API's ``/.well-known/jwks.json`` both
reachable and parseable; and the two sharing a signing key id, which is what proves the publishable key's
instance is the secret key's instance. The secret key is never sent anywhere but the Backend API.

:meth:`ClerkIdentity.set_setting` changes only what it can read back first (so the plan's undo is exact):
``allowed_origins`` (comma-separated; ``PATCH /instance``) and ``user:<user_id>:role`` (the ``role`` in the
user's ``public_metadata``, which kamkmserve's admin gate reads, §6.1; an empty value removes it). Anything else
is refused with the reason rather than changed blind.

What the Backend API cannot tell us, said plainly: it keeps no history of configuration changes (so
``IdentityCheck.changes`` stays empty), and the session token's claims (the dashboard's "customize session token",
where a ``role`` claim would come from) are not readable through it, so the role claim is not judged here.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Sequence
from typing import Any

import httpx
from pydantic import SecretStr

from remediation.providers.capabilities import Clock
from remediation.providers.clock import RealClock
from remediation.providers.platform import PlatformError
from remediation.providers.saas_client import REDACTED, RestClient, secret_value
from remediation.providers.security import IdentityCheck
from remediation.providers.tls import shared_ssl_context

DEFAULT_API_URL = "https://api.clerk.com"
_KEY = re.compile(r"^(?P<kind>pk|sk)_(?P<env>test|live)_(?P<body>[A-Za-z0-9+/=_-]+)$")
_ENVIRONMENT = {"test": "development", "live": "production"}
_USER_ROLE = re.compile(r"^user:(?P<user>[A-Za-z0-9_]+):role$")


def parse_publishable_key(key: str) -> tuple[str, str]:
    """(``test``|``live``, frontend API host) of a publishable key; raises ValueError when it is not one."""
    match = _KEY.match(key.strip())
    if match is None or match["kind"] != "pk":
        raise ValueError("not a Clerk publishable key (pk_test_... or pk_live_...)")
    body = match["body"]
    try:
        decoded = base64.b64decode(body + "=" * (-len(body) % 4), validate=False).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("the publishable key's payload is not base64") from exc
    if not decoded.endswith("$") or len(decoded) < 2:
        raise ValueError("the publishable key does not encode a frontend API host")
    return match["env"], decoded[:-1]


def secret_key_env(key: str) -> str:
    match = _KEY.match(key.strip())
    if match is None or match["kind"] != "sk":
        raise ValueError("not a Clerk secret key (sk_test_... or sk_live_...)")
    return match["env"]


def frontend_jwks_url(host: str) -> str:
    bare = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    try:
        loopback = bare == "localhost" or ipaddress.ip_address(bare.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    return f"{'http' if loopback else 'https'}://{host}/.well-known/jwks.json"


def jwks_kids(body: Any) -> list[str]:
    """Key ids of a JWKS document; raises ValueError when it is not one with usable keys."""
    keys = body.get("keys") if isinstance(body, dict) else None
    if not isinstance(keys, list) or not keys:
        raise ValueError("no keys")
    kids = []
    for key in keys:
        if not isinstance(key, dict) or not key.get("kid") or not key.get("kty"):
            raise ValueError("a key without kid/kty")
        if key["kty"] == "RSA" and not (key.get("n") and key.get("e")):
            raise ValueError(f"RSA key {key['kid']} without n/e")
        kids.append(str(key["kid"]))
    return kids


class ClerkIdentity:
    """:class:`~remediation.providers.capabilities.Identity` for Clerk, plus the user/session levers."""

    def __init__(self, secret_key: SecretStr | str | None, *, publishable_key: str | None = None,
                 base_url: str = DEFAULT_API_URL, timeout_s: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None, clock: Clock | None = None,
                 max_wait_s: float = 10.0) -> None:
        self.clock: Clock = clock or RealClock()
        root = base_url.rstrip("/").removesuffix("/v1")
        self.rest = RestClient("clerk", f"{root}/v1", secret_key, timeout_s=timeout_s, transport=transport,
                               clock=self.clock, max_wait_s=max_wait_s, token_setting="REMEDIATE_CLERK_SECRET_KEY")
        self._secret = secret_value(secret_key)
        self.publishable_key = publishable_key
        self.timeout_s = timeout_s
        self._transport = transport

    # -- Identity ---------------------------------------------------------------------------------------------------

    async def check(self) -> IdentityCheck:
        problems: list[str] = []
        settings: dict[str, Any] = {}
        pk_env = frontend = sk_env = None
        if not self.publishable_key:
            problems.append("no publishable key configured (REMEDIATE_CLERK_PUBLISHABLE_KEY): the browser side "
                            "cannot reach Clerk")
        else:
            settings["publishable_key"] = self.publishable_key  # public by design
            try:
                pk_env, frontend = parse_publishable_key(self.publishable_key)
                settings["frontend_api"] = frontend
                settings["jwks_url"] = frontend_jwks_url(frontend)
            except ValueError as exc:
                problems.append(f"publishable key: {exc}")
        if self._secret is None:
            problems.append("no secret key configured (REMEDIATE_CLERK_SECRET_KEY)")
            return IdentityCheck(available=False, reason="no Clerk secret key configured", settings=settings,
                                 problems=tuple(problems))
        try:
            sk_env = secret_key_env(self._secret)
            settings["secret_key"] = f"sk_{sk_env}_{REDACTED}"
        except ValueError as exc:
            settings["secret_key"] = REDACTED
            problems.append(f"secret key: {exc}")
        if pk_env and sk_env and pk_env != sk_env:
            problems.append(f"the publishable key is a {pk_env} key but the secret key a {sk_env} key: they belong "
                            "to different instances")
        try:
            instance = await self.instance()
        except PlatformError as exc:
            if _refused(exc):
                # Clerk answered and refused the key: that is a finding about the configuration, not an outage.
                problems.append(f"the secret key is not a key Clerk accepts ({exc}): revoked, or rotated at Clerk "
                                "without updating the app's CLERK_SECRET_KEY")
                return IdentityCheck(available=True, settings=settings, problems=tuple(problems))
            return IdentityCheck(available=False, reason=f"Clerk Backend API unavailable: {exc}", settings=settings,
                                 problems=tuple(problems))
        settings.update(instance_id=instance.get("id"), environment_type=instance.get("environment_type"),
                        allowed_origins=instance.get("allowed_origins") or [])
        expected = _ENVIRONMENT.get(sk_env or "")
        if expected and instance.get("environment_type") not in (None, expected):
            problems.append(f"the secret key is a {sk_env} key but its instance is {instance.get('environment_type')}")
        backend_kids, frontend_kids = await self._jwks(frontend, problems)
        settings["jwks_kids"] = backend_kids
        if backend_kids and frontend_kids and not set(backend_kids) & set(frontend_kids):
            problems.append(f"the publishable key's instance ({frontend}) signs with keys {frontend_kids} that the "
                            f"secret key's instance does not publish ({backend_kids}): the keys belong to different "
                            "instances, so every session token would fail verification")
        reachable = bool(backend_kids) and (frontend is None or bool(frontend_kids))
        return IdentityCheck(available=True, settings=settings, jwks_reachable=reachable,
                             problems=tuple(self.rest.redact(p) for p in problems))

    async def _jwks(self, frontend: str | None, problems: list[str]) -> tuple[list[str], list[str]]:
        backend: list[str] = []
        try:
            backend = jwks_kids(await self.rest.json("GET", "/jwks"))
        except PlatformError as exc:
            problems.append(f"instance JWKS unreadable: {exc}")
        except ValueError as exc:
            problems.append(f"instance JWKS (GET /v1/jwks) is not a usable key set: {exc}")
        if frontend is None:
            return backend, []
        url = frontend_jwks_url(frontend)
        try:
            # Public endpoint: no credentials go to the frontend API.
            async with httpx.AsyncClient(timeout=self.timeout_s, transport=self._transport,
                                         verify=shared_ssl_context()) as client:
                response = await client.get(url)
            if response.status_code != 200:
                raise ValueError(f"HTTP {response.status_code}")
            return backend, jwks_kids(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            problems.append(f"frontend API JWKS {url} unreachable or unusable: {type(exc).__name__}: {exc}")
            return backend, []

    async def set_setting(self, name: str, value: str) -> str | None:
        if name == "allowed_origins":
            previous = (await self.instance()).get("allowed_origins") or []
            origins = [o.strip() for o in value.split(",") if o.strip()]
            if origins != previous:
                await self.rest.json("PATCH", "/instance", json_body={"allowed_origins": origins})
            return ",".join(previous) or None
        match = _USER_ROLE.match(name)
        if match is not None:
            user = await self.user(match["user"])
            metadata = user.get("public_metadata") if isinstance(user.get("public_metadata"), dict) else {}
            previous_role = metadata.get("role") if metadata else None
            if (value or None) != previous_role:
                await self.rest.json("PATCH", f"/users/{match['user']}/metadata",
                                     json_body={"public_metadata": {"role": value or None}})
            return str(previous_role) if previous_role is not None else None
        raise PlatformError(f"Clerk setting {name!r} is not one we can read back before changing it (supported: "
                            "allowed_origins, user:<user_id>:role); change it in the Clerk dashboard")

    # -- reads and levers ---------------------------------------------------------------------------------------

    async def instance(self) -> dict[str, Any]:
        body = await self.rest.json("GET", "/instance")
        if not isinstance(body, dict):
            raise PlatformError(f"clerk GET /v1/instance: not an instance: {str(body)[:200]}")
        return body

    async def user(self, user_id: str) -> dict[str, Any]:
        body = await self.rest.json("GET", f"/users/{_id(user_id)}")
        if not isinstance(body, dict) or "id" not in body:
            raise PlatformError(f"clerk GET /v1/users/{user_id}: not a user: {str(body)[:200]}")
        return body

    async def user_roles(self, user_ids: Sequence[str]) -> dict[str, str | None]:
        """Each user's ``public_metadata.role`` (what kamkmserve's admin gate reads); None: none set or no such user."""
        wanted = sorted({_id(u) for u in user_ids})
        roles: dict[str, str | None] = dict.fromkeys(wanted)
        for start in range(0, len(wanted), 100):
            chunk = wanted[start:start + 100]
            page = await self.rest.json("GET", "/users", params={"user_id": chunk, "limit": str(len(chunk))})
            if not isinstance(page, list):
                raise PlatformError(f"clerk GET /v1/users: not a user list: {str(page)[:200]}")
            for user in page:
                metadata = user.get("public_metadata") if isinstance(user, dict) else None
                if isinstance(metadata, dict) and str(user.get("id")) in roles:
                    role = metadata.get("role")
                    roles[str(user["id"])] = None if role is None else str(role)
        return roles

    async def banned_users(self, max_users: int = 500) -> list[dict[str, Any]]:
        users: list[dict[str, Any]] = []
        while len(users) < max_users:
            page = await self.rest.json("GET", "/users", params={"banned": "true", "limit": "100",
                                                                   "offset": str(len(users))})
            if not isinstance(page, list):
                raise PlatformError(f"clerk GET /v1/users: not a user list: {str(page)[:200]}")
            users.extend(u for u in page if isinstance(u, dict))
            if len(page) < 100:
                break
        return users[:max_users]

    async def ban_user(self, user_id: str) -> bool:
        """Ban (all sessions revoked, no new sign-in). False when already banned (idempotent)."""
        if (await self.user(user_id)).get("banned") is True:
            return False
        await self.rest.json("POST", f"/users/{_id(user_id)}/ban")
        return True

    async def unban_user(self, user_id: str) -> bool:
        if (await self.user(user_id)).get("banned") is not True:
            return False
        await self.rest.json("POST", f"/users/{_id(user_id)}/unban")
        return True

    async def revoke_session(self, session_id: str) -> bool:
        """Sign one session out. False when it is no longer active (idempotent). There is no undo."""
        session = await self.rest.json("GET", f"/sessions/{_id(session_id)}")
        if not isinstance(session, dict) or session.get("status") != "active":
            return False
        await self.rest.json("POST", f"/sessions/{_id(session_id)}/revoke")
        return True

    async def set_private_metadata(self, user_id: str, key: str, value: Any) -> None:
        await self.rest.json("PATCH", f"/users/{_id(user_id)}/metadata", json_body={"private_metadata": {key: value}})


def _refused(exc: PlatformError) -> bool:
    return " HTTP 401:" in str(exc) or " HTTP 403:" in str(exc)


def _id(value: str) -> str:
    # Clerk ids are ``user_...`` / ``sess_...``: refuse anything that could reshape the path.
    if not re.fullmatch(r"[A-Za-z0-9_]+", value):
        raise PlatformError(f"{value!r} is not a Clerk id")
    return value

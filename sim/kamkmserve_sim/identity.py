"""Clerk as the simulated kamkmserve is configured against it, and the app's admin role checks that depend on it.

The identity configuration (``GET``/``PATCH /_sim/identity``) is what the app authenticates with: the Clerk
publishable and secret keys (``NEXT_PUBLIC_CLERK_PUBLISHABLE_KEY``, ``CLERK_SECRET_KEY``), the JWKS URL session
tokens are verified against, the claim the instance's session token template puts the role in, and the role cache
(``ROLE_CACHE_SECRET``, ``ROLE_CACHE_TTL_SEC``). Secrets never leave the simulator unredacted.

The admin checks follow docs/reference/kamkmserve.md §6 and emit its exact security events:

* ``/admin`` pages (the middleware gate, §6.1): ``Role cache miss or invalid``; a session that cannot be verified
  (secret key revoked or of another instance, JWKS URL dead) -> ``Admin role check errored`` and ``403 Forbidden``;
  otherwise ``Admin role check - Clerk claims debug`` (noise: every check logs it); a claim of ADMIN/SUPERADMIN
  lets the user in; a non-admin claim logs ``Non-admin claim used for admin route``; then the kamkmserve_user role
  decides, and a non-admin one logs ``Admin role check failed`` and answers ``403 Forbidden`` (text).
* ``/api/admin/*`` handlers (``requireRole``, §6.2): no session -> 401, too low -> ``403 {"error":"Forbidden"}``,
  an exception -> ``500 {"error":"Auth check failed"}``; none of these is logged. The sim's handlers take the
  role as the middleware does (session claim first, then the kamkmserve_user row), so one misconfiguration locks
  admins out of pages and API alike; the real ``getCurrentUserRole`` reads the row after ``currentUser()``.
* The routes with no check at all (§6.2) answer anyone, signed in or not.

Who the users are: the simulated admins were promoted in Clerk (``publicMetadata.role``), not in SQL, so their
kamkmserve_user rows say USER (the Clerk webhook does not sync users, §5.2); only the owner's row says SUPERADMIN.
So when the session token stops carrying the role in the claim the app reads, every admin but the owner is denied.
Simulated users carry no role cache cookie (every check goes to Clerk, the noisiest case). HTTP requests present a
user with the cookie ``__session=sim_session_<user id>`` (the simulator's stand-in for a Clerk test user's session
token; the remediation's simulator adapter sends exactly that); the users it knows are the two probe users and the
owner.

Admin feature flags (``admin-console`` for ``/admin``, ``admin-api`` for ``/api/admin``) are edge flags: switched
off, the edge answers those paths itself (the maintenance page) and the app never sees the request.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from kamkmserve_sim.faults import path_has_prefix
from kamkmserve_sim.identity_status import StatusBoard
from kamkmserve_sim.jsfmt import js_iso

if TYPE_CHECKING:
    from kamkmserve_sim.applog import AppLog
    from kamkmserve_sim.clock import Clock
    from kamkmserve_sim.platform import Edge
    from kamkmserve_sim.routes import AppRequest


SESSION_PREFIX = "sim_session_"  # what a simulated session token is: this prefix and the user id
PROBE_USER_ID = "user_probe_member"  # a signed-in customer: role USER, no admin rights anywhere
PROBE_ADMIN_ID = "user_probe_admin"  # a dedicated admin test user (publicMetadata.role = ADMIN)


def frontend_api(publishable_key: str) -> str | None:
    """The Frontend API host (the Clerk instance) a publishable key names: ``pk_live_``/``pk_test_`` + base64 of
    ``<host>$``; None when it is not such a key. How the simulated Clerk knows which instance a key is of."""
    for prefix in ("pk_live_", "pk_test_"):
        if publishable_key.startswith(prefix):
            encoded = publishable_key.removeprefix(prefix)
            try:
                decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True).decode("ascii")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                return None
            return decoded.removesuffix("$") if decoded.endswith("$") else None
    return None


def jwks_url(host: str) -> str:
    """Where a Clerk instance publishes its signing keys."""
    return f"https://{host}/.well-known/jwks.json"


def _publishable(host: str, live: bool = True) -> str:
    return ("pk_live_" if live else "pk_test_") + base64.b64encode(f"{host}$".encode()).decode().rstrip("=")


def _secret(seed: str, live: bool = True) -> str:
    return ("sk_live_" if live else "sk_test_") + hashlib.sha256(seed.encode()).hexdigest()[:40]


FRONTEND_API = "clerk.kamkm.example"
STAGING_API = "clerk.kamkm-staging.example"
PUBLISHABLE_KEY = _publishable(FRONTEND_API)
STAGING_PUBLISHABLE_KEY = _publishable(STAGING_API, live=False)
SECRET_KEY = _secret("kamkmserve-production-1")
ROTATED_SECRET_KEY = _secret("kamkmserve-production-2")  # what the dashboard issues when the key is rotated
STAGING_SECRET_KEY = _secret("kamkmserve-staging-1", live=False)
JWKS_URL = jwks_url(FRONTEND_API)
OWNER_ID = "user_2owner000000000000000000"
SECRET_SETTINGS = frozenset({"secret_key", "role_cache_secret"})
ADMIN_ROLES = ("ADMIN", "SUPERADMIN")
_RANK = {"USER": 0, "ADMIN": 1, "SUPERADMIN": 2}
ADMIN_FEATURES: dict[str, tuple[str, ...]] = {"admin-console": ("/admin",), "admin-api": ("/api/admin",)}

Decision = Literal["allow", "deny", "error"]


@dataclass
class ClerkUser:
    id: str
    email: str
    role: str | None  # publicMetadata.role at Clerk: who the user is
    db_role: str = "USER"  # kamkmserve_user.role (default USER when there is no row)


@dataclass(frozen=True)
class Principal:
    user_id: str
    claims: dict[str, object]
    db_role: str

    @property
    def claim_role(self) -> str | None:
        direct = self.claims.get("role")
        return direct if isinstance(direct, str) and direct else None


class SimIdentity:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.status = StatusBoard(clock)  # the public status page lives beside the identity provider's console
        self.settings: dict[str, str] = {
            "publishable_key": PUBLISHABLE_KEY, "secret_key": SECRET_KEY, "jwks_url": JWKS_URL,
            "role_claim": "role", "role_cache_secret": hashlib.sha256(b"role-cache").hexdigest(),
            "role_cache_ttl_s": "300",
        }
        # Every secret key the provider has issued: (instance, active or revoked).
        self.keys: dict[str, tuple[str, str]] = {SECRET_KEY: (FRONTEND_API, "active"),
                                                 ROTATED_SECRET_KEY: (FRONTEND_API, "unissued"),
                                                 STAGING_SECRET_KEY: (STAGING_API, "active")}
        self.users: dict[str, ClerkUser] = {
            PROBE_USER_ID: ClerkUser(PROBE_USER_ID, "probe.member@kamkm.example", "USER"),
            PROBE_ADMIN_ID: ClerkUser(PROBE_ADMIN_ID, "probe.admin@kamkm.example", "ADMIN"),
            OWNER_ID: ClerkUser(OWNER_ID, "owner@kamkm.example", "SUPERADMIN", db_role="SUPERADMIN"),
        }
        self.history: list[dict[str, object]] = []
        self.admins_demoted = False

    # -- configuration -----------------------------------------------------------------------------------------

    def public_settings(self) -> dict[str, str]:
        return {name: _redact(name, value) for name, value in self.settings.items()}

    def facts(self) -> dict[str, object]:
        """What the identity provider can tell about the configuration (a Clerk adapter asks the Backend API)."""
        instance, status = self.keys.get(self.settings["secret_key"], (None, "unknown"))
        return {"publishable_key_instance": frontend_api(self.settings["publishable_key"]),
                "secret_key_instance": instance if status == "active" else None,
                "secret_key_status": "unknown" if status == "unissued" else status,
                "jwks_reachable": self.settings["jwks_url"] in (JWKS_URL, jwks_url(STAGING_API))}

    def public(self) -> dict[str, object]:
        return {"settings": self.public_settings(), "facts": self.facts(), "history": list(self.history[-50:])}

    def set(self, name: str, value: str, *, actor: str = "api") -> tuple[str | None, bool]:
        """Change one setting; returns (the previous value, redacted if secret; whether it changed)."""
        if name not in self.settings:
            raise KeyError(f"setting {name}")
        if name == "role_cache_ttl_s" and not value.isdigit():
            raise ValueError("role_cache_ttl_s must be a whole number of seconds")
        previous = self.settings[name]
        if previous == value:
            return _redact(name, previous), False
        self.settings[name] = value
        self.history.append({"name": name, "previous": _redact(name, previous), "value": _redact(name, value),
                             "at": js_iso(self._clock.now_ms()), "actor": actor})
        return _redact(name, previous), True

    def rotate_secret_key(self) -> None:
        """The dashboard's "rotate": the old secret key is revoked, a new one issued; the app's env is not told."""
        self.keys[SECRET_KEY] = (FRONTEND_API, "revoked")
        self.keys[ROTATED_SECRET_KEY] = (FRONTEND_API, "active")
        self.history.append({"name": "secret_key", "previous": _redact("secret_key", SECRET_KEY),
                             "value": "(rotated at the identity provider)", "at": js_iso(self._clock.now_ms()),
                             "actor": "clerk-dashboard"})

    def demote_admins(self) -> None:
        """A bulk metadata edit sets every admin's ``publicMetadata.role`` to USER (the owner's row still says
        SUPERADMIN). No configuration fix brings them back: a human has to restore the roles."""
        self.admins_demoted = True
        for user in self.users.values():
            if user.role == "ADMIN":
                user.role = "USER"

    def roles(self, user_ids: list[str]) -> dict[str, str | None]:
        return {uid: (self.users[uid].role if uid in self.users else None) for uid in user_ids}

    # -- who is asking -----------------------------------------------------------------------------------------

    def principal(self, request: AppRequest) -> Principal | None:
        """The signed-in user behind a request, with the claims its session token carries; None: signed out."""
        user: ClerkUser | None = None
        if request.session is not None:
            user = self.users.get(request.session.removeprefix(SESSION_PREFIX)) \
                if request.session.startswith(SESSION_PREFIX) else None
        elif request.role is not None:
            user = self._traffic_user(request)
        if user is None:
            return None
        claims: dict[str, object] = {"azp": "https://kamkmserve.example", "exp": 0, "fva": [0, -1], "iat": 0,
                                     "iss": f"https://{FRONTEND_API}", "nbf": 0, "sid": f"sess_{user.id[5:]}",
                                     "sub": user.id}
        if user.role:
            claims[self.settings["role_claim"]] = user.role
        return Principal(user.id, dict(sorted(claims.items())), user.db_role)

    def _traffic_user(self, request: AppRequest) -> ClerkUser:
        who = f"{request.forwarded_for or request.real_ip or 'anon'}|{request.role}"
        digest = hashlib.sha1(who.encode()).hexdigest()
        user_id = "user_2" + digest[:26]
        user = self.users.get(user_id)
        if user is None:
            role: str | None = request.role
            if role == "USER" and int(digest[-1], 16) < 8:
                role = None  # about half the customers never had a role written to their metadata
            if role == "ADMIN" and self.admins_demoted:
                role = "USER"
            user = ClerkUser(user_id, f"{digest[:8]}@example.com", role)
            self.users[user_id] = user
        return user

    def verification_error(self) -> str | None:
        """Why Clerk cannot verify sessions with the app's configuration; None when it can."""
        facts = self.facts()
        if facts["secret_key_status"] != "active":
            return "Unauthorized: the secret key was rejected (authentication_invalid)"
        if facts["secret_key_instance"] != facts["publishable_key_instance"] or \
                facts["publishable_key_instance"] != FRONTEND_API:
            return "Handshake token verification failed: keys of different Clerk instances"
        if self.settings["jwks_url"] != JWKS_URL:
            return f"Failed to load JWKS from {self.settings['jwks_url']}: fetch failed"
        return None

    # -- the app's checks --------------------------------------------------------------------------------------

    def middleware(self, request: AppRequest, principal: Principal, log: AppLog) -> Decision:
        """src/middleware.ts for an /admin page and a signed-in user.

        As docs/reference/kamkmserve.md §6.1 steps 3-5 and §6.3 describe it.
        """
        fields = request.fields()
        log.security("Role cache miss or invalid", {"feature": "role_cache", "cookiePresent": False}, fields)
        error = self.verification_error()
        if error is not None:
            stack = (f"Error: {error}\n    at verifyToken (/var/task/.next/server/src/middleware.js:1:48211)\n"
                     "    at async adminGate (/var/task/.next/server/src/middleware.js:1:52980)")
            log.security("Admin role check errored", {"feature": "admin_role_check", "userId": principal.user_id,
                                                      "error": {"message": error, "stack": stack}}, fields)
            return "error"
        claim_role = principal.claim_role
        debug: dict[str, object] = {"feature": "admin_role_debug", "userId": principal.user_id}
        if claim_role is not None:  # JSON.stringify drops undefined: absent roles are absent keys
            debug["directRole"] = claim_role  # the token carries no publicMetadata/privateMetadata objects
            debug["claimRole"] = claim_role
        debug["hasSessionClaims"] = True
        debug["claimsKeys"] = list(principal.claims)
        log.security("Admin role check - Clerk claims debug", debug, fields)
        if claim_role in ADMIN_ROLES:
            return "allow"
        if claim_role is not None:
            log.security("Non-admin claim used for admin route", {"feature": "admin_role_check",
                                                                   "claimRole": claim_role}, fields)
        if principal.db_role in ADMIN_ROLES:
            return "allow"
        log.security("Admin role check failed", {"feature": "admin_role_check", "userId": principal.user_id,
                                                 "role": principal.db_role}, fields)
        return "deny"

    def require_role(self, request: AppRequest, needed: str) -> tuple[int, str | None]:
        """``requireRole(needed)``: (0, None) to go on, else (status, the exception's stack for a 500)."""
        principal = self.principal(request)
        if principal is None:
            return 401, None
        error = self.verification_error()
        if error is not None:
            return 500, f"Error: {error}\n    at requireRole (/var/task/.next/server/chunks/5120.js:1:811)"
        role = principal.claim_role or principal.db_role
        return (0, None) if _RANK.get(role, 0) >= _RANK[needed] else (403, None)


def disabled_feature(edge: Edge, path: str) -> str | None:
    """The admin feature flag switched off at the edge that covers ``path``, if any."""
    for name, prefixes in ADMIN_FEATURES.items():
        flag = edge.flags.get(name)
        if flag is not None and not flag.enabled and any(path_has_prefix(path, p) for p in prefixes):
            return name
    return None


def _redact(name: str, value: str) -> str:
    if name not in SECRET_SETTINGS or not value:
        return value
    prefix = value[:8] if value.startswith(("sk_live_", "sk_test_")) else ""
    return f"{prefix}…{value[-4:]}"

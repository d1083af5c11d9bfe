"""A local fake of the Clerk Backend API parts we use (and the Frontend API's public JWKS), per clerk.com docs.

Backend API under ``/v1`` with ``Authorization: Bearer <secret key>``: ``GET/PATCH /instance`` (``{object:
"instance", id, environment_type, allowed_origins}``; PATCH answers 204), ``GET /jwks``, ``GET /users`` (an array;
``banned``, ``user_id`` (repeatable), ``limit``, ``offset``), ``GET /users/{id}``, ``POST /users/{id}/ban`` and
``/unban`` (ban revokes every session), ``PATCH /users/{id}/metadata`` (deep merge; ``null`` removes a key),
``GET /sessions/{id}`` and ``POST /sessions/{id}/revoke``. Errors: ``{"errors": [{"message", "long_message",
"code"}], "clerk_trace_id"}``. The Frontend API's ``/.well-known/jwks.json`` needs no credentials; the publishable
key of this fake encodes its own address (``pk_test_`` + base64 of ``127.0.0.1:<port>$``), so a check follows it
here. ``frontend_kids`` lets a test serve another instance's keys there (keys from two instances).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

from tests.helpers.fake_saas import Answer, FakeApi, one


def _error(status: int, code: str, message: str, long: str = "") -> Answer:
    return Answer(status, {"errors": [{"message": message, "long_message": long or message, "code": code}],
                           "clerk_trace_id": "trace_fake"})


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _jwk(kid: str) -> dict[str, str]:
    return {"use": "sig", "kty": "RSA", "kid": kid, "alg": "RS256", "n": "sXch" + kid.replace("_", ""), "e": "AQAB"}


class FakeClerk(FakeApi):
    public_paths = ("/.well-known/jwks.json",)

    def __init__(self, secret_key: str = "sk_test_FakeSecretKey0123456789abcdefXYZ", *,
                 environment: str = "development", kids: tuple[str, ...] = ("ins_kamkm_key1",),
                 now_ms: Callable[[], int] | None = None) -> None:
        super().__init__(secret_key)
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.instance = {"object": "instance", "id": "ins_kamkm", "environment_type": environment,
                         "allowed_origins": ["https://kamkmserve.example"]}
        self.kids = list(kids)
        self.frontend_kids: list[str] | None = None  # None: the same instance's keys
        self.frontend_status = 200
        self.users: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}

    @property
    def publishable_key(self) -> str:
        env = "live" if self.instance["environment_type"] == "production" else "test"
        return f"pk_{env}_" + base64.b64encode(f"127.0.0.1:{self.port}$".encode()).decode().rstrip("=")

    def unauthorized(self) -> Answer:
        return _error(401, "authentication_invalid", "Invalid authentication",
                      "The provided secret key is invalid. Make sure you copied it correctly.")

    # -- seeding --------------------------------------------------------------------------------------------------

    def add_user(self, user_id: str, *, role: str | None = None, banned: bool = False,
                 private: dict[str, Any] | None = None) -> dict[str, Any]:
        with self.lock:
            now = self.now_ms()
            user = {"object": "user", "id": user_id, "banned": banned, "locked": False,
                    "public_metadata": {"role": role} if role else {}, "private_metadata": dict(private or {}),
                    "unsafe_metadata": {}, "email_addresses": [], "created_at": now, "updated_at": now,
                    "last_sign_in_at": now}
            self.users[user_id] = user
            return user

    def add_session(self, session_id: str, user_id: str, status: str = "active") -> dict[str, Any]:
        with self.lock:
            now = self.now_ms()
            session = {"object": "session", "id": session_id, "user_id": user_id, "client_id": f"client_{user_id}",
                       "status": status, "last_active_at": now, "expire_at": now + 7 * 86_400_000,
                       "abandon_at": now + 30 * 86_400_000, "created_at": now, "updated_at": now}
            self.sessions[session_id] = session
            return session

    # -- dispatch -------------------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        if path == "/.well-known/jwks.json":
            if self.frontend_status != 200:
                return Answer(self.frontend_status, {"error": "unavailable"})
            return Answer(200, {"keys": [_jwk(k) for k in (self.frontend_kids or self.kids)]})
        parts = path.strip("/").split("/")
        if parts[0] != "v1":
            return _error(404, "resource_not_found", "not found")
        rest = parts[1:]
        if rest == ["instance"]:
            if method == "GET":
                return Answer(200, dict(self.instance))
            if method == "PATCH" and isinstance(body, dict):
                self.instance.update({k: v for k, v in body.items() if k == "allowed_origins"})
                return Answer(204)
        if rest == ["jwks"] and method == "GET":
            return Answer(200, {"keys": [_jwk(k) for k in self.kids]})
        if rest == ["users"] and method == "GET":
            return self._list_users(query)
        if rest[:1] == ["users"] and len(rest) >= 2:
            return self._user(method, rest[1], rest[2:], body)
        if rest[:1] == ["sessions"] and len(rest) >= 2:
            return self._session(method, rest[1], rest[2:])
        return _error(404, "resource_not_found", f"no route {method} {path}")

    def _list_users(self, query: dict[str, list[str]]) -> Answer:
        rows = sorted(self.users.values(), key=lambda u: (-u["created_at"], u["id"]))
        if one(query, "banned") is not None:
            wanted = one(query, "banned") == "true"
            rows = [u for u in rows if u["banned"] is wanted]
        if query.get("user_id"):
            rows = [u for u in rows if u["id"] in query["user_id"]]
        offset, limit = int(one(query, "offset", "0") or 0), int(one(query, "limit", "10") or 10)
        return Answer(200, rows[offset:offset + limit])

    def _user(self, method: str, user_id: str, rest: list[str], body: Any) -> Answer:
        user = self.users.get(user_id)
        if user is None:
            return _error(404, "resource_not_found", "not found", f"User {user_id} not found")
        if method == "GET" and not rest:
            return Answer(200, user)
        if method == "POST" and rest in (["ban"], ["unban"]):
            user["banned"] = rest == ["ban"]
            user["updated_at"] = self.now_ms()
            if user["banned"]:
                for session in self.sessions.values():
                    if session["user_id"] == user_id and session["status"] == "active":
                        session["status"] = "revoked"
            return Answer(200, user)
        if method == "PATCH" and rest == ["metadata"] and isinstance(body, dict):
            for field in ("public_metadata", "private_metadata", "unsafe_metadata"):
                if isinstance(body.get(field), dict):
                    user[field] = _merge(user[field], body[field])
            user["updated_at"] = self.now_ms()
            return Answer(200, user)
        return _error(405, "method_not_allowed", f"{method} not allowed")

    def _session(self, method: str, session_id: str, rest: list[str]) -> Answer:
        session = self.sessions.get(session_id)
        if session is None:
            return _error(404, "resource_not_found", "not found", f"Session {session_id} not found")
        if method == "GET" and not rest:
            return Answer(200, session)
        if method == "POST" and rest == ["revoke"]:
            if session["status"] != "active":
                return _error(400, "session_not_active", "Session is not active")
            session["status"] = "revoked"
            session["updated_at"] = self.now_ms()
            return Answer(200, session)
        return _error(405, "method_not_allowed", f"{method} not allowed")

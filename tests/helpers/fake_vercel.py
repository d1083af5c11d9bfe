"""A local fake of the Vercel REST API parts we use, following Vercel's documented requests and responses.

- ``GET /v9/projects/{id}``: ``{id, name, targets: {production: {id, readyState, ...}}, lastAliasRequest}``;
- ``GET /v6/deployments?projectId=&target=production&limit=``: ``{deployments: [{uid, name, url, created,
  createdAt, ready, state, readyState, target, meta}], pagination: {count, next, prev}}``, newest first;
- ``GET /v13/deployments/{id}`` (``id`` instead of ``uid``); 404 ``{"error": {"code": "not_found", ...}}``;
- ``POST /v1/projects/{id}/rollback/{deploymentId}`` (an earlier production deployment only) and
  ``POST /v10/projects/{id}/promote/{deploymentId}``: 201, the move recorded in ``lastAliasRequest`` with a
  ``jobStatus`` that stays ``pending`` for ``alias_pending_reads`` project reads (Vercel moves aliases async);
- Edge Config: ``GET /v1/edge-config/{id}``, ``GET .../items``, ``GET .../item/{key}`` (404 when missing),
  ``PATCH .../items`` (``create``, ``update``, ``upsert``, ``delete``; keys ``^[\\w-]+$``) → ``{"status": "ok"}``,
  and a backup per write
  (``GET .../backups`` with ``pagination {hasNext, next}``, ``GET .../backups/{id}``);
- Firewall: ``GET /v1/security/firewall/config/active?projectId=`` (404 until a config exists) and ``PATCH
  /v1/security/firewall/config?projectId=`` with ``ip.insert`` / ``ip.update`` / ``ip.remove`` → ``{}``.

Errors use Vercel's shape ``{"error": {"code", "message"}}``. With ``team_id`` set, ``teamId`` is required.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import time
from collections.abc import Callable
from typing import Any

from tests.helpers.fake_saas import Answer, FakeApi, one

_KEY = re.compile(r"^[\w-]+$")


def _error(status: int, code: str, message: str) -> Answer:
    return Answer(status, {"error": {"code": code, "message": message}})


class FakeVercel(FakeApi):
    def __init__(self, token: str = "vercel-token-0123456789", *, project_id: str = "prj_kamkmserve",
                 team_id: str | None = None, edge_config_id: str = "ecfg_kamkm",
                 now_ms: Callable[[], int] | None = None) -> None:
        super().__init__(token)
        self.project_id = project_id
        self.team_id = team_id
        self.edge_config_id = edge_config_id
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.deployments: dict[str, dict[str, Any]] = {}
        self.production: str | None = None
        self.last_alias: dict[str, Any] | None = None
        self.alias_pending_reads = 0
        self._pending_left = 0
        self.items: dict[str, dict[str, Any]] = {}
        self.backups: list[dict[str, Any]] = []
        self.firewall: list[dict[str, Any]] | None = None  # None: the project never saved a firewall config
        self._ids = itertools.count(1)

    def unauthorized(self) -> Answer:
        return _error(403, "forbidden", "Not authorized")

    def version_of(self, uid: str) -> str:
        """The version the adapter shows for a deployment: its commit, short."""
        return str(self.deployments[uid]["meta"]["githubCommitSha"])[:7]

    def _write_ms(self) -> int:
        # Vercel's updatedAt are milliseconds; two writes in one millisecond would look like one.
        self._last_write = max(self.now_ms(), getattr(self, "_last_write", 0) + 1)
        return self._last_write

    # -- seeding --------------------------------------------------------------------------------------------------

    def deploy(self, version: str, *, at_ms: int, state: str = "READY", production: bool = True,
               target: str | None = "production") -> str:
        """A production deployment created at ``at_ms``; READY ones go live (auto-assigned) when ``production``."""
        with self.lock:
            uid = f"dpl_{next(self._ids):04d}{version.replace('.', '')}"
            self.deployments[uid] = {
                "uid": uid, "name": "kamkmserve", "url": f"kamkmserve-{uid[4:]}.vercel.app", "created": at_ms,
                "createdAt": at_ms, "buildingAt": at_ms, "ready": at_ms + 60_000 if state == "READY" else None,
                "state": state, "readyState": state, "target": target, "type": "LAMBDAS",
                "meta": {"githubCommitSha": f"{version.replace('.', '')}abcdef0123456789"[:40],
                         "githubCommitRef": "main"},
                "creator": {"uid": "usr_ci", "username": "ci"}, "inspectorUrl": f"https://vercel.com/i/{uid}",
            }
            if production and state == "READY":
                self.production = uid
            return uid

    # -- dispatch -------------------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        if self.team_id is not None and one(query, "teamId") != self.team_id:
            return _error(403, "forbidden", "You don't have permission to access this team")
        parts = path.strip("/").split("/")
        if parts[:2] == ["v9", "projects"] and len(parts) == 3 and method == "GET":
            return self._project(parts[2])
        if parts == ["v6", "deployments"] and method == "GET":
            return self._list(query)
        if parts[:2] == ["v13", "deployments"] and len(parts) == 3 and method == "GET":
            found = self.deployments.get(parts[2])
            if found is None:
                return _error(404, "not_found", "Deployment not found")
            return Answer(200, {**{k: v for k, v in found.items() if k != "uid"}, "id": found["uid"]})
        if len(parts) == 5 and parts[1] == "projects" and parts[3] in ("rollback", "promote") and method == "POST":
            return self._move(parts[0], parts[2], parts[3], parts[4])
        if parts[:2] == ["v1", "edge-config"] and len(parts) == 3 and method == "GET":
            if parts[2] != self.edge_config_id:
                return _error(404, "not_found", "Edge Config not found")
            return Answer(200, {"id": self.edge_config_id, "slug": "kamkm", "itemCount": len(self.items),
                                "sizeInBytes": 0, "digest": "d", "createdAt": 0, "updatedAt": self.now_ms()})
        if parts[:2] == ["v1", "edge-config"] and len(parts) >= 4:
            return self._edge(method, parts[2], parts[3:], query, body)
        if parts[:4] == ["v1", "security", "firewall", "config"]:
            return self._firewall(method, parts[4:], query, body)
        return _error(404, "not_found", f"no route {method} {path}")

    # -- projects and deployments ---------------------------------------------------------------------------------

    def _project(self, project: str) -> Answer:
        if project != self.project_id:
            return _error(404, "not_found", "Project not found")
        if self.last_alias and self.last_alias["jobStatus"] == "pending":
            if self._pending_left > 0:
                self._pending_left -= 1
            else:
                self.last_alias["jobStatus"] = "succeeded"
                self.production = self.last_alias["toDeploymentId"]
        production = self.deployments.get(self.production or "")
        targets = {"production": {"id": production["uid"], "readyState": production["readyState"],
                                  "url": production["url"], "createdAt": production["createdAt"]}} \
            if production else {}
        return Answer(200, {"id": self.project_id, "name": "kamkmserve", "framework": "nextjs", "targets": targets,
                            "lastAliasRequest": dict(self.last_alias) if self.last_alias else None,
                            "live": False, "updatedAt": self.now_ms()})

    def _list(self, query: dict[str, list[str]]) -> Answer:
        if one(query, "projectId") != self.project_id:
            return Answer(200, {"deployments": [], "pagination": {"count": 0, "next": None, "prev": None}})
        rows = sorted(self.deployments.values(), key=lambda d: -d["createdAt"])
        if one(query, "target"):
            rows = [d for d in rows if d["target"] == one(query, "target")]
        limit = int(one(query, "limit", "20") or 20)
        page = rows[:limit]
        nxt = page[-1]["createdAt"] if len(rows) > limit else None
        return Answer(200, {"deployments": page, "pagination": {"count": len(page), "next": nxt, "prev": None}})

    def _move(self, version: str, project: str, kind: str, target: str) -> Answer:
        if project != self.project_id:
            return _error(404, "not_found", "Project not found")
        wanted = self.deployments.get(target)
        if wanted is None:
            return _error(404, "not_found", "Deployment not found")
        if (version, kind) not in (("v1", "rollback"), ("v10", "promote")):
            return _error(404, "not_found", "no such endpoint version")
        if wanted["readyState"] != "READY":
            return _error(400, "bad_request", "Deployment is not ready")
        current = self.deployments.get(self.production or "")
        if kind == "rollback" and (wanted["target"] != "production" or current is None
                                   or wanted["createdAt"] >= current["createdAt"]):
            return _error(409, "conflict", "Can only roll back to a previous production deployment")
        self.last_alias = {"type": kind, "fromDeploymentId": self.production, "toDeploymentId": target,
                           "jobStatus": "pending", "requestedAt": self.now_ms()}
        self._pending_left = self.alias_pending_reads
        if self._pending_left == 0:
            self.last_alias["jobStatus"] = "succeeded"
            self.production = target
        return Answer(201, None)

    # -- edge config ----------------------------------------------------------------------------------------------

    def _edge(self, method: str, config: str, rest: list[str], query: dict[str, list[str]], body: Any) -> Answer:
        if config != self.edge_config_id:
            return _error(404, "not_found", "Edge Config not found")
        if rest == ["items"] and method == "GET":
            return Answer(200, [self._item(k) for k in sorted(self.items)])
        if rest[0] == "item" and len(rest) == 2 and method == "GET":
            if rest[1] not in self.items:
                return _error(404, "not_found", "The item does not exist")
            return Answer(200, self._item(rest[1]))
        if rest == ["items"] and method == "PATCH":
            return self._patch_items(body)
        if rest == ["backups"] and method == "GET":
            ordered = sorted(self.backups, key=lambda b: -b["lastModified"])
            start = int(one(query, "next", "0") or 0)
            limit = int(one(query, "limit", "50") or 50)
            page = ordered[start:start + limit]
            more = start + limit < len(ordered)
            return Answer(200, {"backups": [{"id": b["id"], "lastModified": b["lastModified"],
                                             "metadata": {"itemsCount": len(b["items"])}} for b in page],
                                "pagination": {"hasNext": more, "next": str(start + limit) if more else None}})
        if rest[0] == "backups" and len(rest) == 2 and method == "GET":
            found = next((b for b in self.backups if b["id"] == rest[1]), None)
            if found is None:
                return _error(404, "not_found", "Backup not found")
            return Answer(200, {"id": found["id"], "lastModified": found["lastModified"], "metadata": {},
                                "backup": {"items": found["items"], "slug": "kamkm", "digest": "d",
                                           "updatedAt": found["lastModified"]}})
        return _error(404, "not_found", "no such edge-config route")

    def _item(self, key: str) -> dict[str, Any]:
        item = self.items[key]
        return {"key": key, "value": item["value"], "edgeConfigId": self.edge_config_id,
                "createdAt": item["createdAt"], "updatedAt": item["updatedAt"]}

    def _patch_items(self, body: Any) -> Answer:
        operations = body.get("items") if isinstance(body, dict) else None
        if not isinstance(operations, list):
            return _error(400, "bad_request", "items is required")
        now = self._write_ms()
        staged = {k: dict(v) for k, v in self.items.items()}
        for op in operations:
            key, kind = op.get("key"), op.get("operation")
            if not isinstance(key, str) or not _KEY.match(key) or len(key) > 256:
                return _error(400, "bad_request", f"Invalid key: {key!r}")
            if kind == "delete":
                if key not in staged:
                    return _error(404, "not_found", f"Item {key} not found")
                del staged[key]
            elif kind in ("create", "update", "upsert"):
                if kind == "create" and key in staged:
                    return _error(409, "conflict", f"Item {key} already exists")
                if kind == "update" and key not in staged:
                    return _error(404, "not_found", f"Item {key} not found")
                created = staged.get(key, {}).get("createdAt", now)
                staged[key] = {"value": op.get("value"), "createdAt": created, "updatedAt": now}
            else:
                return _error(400, "bad_request", f"Invalid operation: {kind!r}")
        self.items = staged
        self.backups.append({"id": f"bkp_{next(self._ids):04d}", "lastModified": now,
                             "items": {k: dict(v) for k, v in staged.items()}})
        return Answer(200, {"status": "ok"})

    # -- firewall -------------------------------------------------------------------------------------------------

    def _firewall(self, method: str, rest: list[str], query: dict[str, list[str]], body: Any) -> Answer:
        if one(query, "projectId") != self.project_id:
            return _error(404, "not_found", "Project not found")
        if method == "GET" and rest == ["active"]:
            if self.firewall is None:
                return _error(404, "not_found", "Config not found")
            return Answer(200, {"ownerId": "team_x", "projectKey": self.project_id, "id": "waf_1", "version": 1,
                                "updatedAt": "now", "firewallEnabled": True, "crs": {}, "rules": [],
                                "ips": [dict(r) for r in self.firewall], "changes": [], "managedRules": {}})
        if method != "PATCH" or rest or not isinstance(body, dict):
            return _error(400, "bad_request", "Invalid request")
        rules = self.firewall if self.firewall is not None else []
        action = body.get("action")
        if action in ("ip.insert", "ip.update"):
            value = body.get("value")
            if not isinstance(value, dict) or value.get("action") not in ("deny", "challenge", "log", "bypass"):
                return _error(400, "bad_request", "Invalid IP rule")
            try:
                ipaddress.ip_network(str(value.get("ip")), strict=False)
            except ValueError:
                return _error(400, "bad_request", f"Invalid IP: {value.get('ip')!r}")
            rule = {"hostname": value.get("hostname", "*"), "ip": value["ip"], "notes": value.get("notes"),
                    "action": value["action"]}
            if action == "ip.insert":
                rules.append({"id": f"ip_{next(self._ids):04d}", **rule})
            else:
                found = next((r for r in rules if r["id"] == body.get("id")), None)
                if found is None:
                    return _error(404, "not_found", "IP rule not found")
                found.update(rule)
        elif action == "ip.remove":
            before = len(rules)
            rules = [r for r in rules if r["id"] != body.get("id")]
            if len(rules) == before:
                return _error(404, "not_found", "IP rule not found")
        else:
            return _error(400, "bad_request", f"Unsupported action {action!r}")
        self.firewall = rules
        return Answer(200, {})


def clock_ms(clock: Any) -> Callable[[], int]:
    """The fake's notion of now, tied to a test's (virtual) clock."""
    return lambda: int(clock.now().timestamp() * 1000)

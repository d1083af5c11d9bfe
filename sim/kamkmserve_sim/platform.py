"""What the hosting platform owns, not the app: deployments, the edge (maintenance, flags), error tracking.

kamkmserve has none of these levers itself (docs/reference/kamkmserve.md §13); Vercel, a WAF/edge and Sentry provide
them.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field

from kamkmserve_sim.faults import Fault, path_has_prefix
from kamkmserve_sim.jsfmt import js_iso

_ID_ALPHABET = string.ascii_letters + string.digits


class PlatformConflict(Exception):
    """The request is well-formed but cannot be applied (e.g. nothing to roll back to)."""


@dataclass
class Release:
    id: str
    version: str
    created_at_ms: int
    fault: Fault | None = None  # never exposed: the platform does not know a release is bad
    promoted_at_ms: int | None = None


class ReleaseBook:
    """Vercel-style deployments: deploying promotes; rolling back promotes an earlier deployment again."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._releases: list[Release] = []
        self.current_id: str | None = None
        self.previous_id: str | None = None  # current right before the current one

    def deploy(self, version: str, fault: Fault | None, now_ms: int, *, created_at_ms: int | None = None) -> Release:
        release_id = "dpl_" + "".join(self._rng.choice(_ID_ALPHABET) for _ in range(24))
        release = Release(id=release_id, version=version,
                          created_at_ms=now_ms if created_at_ms is None else created_at_ms, fault=fault)
        self._releases.append(release)
        self.promote(release.id, now_ms if created_at_ms is None else created_at_ms)
        return release

    def promote(self, release_id: str, now_ms: int) -> bool:
        release = self.get(release_id)
        if release_id == self.current_id:
            return False
        self.previous_id = self.current_id
        self.current_id = release_id
        release.promoted_at_ms = now_ms
        return True

    def rollback(self, to: str | None, now_ms: int) -> tuple[Release, bool]:
        target = to if to is not None else self.previous_id
        if target is None:
            raise PlatformConflict("no previous release to roll back to")
        changed = self.promote(target, now_ms)
        return self.get(target), changed

    def get(self, release_id: str) -> Release:
        for release in self._releases:
            if release.id == release_id:
                return release
        raise KeyError(release_id)

    @property
    def current(self) -> Release:
        if self.current_id is None:
            raise PlatformConflict("nothing deployed yet")
        return self.get(self.current_id)

    def state_of(self, release: Release) -> str:
        if release.id == self.current_id:
            return "current"
        return "previous" if release.id == self.previous_id else "superseded"

    def public(self, release: Release) -> dict[str, object]:
        return {
            "id": release.id,
            "version": release.version,
            "created_at": js_iso(release.created_at_ms),
            "promoted_at": js_iso(release.promoted_at_ms) if release.promoted_at_ms is not None else None,
            "state": self.state_of(release),
        }

    def listing(self) -> dict[str, object]:
        newest_first = sorted(enumerate(self._releases), key=lambda item: (-item[1].created_at_ms, -item[0]))
        return {"current": self.current_id, "releases": [self.public(r) for _, r in newest_first]}


@dataclass
class FlagState:
    enabled: bool
    updated_at_ms: int


@dataclass
class Edge:
    """Maintenance prefixes are answered at the edge; flags are stored for whoever reads them."""

    maintenance: list[str] = field(default_factory=list)
    flags: dict[str, FlagState] = field(default_factory=dict)
    flag_history: list[dict[str, object]] = field(default_factory=list)

    def under_maintenance(self, path: str) -> bool:
        return any(path_has_prefix(path, prefix) for prefix in self.maintenance)

    def set_maintenance(self, prefix: str, enabled: bool) -> bool:
        if enabled and prefix not in self.maintenance:
            self.maintenance.append(prefix)
            return True
        if not enabled and prefix in self.maintenance:
            self.maintenance.remove(prefix)
            return True
        return False

    def set_flag(self, name: str, enabled: bool, now_ms: int) -> bool:
        current = self.flags.get(name)
        if current is not None and current.enabled == enabled:
            return False
        self.flags[name] = FlagState(enabled, now_ms)
        self.flag_history.append({"name": name, "enabled": enabled, "at": js_iso(now_ms)})
        return True

    def public_flag(self, name: str) -> dict[str, object]:
        flag = self.flags[name]
        return {"name": name, "enabled": flag.enabled, "updated_at": js_iso(flag.updated_at_ms)}

    def public_flags(self) -> dict[str, object]:
        return {name: {"enabled": f.enabled, "updated_at": js_iso(f.updated_at_ms)} for name, f in self.flags.items()}


@dataclass
class _Issue:
    id: str
    short_id: str
    title: str
    culprit: str
    release: str | None
    first_seen_ms: int
    last_seen_ms: int
    count: int = 0
    users: set[str] = field(default_factory=set)


class ErrorTracker:
    """Sentry's view: one issue per (title, culprit); ``release`` is where the issue was first seen."""

    def __init__(self) -> None:
        self._issues: dict[tuple[str, str], _Issue] = {}

    def capture(self, title: str, culprit: str, release: str | None, user: str, now_ms: int) -> None:
        key = (title, culprit)
        issue = self._issues.get(key)
        if issue is None:
            number = len(self._issues) + 1
            issue = _Issue(id=str(4500000 + number), short_id=f"JAVASCRIPT-NEXTJS-{number}", title=title,
                           culprit=culprit, release=release, first_seen_ms=now_ms, last_seen_ms=now_ms)
            self._issues[key] = issue
        issue.count += 1
        issue.users.add(user)
        issue.last_seen_ms = max(issue.last_seen_ms, now_ms)

    def listing(self) -> list[dict[str, object]]:
        ordered = sorted(self._issues.values(), key=lambda i: -i.last_seen_ms)
        return [
            {
                "id": i.id, "shortId": i.short_id, "title": i.title, "culprit": i.culprit, "level": "error",
                "status": "unresolved", "count": str(i.count), "userCount": len(i.users),
                "firstSeen": js_iso(i.first_seen_ms), "lastSeen": js_iso(i.last_seen_ms), "release": i.release,
            }
            for i in ordered
        ]

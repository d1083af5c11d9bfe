"""Who may call which admin route, as data, and the recorded requests that break it.

kamkmserve's own ABAC (``src/server/auth/abac.ts``) is dead code (docs/reference/kamkmserve.md §6.2): nothing calls it,
its decisions are never logged. Here the intent is written down as a :class:`Policy` (pydantic, so it can live in
configuration) and evaluated against what really happened: the middleware's security events (who was refused an admin
page, who was let in by their claim) and the access probe's answers (what a known non-admin or admin identity got). A
subject's role is the identity provider's (who the user *is*), not what a broken session token claimed.

A violation is either **over-permissive** (allowed, the policy says deny: e.g. a customer reaching an admin API
that has no check) or **over-restrictive** (denied, the policy says allow: e.g. admins locked out by a
misconfiguration).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from remediation.providers.access_probe import AccessReport
from remediation.providers.platform import LogLine

Effect = Literal["allow", "deny"]
ANONYMOUS = "ANONYMOUS"
ADMIN_ROLES = ("ADMIN", "SUPERADMIN")


class Rule(BaseModel):
    """Paths are route patterns: ``[id]`` is one path segment, a trailing ``/**`` any rest (or none)."""

    model_config = ConfigDict(frozen=True)

    effect: Effect = "allow"
    roles: tuple[str, ...]
    methods: tuple[str, ...] = ("*",)
    paths: tuple[str, ...]
    why: str = ""

    def matches(self, role: str, method: str, path: str) -> bool:
        return (role in self.roles and ("*" in self.methods or method.upper() in self.methods)
                and any(_pattern(p).fullmatch(path) for p in self.paths))


class Policy(BaseModel):
    """Deny rules win over allow rules; nothing matching means ``default``."""

    model_config = ConfigDict(frozen=True)

    name: str
    rules: tuple[Rule, ...]
    default: Effect = "deny"

    def decide(self, role: str, method: str, path: str) -> tuple[Effect, Rule | None]:
        matching = [r for r in self.rules if r.matches(role, method, path)]
        for rule in matching:
            if rule.effect == "deny":
                return "deny", rule
        if matching:
            return "allow", matching[0]
        return self.default, None


#: kamkmserve's intent for its admin area: admins everywhere in it, promotions for super-admins only, nobody else.
KAMKMSERVE_ADMIN_POLICY = Policy(
    name="kamkmserve-admin",
    rules=(
        Rule(roles=ADMIN_ROLES, paths=("/admin/**", "/api/admin/**"), why="admins run the admin area"),
        Rule(effect="deny", roles=("ADMIN",), methods=("PATCH",), paths=("/api/admin/upgrade-role",),
             why="promoting users to ADMIN needs SUPERADMIN"),
    ),
)


class AccessRecord(BaseModel):
    """One recorded access decision: who (their real role), what, and whether they got in."""

    model_config = ConfigDict(frozen=True)

    subject: str
    role: str  # ANONYMOUS, USER, ADMIN, SUPERADMIN (the identity provider's, when known)
    method: str
    path: str
    allowed: bool
    source: str  # "security-event" or "probe"
    at: datetime | None = None
    status: int | None = None


class Violation(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["over_permissive", "over_restrictive"]
    record: AccessRecord
    rule: str = ""


class AbacReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    policy: str
    evaluated: int
    violations: tuple[Violation, ...] = ()

    @property
    def over_permissive(self) -> list[Violation]:
        return [v for v in self.violations if v.kind == "over_permissive"]

    @property
    def over_restrictive(self) -> list[Violation]:
        return [v for v in self.violations if v.kind == "over_restrictive"]

    def groups(self) -> list[tuple[str, int]]:
        """Violations grouped as ``<kind>: <role> <METHOD> <route>`` with their counts, biggest first."""
        counts = Counter(f"{v.kind.replace('_', '-')}: {v.record.role} {v.record.method} {route_of(v.record.path)}"
                         for v in self.violations)
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def summary(self) -> str:
        if not self.violations:
            return f"{self.evaluated} recorded decision(s) agree with policy {self.policy}"
        top = "; ".join(f"{n}x {what}" for what, n in self.groups()[:6])
        return (f"{len(self.over_restrictive)} over-restrictive and {len(self.over_permissive)} over-permissive of "
                f"{self.evaluated} decision(s) against policy {self.policy}: {top}")


def evaluate(policy: Policy, records: Iterable[AccessRecord]) -> AbacReport:
    violations: list[Violation] = []
    evaluated = 0
    for record in records:
        evaluated += 1
        effect, rule = policy.decide(record.role, record.method, record.path)
        why = rule.why if rule is not None else f"default {policy.default}"
        if record.allowed and effect == "deny":
            violations.append(Violation(kind="over_permissive", record=record, rule=why))
        elif not record.allowed and effect == "allow":
            violations.append(Violation(kind="over_restrictive", record=record, rule=why))
    return AbacReport(policy=policy.name, evaluated=evaluated, violations=tuple(violations))


_DENIED = ("Security event: Admin role check failed", "Security event: Admin role check errored")
_DEBUG = "Security event: Admin role check - Clerk claims debug"


def records_from_events(lines: Sequence[LogLine], roles: Mapping[str, str | None]) -> list[AccessRecord]:
    """The middleware's decisions: a failed or errored check is a denial; a claims debug line whose claim is an
    admin role is an admission (the middleware lets such a user in without another line). ``roles`` maps user ids
    to their real role; a user it does not know keeps the role the event shows."""
    records: list[AccessRecord] = []
    for line in lines:
        context = line.context or {}
        user = str(context.get("userId") or "")
        if not user or line.message not in (*_DENIED, _DEBUG):
            continue
        if line.message == _DEBUG:
            claimed = context.get("claimRole")
            if claimed not in ADMIN_ROLES:
                continue  # the check goes on: a later line (or none, when the database role admits) decides
            allowed, shown = True, str(claimed)
        else:
            allowed, shown = False, str(context.get("role") or "USER")
        records.append(AccessRecord(subject=user, role=roles.get(user) or shown, allowed=allowed,
                                    method=line.request.get("method", "GET"), path=line.request.get("path", "/admin"),
                                    source="security-event", at=line.timestamp))
    return records


def records_from_probe(report: AccessReport) -> list[AccessRecord]:
    """The probe's answers with a known identity; unknown answers (429, not sent, no such route) and routes the
    read-only probe skipped are left out: neither is a decision of the app."""
    return [AccessRecord(subject=report.identity, role=report.role, method=r.method, path=r.route,
                         allowed=r.verdict == "reached", source="probe", status=r.status)
            for r in report.results if r.verdict in ("rejected", "reached")]


def route_of(path: str) -> str:
    """``/api/admin/orders/5b0e…`` -> ``/api/admin/orders/[id]``: the segment after an admin API collection is an id."""
    parts = path.split("/")
    if not path.startswith("/api/admin/") or len(parts) < 5 or parts[4] in ("export",):
        return path
    return "/".join([*parts[:4], "[id]", *parts[5:]])


def _pattern(route: str) -> re.Pattern[str]:
    body = route.removesuffix("/**")
    regex = re.escape(body).replace(re.escape("[id]"), "[^/]+")
    if route.endswith("/**"):
        regex += "(?:/.*)?"
    return re.compile(regex)


def subjects(lines: Sequence[LogLine]) -> list[str]:
    """The user ids of the middleware's decisions, for one role lookup at the identity provider."""
    return sorted({str((line.context or {}).get("userId")) for line in lines
                   if line.message in (*_DENIED, _DEBUG) and (line.context or {}).get("userId")})

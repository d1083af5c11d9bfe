"""Pure decisions of the auth/admin-access runbook (flows/auth_access.py): which admin features to switch off and
which identity setting to fix, from what was read. No Prefect, no I/O."""

from __future__ import annotations

from remediation.models import SetAuthSetting, SetFeatureFlag
from remediation.providers.access_probe import DenialStats
from remediation.providers.platform import FlagChange
from remediation.providers.security import ACCEPTED_ROLE_CLAIMS, IdentityCheck, expected_jwks_url

#: The edge flags that switch kamkmserve's admin area off (the app has no flags of its own,
#: docs/reference/kamkmserve.md §13).
FEATURES = {"admin-console": "the admin pages (/admin)", "admin-api": "the admin API (/api/admin)"}
STATUS_TITLE = "Admin area access issue"


def affected_features(stats: DenialStats, events_breach: bool, threshold_pct: float) -> list[str]:
    """The admin surfaces whose denials breach (the middleware's events speak for the pages); both when the
    breach cannot be pinned on one."""
    chosen = []
    pages, api = stats.pages.forbidden_pct, stats.api.forbidden_pct
    if events_breach or (pages is not None and pages > threshold_pct):
        chosen.append("admin-console")
    if api is not None and api > threshold_pct:
        chosen.append("admin-api")
    return chosen or list(FEATURES)


def disable_plans(service: str, features: list[str], history: list[FlagChange], why: str) -> list[SetFeatureFlag]:
    """``<feature>`` off, remembering it was on (a flag never set is on). A feature already off needs no plan."""
    plans = []
    for name in features:
        changes = [c for c in history if c.name == name]
        if changes and not changes[-1].enabled:
            continue
        what = FEATURES.get(name, name)
        plans.append(SetFeatureFlag(service=service, flag=name, enabled=False, previous=True,
                                    reason=f"switch {what} off while admin access is broken: {why}"))
    return plans


def fix_plans(service: str, check: IdentityCheck) -> tuple[list[SetAuthSetting], list[str]]:
    """The configuration fixes the settings indicate, and the problems left for a human (a secret key must come
    from the identity provider's dashboard into the app's environment: no run may invent one)."""
    if not check.available:
        return [], []
    settings = check.settings
    plans: list[SetAuthSetting] = []
    claim = settings.get("role_claim")
    if isinstance(claim, str) and claim not in ACCEPTED_ROLE_CLAIMS:
        plans.append(SetAuthSetting(
            service=service, setting="role_claim", value=ACCEPTED_ROLE_CLAIMS[0], previous=claim,
            reason=f"the session token carries the role in {claim!r}; the app reads {ACCEPTED_ROLE_CLAIMS[0]!r}"))
    jwks, current = expected_jwks_url(str(settings.get("publishable_key") or "")), settings.get("jwks_url")
    if check.jwks_reachable is False and jwks and isinstance(current, str) and current != jwks:
        plans.append(SetAuthSetting(service=service, setting="jwks_url", value=jwks, previous=current,
                                    reason=f"{current} does not answer; the publishable key's instance serves {jwks}"))
    # Each plan answers the problems that name what it changes; the rest need a human.
    covered = {"role_claim": "claim", "jwks_url": "JWKS"}
    markers = [covered[p.setting] for p in plans]
    return plans, [problem for problem in check.problems if not any(m in problem for m in markers)]

"""The authentication scenarios: an identity configuration change locks the admins out of the admin area.

Registered in ``kamkmserve_sim.scenarios.SCENARIOS``. All start from the same world: v1.4.2 current (promoted three
hours ago, so no deploy precedes the incident), ~200 requests already recorded over the last minute, and admin
traffic on top of the usual mix (``/admin`` pages and ``GET /api/admin/services`` from signed-in users, most of
them admins). At baseline the only denials are customers poking at the admin area (about one admin request in
seven answers 403) and signed-out calls to the admin API (401).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kamkmserve_sim.traffic import HOUR_MS, PREFILL_REQUESTS, PREFILL_SPAN_MS, boot, prefill
from kamkmserve_sim.usermix import Endpoint

if TYPE_CHECKING:
    from kamkmserve_sim.state import SimState

RENAMED_CLAIM = "userRole"
ADMIN_TRAFFIC = (
    Endpoint("GET", "/admin", 2.0, signed_in=0.95, admin=0.85),
    Endpoint("GET", "/admin/orders", 2.0, signed_in=0.95, admin=0.85),
    Endpoint("GET", "/api/admin/services", 1.5, signed_in=0.9, admin=0.85),
)


class AuthMisconfig:
    """``auth-misconfig``: the Clerk session token template is edited and the role claim renamed.

    After ``onset_s`` the session token carries the role as ``userRole`` instead of ``role`` (``role_claim`` in
    ``/_sim/identity``, changed by ``clerk-dashboard``). The app reads ``role`` (docs/reference/kamkmserve.md §6.1),
    finds none and falls back to the kamkmserve_user row, which says USER for every admin but the owner: the middleware
    logs ``Admin role check failed`` for each of them and answers ``403 Forbidden``, the admin API answers
    ``403 {"error":"Forbidden"}``. Setting ``role_claim`` back to ``role`` ends it at once (tokens are re-minted
    every minute; the sim reads the template on every request).
    """

    name = "auth-misconfig"

    def start(self, state: SimState) -> None:
        _start(state)
        state.schedule(state.config.onset_s, lambda: self.onset(state))

    def onset(self, state: SimState) -> None:
        state.identity.set("role_claim", RENAMED_CLAIM, actor="clerk-dashboard")


class AuthMisconfigNoRecovery(AuthMisconfig):
    """``auth-misconfig-no-recovery``: the claim is renamed *and* a bulk metadata edit demotes every admin.

    The identity check finds the renamed claim and fixing it changes nothing: the admins' ``publicMetadata.role``
    now says USER, so they stay locked out until a human restores the roles.
    """

    name = "auth-misconfig-no-recovery"

    def onset(self, state: SimState) -> None:
        super().onset(state)
        state.identity.demote_admins()


class AuthKeyRotated(AuthMisconfig):
    """``auth-key-rotated``: the secret key is rotated in the Clerk dashboard and the app's env keeps the old one.

    Every admin check errors (``Admin role check errored``, ``403 Forbidden``; the admin API answers
    ``500 {"error":"Auth check failed"}``). The fix needs the new secret in the app's environment: no setting
    the remediation may write on its own.
    """

    name = "auth-key-rotated"

    def onset(self, state: SimState) -> None:
        state.identity.rotate_secret_key()


def _start(state: SimState) -> None:
    now = state.clock.now_ms()
    boot(state, now - PREFILL_SPAN_MS - 1000)
    state.releases.deploy("v1.4.2", None, now, created_at_ms=now - 3 * HOUR_MS)
    state.users.add(ADMIN_TRAFFIC)
    prefill(state, PREFILL_REQUESTS, PREFILL_SPAN_MS)

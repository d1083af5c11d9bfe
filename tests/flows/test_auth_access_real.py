"""The auth runbook against the real kamkmserve as captured (default-1a metrics, default-6* admin answers), replayed
over real HTTP on 127.0.0.1, with no platform configured: what the runbook can do against the app as it is."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.auth_access import auth_access
from remediation import composition, runtime
from remediation.models import Mode
from remediation.replay import ReplayServer
from remediation.settings import Settings
from tests.flows.authkit import FAST
from tests.providers.test_access_probe_real import ADMIN_CAPTURES, FIXTURES

pytestmark = pytest.mark.usefixtures("prefect_api")

EXPORT_ANSWER = '500 {"error":"Error connecting to database: TypeError: fetch failed"}'


@pytest.fixture
def real_app(tmp_path: Path) -> Iterator[ReplayServer]:
    # Only these captures are served: the fresh metrics page (kept for every later read) and the admin answers.
    captures = tmp_path / "captures"
    captures.mkdir()
    for name in ("default-1a-metrics-fresh-1.http", *ADMIN_CAPTURES):
        shutil.copyfile(FIXTURES / name, captures / name)
    with ReplayServer(captures) as app:
        yield app


def finding(report: dict[str, Any], check: str) -> dict[str, Any]:
    return next(f for f in report["findings"] if f["check"] == check)


async def test_unknown_denial_signals_still_probe_and_escalate_the_unchecked_orders_export(
    tmp_path: Path, real_app: ReplayServer
) -> None:
    """The real app's denial signals are dead (unknown), yet the run names /api/admin/orders/export and what it
    answered a signed-out caller, escalates without changing anything, never claims recovery, sends only GETs, and
    says truthfully that nobody was paged."""
    providers = composition.connect(Settings(app_url=real_app.url, home=tmp_path, mode=Mode.AUTO))
    with runtime.use(providers):
        report = await auth_access(**FAST)

    assert report["outcome"] == "escalated"
    assert finding(report, "admin_forbidden_rate")["status"] == "unknown"
    holes = finding(report, "admin_route_authorization")
    assert holes["status"] == "breach" and holes["observed"] == 1
    assert holes["detail"].startswith(
        f"/api/admin/orders/export answers without an authorization check ({EXPORT_ANSWER}) to a signed-out caller")
    assert "8 not probed (they serve mutating methods only)" in holes["detail"]
    assert report["escalation"].startswith("/api/admin/orders/export answers without an authorization check")
    assert "the admin denial rate is unknown" in report["escalation"]
    assert "Nobody was paged: no notification channel is configured" in report["escalation"]
    assert report["actions"] == []
    assert report["verification"] is None
    probed = next(e for e in report["evidence"] if e["source"] == "access-probe-signed-out")["items"]
    assert {r["route"] for r in probed if r["verdict"] == "skipped"} >= {"/api/admin/upgrade-role"}
    advice = next(e for e in report["evidence"] if e["source"] == "recommendations")["summary"]
    assert "GET /api/admin/orders/export" in advice and "signed in or not" in advice
    assert {r.method for r in real_app.requests} == {"GET"}

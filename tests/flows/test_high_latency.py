"""Scenario tests for the high-latency runbook: the simulator in-process on virtual time, a real Prefect API, a real
store. The runbook's waits move the simulator (tests.flows.timekit), so no test waits on the wall clock; one test
keeps a real simulator over HTTP on the wall clock (real sockets, answers really slow under the surge).

Windows are compressed to seconds (the production watch is an hour); every replica count and maintenance
prefix asserted here is read back from the simulator's control plane, not from the report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kamkmserve_sim import SimServer

from flows.high_latency import high_latency
from remediation import runtime
from remediation.models import Mode
from remediation.providers.approvals import Scripted
from tests.flows.latencykit import (
    FAST_LATENCY,
    maintenance_now,
    replica_counts,
    replicas,
    replicas_now,
    spike_serving,
    surge_ends_when_shed,
    wait_for_spike,
)
from tests.flows.timekit import VirtualWorld

pytestmark = pytest.mark.usefixtures("prefect_api")

Sim = Callable[..., SimServer]
Build = Callable[..., runtime.Providers]



async def run(providers: runtime.Providers, **params: Any) -> dict[str, Any]:
    with runtime.use(providers):
        return await high_latency(**{**FAST_LATENCY, **params})


def kinds(report: dict[str, Any], state: str | None = None) -> list[str]:
    return [a["kind"] for a in report["actions"] if state is None or a["state"] == state]


def findings(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["check"]: f for f in report["findings"]}


def evidence(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["source"]: e for e in report["evidence"]}


async def test_stands_down_when_latency_is_normal(world: VirtualWorld) -> None:
    world.start("healthy")
    await world.advance(0.6)
    report = await run(world.providers())
    assert report["outcome"] == "stood_down"
    latency = findings(report)["latency_p95"]
    assert latency["status"] == "ok" and latency["observed"] < 500
    assert report["actions"] == []
    assert await replicas_now(world) == 2


async def test_load_spike_scales_up_watches_then_scales_back_down_and_recovers(world: VirtualWorld) -> None:
    """The surge ends during the watch: scale-up applied on the sim, healthy watch, TTL over, scaled back."""
    # The surge outlasts identify with seconds to spare and is over before the watch ends and the TTL expires.
    world.start("load-spike", spike_s=8.0)
    await spike_serving(world)
    with replica_counts(world) as seen:
        report = await run(world.providers(), watch_s=8.0, ttl_s=3)

    assert report["outcome"] == "recovered", report["escalation"]
    found = findings(report)
    assert found["latency_p95"]["status"] == "breach" and found["latency_p95"]["observed"] > 1000
    assert found["slow_request_logs"]["status"] == "breach" and found["slow_request_logs"]["observed"] > 0
    assert found["app_health_avg_response"]["status"] == "breach"
    assert kinds(report, "applied") == ["scale_up", "scale_down"]
    scale_up = report["actions"][0]
    assert scale_up["target"] == "kamkmserve 2->4 replicas for 3s" and scale_up["decision"] == "allow"
    assert scale_up["undo"]["kind"] == "scale_down"
    assert seen[:3] == [2, 4, 2], "the replica count on the platform went 2 -> 4 -> 2"
    assert await replicas_now(world) == 2
    verification = report["verification"]
    assert verification["healthy"] is True
    assert len(verification["samples"]) >= 8 and all(s["healthy"] for s in verification["samples"])
    ev = evidence(report)
    assert ev["recommendation"]["items"] == [{"kind": "capacity"}]
    assert ev["db_operations"]["available"] and ev["dependencies"]["available"] is False
    assert ev["endpoints"]["available"]
    watch_notes = [t for t in report["timeline"] if t["event"].startswith("watch check")]
    assert len(watch_notes) >= 8, "every check of the watch is on the timeline"


async def test_denied_scale_up_in_approve_mode_changes_nothing(world: VirtualWorld) -> None:
    world.start("load-spike")
    await spike_serving(world)
    p = world.providers(answers=[Scripted(approve=False, approver="bob", reason="not now")])
    report = await run(p, mode=Mode.APPROVE)
    assert report["outcome"] == "denied"
    assert "not approved" in report["escalation"]
    (action,) = report["actions"]
    assert action["kind"] == "scale_up" and action["approval"] == "denied" and not action["applied"]
    assert await replicas_now(world) == 2
    assert [a.answer.value for a in p.store.approvals(report["incident_id"])] == ["denied"]


async def test_scale_up_too_small_keeps_latency_high_and_escalates_with_containment_kept(
    world: VirtualWorld
) -> None:
    """max_replicas 3 caps the scale-up at 3: utilisation stays above 1, the watch breaches."""
    world.start("load-spike")
    await spike_serving(world)
    report = await run(world.providers(max_replicas=3), watch_s=6.0, ttl_s=3)
    assert report["outcome"] == "escalated"
    assert kinds(report, "applied") == ["scale_up"]
    assert report["actions"][0]["target"].startswith("kamkmserve 2->3 replicas")
    assert report["verification"]["healthy"] is False
    assert "containment kept" in report["escalation"]
    assert await replicas_now(world) == 3


async def test_latency_back_after_scaling_down_scales_up_again_and_escalates(world: VirtualWorld) -> None:
    """The surge never ends: healthy while scaled, breached again at 2 replicas, so 4 again and escalate."""
    world.start("load-spike")
    await spike_serving(world)
    report = await run(world.providers(), watch_s=2.0, ttl_s=1)
    assert report["outcome"] == "escalated"
    assert kinds(report, "applied") == ["scale_up", "scale_down", "scale_up"]
    assert "breached again" in report["escalation"] and "restored" in report["escalation"]
    assert await replicas_now(world) == 4


async def test_as_is_mode_has_unknown_latency_and_takes_no_action(world: VirtualWorld) -> None:
    world.start("load-spike", request_metrics=False)
    await spike_serving(world)
    report = await run(world.providers())
    assert report["outcome"] == "escalated"
    found = findings(report)
    assert found["latency_p95"]["status"] == "unknown" and found["latency_p95"]["observed"] is None
    assert found["slow_request_logs"]["status"] == "unknown"
    assert found["app_health_avg_response"]["status"] == "unknown"  # it reads 0: nothing measured, not fast
    assert report["actions"] == []
    assert await replicas_now(world) == 2 and await maintenance_now(world) == []


async def test_without_a_capacity_lever_it_sheds_the_hottest_path_and_keeps_it_while_load_persists(
    world: VirtualWorld
) -> None:
    world.start("load-spike")
    await spike_serving(world)
    report = await run(world.providers().with_(capacity=None), watch_s=4.0)
    (enable,) = report["actions"]
    assert enable["kind"] == "enable_maintenance" and enable["applied"]
    (path,) = enable["target"].split(",")
    assert path != "/" and not path.startswith(("/monitoring", "/api/monitoring"))
    hottest = [r["path"] for r in evidence(report)["endpoints"]["items"] if r["path"] != "/"]
    assert path == hottest[0]
    assert await replicas_now(world) == 2  # there was no lever to use
    # One path's share of the users does not bring a fourfold surge under capacity: containment stays.
    assert report["outcome"] == "escalated" and "containment kept" in report["escalation"]
    assert await maintenance_now(world) == [path]


async def test_shed_path_is_lifted_after_a_healthy_watch(world: VirtualWorld) -> None:
    world.start("load-spike")
    await spike_serving(world)
    with surge_ends_when_shed(world):
        report = await run(world.providers().with_(capacity=None), watch_s=4.0)
    assert report["outcome"] == "recovered", report["escalation"]
    assert kinds(report, "applied") == ["enable_maintenance", "disable_maintenance"]
    assert report["verification"]["healthy"] is True
    assert await maintenance_now(world) == []


async def test_dry_run_plans_the_scale_up_and_touches_nothing(world: VirtualWorld) -> None:
    world.start("load-spike")
    await spike_serving(world)
    report = await run(world.providers(), mode=Mode.DRY_RUN)
    assert report["outcome"] == "dry_run"
    assert kinds(report) == ["scale_up"]
    assert report["actions"][0]["decision"] == "deny" and not report["actions"][0]["applied"]
    assert await replicas_now(world) == 2


async def test_over_real_http_on_the_wall_clock_plans_the_scale_up_for_really_slow_answers(
    sim: Sim, providers: Build
) -> None:
    """The identification against a real simulator server: real sockets, answers really slowed by the surge."""
    server = sim("load-spike")
    wait_for_spike(server)
    report = await run(providers(server.url), mode=Mode.DRY_RUN)
    assert report["outcome"] == "dry_run"
    found = findings(report)
    assert found["latency_p95"]["status"] == "breach" and found["latency_p95"]["observed"] > 1000
    assert found["app_health_avg_response"]["status"] == "breach"
    assert kinds(report) == ["scale_up"]
    assert replicas(server) == 2

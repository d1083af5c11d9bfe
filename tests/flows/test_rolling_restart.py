"""Scenario tests for the rolling-restart runbook: the simulator (instances behind a load balancer) in-process on
virtual time, a real Prefect API, a real store. The runbook's waits are what move the simulator (tests.flows.timekit),
so no test waits on the wall clock. Every instance state, restart count and load balancer 5xx asserted here is read
back from the simulator's control plane, not from the report.

The same runbook over real HTTP on the wall clock (platform ``sim``, a real simulator server) is run to recovery by
tests/orchestration/test_paused_approval_survives_restart.py and its siblings, and against moto's EC2/ELB by
tests/flows/test_rolling_restart_aws.py."""

from __future__ import annotations

from typing import Any

import pytest
from kamkmserve_sim.faults import Fault
from kamkmserve_sim.inprocess import InProcessSim

from flows.rolling_restart import rolling_restart
from remediation import drills, runtime
from remediation.models import Mode
from remediation.providers.approvals import Scripted
from tests.flows.restartkit import (
    FAST_RESTART,
    FLEET,
    elb_5xx_of,
    generations_of,
    kinds,
    lb_states_of,
    once,
)
from tests.flows.timekit import VirtualWorld, scripted

pytestmark = pytest.mark.usefixtures("prefect_api")

ALL_IN = {"i-01": "healthy", "i-02": "healthy", "i-03": "healthy"}


async def run(providers: runtime.Providers, **params: Any) -> dict[str, Any]:
    with runtime.use(providers):
        return await rolling_restart(**{**FAST_RESTART, **params})



def providers(world: VirtualWorld, **settings: Any) -> runtime.Providers:
    return world.providers(**settings)


def start(world: VirtualWorld, **overrides: Any) -> InProcessSim:
    return world.start("rolling-restart", fleet=overrides.pop("fleet", FLEET), **overrides)


async def test_a_drill_on_a_preapproved_target_restarts_every_instance_without_asking_and_drops_nothing(
    world: VirtualWorld
) -> None:
    start(world)
    # No scripted answers: asked anything, it would wait for the timeout and deny.
    # An hourly cap of one action: the nine drains, restarts and restores of one rolling restart are one operation.
    p = providers(world, drill_preapproved=["kamkmserve"], max_actions_per_service_per_hour=1)
    approvals = scripted(p)
    report = await run(p, drill=True)

    assert report["outcome"] == "recovered", report["escalation"]
    assert approvals.requests == [], "a drill of a pre-approved service asks nobody"
    assert await generations_of(world) == {"i-01": 1, "i-02": 1, "i-03": 1}
    assert await lb_states_of(world) == ALL_IN
    assert await elb_5xx_of(world) == 0, "drained first: the load balancer never answered 5xx"
    assert kinds(report, "applied") == ["drain_instance", "restart_instance", "restore_instance"] * 3
    restarts = [a for a in report["actions"] if a["kind"] == "restart_instance"]
    assert all(a["decision"] == "allow" and a["target"].endswith("(drained)") for a in restarts)
    assert [a["target"] for a in report["actions"] if a["kind"] == "drain_instance"] == [
        f"i-0{n} out of the load balancer" for n in (1, 2, 3)]
    assert report["verification"]["healthy"] is True
    batches = next(e for e in report["evidence"] if e["source"] == "batches")["items"]
    assert [b["instances"] for b in batches] == [["i-01"], ["i-02"], ["i-03"]]
    assert all(b["drain_s"] >= 0 and b["restart_s"] > 0 and b["stable_s"] > 0 for b in batches)
    (record,) = drills.load(p.settings.home)
    assert record.runbook == "rolling-restart" and record.success and record.trigger == "flow"
    assert record.time_to_recover_s is not None and record.time_to_recover_s > 0


async def test_a_production_restart_asks_once_before_draining_anything(world: VirtualWorld) -> None:
    start(world)
    p = providers(world, answers=[Scripted(approve=True, approver="alice", reason="CHG-7 rotate secrets")],
                  drill_preapproved=["kamkmserve"])  # not a drill: still asks
    approvals = scripted(p)
    report = await run(p)

    assert report["outcome"] == "recovered", report["escalation"]
    (request,) = approvals.requests
    assert "rolling restart of 3 instance(s)" in request.description
    assert "i-01 then i-02 then i-03" in request.description
    events = [t["event"] for t in report["timeline"]]
    asked = next(i for i, e in enumerate(events) if e.startswith("waiting for approval"))
    first_drain = next(i for i, e in enumerate(events) if e.startswith("plan drain_instance"))
    assert asked < first_drain, "the question comes before anything is drained"
    assert [a.answer.value for a in p.store.approvals(report["incident_id"])] == ["approved"]
    assert await generations_of(world) == {"i-01": 1, "i-02": 1, "i-03": 1} and await lb_states_of(world) == ALL_IN


async def test_a_denied_restart_drains_and_restarts_nothing(world: VirtualWorld) -> None:
    start(world)
    p = providers(world, answers=[Scripted(approve=False, approver="bob", reason="peak hour")])
    report = await run(p)

    assert report["outcome"] == "denied"
    assert "nothing was drained or restarted" in report["escalation"]
    assert report["actions"] == []
    assert await generations_of(world) == {"i-01": 0, "i-02": 0, "i-03": 0}
    assert await lb_states_of(world) == ALL_IN


async def test_an_slo_breach_mid_drill_stops_it_puts_the_drained_instance_back_and_escalates(
    world: VirtualWorld
) -> None:
    """A bad release goes out the moment i-02 is drained: the readings taken while it restarts breach, the run
    stops, puts i-02 back, leaves i-03 alone and escalates."""
    start(world, fleet=FLEET.model_copy(update={"restart_s": 3.0}))
    p = providers(world, drill_preapproved=["kamkmserve"])

    def bad_release(sim: InProcessSim) -> None:  # what POST /_sim/releases does, from inside the world
        sim.state.releases.deploy("v1.5.0", Fault(error_share=0.8, paths=("/",)), sim.state.clock.now_ms())

    with once(world, lambda fleet: fleet["i-02"]["lb_state"] != "healthy", bad_release) as fired:
        report = await run(p, drill=True)
    assert fired.is_set()

    assert report["outcome"] == "escalated"
    assert "stopped in batch 2 of 3" in report["escalation"] and "SLO breached" in report["escalation"]
    assert "put back: i-02" in report["escalation"] and "not restarted: i-03" in report["escalation"]
    assert (await generations_of(world))["i-03"] == 0, "the drill never reached i-03"
    assert await lb_states_of(world) == ALL_IN, "every instance is back in the load balancer"
    assert kinds(report, "applied")[-1] == "restore_instance"
    (record,) = drills.load(p.settings.home)
    assert not record.success and record.outcome == "escalated"


async def test_an_instance_that_comes_back_broken_stops_the_drill_before_the_next_one(world: VirtualWorld) -> None:
    start(world)
    broken = await world.request("POST", "/_sim/instances/faults",
                                 json={"after_restart": {"error_share": 1.0, "paths": ["/"]}})
    assert broken.status_code == 200
    report = await run(providers(world, drill_preapproved=["kamkmserve"]), drill=True)

    assert report["outcome"] == "escalated"
    assert "stopped in batch 1 of 3" in report["escalation"]
    assert "i-01 answers 5xx" in report["escalation"] and "i-01 just restarted: a likely cause" in report["escalation"]
    assert await generations_of(world) == {"i-01": 1, "i-02": 0, "i-03": 0}


async def test_as_is_mode_cannot_read_stability_so_nothing_is_restarted(world: VirtualWorld) -> None:
    """kamkmserve today records no requests: the SLO is unknown, and a restart that cannot be verified is not
    started."""
    start(world, request_metrics=False)
    report = await run(providers(world, drill_preapproved=["kamkmserve"]), drill=True)

    assert report["outcome"] == "escalated"
    baseline = next(f for f in report["findings"] if f["check"] == "slo_baseline")
    assert baseline["status"] == "unknown" and "no request records" in baseline["detail"]
    assert "cannot be read" in report["escalation"]
    assert report["actions"] == []
    assert await generations_of(world) == {"i-01": 0, "i-02": 0, "i-03": 0} and await lb_states_of(world) == ALL_IN


async def test_a_fleet_with_an_instance_already_out_is_not_restarted(world: VirtualWorld) -> None:
    start(world)
    await world.request("POST", "/_sim/instances/i-03/drain")
    report = await run(providers(world, drill_preapproved=["kamkmserve"]), drill=True)

    assert report["outcome"] == "escalated"
    assert "not every instance is in service" in report["escalation"] and "i-03" in report["escalation"]
    assert report["actions"] == [] and await generations_of(world) == {"i-01": 0, "i-02": 0, "i-03": 0}


async def test_a_single_instance_service_has_no_instances_lever_and_escalates(world: VirtualWorld) -> None:
    """Every other scenario is the app on Vercel: one instance, no load balancer to drain it from."""
    world.start("healthy")
    report = await run(providers(world))
    assert report["outcome"] == "escalated"
    assert "could not be listed" in report["escalation"] and report["actions"] == []


async def test_dry_run_plans_every_step_and_touches_nothing(world: VirtualWorld) -> None:
    start(world)
    report = await run(providers(world), mode=Mode.DRY_RUN)
    assert report["outcome"] == "dry_run"
    assert kinds(report) == ["drain_instance", "restart_instance", "restore_instance"] * 3
    assert {a["decision"] for a in report["actions"]} == {"deny"} and not any(a["applied"] for a in report["actions"])
    assert await generations_of(world) == {"i-01": 0, "i-02": 0, "i-03": 0} and await lb_states_of(world) == ALL_IN


async def test_a_restart_the_hourly_instance_cap_cannot_fit_is_not_started(world: VirtualWorld) -> None:
    """Three instances to restart; with room for two restarts this hour the cap would stop the run half-way, so it
    does not start."""
    start(world)
    report = await run(providers(world, drill_preapproved=["kamkmserve"], max_restart_instances_per_hour=2),
                       drill=True)
    assert report["outcome"] == "escalated"
    budget = next(f for f in report["findings"] if f["check"] == "action_budget")
    assert budget["status"] == "breach" and (budget["observed"], budget["threshold"]) == (3, 2)
    assert "0 of 2 instance restarts (REMEDIATE_MAX_RESTART_INSTANCES_PER_HOUR)" in budget["detail"]
    assert "needs room for 3 instances and the hourly caps leave 2 " in report["escalation"] and report["actions"] == []
    assert await generations_of(world) == {"i-01": 0, "i-02": 0, "i-03": 0}

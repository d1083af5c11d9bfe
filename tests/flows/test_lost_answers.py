"""Lever calls whose answer is lost, through the elevated-5xx runbook on the simulator (Prefect, store).

The simulator runs in-process on virtual time (``tests.flows.timekit``) and its control plane sits behind a lossy
link (``tests.helpers.lossy_proxy.LossyLink``) that forwards a mutation and then loses its answer (the client's read
timeout), or refuses every request. Three cases, for maintenance and rollback:

* applied, answer lost: the gate reads the platform back and the ledger says ``applied``, with the evidence;
* never sent (connection refused): ``failed``, "not applied", and nothing is on;
* answer lost and the read-back refused too: ``unknown``, the run escalates naming the undo, and the action is
  listed as dangling.

Every test also checks the two figures the fix is about: no mutation reached the platform twice, and nothing is in
effect on the platform without a ledger row (``applied`` or ``unknown``) that names its undo.

One test keeps the real thing: a simulator server over HTTP on the wall clock behind a socket proxy
(``LossyProxy``) that holds a real answer until the client's real read timeout and then closes its listener.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kamkmserve_sim import SimServer

from flows.elevated_error_rate import elevated_error_rate
from remediation import runtime
from remediation.models import ActionState, Approval, EnableMaintenance, Mode, Rollback
from remediation.providers.approvals import ApprovalRequest, Scripted, ScriptedApprovals
from remediation.providers.capabilities import Ballot, Clock
from remediation.store.rows import ActionRow
from tests.flows.flowkit import FAST, sim_state, wait_for_bad_release
from tests.flows.timekit import VirtualWorld
from tests.helpers.lossy_proxy import LossyLink, LossyProxy

pytestmark = pytest.mark.usefixtures("prefect_api")

Sim = Callable[..., SimServer]
Build = Callable[..., runtime.Providers]
#: The control plane client's timeout: the socket proxy holds a lost answer until this runs out (the in-process
#: link raises the ReadTimeout at once).
TIMEOUT_S = 1.0
MUTATIONS = ("POST", "PUT", "PATCH", "DELETE")
#: What loses the answers: the in-process link (virtual time) or the socket proxy (wall clock).
Lossy = LossyLink | LossyProxy



def lossy(world: VirtualWorld) -> tuple[LossyLink, Callable[..., runtime.Providers]]:
    """The link in front of the world's control plane, and a builder of providers whose control plane is behind it
    (the app's own pages are not)."""
    link = LossyLink(world.inside().url)

    def build(**settings: Any) -> runtime.Providers:
        return world.providers_through(link.wrap, sim_url=link.url, http_timeout_s=TIMEOUT_S, **settings)

    return link, build


@pytest.fixture
def proxy_for() -> Iterator[Callable[[SimServer], LossyProxy]]:
    started: list[LossyProxy] = []

    def start(server: SimServer) -> LossyProxy:
        proxy = LossyProxy(server.url).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


class RefuseOnApproval(ScriptedApprovals):
    """Scripted approvals; when the step whose title contains ``title`` is asked, the platform goes unreachable:
    its read-only check has just passed, so the mutation that follows is refused before it is sent."""

    def __init__(self, answers: list[Scripted], proxy: Lossy, title: str, clock: Clock | None = None) -> None:
        super().__init__(answers, clock=clock)
        self.proxy, self.title = proxy, title

    async def request(self, req: ApprovalRequest, ballot: Ballot) -> Approval:
        if self.title in req.title:
            self.proxy.refuse_connections()
        return await super().request(req, ballot)


def approve(times: int = 2) -> list[Scripted]:
    return [Scripted(approve=True, approver="alice", reason="INC-1") for _ in range(times)]


async def run(providers: runtime.Providers, **params: Any) -> dict[str, Any]:
    with runtime.use(providers):
        return await elevated_error_rate(**{**FAST, **params})


def action(report: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = [a for a in report["actions"] if a["kind"] == kind]
    return found


def applied_twice(proxy: Lossy) -> int:
    """Mutations that reached the platform more than once with the same body (none of these runs repeats one)."""
    sent = [(f.method, f.path, repr(f.body)) for f in proxy.forwarded if f.method in MUTATIONS]
    return len(sent) - len(set(sent))


def left_on_without_record(state: dict[str, Any], rows: list[ActionRow], bad_release: str) -> list[str]:
    """What is in effect on the platform with no ledger row that may have put it there and names its undo."""
    possibly_in_effect = (ActionState.APPLIED, ActionState.UNKNOWN)
    problems = []
    for prefix in state["maintenance"]:
        touching = [r for r in rows if prefix in getattr(r.plan, "path_prefixes", ())]
        last = touching[-1] if touching else None
        if not (last is not None and isinstance(last.plan, EnableMaintenance) and last.state in possibly_in_effect
                and last.plan.undo() is not None):
            problems.append(f"maintenance on {prefix}")
    current = state["current_release"]["id"]
    if current != bad_release and not any(isinstance(r.plan, Rollback) and r.plan.to_release == current
                                           and r.state in possibly_in_effect for r in rows):
        problems.append(f"release {current} current")
    return problems


def figures(proxy: Lossy, providers: runtime.Providers, state: dict[str, Any], report: dict[str, Any],
            bad_release: str) -> tuple[int, int]:
    """``state``: the platform's, read after the run."""
    rows = providers.store.actions(report["incident_id"])
    return applied_twice(proxy), len(left_on_without_record(state, rows, bad_release))


async def bad_release(world: VirtualWorld) -> str:
    await world.bad_release_serving()
    return str((await world.state())["current_release"]["id"])


# -- applied, answer lost: read back as applied ---------------------------------------------------------------------

async def test_maintenance_applied_with_its_answer_lost_is_recorded_applied_from_the_read_back(
    world: VirtualWorld,
) -> None:
    world.start("bad-release")
    bad = await bad_release(world)
    proxy, providers = lossy(world)
    proxy.lose_answer("POST", "/_sim/maintenance", when=lambda body: body["enabled"] is True)
    p = providers(answers=approve())
    report = await run(p)

    assert proxy.answers_lost == 1
    maintenance = action(report, "enable_maintenance")
    assert maintenance["state"] == "applied", maintenance["error"]
    prefixes = ", ".join(p.store.actions(report["incident_id"])[0].plan.path_prefixes)  # type: ignore[union-attr]
    assert maintenance["read_back"] == f"prefixes under maintenance now: {prefixes}"
    assert "ReadTimeout" in maintenance["error"]
    # Recorded applied, the run went on as if the answer had come: lifted it to verify, and recovered.
    assert report["outcome"] == "recovered", report["escalation"]
    assert action(report, "disable_maintenance")["state"] == "applied"
    assert figures(proxy, p, await world.state(), report, bad) == (0, 0)


async def test_a_rollback_applied_with_its_answer_lost_is_recorded_applied_from_the_read_back(
    world: VirtualWorld,
) -> None:
    world.start("bad-release")
    bad = await bad_release(world)
    proxy, providers = lossy(world)
    proxy.lose_answer("POST", "/_sim/releases/rollback")
    p = providers(answers=approve())
    report = await run(p)

    assert proxy.answers_lost == 1
    rollback = action(report, "rollback")
    assert rollback["state"] == "applied", rollback["error"]
    assert rollback["read_back"].startswith("current release now: v1.4.2 (")
    assert report["outcome"] == "recovered", report["escalation"]
    assert (await world.state())["current_release"]["version"] == "v1.4.2"
    assert len(proxy.mutations("POST", "/_sim/releases/rollback")) == 1
    assert figures(proxy, p, await world.state(), report, bad) == (0, 0)


# -- never sent: failed, not applied ---------------------------------------------------------------------------------

async def test_maintenance_refused_before_it_was_sent_is_failed_not_applied_and_nothing_is_on(
    world: VirtualWorld,
) -> None:
    world.start("bad-release")
    bad = await bad_release(world)
    proxy, providers = lossy(world)
    p = providers(mode=Mode.APPROVE)
    p = p.with_(approvals=RefuseOnApproval(approve(), proxy, "enable_maintenance", clock=p.clock))
    report = await run(p)

    maintenance = action(report, "enable_maintenance")
    assert maintenance["state"] == "failed" and maintenance["read_back"] is None
    assert maintenance["error"].startswith("not applied: the request never reached the platform")
    assert "ConnectError" in maintenance["error"]
    assert proxy.mutations("POST", "/_sim/maintenance") == []
    assert (await world.state())["maintenance"] == []
    assert report["outcome"] == "escalated" and "nothing contained" in report["escalation"]
    assert figures(proxy, p, await world.state(), report, bad) == (0, 0)


async def test_a_rollback_refused_before_it_was_sent_is_failed_not_applied_and_the_release_stays(
    world: VirtualWorld,
) -> None:
    world.start("bad-release")
    bad = await bad_release(world)
    proxy, providers = lossy(world)
    p = providers()
    p = p.with_(approvals=RefuseOnApproval(approve(), proxy, "rollback", clock=p.clock))
    report = await run(p)

    rollback = action(report, "rollback")
    assert rollback["state"] == "failed"
    assert rollback["error"].startswith("not applied: the request never reached the platform")
    assert proxy.mutations("POST", "/_sim/releases/rollback") == []
    assert (await world.state())["current_release"]["id"] == bad
    assert report["outcome"] == "escalated" and "rollback" in report["escalation"]
    assert figures(proxy, p, await world.state(), report, bad) == (0, 0)


# -- answer lost and the read-back refused: unknown, escalated with the undo, dangling -------------------------------

async def test_maintenance_whose_answer_and_read_back_are_lost_stays_unknown_and_escalates_with_its_undo(
    world: VirtualWorld,
) -> None:
    world.start("bad-release")
    bad = await bad_release(world)
    proxy, providers = lossy(world)
    proxy.lose_answer("POST", "/_sim/maintenance", when=lambda body: body["enabled"] is True, then_refuse=True)
    p = providers(answers=approve())
    report = await run(p)

    maintenance = action(report, "enable_maintenance")
    assert maintenance["state"] == "unknown"
    assert "read-back could not tell" in maintenance["error"] and "ConnectError" in maintenance["read_back"]
    assert (await world.state())["maintenance"], "it did take effect: only the answer was lost"
    assert report["outcome"] == "escalated"
    assert f"action {maintenance['id']}" in report["escalation"]
    assert f"undo: disable_maintenance {maintenance['target']}" in report["escalation"]
    assert "containment may be on" in report["escalation"]
    assert [r.id for r in p.store.dangling_actions()] == [maintenance["id"]]
    assert figures(proxy, p, await world.state(), report, bad) == (0, 0)


async def test_over_real_http_on_the_wall_clock_maintenance_whose_answer_and_read_back_are_lost_stays_unknown(
    sim: Sim, providers: Build, proxy_for: Callable[[SimServer], LossyProxy],
) -> None:
    """The case above against a real simulator server behind a real socket proxy, on the wall clock: the answer is
    really held until the client's own read timeout runs out, and the read-back is really refused (the proxy closed
    its listener), so what the in-process link imitates is what httpx raises over a network."""
    server = sim("bad-release")
    wait_for_bad_release(server)
    bad = str(sim_state(server)["current_release"]["id"])
    proxy = proxy_for(server)
    proxy.lose_answer("POST", "/_sim/maintenance", when=lambda body: body["enabled"] is True, then_refuse=True)
    p = providers(server.url, sim_url=proxy.url, http_timeout_s=TIMEOUT_S, answers=approve())
    report = await run(p)

    maintenance = action(report, "enable_maintenance")
    assert proxy.answers_lost == 1
    assert maintenance["state"] == "unknown"
    assert "read-back could not tell" in maintenance["error"] and "ConnectError" in maintenance["read_back"]
    assert sim_state(server)["maintenance"], "it did take effect: only the answer was lost"
    assert report["outcome"] == "escalated"
    assert f"action {maintenance['id']}" in report["escalation"]
    assert f"undo: disable_maintenance {maintenance['target']}" in report["escalation"]
    assert "containment may be on" in report["escalation"]
    assert [r.id for r in p.store.dangling_actions()] == [maintenance["id"]]
    assert figures(proxy, p, sim_state(server), report, bad) == (0, 0)


async def test_a_rollback_whose_answer_and_read_back_are_lost_stays_unknown_and_escalates_with_its_undo(
    world: VirtualWorld,
) -> None:
    world.start("bad-release")
    bad = await bad_release(world)
    proxy, providers = lossy(world)
    proxy.lose_answer("POST", "/_sim/releases/rollback", then_refuse=True)
    p = providers(answers=approve())
    report = await run(p)

    rollback = action(report, "rollback")
    assert rollback["state"] == "unknown" and rollback["undo"]["to_release"] == bad
    assert (await world.state())["current_release"]["version"] == "v1.4.2", "it did take effect"
    assert report["outcome"] == "escalated"
    assert "may or may not have taken effect" in report["escalation"]
    undo = f"undo: rollback {rollback['undo']['from_version']} -> {rollback['undo']['to_version']}"
    assert f"action {rollback['id']}" in report["escalation"] and undo in report["escalation"]
    assert [r.id for r in p.store.dangling_actions()] == [rollback["id"]]
    assert figures(proxy, p, await world.state(), report, bad) == (0, 0)

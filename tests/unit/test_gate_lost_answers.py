"""The gate when a lever call raises: a lost answer is recorded ``unknown`` first, then settled by reading the
platform back; a request that never left is ``failed`` with no read; a read-back that fails too leaves it
``unknown``, listed as dangling with its undo; a plan that failed part-way is read back, never recorded failed."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from remediation import gate
from remediation.models import (
    ActionRecord,
    ActionState,
    Alert,
    EnableMaintenance,
    Mode,
    Phase,
    Severity,
    Verdict,
)
from remediation.providers.platform import PlatformError
from remediation.reconcile import RunState, reconcile
from remediation.runtime import Providers
from remediation.settings import Settings
from remediation.store import Store

PLAN = EnableMaintenance(service="svc", path_prefixes=("/api/cart", "/api/orders"))
REQUEST = httpx.Request("POST", "http://edge/_sim/maintenance")


def read_timeout() -> PlatformError:
    try:
        raise httpx.ReadTimeout("timed out", request=REQUEST)
    except httpx.ReadTimeout as exc:
        error = PlatformError(f"POST /maintenance: ReadTimeout: {exc}")
        error.__cause__ = exc
        return error


def refused() -> PlatformError:
    error = PlatformError("POST /maintenance: ConnectError: [Errno 111] Connection refused")
    error.__cause__ = httpx.ConnectError("[Errno 111] Connection refused", request=REQUEST)
    return error


class Edge:
    """Maintenance at an edge whose answers can be lost. ``apply_then`` raises after the change landed (a lost
    answer), ``fail_before`` raises before anything changed, both per prefix; ``reads`` records the ledger state
    each read-back saw."""

    def __init__(self, store: Store, *, apply_then: dict[str, Exception] | None = None,
                 fail_before: dict[str, Exception] | None = None, read_fails: bool = False) -> None:
        self.store = store
        self.on: list[str] = []
        self.apply_then = apply_then or {}
        self.fail_before = fail_before or {}
        self.read_fails = read_fails
        self.calls: list[str] = []
        self.reads: list[list[str]] = []

    async def set_maintenance(self, prefix: str, enabled: bool) -> bool:
        self.calls.append(prefix)
        if prefix in self.fail_before:
            raise self.fail_before[prefix]
        if enabled and prefix not in self.on:
            self.on.append(prefix)
        if prefix in self.apply_then:
            raise self.apply_then[prefix]
        return True

    async def maintenance_prefixes(self) -> list[str]:
        self.reads.append([a.state.value for a in self.store.actions("inc-1")])
        if self.read_fails:
            raise refused()
        return list(self.on)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'r.db'}")
    s.migrate()
    s.open_incident(incident_id="inc-1", runbook="rb", service="svc", severity=Severity.SEV2, mode=Mode.AUTO,
                    alert=Alert(name="a", service="svc"))
    s.set_flow_run("inc-1", "run-1")
    return s


async def apply(store: Store, edge: Edge) -> ActionRecord:
    providers = Providers(settings=Settings(), metrics=None, deploys=None, edge=edge, logs=None,  # type: ignore[arg-type]
                          errors=None, approvals=None, store=store)  # type: ignore[arg-type]
    return await gate.apply(ActionRecord(phase=Phase.CONTAIN, plan=PLAN, decision=Verdict.ALLOW), "inc-1", providers)


async def test_an_applied_change_whose_answer_was_lost_is_recorded_unknown_then_applied_on_the_read_back(
    store: Store,
) -> None:
    edge = Edge(store, apply_then={"/api/orders": read_timeout()})
    done = await apply(store, edge)
    assert edge.reads == [["unknown"]], "recorded unknown before reading back"
    (row,) = store.actions("inc-1")
    assert done.state is row.state is ActionState.APPLIED
    assert row.read_back == "prefixes under maintenance now: /api/cart, /api/orders"
    assert row.error is not None and row.error.startswith("applied (read back: ") and "ReadTimeout" in row.error
    assert store.dangling_actions() == []


async def test_a_lost_answer_does_not_stop_the_plans_other_calls_and_the_whole_is_read_back(store: Store) -> None:
    edge = Edge(store, apply_then={"/api/cart": read_timeout()})  # the first prefix's answer is lost
    done = await apply(store, edge)
    assert edge.calls == ["/api/cart", "/api/orders"], "each prefix sent once, the second despite the first"
    assert done.state is ActionState.APPLIED and edge.on == ["/api/cart", "/api/orders"]


async def test_after_a_lost_answer_a_refused_call_stops_the_plan_and_it_is_still_read_back(store: Store) -> None:
    edge = Edge(store, apply_then={"/api/cart": read_timeout()}, fail_before={"/api/orders": refused()})
    done = await apply(store, edge)
    assert edge.reads == [["unknown"]], "read back, although the last failure was 'never sent'"
    assert done.state is ActionState.UNKNOWN and done.read_back is not None
    assert done.read_back.startswith("partly in effect: prefixes under maintenance now: /api/cart")


async def test_a_request_refused_before_it_was_sent_is_failed_not_applied_without_a_read_back(store: Store) -> None:
    edge = Edge(store, fail_before={"/api/cart": refused()})
    done = await apply(store, edge)
    assert done.state is ActionState.FAILED and edge.reads == [] and edge.on == []
    assert done.error is not None and done.error.startswith("not applied: the request never reached the platform")
    assert store.actions("inc-1")[0].read_back is None


async def test_a_lost_answer_read_back_as_not_in_effect_is_failed_with_the_evidence(store: Store) -> None:
    # Both sent, both answers lost, and the edge applied neither.
    edge = Edge(store, fail_before={"/api/cart": read_timeout(), "/api/orders": read_timeout()})
    done = await apply(store, edge)
    assert done.state is ActionState.FAILED
    assert done.error is not None and done.error.startswith("not applied (read back: prefixes under maintenance "
                                                            "now: none)")


async def test_a_plan_refused_part_way_is_read_back_and_half_in_effect_stays_unknown(store: Store) -> None:
    edge = Edge(store, fail_before={"/api/orders": refused()})  # /api/cart went on, /api/orders was never sent
    done = await apply(store, edge)
    assert edge.on == ["/api/cart"] and done.state is ActionState.UNKNOWN
    assert done.error is not None and "after maintenance on /api/cart" in done.error
    assert done.read_back is not None and done.read_back.startswith("partly in effect")


async def test_a_lost_answer_whose_read_back_fails_stays_unknown_and_the_reconciler_lists_it_with_its_undo(
    store: Store,
) -> None:
    edge = Edge(store, apply_then={"/api/cart": read_timeout()}, read_fails=True)
    done = await apply(store, edge)
    assert done.state is ActionState.UNKNOWN, "never guessed"
    assert edge.calls == ["/api/cart", "/api/orders"], "each call sent once, none repeated"
    assert done.error is not None and "read-back could not tell" in done.error and "Connection refused" in done.error
    assert [r.id for r in store.dangling_actions()] == [done.id]
    (found,) = reconcile(store, lambda ids: dict.fromkeys(ids, RunState(type="CRASHED", name="Crashed")))
    (dangling,) = found.dangling
    assert f"action {done.id}" in dangling and "undo: disable_maintenance /api/cart,/api/orders" in dangling

"""`remediate demo --interactive`: a wrong approver name is asked again, with who may approve; never sent to the run."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import typer
from rich.console import Console

from remediation import demo
from remediation.demo import DemoOptions
from remediation.store import PendingStep


def _step() -> PendingStep:
    now = datetime.now(UTC)
    return PendingStep(action_id="act-1", incident_id="inc-1", flow_run_id="run-1", step="s", runbook="rb",
                       service="kamkmserve", severity="sev2", phase="remediate", summary="rollback", risk="destructive",
                       why="w", evidence=(), undo="u", statement=None, needed=1, requested_at=now,
                       deadline=now + timedelta(minutes=5))


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool, str]]:
    """The answers the demo delivered to the run: (name, approve, reason)."""
    delivered: list[tuple[str, bool, str]] = []

    def answer(run_id: str, name: str, approve: bool, reason: str, store: Any) -> None:
        delivered.append((name, approve, reason))

    monkeypatch.setattr(demo.approval_client, "answer", answer)
    return delivered


def _answer_from_stdin(monkeypatch: pytest.MonkeyPatch, typed: str) -> tuple[int, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(typed))
    out = io.StringIO()
    console = Console(file=out, width=100)
    providers = SimpleNamespace(settings=SimpleNamespace(approvers=["demo.oncall", "demo.lead"]), store=None)
    answers = demo._answer("run-1", _step(), 0, DemoOptions(interactive=True), providers,  # type: ignore[arg-type]
                           console, lambda q: typer.prompt(q, default=""))
    return answers, out.getvalue()


def test_a_wrong_name_is_asked_again_listing_who_may_approve(
    monkeypatch: pytest.MonkeyPatch, sent: list[tuple[str, bool, str]]
) -> None:
    answers, said = _answer_from_stdin(monkeypatch, "demo.oncal\n\ndemo.oncall\ny\nlooks right\n")
    assert sent == [("demo.oncall", True, "looks right")]
    assert answers == 1
    assert "'demo.oncal' may not approve here; who may: demo.oncall, demo.lead" in said
    assert "'' may not approve here" in said


def test_after_three_wrong_names_nothing_is_sent_and_the_step_is_asked_about_again(
    monkeypatch: pytest.MonkeyPatch, sent: list[tuple[str, bool, str]]
) -> None:
    answers, said = _answer_from_stdin(monkeypatch, "a\nb\nc\n")
    assert sent == []
    assert answers == 0  # the watch loop asks again while the step waits
    assert said.count("may not approve here") == 3

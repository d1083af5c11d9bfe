"""The on-call path in a real browser: start a runbook from the Prefect UI's Custom run form, answer its approval
in the Resume dialog, and see the incident end as the answer says.

Against the operator's stack (``prefect server start`` with its UI, ``remediate serve``, the simulator in a bad
release) driven through headless Chromium. Screenshots of the form and the dialog are saved in each test's tmp
dir; ``REMEDIATE_UPDATE_SCREENSHOTS=1`` also copies them into docs/images/.
"""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.services import services_required

if importlib.util.find_spec("playwright") is None and not services_required():
    pytest.skip("playwright is not installed (pip install -e '.[dev]')", allow_module_level=True)

from playwright.sync_api import expect

from tests.browser import prefect_ui as ui
from tests.browser.uikit import ENROLLED, RUNBOOK, UiStack, keep_screenshot, wait_until
from tests.flows.flowkit import wait_for_bad_release
from tests.helpers.runbook_form_text import expected_form

pytestmark = pytest.mark.browser

GOOD_RELEASE = "v1.4.2"  # the bad-release scenario's last healthy release
BAD_RELEASE = "v1.5.0"  # the release the scenario promotes, and the rollback undoes


def start_fast_custom_run(page: Any, stack: UiStack, run_name: str, screenshots: Path | None = None) -> str:
    """Fill the Custom run form as an on-call engineer would for a quick run: mode auto, short readings."""
    stack.reset_scenario("bad-release")
    wait_for_bad_release(stack.sim)
    ui.open_custom_run(page, RUNBOOK)
    # The form is the runbook's options model, flat: every parameter with its title and help text as before.
    for title, help_text, _ in expected_form(RUNBOOK).values():
        ui.expect_field(page, title, help_text)
    expect(ui.field(page, "Service").get_by_role("textbox")).to_have_value("kamkmserve")
    ui.choose(page, "Mode", "auto", tab="Mode")
    ui.fill_number(page, "Seconds between readings", 0.3)
    ui.fill_number(page, "Healthy readings to recover", 3, tab="int")
    ui.fill_number(page, "Seconds between verification readings", 0.5, tab="float")
    ui.fill_number(page, "Verification deadline (s)", 30, tab="float")
    if screenshots is not None:
        shot = screenshots / "custom-run-form.png"
        page.get_by_role("main").screenshot(path=str(shot))
        keep_screenshot(shot)
    return ui.submit_custom_run(page, run_name)


def incident_of(stack: UiStack, run_id: str) -> dict[str, Any]:
    rows = [row for row in stack.incidents() if row["flow_run_id"] == run_id]
    assert len(rows) == 1, f"expected one incident for run {run_id}: {stack.incidents()}"
    return rows[0]


def test_an_operator_starts_a_custom_run_and_approves_the_rollback_in_the_ui_and_the_service_recovers(
    page: Any, ui_stack: UiStack, tmp_path: Path
) -> None:
    run_id = start_fast_custom_run(page, ui_stack, f"ui-approve-{uuid.uuid4().hex[:6]}", screenshots=tmp_path)

    ui.wait_for_state(page, "Paused", timeout_s=90)
    dialog = ui.open_resume_dialog(page)
    # The dialog shows the plan above the form: what changes, on what, risk, why, undo, who may approve.
    for shown in ("rollback v1.5.0", "kamkmserve", "destructive", "Why:", "Undo:", "Approvers: alice, bob, carol"):
        expect(dialog).to_contain_text(shown)
    # A bare Resume is not an answer: the server rejects it and the run stays paused.
    ui.resume(dialog)
    expect(page.get_by_text("'decision' is a required property").first).to_be_visible()
    expect(dialog).to_be_visible()

    ui.answer(dialog, approve=True, name="alice", reason="INC-42: bad release v1.5.0")
    shot = tmp_path / "approval-dialog.png"
    dialog.screenshot(path=str(shot))
    keep_screenshot(shot)
    ui.resume(dialog)
    expect(dialog).to_be_hidden(timeout=15_000)

    ui.wait_for_state(page, "Recovered", timeout_s=90)  # the run's final state names its outcome
    shot = tmp_path / "run-recovered.png"
    page.screenshot(path=str(shot), clip={"x": 260, "y": 0, "width": 1020, "height": 110})  # the run header
    keep_screenshot(shot)
    incident = incident_of(ui_stack, run_id)
    assert (incident["outcome"], incident["mode"], incident["status"]) == ("recovered", "auto", "closed")
    assert ui_stack.sim_state()["current_release"]["version"] == GOOD_RELEASE


def test_an_operator_denies_the_rollback_in_the_ui_and_the_incident_ends_denied(
    page: Any, ui_stack: UiStack, tmp_path: Path
) -> None:
    run_id = start_fast_custom_run(page, ui_stack, f"ui-deny-{uuid.uuid4().hex[:6]}")

    ui.wait_for_state(page, "Paused", timeout_s=90)
    dialog = ui.open_resume_dialog(page)
    ui.answer(dialog, approve=False, name="bob", reason="peak traffic: roll back by hand after 18:00")
    ui.resume(dialog)
    expect(dialog).to_be_hidden(timeout=15_000)

    ui.wait_for_state(page, "Denied", timeout_s=90)  # the run's final state names its outcome
    shot = tmp_path / "run-denied.png"
    page.screenshot(path=str(shot), clip={"x": 260, "y": 0, "width": 1020, "height": 110})  # the run header
    keep_screenshot(shot)
    incident = incident_of(ui_stack, run_id)
    assert (incident["outcome"], incident["status"]) == ("denied", "closed")
    assert ui_stack.sim_state()["current_release"]["version"] != GOOD_RELEASE  # nothing was rolled back


def test_an_enrolled_approver_is_refused_with_a_wrong_code_and_approves_with_the_current_code_in_the_ui(
    page: Any, ui_stack: UiStack, tmp_path: Path
) -> None:
    run_id = start_fast_custom_run(page, ui_stack, f"ui-code-{uuid.uuid4().hex[:6]}")

    ui.wait_for_state(page, "Paused", timeout_s=90)
    first_pause = wait_until(lambda: _paused(ui_stack, run_id), "the run paused for approval")
    incident_id = incident_of(ui_stack, run_id)["id"]  # opened before the run asks for approval
    dialog = ui.open_resume_dialog(page)
    ui.answer(dialog, approve=True, name=ENROLLED, code=ui_stack.wrong_code(ENROLLED), reason="INC-43: typo'd code")
    ui.resume(dialog)
    expect(dialog).to_be_hidden(timeout=15_000)

    # The run judged the answer: refused for the code, recorded on the incident, nothing applied, asked again.
    refused = wait_until(lambda: [a for a in ui_stack.approvals(incident_id) if a.answer.value == "refused"],
                         "the wrong code's refusal in the incident's approvals")
    assert [(a.approver, a.via) for a in refused] == [(ENROLLED, "form")]
    assert refused[0].reason.startswith("wrong or expired code"), refused[0].reason
    assert any(e.event == f"approval refused by {ENROLLED}" and e.detail.startswith("wrong or expired code")
               for e in ui_stack.timeline(incident_id)), ui_stack.timeline(incident_id)
    wait_until(lambda: _paused(ui_stack, run_id, other_than=first_pause), "the run paused again after the refusal")
    assert ui_stack.sim_state()["current_release"]["version"] == BAD_RELEASE  # nothing rolled back
    assert incident_of(ui_stack, run_id)["status"] != "closed"

    page.reload()
    ui.wait_for_state(page, "Paused", timeout_s=30)
    dialog = ui.open_resume_dialog(page)
    expect(dialog).to_contain_text(f"Approvers: alice, bob, {ENROLLED}")
    # The code is read off the "authenticator" right before it is typed: it is good for this 30 s step (±1).
    ui.answer(dialog, approve=True, name=ENROLLED, code=lambda: ui_stack.code(ENROLLED),
              reason="INC-43: bad release v1.5.0")
    shot = tmp_path / "approval-dialog-code.png"
    dialog.screenshot(path=str(shot))
    keep_screenshot(shot)
    ui.resume(dialog)
    expect(dialog).to_be_hidden(timeout=15_000)

    ui.wait_for_state(page, "Recovered", timeout_s=90)  # the run's final state names its outcome
    incident = incident_of(ui_stack, run_id)
    assert (incident["outcome"], incident["status"]) == ("recovered", "closed")
    assert ui_stack.sim_state()["current_release"]["version"] == GOOD_RELEASE
    answers = [(a.answer.value, a.approver) for a in ui_stack.approvals(incident_id)]
    assert answers == [("refused", ENROLLED), ("approved", ENROLLED)], answers


def _paused(stack: UiStack, run_id: str, other_than: str | None = None) -> str | None:
    """The id of the run's current Paused state (None while it is not paused, or still paused in ``other_than``)."""
    state = stack.flow_run_state(run_id)
    if state["type"] != "PAUSED" or state["id"] == other_than:
        return None
    return str(state["id"])

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
from tests.browser.uikit import RUNBOOK, UiStack, keep_screenshot
from tests.flows.flowkit import wait_for_bad_release

pytestmark = pytest.mark.browser

GOOD_RELEASE = "v1.4.2"  # the bad-release scenario's last healthy release


def start_fast_custom_run(page: Any, stack: UiStack, run_name: str, screenshots: Path | None = None) -> str:
    """Fill the Custom run form as an on-call engineer would for a quick run: mode auto, short readings."""
    stack.reset_scenario("bad-release")
    wait_for_bad_release(stack.sim)
    ui.open_custom_run(page, RUNBOOK)
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
    for shown in ("rollback v1.5.0", "kamkmserve", "destructive", "Why:", "Undo:", "Approvers: alice, bob"):
        expect(dialog).to_contain_text(shown)
    # A bare Resume is not an answer: the server rejects it and the run stays paused.
    ui.resume(dialog)
    expect(page.get_by_text("'approver' is a required property").first).to_be_visible()
    expect(dialog).to_be_visible()

    ui.answer(dialog, approve=True, name="alice", reason="INC-42: bad release v1.5.0")
    shot = tmp_path / "approval-dialog.png"
    dialog.screenshot(path=str(shot))
    keep_screenshot(shot)
    ui.resume(dialog)
    expect(dialog).to_be_hidden(timeout=15_000)

    ui.wait_for_state(page, "Completed", timeout_s=90)
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

    ui.wait_for_state(page, "Completed", timeout_s=90)
    incident = incident_of(ui_stack, run_id)
    assert (incident["outcome"], incident["status"]) == ("denied", "closed")
    assert ui_stack.sim_state()["current_release"]["version"] != GOOD_RELEASE  # nothing was rolled back

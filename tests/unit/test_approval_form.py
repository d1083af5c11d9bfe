"""The Resume form reads as a choice: a required "Decision" (approve / deny, no default), and required fields that
say what is missing. Checked against the schema Prefect stores and validates a resume with."""

from __future__ import annotations

from typing import Any

import pytest
from prefect.utilities import schema_tools

from remediation.providers.approvals import ApprovalRequest
from remediation.providers.prefect_approvals import ApprovalInput, form_for, run_input

STEP = "inc-1/act-1/0123456789abcdef"


def schema() -> dict[str, Any]:
    form = form_for(ApprovalRequest(incident_id="inc-1", title="t", description="d", timeout_s=60, step=STEP))
    return form.model_json_schema()


def refusal(answer: dict[str, Any]) -> str:
    """What the Prefect server answers a resume with this input (it validates before the run sees anything)."""
    try:
        schema_tools.validate(answer, schema(), raise_on_error=True)
    except schema_tools.ValidationError as exc:
        return str(exc)
    return ""


def test_the_decision_is_a_required_select_titled_decision_with_approve_and_deny_and_no_default() -> None:
    decision = schema()["properties"]["decision"]
    assert decision["title"] == "Decision" and decision["enum"] == ["approve", "deny"]
    assert "default" not in decision
    assert "decision" in schema()["required"]
    assert "approve" not in schema()["properties"]  # no switch whose untouched "off" would mean deny


def test_the_required_fields_say_they_are_required_and_what_goes_in_them() -> None:
    properties = schema()["properties"]
    assert properties["approver"]["description"].startswith("Required: your enrolled approver name")
    assert properties["reason"]["description"].startswith("Required:")
    assert properties["decision"]["description"].startswith("Required.")
    assert set(schema()["required"]) == {"decision", "approver", "reason"}  # the step is prefilled


@pytest.mark.parametrize(("answer", "message"), [
    ({}, "'decision' is a required property"),
    ({"step": STEP}, "'decision' is a required property"),
    ({"decision": "approve"}, "'approver' is a required property"),
    ({"decision": "approve", "approver": "alice"}, "'reason' is a required property"),
    ({"decision": "yes", "approver": "alice", "reason": "r"}, "'yes' is not one of ['approve', 'deny']"),
    # an answer from an older client (the old switch): refused, never taken for a deny
    ({"approve": True, "approver": "alice", "reason": "r"}, "('approve' was unexpected)"),
])
def test_an_incomplete_resume_is_refused_by_the_server_naming_what_is_missing(answer: dict[str, Any],
                                                                               message: str) -> None:
    assert message in refusal(answer)


@pytest.mark.parametrize("approve", [True, False])
def test_what_remediate_approve_and_slack_send_passes_the_form_and_reads_back_as_their_answer(approve: bool) -> None:
    sent = run_input(approve=approve, approver="alice", reason="INC-7", step=STEP, code="123456", answer_id="ans-1")
    assert refusal(sent) == ""
    answer = ApprovalInput.model_validate(sent).answer()
    assert (answer.approve, answer.approver, answer.reason, answer.code, answer.step) == \
        (approve, "alice", "INC-7", "123456", STEP)

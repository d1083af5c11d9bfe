"""The "Custom run" form of every catalogued runbook reads well: a title and help text per parameter, enums.

The schema checked is the one Prefect registers for a deployment (``Flow.parameters``, which ``serve`` and
``prefect deploy`` both send); the Prefect UI renders it as the form. See ``remediation/forms.py`` for the pattern.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic.fields import FieldInfo

from remediation import catalog
from remediation.models import Mode, Severity

RUNBOOKS = sorted(catalog.RUNBOOKS)


def form_schema(runbook: str) -> dict[str, Any]:
    schema: dict[str, Any] = catalog.load(runbook).parameters.model_dump_for_openapi()
    return schema


def resolve(schema: dict[str, Any], prop: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives a property offers, with ``$ref``s to definitions resolved."""
    options = prop.get("anyOf") or [prop]
    resolved = []
    for option in options:
        ref = option.get("$ref")
        resolved.append(schema["definitions"][ref.rsplit("/", 1)[-1]] if ref else option)
    return resolved


@pytest.mark.parametrize("runbook", RUNBOOKS)
def test_every_parameter_has_a_human_title_and_a_description(runbook: str) -> None:
    properties = form_schema(runbook)["properties"]
    assert properties, f"{runbook} has no parameters?"
    # Prefect titles a field with the parameter's name unless told otherwise: that is not a human title.
    untitled = sorted(name for name, prop in properties.items() if prop.get("title") in (None, "", name))
    undescribed = sorted(name for name, prop in properties.items() if not str(prop.get("description", "")).strip())
    assert (untitled, undescribed) == ([], []), (
        f"{runbook}: parameters without a title {untitled} or description {undescribed}; give their fields in the "
        "runbook's options model a Field(title=..., description=...) (remediation.forms)")


@pytest.mark.parametrize("runbook", RUNBOOKS)
def test_mode_offers_exactly_the_three_modes_and_defaults_to_the_configured_mode(runbook: str) -> None:
    schema = form_schema(runbook)
    mode = schema["properties"]["mode"]
    enums = [option["enum"] for option in resolve(schema, mode) if "enum" in option]
    assert enums == [["dry_run", "approve", "auto"]]
    assert [m.value for m in Mode] == enums[0]
    assert mode["default"] is None  # None: REMEDIATE_MODE (intake passes its own mode)


@pytest.mark.parametrize("runbook", RUNBOOKS)
def test_severity_is_a_choice_of_the_four_severities(runbook: str) -> None:
    schema = form_schema(runbook)
    severity = schema["properties"]["severity"]
    assert [o["enum"] for o in resolve(schema, severity) if "enum" in o] == [[s.value for s in Severity]]
    assert severity["default"] in {s.value for s in Severity}


@pytest.mark.parametrize("runbook", RUNBOOKS)
def test_a_deployment_run_that_omits_parameters_gets_plain_default_values(runbook: str) -> None:
    """Prefect fills omitted parameters from the signature: a ``= Field(...)`` default would reach the flow as a
    FieldInfo object (quick runs, triggers and intake omit most parameters)."""
    flow = catalog.load(runbook)
    filled = flow.validate_parameters({})
    assert not [name for name, value in filled.items() if isinstance(value, FieldInfo)]
    properties = form_schema(runbook)["properties"]
    assert {name: prop.get("default") for name, prop in properties.items()} == {
        name: (value.value if isinstance(value, Mode | Severity) else value) for name, value in filled.items()}


def test_the_error_rate_form_names_its_thresholds_in_words() -> None:
    properties = form_schema("elevated-error-rate")["properties"]
    assert properties["threshold_pct"]["title"] == "5xx threshold (%)"
    assert properties["threshold_pct"]["default"] == 1.0
    assert "REMEDIATE_VERIFY_DEADLINE_S" in properties["verify_deadline_s"]["description"]

"""Each runbook's parameters are one pydantic model (remediation.forms); Prefect still sees flat parameters.

The expected form text (tests/helpers/runbook_form_text.py) is the product's UI text, collected from the flat flow
signatures before the models replaced them: every title, description and default must still be in the schema
Prefect builds for the flow (``parameter_schema``, which ``serve`` and ``prefect deploy`` register and the Custom
run form renders). A parameter dict as intake, the event triggers, schedules, the reconciler or an older run's
stored parameters spell it (flat names) must reach the runbook as its model.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from prefect.utilities.callables import parameter_schema
from pydantic import BaseModel, Field, ValidationError

from remediation import catalog
from remediation.forms import RunOptions, form_order, runbook_flow
from remediation.models import Mode, Severity
from tests.helpers.runbook_form_text import DEFAULTS, expected_form

RUNBOOKS = sorted(catalog.RUNBOOKS)


def schema(runbook: str) -> dict[str, Any]:
    generated: dict[str, Any] = parameter_schema(catalog.load(runbook).fn).model_dump_for_openapi()
    return generated


def options_model(runbook: str) -> type[RunOptions]:
    model: type[RunOptions] = catalog.load(runbook).fn.options
    return model


def test_the_expected_text_covers_every_runbook() -> None:
    assert sorted(DEFAULTS) == RUNBOOKS


@pytest.mark.parametrize("runbook", RUNBOOKS)
def test_the_form_keeps_every_title_description_and_default(runbook: str) -> None:
    properties = schema(runbook)["properties"]
    expected = expected_form(runbook)
    actual = {name: (prop.get("title"), prop.get("description"), prop.get("default"))
              for name, prop in properties.items()}
    assert actual == expected


@pytest.mark.parametrize("runbook", RUNBOOKS)
def test_the_form_starts_with_service_mode_severity_and_ends_with_what_intake_and_the_reconciler_set(
        runbook: str) -> None:
    properties = schema(runbook)["properties"]
    order = [name for name, _ in sorted(properties.items(), key=lambda item: item[1]["position"])]
    assert order[:3] == ["service", "mode", "severity"]
    tail = [name for name in RunOptions.TAIL if name in properties]
    assert order[-len(tail):] == tail
    assert order == form_order(options_model(runbook))


@pytest.mark.parametrize("runbook", RUNBOOKS)
def test_flat_parameters_as_every_starter_spells_them_reach_the_runbook_as_its_model(runbook: str) -> None:
    flow = catalog.load(runbook)
    model = options_model(runbook)
    # alert intake (remediation/intake/service.py): strings, as JSON carries them
    intake = {"service": "kamkmserve", "severity": "sev1", "alert_name": "HighErrorRate", "incident_id": "inc-1",
              "mode": "auto"}
    options = model.model_validate(flow.validate_parameters(intake))
    assert (options.severity, options.mode, options.incident_id) == (Severity.SEV1, Mode.AUTO, "inc-1")
    assert options.alert_name == "HighErrorRate"
    # an event trigger (prefect.yaml): every value a string, incident id included
    trigger = {"service": "kamkmserve", "severity": "sev3", "alert_name": "X", "incident_id": "inc-2"}
    assert model.model_validate(flow.validate_parameters(trigger)).severity is Severity.SEV3
    # a finished run's stored parameters (JSON of every value), as the reconciler's continuation copies them
    stored = json.loads(json.dumps(flow.serialize_parameters(flow.validate_parameters({}))))
    assert stored == DEFAULTS[runbook]
    if "continue_at_recover" in stored:
        stored |= {"incident_id": "inc-3", "continue_at_recover": True}
    options = model.model_validate(flow.validate_parameters(stored))
    assert options.model_dump(mode="json") == stored


@pytest.mark.parametrize("runbook", RUNBOOKS)
def test_an_unknown_or_mistyped_parameter_is_refused_before_the_runbook_starts(runbook: str) -> None:
    flow = catalog.load(runbook)
    with pytest.raises(Exception, match="threshold_typo"):
        flow.validate_parameters({"threshold_typo": 1})
    with pytest.raises(Exception, match="severity"):
        flow.validate_parameters({"severity": "sev9"})
    with pytest.raises(ValidationError):
        options_model(runbook)(threshold_typo=1)  # type: ignore[call-arg]


def test_a_field_without_form_text_is_refused_when_the_runbook_is_defined() -> None:
    class Untitled(RunOptions):
        knob: int = Field(1, description="help text but no title")

    with pytest.raises(TypeError, match=r"Untitled\.knob needs a title and a description"):
        @runbook_flow(Untitled, name="untitled", description="x")
        async def untitled(options: Untitled) -> None: ...


def test_the_runbook_body_gets_the_model_and_prefect_the_flat_parameters() -> None:
    class Knobs(RunOptions):
        knob: int = Field(1, title="Knob", description="A knob.")

    seen: list[BaseModel] = []

    @runbook_flow(Knobs, name="knobs", description="x")
    async def knobs(options: Knobs) -> int:
        seen.append(options)
        return options.knob

    assert list(knobs.parameters.properties) == ["service", "mode", "severity", "knob", "approval_timeout_s",
                                                 "alert_name", "incident_id", "lock_timeout_s"]
    assert knobs.parameters.properties["knob"]["title"] == "Knob"
    assert knobs.validate_parameters({"knob": "3"})["knob"] == 3

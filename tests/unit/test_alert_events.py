"""The alert event's id is derived from the incident: every emission of one alert is one event to Prefect."""

from __future__ import annotations

import uuid

from remediation.orchestration.events import alert_event, alert_event_id


def test_the_same_incident_and_runbook_give_the_same_event_id_in_every_emission() -> None:
    first = alert_event("rolling-restart", service="kamkmserve", severity="sev3", alert_name="A", incident_id="inc-1")
    again = alert_event("rolling-restart", service="web", severity="sev1", alert_name="B", incident_id="inc-1")

    assert first["id"] == again["id"] == alert_event_id("rolling-restart", "inc-1")
    assert uuid.UUID(first["id"]).version == 5


def test_another_incident_or_runbook_is_another_event() -> None:
    ids = {alert_event_id("rolling-restart", "inc-1"), alert_event_id("rolling-restart", "inc-2"),
           alert_event_id("elevated-error-rate", "inc-1")}

    assert len(ids) == 3


def test_the_id_is_stable_across_releases_and_processes() -> None:
    """Emitters of different releases must agree, or a re-sent alert would be a new event: the namespace is fixed."""
    assert alert_event_id("rolling-restart", "inc-1") == "50636618-e6ca-546b-9fbe-a367811a908e"

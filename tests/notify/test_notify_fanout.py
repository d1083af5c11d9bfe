"""The fan-out: every channel at once, each bounded; a failure comes back as data, redacted, never raised."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

import pytest

from remediation.notify import EventKind, FanOut, IncidentEvent, build, selected_channels
from remediation.notify.redact import REDACTED, protect, redact
from remediation.settings import Settings

Event = Callable[..., IncidentEvent]


class Recorder:
    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[IncidentEvent] = []

    async def send(self, event: IncidentEvent) -> None:
        self.seen.append(event)

    def secrets(self) -> Iterable[str]:
        return []


class Broken:
    name = "broken"

    async def send(self, event: IncidentEvent) -> None:
        raise RuntimeError("token=brokenSECRET123 rejected")

    def secrets(self) -> Iterable[str]:
        return ["brokenSECRET123"]


class Hanging:
    name = "hanging"

    async def send(self, event: IncidentEvent) -> None:
        await asyncio.Event().wait()

    def secrets(self) -> Iterable[str]:
        return []


async def test_a_broken_and_a_hanging_channel_do_not_stop_the_others(event: Event) -> None:
    recorder = Recorder()
    fan = FanOut([Broken(), Hanging(), recorder], timeout_s=0.2)
    deliveries = await fan.publish(event(EventKind.ESCALATED))
    assert [(d.channel, d.ok) for d in deliveries] == [("broken", False), ("hanging", False), ("recorder", True)]
    assert len(recorder.seen) == 1
    assert "brokenSECRET123" not in deliveries[0].error and REDACTED in deliveries[0].error
    assert "0.2s" in deliveries[1].error


async def test_blocking_publish_works_from_inside_a_running_event_loop(event: Event) -> None:
    recorder = Recorder()
    deliveries = FanOut([recorder, Broken()], timeout_s=1.0).publish_blocking(event(EventKind.FINISHED))
    assert [d.ok for d in deliveries] == [True, False]
    assert len(recorder.seen) == 1


def test_registered_secrets_are_scrubbed_from_httpx_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    protect(["https://hooks.example/services/T/B/logSECRETzzzz"])
    with caplog.at_level(logging.INFO, logger="httpx"):
        logging.getLogger("httpx").info('HTTP Request: %s %s "%s"', "POST",
                                        "https://hooks.example/services/T/B/logSECRETzzzz", "HTTP/1.1 200 OK")
    assert "logSECRETzzzz" not in caplog.text and REDACTED in caplog.text
    assert redact("short") == "short"


def test_channels_follow_credentials_unless_listed(tmp_path: object) -> None:
    assert selected_channels(Settings(notify_channels=None)) == []
    with_slack = Settings(slack_webhook_url="http://x/services/T/B/abcdefgh", pagerduty_routing_key="k" * 32)
    assert selected_channels(with_slack) == ["slack", "pagerduty"]
    assert selected_channels(with_slack.model_copy(update={"notify_channels": ["pagerduty"]})) == ["pagerduty"]
    assert build(Settings()) is None
    with pytest.raises(ValueError, match="unknown notification channel"):
        selected_channels(Settings(notify_channels=["email"]))

"""Notifications: Slack (timeline and approval requests), Statuspage (public status of SEV-1/2 incidents),
PagerDuty Events v2 (pages, driven by the escalation ladder). See docs/configuration.md.

:func:`build` makes the fan-out a run holds as ``Providers.notifier`` from settings; nothing connects until the
first event. ``REMEDIATE_NOTIFY_CHANNELS`` unset means every channel whose credentials are set.
"""

from __future__ import annotations

from remediation.choices import CHANNELS
from remediation.notify.notifier import (
    Delivery,
    EventKind,
    FanOut,
    IncidentEvent,
    Notifications,
    Notifier,
    Tier,
    failures,
)
from remediation.notify.pagerduty import PagerDutyEvents
from remediation.notify.probe import ProbeResult
from remediation.notify.slack import SlackWebhook
from remediation.notify.state import MemoryNotifyState, NotifyState
from remediation.notify.statuspage import StatuspageClient, StatuspageNotifier
from remediation.providers.capabilities import Clock
from remediation.settings import Settings

__all__ = [
    "CHANNELS",
    "Delivery",
    "EventKind",
    "FanOut",
    "IncidentEvent",
    "MemoryNotifyState",
    "Notifications",
    "Notifier",
    "NotifyState",
    "PagerDutyEvents",
    "ProbeResult",
    "SlackWebhook",
    "StatuspageClient",
    "StatuspageNotifier",
    "Tier",
    "build",
    "channel",
    "failures",
    "selected_channels",
]


def selected_channels(settings: Settings) -> list[str]:
    """The channels in use: as configured, or (unset) those whose credentials are present."""
    if settings.notify_channels is not None:
        unknown = sorted(set(settings.notify_channels) - set(CHANNELS))
        if unknown:
            raise ValueError(f"unknown notification channel(s) {', '.join(unknown)}; known: {', '.join(CHANNELS)}")
        return [c for c in CHANNELS if c in settings.notify_channels]
    present = {"slack": settings.slack.webhook_url is not None,
               "statuspage": settings.statuspage.api_key is not None and bool(settings.statuspage.page_id),
               "pagerduty": settings.pagerduty.routing_key is not None}
    return [c for c in CHANNELS if present[c]]


def _attempt_timeout(settings: Settings) -> float:
    # Three attempts must fit in the fan-out's bound, or retries would never happen before it cuts them off.
    return min(settings.http_timeout_s, max(settings.notify_timeout_s / 3, 0.2))


def channel(name: str, settings: Settings, clock: Clock | None = None, state: NotifyState | None = None) -> Notifier:
    """One channel. ``state``: where PagerDuty and Statuspage keep what they did per incident (the store, so that a
    restarted process carries on); None keeps it in this process only."""
    timeout = _attempt_timeout(settings)
    if name == "slack":
        # The signing secret means the Slack app has interactivity and the run can check a click: offer buttons.
        return SlackWebhook(settings.slack.webhook_url, timeout_s=timeout, clock=clock,
                            approve_buttons=settings.slack.signing_secret is not None)
    if name == "statuspage":
        client = StatuspageClient(settings.statuspage.api_key, settings.statuspage.page_id,
                                  base_url=settings.statuspage.api_url, timeout_s=timeout, clock=clock)
        return StatuspageNotifier(client, settings.statuspage.component_ids, state=state)
    if name == "pagerduty":
        return PagerDutyEvents({Tier.PRIMARY: settings.pagerduty.routing_key,
                                Tier.SECONDARY: settings.pagerduty.secondary_routing_key,
                                Tier.DUTY_MANAGER: settings.pagerduty.duty_manager_routing_key},
                               events_url=settings.pagerduty.events_url, timeout_s=timeout, clock=clock, state=state)
    raise ValueError(f"unknown notification channel '{name}'")


def build(settings: Settings, clock: Clock | None = None, state: NotifyState | None = None) -> FanOut | None:
    """The run's notifications, or None when no channel is in use (runs then notify nobody, by configuration)."""
    names = selected_channels(settings)
    if not names:
        return None
    return FanOut([channel(name, settings, clock, state) for name in names], timeout_s=settings.notify_timeout_s)

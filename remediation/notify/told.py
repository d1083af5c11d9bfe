"""Who an escalation actually reached, in words: the report must not say someone was paged when nobody was.

The sentence is built from the deliveries of the escalation event itself (:class:`~remediation.notify.notifier.
Delivery`, one per channel), never from what the configuration intends: a PagerDuty channel whose trigger failed
paged nobody, and no channel at all means nobody heard of it unless a person is watching the run.
"""

from __future__ import annotations

from collections.abc import Sequence

from remediation.notify.notifier import Delivery

#: What a delivered escalation means on each channel (PagerDuty triggers the primary's routing key; Slack posts).
_DELIVERED = {"pagerduty": "paged the primary on-call through PagerDuty", "slack": "posted to Slack"}
_LABEL = {"pagerduty": "PagerDuty page to the primary on-call", "slack": "Slack post",
          "statuspage": "Statuspage update"}
#: The settings that would have made someone hear of it.
CONFIGURE = ("set REMEDIATE_PAGERDUTY_ROUTING_KEY to page the primary on-call, REMEDIATE_SLACK_WEBHOOK_URL to post "
             "to the incident channel")
PAGERDUTY_KEY = "REMEDIATE_PAGERDUTY_ROUTING_KEY"


def escalation_notice(deliveries: Sequence[Delivery] | None, *, ack: str, dry_run: bool = False) -> str:
    """One sentence for the end of an escalation. ``deliveries`` None or empty: no channel is configured; ``ack``
    is the severity's acknowledgement promise (e.g. ``SEV-2, ack SLA 10 min``), claimed only when a page went out."""
    if dry_run:
        return "Nobody was paged: a dry run notifies nobody."
    if not deliveries:
        return f"Nobody was paged: no notification channel is configured ({CONFIGURE})."
    page = next((d for d in deliveries if d.channel == "pagerduty"), None)
    if page is not None and page.ok:
        lead = f"Paged the primary on-call through PagerDuty ({ack})"
    elif page is not None:
        lead = f"Nobody was paged: the {_LABEL['pagerduty']} failed ({page.error or 'no detail'})"
    else:
        lead = f"Nobody was paged: PagerDuty is not configured (set {PAGERDUTY_KEY})"
    rest: list[str] = []
    for d in deliveries:
        if d.channel == "pagerduty":
            continue
        if not d.ok:
            rest.append(f"the {_LABEL.get(d.channel, d.channel)} failed ({d.error or 'no detail'})")
        elif d.channel in _DELIVERED:
            rest.append(_DELIVERED[d.channel])
        elif d.channel != "statuspage":  # the public page tells customers, not responders
            rest.append(f"notified {d.channel}")
    return "; ".join([lead, *rest]) + "."

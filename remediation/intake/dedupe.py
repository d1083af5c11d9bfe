"""Identities: the label fingerprint (as Alertmanager computes it) and the incident key.

The incident key is what makes "one incident per problem" hold across deliveries, retries, HA peers and
receiver processes: it is derived only from what routing decided (runbook, service) and the source's
grouping identity, never from delivery details, and the store enforces one open incident per key. Across
keys the store goes one step further: while an alert-opened incident of (runbook, service) is open, an alert
of another source or group routed there attaches to it (one outage seen by Alertmanager and by Sentry).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

_FNV_OFFSET, _FNV_PRIME, _MASK64 = 14695981039346656037, 1099511628211, (1 << 64) - 1


def label_fingerprint(labels: Mapping[str, str]) -> str:
    """Alertmanager's alert fingerprint: 64-bit FNV-1a over the sorted labels, as 16 hex digits.

    Used when a sender gives no fingerprint, so generic alerts with the same labels as an Alertmanager
    alert get the same identity (prometheus/common ``model/signature.go``; see docs/reference/integrations.md §1.3).
    """
    acc = _FNV_OFFSET
    for name in sorted(labels):
        for byte in name.encode() + b"\xff" + labels[name].encode() + b"\xff":
            acc = ((acc ^ byte) * _FNV_PRIME) & _MASK64
    return format(acc, "016x")


def incident_key(runbook: str, service: str, group: str) -> str:
    """sha256 hex of (runbook, service, grouping fingerprint); JSON-encoded so no separator is ambiguous."""
    material = json.dumps([runbook, service, group], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(material.encode()).hexdigest()

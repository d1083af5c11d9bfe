"""IP blocks in the Vercel Firewall, with the expiry bookkeeping the firewall itself does not have.

Endpoints (Vercel REST API, security): ``GET /v1/security/firewall/config/active?projectId=`` (the deployed
configuration; ``ips[{id, hostname, ip, notes, action}]``; 404 when the project never saved one) and ``PATCH
/v1/security/firewall/config?projectId=`` with ``{"action": "ip.insert", "id": null, "value": {"hostname", "ip",
"notes", "action": "deny"}}``, ``{"action": "ip.update", "id", "value"}`` or ``{"action": "ip.remove", "id"}``.

IP blocking rules never expire on their own, so the TTL is ours: a rule we create carries ``remediate;
expires=<ISO>; <reason>`` in its notes, and every call first removes our rules whose expiry has passed
(:meth:`VercelFirewallBlocks.expire_due` does only that, for a scheduled sweeper). Rules someone else made are
never changed or removed: blocking an address they already deny leaves their (permanent) rule as it is, and
unblocking it answers False. Addresses are validated here (a typo must not become a firewall rule).

Only ``ip`` blocks live here; users and sessions are Clerk's (``clerk_blocks``), joined by ``RoutedBlocks``.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from datetime import datetime, timedelta
from typing import Any

from remediation.providers.platform import PlatformError
from remediation.providers.security import Block, BlockKind
from remediation.providers.vercel import VercelApi

_MARK = "remediate"
_NOTES = re.compile(r"^remediate; expires=(?P<expires>\S+)(?:; (?P<reason>.*))?$", re.DOTALL)
_MAX_NOTES = 200


def normal_ip(value: str) -> str:
    """One address as written by ``ipaddress``; a network as ``a.b.c.0/24``. Raises PlatformError otherwise."""
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError as exc:
        raise PlatformError(f"{value!r} is not an IP address or network") from exc
    return str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)


def _notes(expires_at: datetime, reason: str) -> str:
    text = f"{_MARK}; expires={expires_at.isoformat().replace('+00:00', 'Z')}; {reason}"
    return text[:_MAX_NOTES]


def _ours(rule: dict[str, Any]) -> tuple[datetime, str] | None:
    match = _NOTES.match(str(rule.get("notes") or ""))
    if match is None:
        return None
    try:
        expires = datetime.fromisoformat(match["expires"].replace("Z", "+00:00"))
    except ValueError:
        return None
    return expires, match["reason"] or ""


class VercelFirewallBlocks:
    """:class:`~remediation.providers.capabilities.ActorBlocks` for ``ip`` blocks (deny rules), Vercel Firewall."""

    def __init__(self, api: VercelApi, *, hostname: str = "*") -> None:
        self.api = api
        self.hostname = hostname  # "*": every domain of the project

    async def blocks(self) -> list[Block]:
        rules = await self._live_rules()
        return [_block(rule) for rule in rules if rule.get("action") == "deny"]

    async def block(self, kind: BlockKind, value: str, ttl_s: int, reason: str) -> Block:
        if kind != "ip":
            raise PlatformError(f"the Vercel Firewall blocks IP addresses, not a {kind}; user and session blocks "
                                "are Clerk's")
        address = normal_ip(value)
        expires = self.api.clock.now() + timedelta(seconds=ttl_s)
        existing = self._find(await self._live_rules(), address)
        if existing is not None and _ours(existing) is None:
            return _block(existing)  # someone else's permanent rule already denies it: leave it alone
        if existing is not None and not reason:
            reason = (_ours(existing) or (expires, ""))[1]  # a repeat without a reason keeps the first one's
        rule = {"hostname": self.hostname, "ip": address, "notes": _notes(expires, reason), "action": "deny"}
        if existing is None:
            await self._patch({"action": "ip.insert", "id": None, "value": rule})
        else:
            await self._patch({"action": "ip.update", "id": existing["id"],
                               "value": {**rule, "hostname": existing.get("hostname") or self.hostname}})
        return Block(kind="ip", value=address, expires_at=expires, reason=reason)

    async def unblock(self, kind: BlockKind, value: str) -> bool:
        if kind != "ip":
            return False
        existing = self._find(await self._live_rules(), normal_ip(value))
        if existing is None or _ours(existing) is None:
            return False
        await self._patch({"action": "ip.remove", "id": existing["id"]})
        return True

    async def expire_due(self) -> list[str]:
        """Remove our rules whose expiry has passed; returns the addresses unblocked."""
        rules = await self._rules()
        return await self._expire(rules)

    async def _live_rules(self) -> list[dict[str, Any]]:
        rules = await self._rules()
        removed = set(await self._expire(rules))
        return [r for r in rules if not (_ours(r) and str(r.get("ip")) in removed)]

    async def _expire(self, rules: list[dict[str, Any]]) -> list[str]:
        now = self.api.clock.now()
        removed = []
        for rule in rules:
            mine = _ours(rule)
            if mine is not None and mine[0] <= now and rule.get("id"):
                await self._patch({"action": "ip.remove", "id": rule["id"]})
                removed.append(str(rule.get("ip")))
        return removed

    def _find(self, rules: list[dict[str, Any]], address: str) -> dict[str, Any] | None:
        for rule in rules:
            try:
                same = normal_ip(str(rule.get("ip", ""))) == address
            except PlatformError:
                continue
            if same and rule.get("action") == "deny":
                return rule
        return None

    async def _rules(self) -> list[dict[str, Any]]:
        response = await self.api.rest.request(
            "GET", "/v1/security/firewall/config/active",
            params=self.api.scoped({"projectId": self.api.project()}), accept=(404,))
        if response.status_code == 404:
            return []  # the project never saved a firewall configuration: nothing is blocked
        try:
            body = response.json()
        except ValueError as exc:
            raise PlatformError("vercel GET firewall config: not JSON") from exc
        ips = body.get("ips") if isinstance(body, dict) else None
        if ips is None:
            return []
        if not isinstance(ips, list):
            raise PlatformError(f"vercel GET firewall config: ips is not a list: {str(ips)[:200]}")
        return [rule for rule in ips if isinstance(rule, dict)]

    async def _patch(self, change: dict[str, Any]) -> None:
        await self.api.send("PATCH", "/v1/security/firewall/config", change,
                            params={"projectId": self.api.project()})


def _block(rule: dict[str, Any]) -> Block:
    mine = _ours(rule)
    address = str(rule.get("ip", ""))
    with contextlib.suppress(PlatformError):
        address = normal_ip(address)
    if mine is None:
        return Block(kind="ip", value=address, expires_at=None, reason=str(rule.get("notes") or "not ours"))
    return Block(kind="ip", value=address, expires_at=mine[0], reason=mine[1])

"""The edge block list as a WAFv2 IP set, with the expiry WAF does not have kept beside it in SSM.

A web ACL rule (``IPSetReferenceStatement``, action Block) references the set; this adapter only edits the set.

* **LockToken protocol.** WAF updates replace the whole address list and carry the token of the read they are
  based on; a concurrent change makes the update fail with ``WAFOptimisticLockException``. Every change is a loop
  of read -> compute -> (nothing to do? stop) -> update, re-read on conflict. The "nothing to do" check is what
  keeps a retried request (the first one landed, its answer was lost) from acting twice.
* **TTL bookkeeping.** Each block has a record ``<prefix>/blocks/ip/<cidr>`` in SSM with its expiry, creation time
  and reason, written *before* the address enters the set (a crash in between leaves a record and no block,
  never a block without an expiry) and deleted *after* it leaves. WAF has no TTL, so expiry is ours to carry
  out: expired blocks are taken out of the set whenever the list is read (:meth:`WafBlocks.expire_due`), and
  something must read it regularly (a scheduled sweep) for a block's life to be bounded when nothing else does.
  Credentials that may only read leave overdue blocks listed, with their past expiry: they are still in force.
* Addresses are validated here: WAF rejects a malformed CIDR, moto 5.2.5 stores it
(docs/reference/integrations.md §3.3).
  One IP set holds one IP version; an address of the other version is refused with a clear message.
* Only ``ip`` blocks: users and sessions are blocked at the identity provider, not at the edge.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from remediation.providers.aws.params import SsmParameters
from remediation.providers.aws.session import AwsError, AwsSession
from remediation.providers.platform import PlatformError
from remediation.providers.security import Block, BlockKind

MAX_CONFLICTS = 5


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Record:
    cidr: str
    created_at: datetime
    expires_at: datetime
    reason: str

    def dump(self) -> str:
        return json.dumps({"kind": "ip", "cidr": self.cidr, "created_at": self.created_at.isoformat(),
                           "expires_at": self.expires_at.isoformat(), "reason": self.reason})


def normalize(value: str) -> tuple[str, str]:
    """(CIDR as WAF stores it, the value as the block list shows it: a lone host without its /32 or /128)."""
    try:
        network = ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise PlatformError(f"{value[:80]!r} is not an IP address or network") from None
    shown = str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)
    return str(network), shown


def _shown(cidr: str) -> str:
    try:
        return normalize(cidr)[1]
    except PlatformError:
        return cidr


class WafBlocks:
    """:class:`~remediation.providers.capabilities.ActorBlocks` over a WAFv2 IP set plus TTL records in SSM."""

    def __init__(self, session: AwsSession, params: SsmParameters, ip_set_name: str, *, scope: str = "REGIONAL",
                 ip_set_id: str | None = None, now: Callable[[], datetime] = _utcnow) -> None:
        self.session = session
        self.params = params
        self.name = ip_set_name
        self.scope = scope
        self._id = ip_set_id
        self.now = now

    # -- the Protocol ---------------------------------------------------------------------------------------------
    async def blocks(self) -> list[Block]:
        # Read-only credentials (or a busy set) cannot carry out an expiry: then list what is really in force,
        # overdue blocks with their past expiry, rather than pretend they are gone.
        with contextlib.suppress(PlatformError):
            await self.expire_due()
        return await self.listing()

    async def listing(self) -> list[Block]:
        """What is in the IP set now, overdue blocks included: a pure read (``remediate check``, read-only roles)."""
        addresses, _ = await self._read()
        records = await self._records()
        late = datetime.max.replace(tzinfo=UTC)
        listed = sorted(addresses, key=lambda c: (records[c].created_at if c in records else late, c))
        return [Block(kind="ip", value=_shown(c), expires_at=records[c].expires_at if c in records else None,
                      reason=records[c].reason if c in records else "") for c in listed]

    async def block(self, kind: BlockKind, value: str, ttl_s: int, reason: str) -> Block:
        if kind != "ip":
            raise PlatformError(f"the WAF IP set blocks addresses only; a {kind} block belongs to the identity "
                                "provider")
        if ttl_s < 1:
            raise PlatformError(f"ttl_s must be at least 1 second, not {ttl_s}")
        cidr, shown = normalize(value)
        await self._check_version(cidr)
        now = self.now()
        existing = (await self._records()).get(cidr)
        live = existing if existing is not None and existing.expires_at > now else None
        record = _Record(cidr=cidr, created_at=live.created_at if live else now,
                         expires_at=now + timedelta(seconds=ttl_s),
                         reason=reason[:500] or (live.reason if live else ""))
        await self.params.put(self._record_name(cidr), record.dump())  # the expiry first, then the block
        await self._change(lambda current: current | {cidr})
        return Block(kind="ip", value=shown, expires_at=record.expires_at, reason=record.reason)

    async def unblock(self, kind: BlockKind, value: str) -> bool:
        if kind != "ip":
            return False  # never held here
        cidr, _ = normalize(value)
        now = self.now()
        record = (await self._records()).get(cidr)
        before, _ = await self._change(lambda current: current - {cidr})
        await self.params.delete(self._record_name(cidr))  # after the address left the set
        return cidr in before and (record is None or record.expires_at > now)

    # -- expiry ---------------------------------------------------------------------------------------------------
    async def expire_due(self) -> list[str]:
        """Take every expired block out of the set (one update), then drop its record; returns what expired."""
        now = self.now()
        due = {cidr for cidr, record in (await self._records()).items() if record.expires_at <= now}
        if not due:
            return []
        await self._change(lambda current: current - due)
        for cidr in sorted(due):
            await self.params.delete(self._record_name(cidr))
        return sorted(_shown(c) for c in due)

    # -- WAF ------------------------------------------------------------------------------------------------------
    async def ip_set_id(self) -> str:
        if self._id is None:
            marker: str | None = None
            for _ in range(50):  # bounded: 50 pages of IP sets is far more than an account holds
                params: dict[str, Any] = {"Scope": self.scope, "Limit": 100}
                if marker:
                    params["NextMarker"] = marker
                body = await self.session.call("wafv2", "list_ip_sets", **params)
                for summary in body.get("IPSets", []):
                    if summary.get("Name") == self.name:
                        self._id = str(summary["Id"])
                        return self._id
                marker = body.get("NextMarker")
                if not marker or not body.get("IPSets"):
                    break
            raise PlatformError(f"WAF IP set {self.name!r} ({self.scope}) not found")
        return self._id

    async def _read(self) -> tuple[set[str], dict[str, Any]]:
        body = await self.session.call("wafv2", "get_ip_set", Name=self.name, Scope=self.scope,
                                       Id=await self.ip_set_id())
        ip_set: dict[str, Any] = body["IPSet"]
        addresses = set()
        for address in ip_set.get("Addresses", []):
            try:
                addresses.add(normalize(address)[0])
            except PlatformError:
                addresses.add(address)  # someone else's malformed entry: kept as it is, never rewritten
        return addresses, {**ip_set, "LockToken": body["LockToken"]}

    async def _change(self, change: Callable[[set[str]], set[str]]) -> tuple[set[str], set[str]]:
        """Read-modify-write with the LockToken; (before, after). Re-reads on a conflict, at most MAX_CONFLICTS."""
        for _ in range(MAX_CONFLICTS):
            before, ip_set = await self._read()
            after = change(set(before))
            if after == before:
                return before, after
            update: dict[str, Any] = {"Name": self.name, "Scope": self.scope, "Id": ip_set["Id"],
                                      "Addresses": sorted(after), "LockToken": ip_set["LockToken"]}
            if ip_set.get("Description"):
                update["Description"] = ip_set["Description"]  # an update resets what it does not carry
            try:
                await self.session.call("wafv2", "update_ip_set", **update)
            except AwsError as exc:
                if exc.is_("WAFOptimisticLockException"):
                    continue  # changed under us (or our own earlier attempt landed): read again and decide again
                raise
            return before, after
        raise PlatformError(f"WAF IP set {self.name!r} kept changing under us: gave up after {MAX_CONFLICTS} "
                            "lock conflicts")

    async def _check_version(self, cidr: str) -> None:
        _, ip_set = await self._read()
        wanted = "IPV6" if ipaddress.ip_network(cidr).version == 6 else "IPV4"
        have = ip_set.get("IPAddressVersion")
        if have and have != wanted:
            raise PlatformError(f"WAF IP set {self.name!r} holds {have} addresses; {cidr} needs an {wanted} set")

    # -- TTL records ----------------------------------------------------------------------------------------------
    def _record_name(self, cidr: str) -> str:
        return self.params.name("blocks", "ip", cidr.replace(":", "-").replace("/", "_"))

    async def _records(self) -> dict[str, _Record]:
        records: dict[str, _Record] = {}
        for parameter in await self.params.under(self.params.name("blocks", "ip")):
            try:
                body = json.loads(parameter.value)
                record = _Record(cidr=normalize(body["cidr"])[0], created_at=_when(body["created_at"]),
                                 expires_at=_when(body["expires_at"]), reason=str(body.get("reason", "")))
            except (ValueError, KeyError, TypeError, PlatformError):
                continue  # not one of ours: no expiry known, so the block (if any) is listed without one
            records[record.cidr] = record
        return records


def _when(text: object) -> datetime:
    moment = datetime.fromisoformat(str(text))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

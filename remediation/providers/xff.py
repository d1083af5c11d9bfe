"""Who really sent a request, from a raw ``x-forwarded-for`` chain (the app stores it raw:
docs/reference/kamkmserve.md §5.1, §7).

Each proxy appends the address it received the request from, so only the right-hand end of the chain is written
by infrastructure we run; everything to the left is whatever the client claimed. The client is therefore the
right-most address that is *not* one of our trusted proxies. A chain with an unparseable entry at or right of
that point, or made only of trusted proxies, names nobody: it must never lead to a block.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ClientAddress(BaseModel):
    model_config = ConfigDict(frozen=True)

    address: str | None  # None: nobody can be named from this chain
    reason: str = ""
    chain: tuple[str, ...] = ()


def parse_entry(entry: str) -> IPAddress | None:
    """One XFF entry: an IPv4/IPv6 address, optionally ``[v6]:port`` or ``v4:port``; anything else is None."""
    value = entry.strip()
    if value.startswith("["):  # [2001:db8::1]:443
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:  # 203.0.113.7:5000
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def client_address(raw: str | None, trusted_proxies: Sequence[str]) -> ClientAddress:
    """The right-most untrusted address of ``raw`` (see the module docstring)."""
    if raw is None or not raw.strip():
        return ClientAddress(address=None, reason="no x-forwarded-for")
    chain = tuple(part.strip() for part in raw.split(","))
    networks = [ipaddress.ip_network(cidr, strict=False) for cidr in trusted_proxies]
    for entry in reversed(chain):
        address = parse_entry(entry)
        if address is None:
            return ClientAddress(address=None, chain=chain,
                                 reason=f"unparseable entry {entry[:60]!r} in the trusted part of the chain")
        if any(address.version == n.version and address in n for n in networks):
            continue
        return ClientAddress(address=str(address), chain=chain)
    return ClientAddress(address=None, chain=chain, reason="every hop is a trusted proxy (internal traffic)")

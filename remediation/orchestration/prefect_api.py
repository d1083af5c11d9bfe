"""Who can reach the Prefect API, and whether it asks them for credentials.

Prefect OSS has no users: whoever can send a request to the API can start runs and answer approvals (resume a
paused run with ``approve: true``). So the API must either listen on loopback only (what ``remediate serve`` does
with the server it starts itself) or ask for Prefect's one shared secret, basic auth configured by
``PREFECT_SERVER_API_AUTH_STRING`` (``user:password``) on the server and sent by clients from
``PREFECT_API_AUTH_STRING`` (prefect 3.9.1: ``prefect/server/api/server.py`` answers 401 to any other request except
``GET /health`` and ``GET /ready``; ``PrefectClient`` sends ``Authorization: Basic base64(auth string)``).

:func:`is_loopback_host` is a pure decision (no DNS lookup: a name other than ``localhost`` counts as reachable from
elsewhere, which errs on the side of warning). :func:`unauthenticated_answer` asks a real API what it does with a
request that carries no credentials.
"""

from __future__ import annotations

import ipaddress

import httpx

#: Hostnames that are loopback by definition (RFC 6761 §6.3); any other name may resolve anywhere.
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})


def is_loopback_host(host: str) -> bool:
    """True for addresses only this machine can reach: 127.0.0.0/8, ::1 (also IPv4-mapped), ``localhost``.

    ``0.0.0.0`` and ``::`` mean *every* interface, and an empty host means the same to most servers: not loopback.
    """
    name = host.strip().removeprefix("[").removesuffix("]").lower()
    if not name:
        return False
    if name in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name.split("%", 1)[0])  # drop an IPv6 zone id (fe80::1%eth0)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def api_host(api_url: str) -> str:
    """The host part of a Prefect API URL (``http://10.0.0.5:4200/api`` -> ``10.0.0.5``)."""
    return httpx.URL(api_url).host


async def unauthenticated_answer(api_url: str, *, timeout_s: float,
                                 transport: httpx.AsyncBaseTransport | None = None) -> int:
    """The HTTP status of the smallest flow-run query sent without credentials: 200 means anyone reaching the API may
    read (and so resume) runs; 401 means it asks for the shared secret. Raises ``httpx.HTTPError`` when unreachable.

    A read, deliberately: ``POST /flow_runs/filter`` changes nothing, and the auth check runs before any route."""
    from remediation.providers.tls import shared_ssl_context

    async with httpx.AsyncClient(timeout=timeout_s, transport=transport, verify=shared_ssl_context()) as client:
        response = await client.post(f"{api_url.rstrip('/')}/flow_runs/filter", json={"limit": 1},
                                     headers={"Accept": "application/json"})
    return response.status_code

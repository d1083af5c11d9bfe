"""Which Prefect API this process talks to, by a name that survives restarts and port changes.

The reconciler must only judge runs of its own API: asked about a run that lives elsewhere, an API answers "no such
run", which is indistinguishable from a deleted run. Prefect 3.9.1 has no server identity to ask for (``/admin``
offers settings and a version; its telemetry session id is not served, and is off with analytics), and a URL is a
weak name: ``serve`` may move its local server to the next free port, two URLs may reach one server, and one URL may
reach a fresh server after a database reset.

So the identity lives in the API's own database: a Prefect Variable ``remediate-api-identity`` holding a random
UUID, created by the first process that asks (racing creators: one create wins, the others read it). Every client of
that database, whatever URL it uses, reads the same value; a different database (another server, an ephemeral API, a
reset) has another one. The normalised URL is kept next to it for people ("owned by http://…").
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass

import httpx

log = logging.getLogger("remediation.orchestration")

IDENTITY_VARIABLE = "remediate-api-identity"
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class PrefectApi:
    """A Prefect API: its normalised URL, and its identity (None only when it could not be read)."""

    url: str
    id: str | None

    def owns(self, api_url: str | None, api_id: str | None) -> bool | None:
        """Whether a run recorded with ``api_url``/``api_id`` lives here; None when nothing was recorded.

        Identities decide when both are known (a URL may change, or be reused by a fresh server); else the URLs."""
        if api_id and self.id:
            return api_id == self.id
        if api_url:
            return normalise_api_url(api_url) == self.url
        return None


def normalise_api_url(url: str) -> str:
    """Lower-case scheme and host, no default port, no trailing slash: ``HTTP://Host:80/api/`` -> ``http://host/api``.

    Not ``ephemeral:…`` names (see :func:`current_api_url`), which are returned as they are."""
    if url.startswith("ephemeral:"):
        return url
    parsed = httpx.URL(url.strip())
    port = parsed.port if parsed.port is not None and parsed.port != _DEFAULT_PORTS.get(parsed.scheme) else None
    host = parsed.host.lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return f"{parsed.scheme.lower()}://{netloc}{parsed.path.rstrip('/')}"


def current_api_url() -> str:
    """This process's ``PREFECT_API_URL``, normalised; without one Prefect runs an ephemeral API on a random port
    over its database, so that database names it (``ephemeral:<database url, password hidden>``)."""
    from prefect.settings import get_current_settings
    from sqlalchemy.engine import make_url

    settings = get_current_settings()
    if settings.api.url:
        return normalise_api_url(str(settings.api.url))
    database = settings.server.database.connection_url
    raw = database.get_secret_value() if database is not None else ""
    try:
        shown = make_url(raw).render_as_string(hide_password=True) if raw else "default"
    except Exception:  # not a URL SQLAlchemy parses: name it by nothing secret
        shown = "unparsed database url"
    return f"ephemeral:{shown}"


_lock = threading.Lock()
_known: dict[str, PrefectApi] = {}


def current_api(*, refresh: bool = False) -> PrefectApi:
    """The API this process's Prefect settings point at, with its identity (read or created once per process and
    URL). Raises what the Prefect client raises when the API cannot be reached."""
    url = current_api_url()
    with _lock:
        if not refresh and url in _known:
            return _known[url]
    api = PrefectApi(url=url, id=_read_or_create_identity())
    with _lock:
        _known[url] = api
    return api


def _read_or_create_identity() -> str:
    from prefect import get_client
    from prefect.client.schemas.actions import VariableCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        found = client.read_variable_by_name(IDENTITY_VARIABLE)
        if found is None:
            try:
                client.create_variable(VariableCreate(name=IDENTITY_VARIABLE, value=str(uuid.uuid4()),
                                                      tags=["remediation"]))
                log.info("this Prefect API had no %s variable: created it", IDENTITY_VARIABLE)
            except ObjectAlreadyExists:
                pass  # another process created it first: read theirs
            found = client.read_variable_by_name(IDENTITY_VARIABLE)
    if found is None or not isinstance(found.value, str) or not found.value:
        raise RuntimeError(f"the Prefect variable {IDENTITY_VARIABLE} is missing or not a string")
    return found.value

"""Local fakes of the notification vendors, real HTTP on 127.0.0.1, following their documented shapes.

- :class:`FakeSlack`: incoming webhooks ``POST /services/T…/B…/<token>``; ``200 ok``; ``400 no_text`` /
  ``invalid_payload`` for a body without text or blocks; ``403 invalid_token`` / ``404 no_service`` for a URL it
  does not know (Slack's plain-text error codes).
- :class:`FakeStatuspage`: API v1 under ``/v1``, ``Authorization: OAuth <key>`` (401 ``{"error": ...}`` otherwise);
  pages, components, incidents (create, update, unresolved) with ``incident_updates`` and component statuses.
- :class:`FakePagerDuty`: Events API v2 ``POST /v2/enqueue``; ``202 {"status": "success", "message": "Event
  processed", "dedup_key"}``; ``400`` for an invalid event (routing key not 32 characters, unknown action, a
  trigger without summary/source/severity, ack/resolve without dedup_key); alerts keyed by (routing key,
  dedup key): trigger opens or appends, acknowledge/resolve of a closed or unknown key are dropped.

Every fake records each request (so tests can assert what was *not* sent) and can be told to fail the next
requests (``fail_next``).
"""

from __future__ import annotations

import json
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.helpers.local_server import LocalHttpServer

TEXT = "text/plain; charset=utf-8"
JSON = "application/json; charset=utf-8"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any


@dataclass
class Reply:
    status: int
    body: Any = None  # str -> text/plain, else JSON
    headers: dict[str, str] = field(default_factory=dict)


class FakeServer(LocalHttpServer):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Request] = []
        self.faults: deque[Reply] = deque()

    def fail_next(self, status: int, body: Any = None, times: int = 1) -> None:
        with self.lock:
            self.faults.extend(Reply(status, body) for _ in range(times))

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        request = Request(handler.command, handler.path, {k.lower(): v for k, v in handler.headers.items()}, raw, body)
        with self.lock:
            self.requests.append(request)
            reply = self.faults.popleft() if self.faults else self.handle(request)
        payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
        data = payload.encode()
        handler.send_response(reply.status)
        handler.send_header("Content-Type", TEXT if isinstance(reply.body, str) else JSON)
        handler.send_header("Content-Length", str(len(data)))
        for key, value in reply.headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)


class FakeSlack(FakeServer):
    """One workspace with incoming webhooks; ``webhook_url(token)`` is the secret URL a test configures."""

    def __init__(self, tokens: tuple[str, ...] = ("XXXXXXXXXXXXXXXXXXXXXXXX",), archived: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.tokens = set(tokens)
        self.archived = set(archived)
        self.messages: list[dict[str, Any]] = []

    def webhook_url(self, token: str | None = None) -> str:
        return f"{self.url}/services/T0001/B0001/{token or next(iter(self.tokens))}"

    def handle(self, request: Request) -> Reply:
        parts = request.path.strip("/").split("/")
        if request.method != "POST" or len(parts) != 4 or parts[0] != "services":
            return Reply(404, "no_service")
        if parts[3] not in self.tokens:
            return Reply(403, "invalid_token")
        if parts[3] in self.archived:
            return Reply(410, "channel_is_archived")
        if not isinstance(request.body, dict):
            return Reply(400, "invalid_payload")
        if not request.body.get("text") and not request.body.get("blocks"):
            return Reply(400, "no_text")
        self.messages.append(request.body)
        return Reply(200, "ok")

    def texts(self) -> list[str]:
        """Each message's fallback text and its blocks' text, flattened (what a reader of the channel sees)."""
        return [json.dumps(m) for m in self.messages]


class FakeStatuspage(FakeServer):
    def __init__(self, api_key: str, page_id: str = "pg1", components: tuple[str, ...] = ("cmp_web",)) -> None:
        super().__init__()
        self.api_key = api_key
        self.page_id = page_id
        self.components: dict[str, str] = dict.fromkeys(components, "operational")
        self.incidents: dict[str, dict[str, Any]] = {}

    def handle(self, request: Request) -> Reply:
        if request.headers.get("authorization") != f"OAuth {self.api_key}":
            return Reply(401, {"error": "Could not authenticate"})
        prefix = f"/v1/pages/{self.page_id}"
        path = request.path.split("?", 1)[0]
        if not path.startswith(prefix):
            return Reply(404, {"error": "Not found"})
        rest = path[len(prefix):]
        if request.method == "GET" and rest == "":
            return Reply(200, {"id": self.page_id, "name": "kamkmserve status", "url": "https://status.example"})
        if request.method == "GET" and rest == "/components":
            return Reply(200, [{"id": c, "status": s} for c, s in self.components.items()])
        if request.method == "GET" and rest == "/incidents/unresolved":
            return Reply(200, [i for i in self.incidents.values() if i["status"] not in ("resolved", "postmortem")])
        if request.method == "POST" and rest == "/incidents":
            return self._create(request.body)
        if request.method == "PATCH" and rest.startswith("/incidents/"):
            return self._update(rest.removeprefix("/incidents/"), request.body)
        return Reply(404, {"error": "Not found"})

    def _create(self, body: Any) -> Reply:
        incident = body.get("incident") if isinstance(body, dict) else None
        if not isinstance(incident, dict) or not incident.get("name"):
            return Reply(422, {"error": ["name can't be blank"]})
        if len(incident["name"]) > 255:
            return Reply(422, {"error": ["name is too long (maximum is 255 characters)"]})
        now = datetime.now(UTC).isoformat()
        incident_id = uuid.uuid4().hex[:12]
        record = {"id": incident_id, "name": incident["name"], "status": incident.get("status", "investigating"),
                  "impact": incident.get("impact_override", "none"), "shortlink": f"https://stspg.io/{incident_id}",
                  "created_at": now, "resolved_at": None, "metadata": incident.get("metadata") or {},
                  "component_ids": incident.get("component_ids") or [], "incident_updates": []}
        self.incidents[incident_id] = record
        self._record_update(record, incident, now)
        return Reply(201, record)

    def _update(self, incident_id: str, body: Any) -> Reply:
        record = self.incidents.get(incident_id)
        if record is None:
            return Reply(404, {"error": "Not found"})
        incident = body.get("incident") if isinstance(body, dict) else None
        if not isinstance(incident, dict):
            return Reply(422, {"error": ["incident is missing"]})
        now = datetime.now(UTC).isoformat()
        record["status"] = incident.get("status", record["status"])
        if record["status"] == "resolved":
            record["resolved_at"] = now
        self._record_update(record, incident, now)
        return Reply(200, record)

    def _record_update(self, record: dict[str, Any], incident: dict[str, Any], now: str) -> None:
        affected = []
        for component, status in (incident.get("components") or {}).items():
            if component in self.components:
                affected.append({"code": component, "old_status": self.components[component], "new_status": status})
                self.components[component] = status
        record["incident_updates"].insert(0, {"status": record["status"], "body": incident.get("body", ""),
                                              "created_at": now, "affected_components": affected})


@dataclass
class Alert:
    routing_key: str
    dedup_key: str
    status: str  # triggered, acknowledged, resolved
    events: list[dict[str, Any]] = field(default_factory=list)


class FakePagerDuty(FakeServer):
    def __init__(self, routing_keys: tuple[str, ...]) -> None:
        super().__init__()
        self.routing_keys = set(routing_keys)
        self.alerts: list[Alert] = []
        self.events: list[dict[str, Any]] = []  # accepted events, in order

    @property
    def events_url(self) -> str:
        return f"{self.url}/v2/enqueue"

    def open_alert(self, routing_key: str, dedup_key: str) -> Alert | None:
        with self.lock:
            for alert in reversed(self.alerts):
                if (alert.routing_key, alert.dedup_key) == (routing_key, dedup_key) and alert.status != "resolved":
                    return alert
        return None

    def actions(self) -> list[tuple[str, str]]:
        """(routing key, action) of every accepted event, in order."""
        return [(e["routing_key"], e["event_action"]) for e in self.events]

    def handle(self, request: Request) -> Reply:
        if request.path != "/v2/enqueue":
            return Reply(404, {"status": "error", "message": "Not found"})
        if request.method != "POST":
            return Reply(405, {"status": "error", "message": "Method not allowed"})
        event = request.body
        problem = _invalid(event)
        if problem:
            return Reply(400, {"status": "invalid event", "message": "Event object is invalid", "errors": [problem]})
        if event["routing_key"] not in self.routing_keys:
            return Reply(400, {"status": "invalid event", "message": "Event object is invalid",
                               "errors": ["Invalid routing key"]})
        dedup = event.get("dedup_key") or uuid.uuid4().hex
        alert = self.open_alert(event["routing_key"], dedup)
        action = event["event_action"]
        if action == "trigger":
            if alert is None:
                alert = Alert(event["routing_key"], dedup, "triggered")
                self.alerts.append(alert)
            alert.events.append(event)
        elif alert is not None:  # acknowledge/resolve of a closed or unknown key: dropped, still 202
            alert.status = "acknowledged" if action == "acknowledge" else "resolved"
            alert.events.append(event)
        self.events.append(event)
        return Reply(202, {"status": "success", "message": "Event processed", "dedup_key": dedup})


def _invalid(event: Any) -> str:
    if not isinstance(event, dict):
        return "Event must be a JSON object"
    key = event.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        return "'routing_key' must be 32 characters"
    action = event.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        return "'event_action' is invalid"
    dedup = event.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        return "'dedup_key' must be a string of at most 255 characters"
    if action != "trigger":
        return "" if dedup else "'dedup_key' is required for acknowledge and resolve"
    payload = event.get("payload")
    if not isinstance(payload, dict):
        return "'payload' is missing"
    for required in ("summary", "source", "severity"):
        if not payload.get(required):
            return f"'payload.{required}' is missing"
    if len(payload["summary"]) > 1024:
        return "'payload.summary' is longer than 1024 characters"
    if payload["severity"] not in ("critical", "error", "warning", "info"):
        return "'payload.severity' is invalid"
    return ""

"""The ``malware-burst`` scenario: one client uploads infected files in a burst among the users' benign uploads.

Registered in ``kamkmserve_sim.scenarios.SCENARIOS``.
"""

from __future__ import annotations

import itertools
import random
from typing import TYPE_CHECKING

from kamkmserve_sim.ratelimit import client_identity
from kamkmserve_sim.routes import AppRequest
from kamkmserve_sim.security import EICAR, MARKER
from kamkmserve_sim.traffic import HOUR_MS, PREFILL_REQUESTS, PREFILL_SPAN_MS, boot, prefill
from kamkmserve_sim.uploads import UploadFile

if TYPE_CHECKING:
    from kamkmserve_sim.state import SimState

ATTACKER = "203.0.113.66"
LOAD_BALANCER = "10.0.0.1"
ATTACK_RPS = 3.0
ATTACK_AGENT = "python-requests/2.32.3"
#: What the attacker sends: the EICAR file named and typed as a PDF (no magic bytes, so validateUpload falls back
#: to the client's type and lets it through to the scanner), and a real PDF carrying the test marker.
PAYLOADS = (
    UploadFile("invoice.pdf", "application/pdf", EICAR),
    UploadFile("statement.pdf", "application/pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + MARKER + b"\n%%EOF\n"),
)


class MalwareBurst:
    """``malware-burst``: a burst of infected uploads from one client behind our load balancer.

    Start: v1.4.2 current (deployed an hour ago), ~200 ordinary requests already recorded, the upload scanner on
    (``avscan`` ``scan``, the app's intended ``AVSCAN_URL`` hook; the real clamd when ``clamd_host`` is set) and
    ``kamkmserve_audit_log`` present (in memory, or created in ``database_url``), unless the configuration says
    otherwise. After ``onset_s``: ``203.0.113.66`` posts to ``/api/uploads`` ``ATTACK_RPS`` times a second,
    alternately the EICAR file as ``invoice.pdf`` and a PDF with the test marker as ``statement.pdf``, with
    user agent ``python-requests/2.32.3``. Our load balancer (``10.0.0.1``) appends the address it saw, so the raw
    x-forwarded-for reads ``203.0.113.66, 10.0.0.1``; two requests in three carry a spoofed left entry too (a
    private address such as ``10.0.3.7``, or an innocent user's public one), so the app's first-entry parsing (its
    quota and rate limit key) names someone else. Every one is rejected ``400 {"error":"Malware scan failed:
    <signature>"}`` with ``upload_rejected_validation``, ``Upload: validation failed`` and an audit row
    ``upload.validation_failed`` (raw chain in ``ip``, ``{"error": …}`` in ``metadata``); the scanner quarantines
    the sample. The burst goes on until the scenario is reset; a block of ``203.0.113.66`` at the edge turns it
    into edge 403s that never reach the app. Users keep uploading their own files (some of them PDFs).
    """

    name = "malware-burst"

    def start(self, state: SimState) -> None:
        now = state.clock.now_ms()
        boot(state, now - PREFILL_SPAN_MS - 1000)
        state.releases.deploy("v1.4.2", None, now, created_at_ms=now - HOUR_MS)
        state.security.scenario_defaults(avscan="scan", audit_table_missing=False)
        prefill(state, PREFILL_REQUESTS, PREFILL_SPAN_MS)
        state.schedule(state.config.onset_s, Attacker(state).send)


class Attacker:
    def __init__(self, state: SimState) -> None:
        self.state = state
        self.rng = random.Random(state.seed + 5)
        self.sequence = itertools.count()
        self.sent = 0

    def chain(self, index: int) -> str:
        honest = f"{ATTACKER}, {LOAD_BALANCER}"
        if index % 3 == 0:
            return honest
        if index % 3 == 1:
            return f"10.0.{self.rng.randint(2, 250)}.{self.rng.randint(2, 250)}, {honest}"
        return f"198.51.100.{self.rng.randint(2, 250)}, {honest}"

    def send(self) -> None:
        state = self.state
        index = next(self.sequence)
        request = AppRequest(method="POST", path="/api/uploads", forwarded_for=self.chain(index),
                             user_agent=ATTACK_AGENT, content_type="multipart/form-data; boundary=----attack",
                             upload=PAYLOADS[index % len(PAYLOADS)])
        self.sent += 1
        # The path of a real request: the edge (block list, maintenance), the middleware's per-IP limit, the route.
        if not state.security.edge_refuses(request.forwarded_for, request.real_ip) and not state.at_edge(request.path):
            decision = state.instance.limiter.hit(client_identity(request.forwarded_for, request.real_ip),
                                                  state.clock.now_ms())
            if decision.allowed:
                state.serve(request)
        state.schedule(1.0 / ATTACK_RPS, self.send)

"""The security levers around the simulated app: the edge's block list, the upload allowlist, the upload scanner
(the app's intended ``AVSCAN_URL`` hook) with its quarantine, and where audit rows go.

kamkmserve has none of these itself (docs/reference/kamkmserve.md §4, §13): no block list (it must come from the edge,
e.g. a WAF IP set), allowlists are env vars that need a redeploy, and ``src/lib/avscan.ts`` has only ``AVSCAN_MODE``
off/reject (``AVSCAN_URL`` is a comment). The simulator provides them the way the platform would, and the app's code
paths use them exactly where the real ones would: the edge refuses a blocked client before the app runs, and
``validateUpload()`` checks extension, MIME and then the scanner, in that order (docs/reference/kamkmserve.md §7).

Scanner modes (``SimConfig.avscan``): ``off`` (the app today), ``reject`` (the app's ``AVSCAN_MODE=reject``:
every upload fails with ``simulated-detection``) and ``scan`` (the hook: the simulator's own signatures, or the
real clamd at ``SimConfig.clamd_host``; a scanner that fails answers ``scan-error``: fail-closed, as the app's
catch does). What the scanner detects is kept in a quarantine, the record a scanning service keeps.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import socket
import struct
from collections import deque
from dataclasses import dataclass
from typing import Literal

from kamkmserve_sim.clock import Clock
from kamkmserve_sim.config import SimConfig
from kamkmserve_sim.jsfmt import js_iso
from kamkmserve_sim.security_audit import MemoryAudit, PostgresAudit
from kamkmserve_sim.uploads import ALLOWED_EXT, ALLOWED_MIME, UploadFile, UploadRules

AvMode = Literal["off", "reject", "scan"]
BlockKind = Literal["ip", "user", "session"]
BLOCK_KINDS: tuple[str, ...] = ("ip", "user", "session")

# The EICAR test file and the test marker, assembled from halves so this source file is not itself flagged. The
# simulator's own signature names are clamd's for the same files.
EICAR = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$" + b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
MARKER = b"REMEDIATE-TEST-MALWARE-MARKER-" + b"7f3a"
SIGNATURES = ((EICAR, "Win.Test.EICAR_HDB-1"), (MARKER, "Test.Remediator.Marker"))
SIM_VERSION = "ClamAV 1.4.3/27500 (simulated signatures)"
#: The platform's own load balancers and proxies as the edge knows them (loopback, private and link-local ranges):
#: an x-forwarded-for hop in these is not the client. The simulator's own list: the edge is not the remediation's.
EDGE_TRUSTED = ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
                "::1/128", "fc00::/7", "fe80::/10")
_EDGE_NETWORKS = tuple(ipaddress.ip_network(cidr) for cidr in EDGE_TRUSTED)
QUARANTINE_SIZE = 200
SAMPLE_KEEP_BYTES = 64 * 1024


@dataclass
class BlockEntry:
    kind: BlockKind
    value: str
    created_at_ms: int
    expires_at_ms: int
    reason: str = ""

    def public(self) -> dict[str, object]:
        return {"kind": self.kind, "value": self.value, "created_at": js_iso(self.created_at_ms),
                "expires_at": js_iso(self.expires_at_ms), "reason": self.reason}


class BlockList:
    """The edge's block list (a WAF IP set with expiry). IP entries may be networks; expired entries are gone."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], BlockEntry] = {}
        self.refused = 0  # requests the edge answered 403 because of a block

    def block(self, kind: BlockKind, value: str, ttl_s: int, reason: str, now_ms: int) -> tuple[BlockEntry, bool]:
        """Add a block, or move an existing one's expiry to now + ttl. True when it is new."""
        key = (kind, _normal(kind, value))
        existing = self._live(key, now_ms)
        entry = BlockEntry(kind, key[1], existing.created_at_ms if existing else now_ms, now_ms + ttl_s * 1000,
                           reason or (existing.reason if existing else ""))
        self._entries[key] = entry
        return entry, existing is None

    def unblock(self, kind: BlockKind, value: str, now_ms: int) -> bool:
        key = (kind, _normal(kind, value))
        live = self._live(key, now_ms) is not None
        self._entries.pop(key, None)
        return live

    def active(self, now_ms: int) -> list[BlockEntry]:
        for key in [k for k, e in self._entries.items() if e.expires_at_ms <= now_ms]:
            del self._entries[key]
        return sorted(self._entries.values(), key=lambda e: (e.created_at_ms, e.kind, e.value))

    def refuses(self, address: str | None, now_ms: int) -> bool:
        if address is None:
            return False
        try:
            client = ipaddress.ip_address(address)
        except ValueError:
            return False
        for entry in self.active(now_ms):
            if entry.kind != "ip":
                continue
            network = ipaddress.ip_network(entry.value, strict=False)
            if network.version == client.version and client in network:
                return True
        return False

    def _live(self, key: tuple[str, str], now_ms: int) -> BlockEntry | None:
        entry = self._entries.get(key)
        return entry if entry is not None and entry.expires_at_ms > now_ms else None


def _normal(kind: str, value: str) -> str:
    if kind != "ip":
        return value.strip()
    network = ipaddress.ip_network(value.strip(), strict=False)
    return str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)


@dataclass(frozen=True)
class Detection:
    at_ms: int
    sha256: str
    size: int
    filename: str
    mime: str
    ext: str
    signature: str
    data: bytes

    def public(self) -> dict[str, object]:
        kept = self.data[:SAMPLE_KEEP_BYTES]
        return {"at": js_iso(self.at_ms), "sha256": self.sha256, "size": self.size, "filename": self.filename,
                "mime": self.mime, "ext": self.ext, "signature": self.signature,
                "data_b64": base64.b64encode(kept).decode(), "truncated": len(kept) < self.size}


@dataclass(frozen=True)
class Verdict:
    status: Literal["ok", "found", "error", "unavailable"]
    signature: str | None = None
    detail: str = ""

    def public(self) -> dict[str, object]:
        return {"status": self.status, "signature": self.signature, "detail": self.detail}


class Scanner:
    """The upload scanner: the simulator's signatures, or a real clamd; its quarantine of what it found."""

    def __init__(self, mode: AvMode, clamd: tuple[str, int] | None, clock: Clock) -> None:
        self.mode: AvMode = mode
        self.clamd = clamd
        self.clock = clock
        self.available = True  # False: the daemon is down (a control-plane switch, or clamd not answering)
        self.reloads = 0
        self.scans = 0
        self.quarantine: deque[Detection] = deque(maxlen=QUARANTINE_SIZE)

    @property
    def engine(self) -> str:
        return f"clamd at {self.clamd[0]}:{self.clamd[1]}" if self.clamd else "simulated"

    def scan(self, data: bytes) -> Verdict:
        self.scans += 1
        if not self.available:
            return Verdict("unavailable", detail=f"{self.engine}: daemon down")
        if self.clamd is not None:
            try:
                return _verdict(self._clamd(b"INSTREAM", data))
            except OSError as exc:
                return Verdict("unavailable", detail=f"{self.engine}: {type(exc).__name__}: {exc}")
        # The simulated engine answers in clamd's own words, so both engines' answers are read the same way.
        return _verdict(_simulated_reply(data))

    def reload(self) -> bool:
        if not self.available:
            return False
        if self.clamd is not None:
            try:
                if self._clamd(b"RELOAD") != "RELOADING":
                    return False
            except OSError:
                return False
        self.reloads += 1
        return True

    def version(self) -> str | None:
        if not self.available:
            return None
        if self.clamd is not None:
            try:
                return self._clamd(b"VERSION") or None
            except OSError:
                return None
        return SIM_VERSION

    def upload_reason(self, file: UploadFile, mime: str, ext: str) -> str | None:
        """The hook's answer for ``validateUpload``: None (clean), the signature, or ``scan-error`` (fail-closed)."""
        verdict = self.scan(file.data)
        if verdict.status == "ok":
            return None
        if verdict.status == "found":
            name = verdict.signature or "malware"
            self.quarantine.append(Detection(self.clock.now_ms(), hashlib.sha256(file.data).hexdigest(),
                                             len(file.data), file.filename, mime, ext, name, file.data))
            return name
        return "scan-error"

    def detections(self, since_ms: int | None, limit: int) -> list[Detection]:
        selected = [d for d in self.quarantine if since_ms is None or d.at_ms >= since_ms]
        return selected[-limit:] if limit > 0 else []

    def _clamd(self, command: bytes, payload: bytes | None = None) -> str:
        # The app waits for its scanner; a blocking exchange keeps the route's order of events exact. Local clamd
        # answers within milliseconds; the timeout bounds a hung daemon.
        assert self.clamd is not None
        with socket.create_connection(self.clamd, timeout=5) as sock:
            sock.sendall(b"z" + command + b"\0")
            if payload is not None:
                for start in range(0, len(payload), 64 * 1024):
                    chunk = payload[start:start + 64 * 1024]
                    sock.sendall(struct.pack(">I", len(chunk)) + chunk)
                sock.sendall(struct.pack(">I", 0))
            reply = b""
            while not reply.endswith(b"\0"):
                part = sock.recv(4096)
                if not part:
                    break
                reply += part
        return reply.rstrip(b"\0").decode("utf-8", "replace").strip()


def _simulated_reply(data: bytes) -> str:
    """clamd's INSTREAM answer for ``data`` from the simulator's signatures (docs: integrations.md §7.2)."""
    for signature, name in SIGNATURES:
        if signature in data:
            return f"stream: {name} FOUND"
    return "stream: OK"


def _verdict(reply: str) -> Verdict:
    """What clamd's INSTREAM answer means for the upload: ``stream: OK``, ``stream: <Name> FOUND``, or an
    ``... ERROR`` (e.g. the size limit). Anything else is an error, never a pass: the hook fails closed."""
    text = reply.strip()
    if text.endswith(" ERROR"):
        return Verdict("error", detail=text)
    body = text.removeprefix("stream:").strip()
    if body == "OK":
        return Verdict("ok", detail=text)
    if body.endswith(" FOUND"):
        return Verdict("found", body.removesuffix(" FOUND").strip() or None, text)
    return Verdict("error", detail=f"unexpected clamd reply: {text[:200]!r}")


def edge_client(raw: str | None) -> str | None:
    """The client the edge sees behind an x-forwarded-for chain: the right-most hop that is not one of the platform's
    own proxies (each proxy appends the address it received the request from, so only the right-hand end is written
    by the platform; the rest is whatever the client claimed). None when the chain names nobody: empty, only
    proxies, or an unparseable hop where the client should be (a block never applies to a guess)."""
    if raw is None or not raw.strip():
        return None
    for entry in reversed([part.strip() for part in raw.split(",")]):
        address = _hop(entry)
        if address is None:
            return None
        if any(address.version == n.version and address in n for n in _EDGE_NETWORKS):
            continue
        return str(address)
    return None


def _hop(entry: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """One hop: an address, optionally ``[v6]:port`` or ``v4:port``."""
    value = entry
    if value.startswith("["):
        value = value[1:].split("]", 1)[0]
    elif value.count(":") == 1:
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


class Allowlist:
    """``UPLOAD_ALLOWED_EXT`` / ``UPLOAD_ALLOWED_MIME`` as an edge-config value the app reads per request."""

    def __init__(self) -> None:
        self.extensions: tuple[str, ...] = ALLOWED_EXT
        self.mime_types: tuple[str, ...] = ALLOWED_MIME

    def replace(self, extensions: tuple[str, ...], mime_types: tuple[str, ...]) -> dict[str, list[str]]:
        previous = self.public()
        self.extensions, self.mime_types = extensions, mime_types
        return previous

    def public(self) -> dict[str, list[str]]:
        return {"extensions": list(self.extensions), "mime_types": list(self.mime_types)}


class SimSecurity:
    """All of the above for one simulated world (rebuilt with it on every scenario reset)."""

    def __init__(self, config: SimConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.blocks = BlockList()
        self.allowlist = Allowlist()
        clamd = (config.clamd_host, config.clamd_port) if config.clamd_host else None
        self.scanner = Scanner(config.avscan or "off", clamd, clock)
        # Left to the scenario (None): the table is missing, as in production today (no migration creates it),
        # and nothing touches a real database for it unless the scenario sets the table up.
        self.audit: MemoryAudit | PostgresAudit = (
            MemoryAudit(clock, missing=True) if config.audit_table_missing is None
            else self._audit(config.audit_table_missing))

    def scenario_defaults(self, *, avscan: AvMode, audit_table_missing: bool) -> None:
        """What a scenario sets up where the configuration left it to the scenario (None)."""
        if self.config.avscan is None:
            self.scanner.mode = avscan
        if self.config.audit_table_missing is None:
            self.audit.close()
            self.audit = self._audit(audit_table_missing)

    def _audit(self, missing: bool) -> MemoryAudit | PostgresAudit:
        if self.config.database_url:
            return PostgresAudit(self.config.database_url, missing=missing)
        return MemoryAudit(self.clock, missing=missing)

    def edge_refuses(self, forwarded_for: str | None, real_ip: str | None) -> bool:
        """True when the edge answers 403 because the client is blocked (the app never sees the request)."""
        client = edge_client(forwarded_for or real_ip)
        if self.blocks.refuses(client, self.clock.now_ms()):
            self.blocks.refused += 1
            return True
        return False

    def upload_rules(self) -> UploadRules:
        return UploadRules(extensions=self.allowlist.extensions, mime_types=self.allowlist.mime_types,
                           av_mode=self.scanner.mode, scan=self.scanner.upload_reason)

    def public(self) -> dict[str, object]:
        now = self.clock.now_ms()
        return {
            "blocks": [b.public() for b in self.blocks.active(now)], "edge_refused": self.blocks.refused,
            "allowlist": self.allowlist.public(),
            "antivirus": {"mode": self.scanner.mode, "engine": self.scanner.engine,
                          "available": self.scanner.available, "reloads": self.scanner.reloads,
                          "detections": len(self.scanner.quarantine)},
            "audit": self.audit.public(),
        }

    def close(self) -> None:
        self.audit.close()

"""The exact header blocks kamkmserve's responses carry, in the captured order and letter case.

Next.js prints its own headers (security headers from next.config, Date, Connection) in their written case
and everything set through NextResponse/Headers in lower case; the fixtures show both, and so do we.
uvicorn's own Date header is switched off and ours placed where Node puts it; h11 appends
``Transfer-Encoding: chunked`` last when a response has no Content-Length, exactly like Node.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from email.utils import formatdate

from starlette.background import BackgroundTask
from starlette.responses import Response

from kamkmserve_sim.ratelimit import RateDecision

Header = tuple[str, str]

CSP = (
    "default-src 'self'; base-uri 'self'; form-action 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval' "
    "https://*.clerk.com https://*.clerkstage.dev https://*.clerk.accounts.dev https://*.sentry-cdn.com; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob: https:; font-src 'self' data:; "
    "connect-src 'self' https: wss:; worker-src 'self' blob:; frame-src https://*.clerk.com "
    "https://*.clerkstage.dev https://*.clerk.accounts.dev; frame-ancestors 'self'"
)
SECURITY_HEADERS: tuple[Header, ...] = (
    ("Strict-Transport-Security", "max-age=31536000; includeSubDomains; preload"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "strict-origin-when-cross-origin"),
    ("Content-Security-Policy", CSP),
)
VARY_RSC = "rsc, next-router-state-tree, next-router-prefetch, next-router-segment-prefetch"
CLERK_SIGNED_OUT: tuple[Header, ...] = (
    ("x-clerk-auth-reason", "dev-browser-missing"),
    ("x-clerk-auth-status", "signed-out"),
)
KEEP_ALIVE: tuple[Header, ...] = (("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"))
PRERENDER: tuple[Header, ...] = (
    ("x-nextjs-cache", "HIT"), ("x-nextjs-prerender", "1"), ("x-nextjs-prerender", "1"),
    ("x-nextjs-stale-time", "300"),
)
NOT_FOUND_ETAG = '"g6ni37cb2ux0p"'
SIGN_IN_URL = "https://example.accounts.dev/sign-in"


def http_date(epoch_s: float) -> str:
    return formatdate(epoch_s, usegmt=True)


def rate_limit_headers(decision: RateDecision) -> tuple[Header, ...]:
    return (
        ("ratelimit-limit", str(decision.limit)),
        ("ratelimit-remaining", str(decision.remaining)),
        ("ratelimit-reset", str(decision.reset_s)),
    )


def middleware_headers(decision: RateDecision | None, path: str) -> tuple[Header, ...]:
    """What src/middleware.ts plus Clerk add to everything they run on (/api always; pages without limit)."""
    limit = rate_limit_headers(decision) if decision is not None else ()
    return (*limit, *CLERK_SIGNED_OUT, ("x-middleware-rewrite", path))


class RawResponse(Response):
    """A response whose header list is sent exactly as given: order, duplicates and letter case."""

    def __init__(self, status_code: int, headers: Sequence[Header], body: bytes = b"",
                 background: BackgroundTask | None = None) -> None:
        self.status_code = status_code
        self.body = body
        self.background = background
        self.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def node_response(status: int, headers: Iterable[Header], body: bytes, now_s: float,
                  *, content_length: bool = False) -> RawResponse:
    """Finish a Next.js response: Date and keep-alive after the app's headers; chunked unless sized."""
    block = list(headers)
    if content_length:
        block.append(("Content-Length", str(len(body))))
    block.append(("Date", http_date(now_s)))
    block.extend(KEEP_ALIVE)
    return RawResponse(status, block, body)


def too_many_requests(decision: RateDecision, path: str, now_s: float) -> RawResponse:
    """The middleware's own 429 (ratelimited-metrics-429.http): all lower case, closes the connection."""
    headers = [(name.lower(), value) for name, value in SECURITY_HEADERS]
    headers += [*rate_limit_headers(decision), *CLERK_SIGNED_OUT, ("x-middleware-rewrite", path),
                ("content-type", "text/plain;charset=UTF-8"), ("retry-after", str(decision.retry_after_s)),
                ("Vary", "Accept-Encoding"), ("date", http_date(now_s)), ("connection", "close")]
    return RawResponse(429, headers, b"Too Many Requests")


NOT_FOUND_PAGE = (
    b'<!DOCTYPE html><html lang="en"><head><meta charSet="utf-8"/><meta name="robots" content="noindex"/>'
    b"<title>KAMKM Serve</title></head><body><h1>404</h1><h2>This page could not be found.</h2>"
    b"<!-- kamkmserve simulator: stand-in for the 42802-byte Next.js not-found page --></body></html>"
)
ERROR_PAGE = (
    b'<!DOCTYPE html><html lang="en"><head><meta charSet="utf-8"/><title>KAMKM Serve</title></head>'
    b"<body><h2>Application error: a server-side exception has occurred</h2></body></html>"
)


def page_html(path: str) -> bytes:
    return (
        b'<!DOCTYPE html><html lang="en"><head><meta charSet="utf-8"/><title>KAMKM Serve</title></head><body>'
        b"<main data-path=\"" + path.encode("utf-8", "replace") + b"\">kamkmserve simulator page</main>"
        b"</body></html>"
    )


def page_cache_headers(path: str) -> tuple[tuple[Header, ...], tuple[Header, ...]]:
    """(before the security headers, after the prerender headers): "/" and "/services" differ (4a, 4b)."""
    if path == "/":
        return (("Cache-Control", "public, s-maxage=600, stale-while-revalidate=86400"),), ()
    return (), (("Cache-Control", "s-maxage=300, stale-while-revalidate=31535700"),)


EDGE_MAINTENANCE_PAGE = (
    b"<!DOCTYPE html><html><head><title>Scheduled maintenance</title></head><body>"
    b"<h1>We&#39;ll be right back</h1><p>This part of the site is down for maintenance.</p></body></html>"
)
EDGE_UNAVAILABLE_PAGE = (
    b"<!DOCTYPE html><html><head><title>503: SERVICE_UNAVAILABLE</title></head><body>"
    b"<h1>503: SERVICE_UNAVAILABLE</h1><p>The function did not respond.</p></body></html>"
)


def edge_page(status: int, body: bytes, reason: str, now_s: float) -> RawResponse:
    """An answer from the platform's edge: none of the app's headers, since the app never ran."""
    return RawResponse(status, [
        ("cache-control", "no-store"), ("content-type", "text/html; charset=utf-8"),
        ("x-sim-edge", reason), ("Content-Length", str(len(body))), ("Date", http_date(now_s)),
        *KEEP_ALIVE,
    ], body)

"""Injected failures: what a faulty release or a failing dependency does to requests on some paths."""

from __future__ import annotations

from dataclasses import dataclass

from kamkmserve_sim.collector import AppError


@dataclass(frozen=True)
class Fault:
    """``error_share`` of the requests that would have succeeded on ``paths`` fail; all of them get slower."""

    error_share: float
    paths: tuple[str, ...]
    extra_latency_ms: int = 0

    def applies_to(self, path: str) -> bool:
        return any(path_has_prefix(path, prefix) for prefix in self.paths)


def path_has_prefix(path: str, prefix: str) -> bool:
    """Segment-aware: ``/api/cart`` covers ``/api/cart`` and ``/api/cart/items`` but not ``/api/cartography``."""
    if prefix in ("", "/"):
        return True
    trimmed = prefix.rstrip("/")
    return path == trimmed or path.startswith(trimmed + "/")


# A bug shipped in a release: the handler dereferences a field the new code no longer loads. The handlers
# catch it, console.error() it and answer their own 500 body.
RELEASE_BUG = AppError(
    name="TypeError",
    message="Cannot read properties of undefined (reading 'price')",
    stack=("TypeError: Cannot read properties of undefined (reading 'price')\n"
           "    at formatLineItems (/var/task/.next/server/chunks/8472.js:1:2431)\n"
           "    at async handler (/var/task/.next/server/app{route}/route.js:1:1893)"),
)

# The database behind the app is unreachable; the driver's message is the one the real app showed.
DATABASE_DOWN = AppError(
    name="NeonDbError",
    message="Error connecting to database: TypeError: fetch failed",
    stack=("NeonDbError: Error connecting to database: TypeError: fetch failed\n"
           "    at execute (/var/task/node_modules/@neondatabase/serverless/index.js:1552:48)\n"
           "    at async handler (/var/task/.next/server/app{route}/route.js:1:1893)"),
)


def stack_for(error: AppError, route: str) -> str:
    return (error.stack or f"{error.name}: {error.message}").replace("{route}", route)

"""One TLS context per process for our short-lived HTTP clients.

Providers open a client per call (flows run on several event loops, and a pooled client is bound to one);
building the default TLS context costs ~30 ms each time on this machine, more than the request itself.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def shared_ssl_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()

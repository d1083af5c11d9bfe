"""``httpx.get`` and friends for the tests' local servers, without their hidden cost.

``httpx.get()`` builds a new SSL context on every call, loading the CA bundle: ~40 ms
of CPU per call, even for plain HTTP to 127.0.0.1. The suite's polling loops made that a fifth of a core per waiting
test. These are ``httpx``'s own top-level functions (a client per call: no cookie or connection outlives it) given
the process's one SSL context, as our providers use (``remediation.providers.tls``).
"""

from __future__ import annotations

from typing import Any

import httpx

from remediation.providers.tls import shared_ssl_context


def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, url, verify=shared_ssl_context(), **kwargs)


def get(url: str, **kwargs: Any) -> httpx.Response:
    return request("GET", url, **kwargs)


def post(url: str, **kwargs: Any) -> httpx.Response:
    return request("POST", url, **kwargs)


def patch(url: str, **kwargs: Any) -> httpx.Response:
    return request("PATCH", url, **kwargs)

"""Broken bodies for a misbehaving metrics endpoint: text no Prometheus parser accepts, and an HTML page."""

from __future__ import annotations

import random

_WORDS = ("lorem", "0xdeadbeef", "NaN?", "{{{", "undefined", "[object Object]", "<<<", "%%", "null", "~~")


def garbage_body(rng: random.Random) -> bytes:
    # Every line opens with a character no metric name may start with, so a parser fails on line one.
    lines = []
    for _ in range(rng.randint(3, 8)):
        words = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(2, 6)))
        lines.append(f"@{rng.getrandbits(32):08x} {words} {{=")
    return ("\n".join(lines) + "\n").encode()


def html_body() -> bytes:
    return (
        b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>"
        b"<h1>Please sign in</h1><p>You need to be signed in to view this page.</p></body></html>"
    )

"""The shared REST client of the SaaS adapters: Retry-After parsing, vendor error texts, redaction, no token."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

from remediation.providers.platform import PlatformError
from remediation.providers.saas_client import NotConfigured, RestClient, retry_after_s, vendor_message

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_retry_after_is_read_as_seconds_an_http_date_or_vercels_reset_epoch() -> None:
    assert retry_after_s({"Retry-After": "7"}, NOW) == 7.0
    assert retry_after_s({"retry-after": "Sun, 01 Mar 2026 12:00:30 GMT"}, NOW) == 30.0
    assert retry_after_s({"X-RateLimit-Reset": str(int(NOW.timestamp()) + 12)}, NOW) == 12.0
    assert retry_after_s({"Retry-After": "soon"}, NOW) is None
    assert retry_after_s({}, NOW) is None


@pytest.mark.parametrize(("body", "expected"), [
    ({"error": {"code": "forbidden", "message": "Not authorized"}}, "forbidden: Not authorized"),  # Vercel
    ({"errors": [{"message": "not found", "long_message": "User user_1 not found", "code": "resource_not_found"}]},
     "User user_1 not found"),  # Clerk
    ({"detail": "Invalid token"}, "Invalid token"),  # Sentry
])
def test_the_vendors_own_error_text_is_used(body: object, expected: str) -> None:
    assert vendor_message(httpx.Response(400, json=body)) == expected


async def test_a_vendor_echoing_the_token_gets_it_redacted_and_the_header_carries_it_alone() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(400, json={"detail": "token tok_SECRET_value is malformed"})

    client = RestClient("sentry", "http://api.test", SecretStr("tok_SECRET_value"),
                        transport=httpx.MockTransport(answer))
    with pytest.raises(PlatformError, match=r"HTTP 400: token \[redacted\] is malformed") as raised:
        await client.request("GET", "/x", params={"q": "1"})
    assert "tok_SECRET_value" not in str(raised.value)
    assert seen[0].headers["Authorization"] == "Bearer tok_SECRET_value"
    assert "SECRET" not in str(seen[0].url)


async def test_no_token_is_reported_with_the_setting_to_set_and_nothing_is_sent() -> None:
    def answer(request: httpx.Request) -> httpx.Response:  # pragma: no cover - must not be called
        raise AssertionError("sent without a token")

    client = RestClient("clerk", "http://api.test", None, token_setting="REMEDIATE_CLERK_SECRET_KEY",
                        transport=httpx.MockTransport(answer))
    with pytest.raises(NotConfigured, match="REMEDIATE_CLERK_SECRET_KEY"):
        await client.request("GET", "/v1/instance")

"""Fixtures for the end-to-end tests: the session's Prefect API as a URL a subprocess can be given."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def prefect_api_url(prefect_api: None) -> str:
    """The session's real Prefect API, for a ``remediate`` subprocess whose subject is not Prefect's own start-up
    (the demo tests that keep Prefect's temporary API have that subject: ``test_demo``, ``test_demo_interrupted``)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the session's Prefect API has no URL"
    return str(url)

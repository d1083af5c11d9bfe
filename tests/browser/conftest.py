"""Fixtures for the browser tests: the operator's stack (Prefect server + UI, simulator, ``remediate serve``) and
headless Chromium driven by Playwright.

Module-scoped, not session-scoped: Playwright's sync API runs its own event loop, which must be gone before the
suite's asyncio tests run. Chromium is Debian's (``/usr/bin/chromium``); nothing is downloaded at test time. A
missing browser or Playwright skips these tests locally and fails them in CI (``REMEDIATE_REQUIRE_SERVICES=1``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.browser import uikit
from tests.helpers.prefect_templates import postgres_template, seed_sqlite
from tests.helpers.services import (
    pg_admin_url,
    postgres_reachable,
    require_service,
    services_required,
    temporary_postgres_database,
)


@contextmanager
def prefect_database(home: Path) -> Iterator[str]:
    """PostgreSQL for the Prefect server when there is one (no SQLite lock stalls under the UI's polling, as in
    production), else SQLite under ``home``."""
    admin_url = pg_admin_url()
    reachable, why = postgres_reachable(admin_url)
    if services_required():  # CI has PostgreSQL: a missing one is a failure, not a quiet switch to SQLite
        require_service("PostgreSQL", reachable, why)
    if not reachable:
        yield f"sqlite+aiosqlite:///{seed_sqlite(home / 'prefect.db').resolve()}"
        return
    with temporary_postgres_database(admin_url, prefix="remediate_ui", template=postgres_template()) as url:
        _, _, rest = url.partition("://")
        yield f"postgresql+asyncpg://{rest}"


@pytest.fixture(scope="module")
def ui_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[uikit.UiStack]:
    missing = uikit.browser_missing()
    require_service("Chromium with Playwright", not missing, missing)
    home = tmp_path_factory.mktemp("ui-stack")
    with prefect_database(home) as database_url, uikit.ui_stack(home, database_url) as stack:
        yield stack


@pytest.fixture(scope="module")
def browser(ui_stack: uikit.UiStack) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # No WebGL: the one WebGL element is Prefect's own run graph, which nothing here asserts, and headless
        # Chromium draws it with SwiftShader, a GPU emulated on the CPU: ~60 of the browser's ~110 CPU-seconds for
        # these tests (measured). The graph's box stays empty in the screenshots; the rest of the page is unchanged.
        chromium = playwright.chromium.launch(executable_path=uikit.CHROMIUM, headless=True,
                                              args=["--disable-3d-apis"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, ui_stack: uikit.UiStack, tmp_path: Path) -> Iterator[Any]:
    """A fresh browser tab on the UI; its last view is saved as ``last-view.png`` in the test's tmp dir."""
    # Tall enough that the approval dialog (max 80 % of the height) shows the whole plan and form at once.
    context = browser.new_context(viewport={"width": 1280, "height": 1900}, base_url=ui_stack.ui_url)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    try:
        yield tab
    finally:
        try:
            tab.screenshot(path=str(tmp_path / "last-view.png"))
        finally:
            context.close()

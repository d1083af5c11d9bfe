"""What a person does in Prefect 3.9.1's UI (the React UI at ``/v2``, where ``/`` sends a browser), as functions.

Selectors are roles and visible text, the way a person finds things: links and buttons by name, form fields by
the title and help text our forms give them. Waits are bounded; a state the page has not shown yet is retried
with a reload, so a missed refresh cannot hang a test.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from playwright.sync_api import expect

RUN_URL = re.compile(r"/runs/flow-run/(?P<id>[0-9a-f-]{36})")
#: What the form's Step field is prefilled with: incident / action / plan digest (remediation.approvers.step_binding).
STEP_BINDING = re.compile(r"^inc-[0-9a-f]+/act-[0-9a-f]+/[0-9a-f]{16}$")


def field(page: Any, title: str) -> Any:
    """The block of one form field (label, help text, input), found by its title ("(Optional)" or not)."""
    label = page.locator("label").filter(has_text=re.compile(rf"^{re.escape(title)}( \(Optional\))?$"))
    return label.locator("xpath=../../..")


def open_custom_run(page: Any, deployment: str) -> None:
    """Home -> Deployments -> the deployment -> Run -> Custom run, as a person clicks through."""
    page.goto("/")
    page.get_by_role("link", name="Deployments", exact=True).click()
    # The list links each row's deployment and its flow, both by name: take the deployment's.
    deployment_link = page.get_by_role("link", name=deployment, exact=True)
    deployment_link.and_(page.locator("[href*='/deployments/deployment/']")).first.click()
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Custom run").click()
    expect(page.get_by_role("heading", name="Parameters")).to_be_visible()


def expect_field(page: Any, title: str, help_text: str) -> None:
    """The form shows a field titled ``title`` with ``help_text`` under it."""
    block = field(page, title)
    expect(block).to_have_count(1)
    expect(block).to_contain_text(help_text)


def choose(page: Any, title: str, option: str, *, tab: str | None = None) -> None:
    """Pick ``option`` in an enum field; ``tab`` first switches an optional field from "None" to its type."""
    block = field(page, title)
    if tab is not None:
        block.get_by_role("tab", name=tab, exact=True).click()
    block.get_by_role("button", name=re.compile(r"^Select")).click()
    page.get_by_role("option", name=option, exact=True).click()


def fill_number(page: Any, title: str, value: float, *, tab: str | None = None) -> None:
    """Type a number; ``tab`` ("int"/"float") first switches an optional field from "None" to a number."""
    block = field(page, title)
    if tab is not None:
        block.get_by_role("tab", name=tab, exact=True).click()
    block.get_by_role("spinbutton").fill(f"{value:g}")


def submit_custom_run(page: Any, run_name: str) -> str:
    """Name the run, submit the form, open the new run from the confirmation toast; return the run's id."""
    page.get_by_role("textbox", name="Run Name").fill(run_name)
    page.get_by_role("button", name="Submit", exact=True).click()
    # "<name> scheduled to start now [View run]"; the deployment's run list hides runs still Scheduled.
    toast = page.get_by_role("listitem").filter(has_text=f"{run_name} scheduled to start")
    toast.get_by_role("link", name="View run").click()
    page.wait_for_url(RUN_URL)
    match = RUN_URL.search(page.url)
    assert match is not None
    return match.group("id")


def wait_for_state(page: Any, state: str, timeout_s: float) -> None:
    """Until the run page shows ``state`` (e.g. "Paused", "Completed"); reload if the page did not refresh."""
    deadline = time.monotonic() + timeout_s
    badge = page.get_by_text(state, exact=True).first
    while True:
        try:
            expect(badge).to_be_visible(timeout=5_000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise AssertionError(f"the run page never showed '{state}' within {timeout_s:g}s") from None
            page.reload()


def open_resume_dialog(page: Any) -> Any:
    """The run's menu (the "Open menu" button in the page header) -> Resume: the approval dialog."""
    page.get_by_role("main").get_by_role("button", name="Open menu").first.click()
    page.get_by_role("menuitem", name="Resume", exact=True).click()
    dialog = page.get_by_role("dialog", name="Resume Flow Run")
    # The dialog opens at once and fetches the form's schema from the API after: on a busy host that takes longer
    # than the default 5 s.
    expect(dialog.get_by_role("textbox", name="Your name")).to_be_visible(timeout=30_000)
    return dialog


def answer(dialog: Any, *, approve: bool, name: str, reason: str, code: str | Callable[[], str] = "") -> None:
    """Fill the approval form as a person does: the Decision select (no default: approve or deny is chosen), name,
    code, reason. The Step field stays as the run prefilled it, and the fields serve and the CLI fill stay empty.

    ``code`` may be a function, called right before the code is typed (a TOTP code is good for 30 s)."""
    expect(dialog.get_by_role("textbox", name=re.compile(r"^Step \(filled in"))).to_have_value(STEP_BINDING)
    dialog.get_by_role("button", name="Select Decision").click()
    dialog.page.get_by_role("option", name="approve" if approve else "deny", exact=True).click()
    dialog.get_by_role("textbox", name="Your name").fill(name)
    dialog.get_by_role("textbox", name="Reason").fill(reason)
    dialog.get_by_role("textbox", name=re.compile(r"^Code")).fill(code() if callable(code) else code)


def resume(dialog: Any) -> None:
    dialog.get_by_role("button", name="Resume", exact=True).click()

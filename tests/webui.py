"""Drive the real Temporal Web UI with Debian's Chromium (Playwright, executable_path; no browser
download): what an approver sees and does."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import quote

from playwright.sync_api import Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

CHROMIUM = "/usr/bin/chromium"
# No network beyond loopback here: keep Chromium from reaching out (and failing noisily).
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--no-first-run"]


@contextlib.contextmanager
def browser_page() -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1100})
        finally:
            browser.close()


def open_rollout(page: Page, ui_url: str, rollout_id: str) -> None:
    page.goto(f"{ui_url}/namespaces/default/workflows/{quote(rollout_id, safe='')}")
    page.get_by_text(rollout_id).first.wait_for()


def current_details(page: Page) -> str:
    """The text of the workflow's Current Details, under the User Metadata tab."""
    page.get_by_text("User Metadata").first.click()
    # The UI renders markdown details inside a sandboxed iframe.
    for _ in range(60):
        for frame in page.frames[1:]:
            text = frame.locator("body").inner_text() if frame.locator("body").count() else ""
            if "canary weight" in text:
                return text
        page.wait_for_timeout(500)
    raise AssertionError("the Web UI never showed the rollout's current details")


def _option(page: Page, name: str):
    """The handler `name` in the dialog's list (an option shows the name, then the handler's description)."""
    options = page.get_by_role("option")
    options.first.wait_for()
    texts = options.all_inner_texts()
    for index, text in enumerate(texts):
        if text.strip().split()[0:1] == [name]:
            return options.nth(index)
    raise AssertionError(f"no handler {name!r} in the Web UI's list: {texts}")


def send_signal(page: Page, name: str, payload: str, screenshot: str | None = None) -> None:
    """More Actions → Send a Signal → pick `name`, type the JSON, Submit."""
    page.get_by_role("button", name="More Actions").click()
    page.get_by_role("menuitem", name="Send a Signal").click()
    page.get_by_test_id("signal-select-button").last.click()
    _option(page, name).click()
    page.get_by_role("textbox", name="Data").last.click()
    page.keyboard.type(payload)
    # Leaving the editor reformats the JSON and grows the dialog: blur it first, let it settle, then
    # submit, and make sure the dialog closed (a click during the re-layout can miss silently).
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.wait_for_timeout(1000)
    if screenshot:
        page.screenshot(path=screenshot)
    submit = page.get_by_test_id("confirm-modal-button").filter(visible=True)
    for _ in range(3):
        submit.first.click()
        try:
            submit.first.wait_for(state="hidden", timeout=10_000)
            return
        except PlaywrightTimeout:
            continue
    raise AssertionError(f"the Web UI's {name} dialog never closed after Submit")

"""A real headless Chromium (the system's, driven by Playwright) clicking through every
action of the page, with JavaScript on and off (spec §10)."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from tests.sync.conftest import make_config, make_env, open_store, scan_into
from tests.web.test_http import FP_A, _seed_unknown

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None  # type: ignore[assignment]

if sync_playwright is None:
    pytestmark = pytest.mark.skip(reason="browser tests skipped: playwright is not installed")
elif not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
    pytestmark = pytest.mark.skip(reason=f"browser tests skipped: no system Chromium at {CHROMIUM}")


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(params=[True, False], ids=["js", "nojs"])
def page_factory(request, browser):
    contexts = []

    def make(base_url):
        ctx = browser.new_context(java_script_enabled=request.param, base_url=base_url,
                                  viewport={"width": 390, "height": 844})  # a phone
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()


def button(page, name):
    return page.get_by_role("button", name=name, exact=True)


def test_click_through_everything(home, kobo, emulator_factory, serve_factory, page_factory):
    emu = emulator_factory("fork")
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    _seed_unknown(cfg)
    s = serve_factory(env=make_env(emu.base_url))
    page = page_factory(s.url)
    page.goto("/")
    expect(page.get_by_role("heading", name="Sync & Cache")).to_be_visible()

    # View Pending Sessions → Close
    button(page, "View Pending Sessions").click()
    expect(page.get_by_text("Pending uploads")).to_be_visible()
    page.get_by_role("link", name="Close").click()
    expect(page).to_have_url(re.compile(r"/$"))

    # Clear Pending... → Cancel (nothing changes)
    with open_store(cfg) as store:
        before = store.counts()
    page.get_by_role("button", name=re.compile(r"^Clear Pending\.\.\. \(")).click()
    expect(page.get_by_text("There is no undo.")).to_be_visible()
    expect(page.get_by_label(f"Sessions ({before['sessions']})")).to_be_checked()
    button(page, "Cancel").click()
    with open_store(cfg) as store:
        assert store.counts() == before

    # Match Unmatched Books → the automatic job → Yes → manual matching
    # (the first run matches the scanned books by fingerprint and uploads their items)
    page.get_by_role("button", name=re.compile(r"^Match Unmatched Books \(")).click()
    expect(page.get_by_text(re.compile(r"^4 newly matched, 2 still unmatched\.$"))) \
        .to_be_visible(timeout=60_000)
    page.get_by_role("link", name="Back to Sync & Cache").click()
    page.get_by_role("button", name="Match Unmatched Books (2)", exact=True).click()
    expect(page.get_by_text("No new matches found (2 still unmatched). Match them manually?")) \
        .to_be_visible(timeout=60_000)
    button(page, "Yes").click()
    heading = "[1/2] Leaves of Grass (leaves-copy.epub)"
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    page.get_by_label("Search").fill("Leaves of Grass")
    button(page, "Search again").click()
    page.get_by_label("BookLore book ID").fill("999999")
    button(page, "Enter a BookLore ID").click()
    expect(page.get_by_text("BookLore has no book with ID 999999.")).to_be_visible()
    page.get_by_role("button", name=re.compile(r"^Leaves of Grass — .+ \(\d+%\)$")).first.click()
    expect(page.get_by_text(re.compile(r"^Matched .+ to BookLore book \d+\.$"))).to_be_visible()
    button(page, "Stop").click()
    expect(page.get_by_text(re.compile(r"newly matched, \d+ still unmatched\."))).to_be_visible()
    with open_store(cfg) as store:
        assert store.get_book_by_hash(FP_A).book_id is not None

    # Sync Pending Now → live progress or reloads → summary → back
    page.get_by_role("button", name=re.compile(r"^Sync Pending Now \(")).click()
    expect(page.get_by_text(re.compile(r"^Synced \d+ items, \d+ failed, \d+ skipped\.$"))) \
        .to_be_visible(timeout=60_000)
    page.get_by_role("link", name="Back to Sync & Cache").click()

    # Advanced → Re-match All → Cancel, then Re-match (a job)
    button(page, "Advanced").click()
    button(page, "Re-match All Books in Cache").click()
    button(page, "Cancel").click()
    button(page, "Re-match All Books in Cache").click()
    button(page, "Re-match").click()
    expect(page.get_by_text(re.compile(r"^Re-matched: \d+;"))).to_be_visible(timeout=60_000)
    page.get_by_role("link", name="Back to Sync & Cache").click()

    # Advanced → Clear... → one ledger → Clear Selected
    button(page, "Advanced").click()
    button(page, "Clear...").click()
    box = page.get_by_label("Synced progress", exact=True)
    expect(box).not_to_be_checked()
    box.check()
    button(page, "Clear Selected").click()
    expect(page.get_by_text(re.compile(r"^Cleared \d+ rows of synced progress\.$"))).to_be_visible()

    # Clear Pending... → Clear Selected (whatever is still queued)
    pending = page.get_by_role("button", name=re.compile(r"^Clear Pending\.\.\."))
    if pending.is_enabled():
        pending.click()
        button(page, "Clear Selected").click()
        expect(page.get_by_text(re.compile(r"^Cleared \d+ pending"))).to_be_visible()
    expect(button(page, "Sync Pending Now")).to_be_disabled()

    # Clear Cache: no confirmation
    button(page, "Clear Cache").click()
    expect(page.get_by_text(re.compile(r"^Cleared the book cache \("))).to_be_visible()
    expect(button(page, "Clear Cache")).to_be_disabled()
    expect(button(page, "Match Unmatched Books")).to_be_disabled()


def test_login_in_the_browser(serve_factory, page_factory):
    s = serve_factory(env={"BOOKLORE_SYNC_WEB_PASSWORD": "pw-for-browser"})
    page = page_factory(s.url)
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.get_by_label("Password").fill("wrong")
    button(page, "Log in").click()
    expect(page.get_by_text("Wrong password.")).to_be_visible()
    page.get_by_label("Password").fill("pw-for-browser")
    button(page, "Log in").click()
    expect(page.get_by_role("heading", name="Sync & Cache")).to_be_visible()
    assert "pw-for-browser" not in page.content()

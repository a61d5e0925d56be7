"""The interactive menu driven through a real pseudo-terminal (pexpect): type keys, read
the screen (ANSI sequences stripped)."""

from __future__ import annotations

import os
import re
import sys
import time

import pexpect
import pytest

from booklore_sync.store import Store
from tests.sync.conftest import make_config, make_env, open_store, scan_into

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")
DOWN, UP, ENTER, ESC, SPACE = "\x1b[B", "\x1b[A", "\r", "\x1b", " "
# the quiet moment that ends a read once the awaited text is on screen
AFTER = 0.15


class Screen:
    def __init__(self, env: dict[str, str], args: tuple[str, ...] = ("menu",)):
        full = dict(os.environ)
        full.update(env)
        full["PROMPT_TOOLKIT_NO_CPR"] = "1"
        self.child = pexpect.spawn(sys.executable, ["-m", "booklore_sync", *args], env=full,
                                   encoding="utf-8", dimensions=(40, 120), timeout=15)
        self.text = ""

    def read(self, settle: float = 0.6, until: str | None = None,
             timeout: float = 15.0) -> str:
        """Everything printed since the last read, without escape sequences: until the
        screen has been quiet for ``settle`` seconds — or, with ``until``, until that
        text has appeared and the screen is quiet for a short moment (``AFTER``), the
        whole read bounded by ``timeout``."""
        out = ""
        deadline = time.monotonic() + timeout
        quiet = settle
        quiet_until = time.monotonic() + quiet
        while time.monotonic() < min(quiet_until, deadline):
            try:
                chunk = self.child.read_nonblocking(65536, timeout=0.05)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                break
            out += chunk
            if until is not None and quiet != AFTER and until in ANSI.sub("", out):
                quiet = AFTER
            quiet_until = time.monotonic() + quiet
        clean = ANSI.sub("", out)
        self.text += clean
        return clean

    def wait_for(self, needle: str, timeout: float = 15.0) -> str:
        """Read until ``needle`` is on screen (and the screen settles), within ``timeout``."""
        seen = self.read(timeout, until=needle, timeout=timeout)
        if needle in seen:
            return seen
        raise AssertionError(f"{needle!r} not on screen; saw:\n{seen}")

    def keys(self, *keys: str, pause: float = 0.15) -> None:
        for k in keys:
            self.child.send(k)
            time.sleep(pause)

    def choose(self, label: str, tries: int = 12) -> None:
        """Move the pointer down until it rests on ``label``, then press Enter."""
        chunk = self.read(0.3, until="»")
        for _ in range(tries):
            if "»" in chunk and chunk.rsplit("»", 1)[1].lstrip().startswith(label):
                self.keys(ENTER)
                return
            self.keys(DOWN)
            chunk = self.read(0.3, until="»")
        raise AssertionError(f"could not reach {label!r}; last screen:\n{chunk}")

    def close(self) -> int:
        self.child.expect(pexpect.EOF, timeout=15)
        self.child.close()
        return self.child.exitstatus


@pytest.fixture
def screen_factory():
    screens = []

    def make(env, args=("menu",)):
        s = Screen(env, args)
        screens.append(s)
        return s

    yield make
    for s in screens:
        if s.child.isalive():
            s.child.terminate(force=True)


def _menu_lines(text: str) -> list[str]:
    labels = ("Sync Pending Now", "View Pending Sessions", "Match Unmatched Books",
              "Clear Pending...", "Advanced", "Clear Cache")
    return [line.strip(" »-") for line in text.splitlines()
            if any(line.strip(" »-").startswith(lab) for lab in labels)]


def test_empty_menu_greys_out_and_esc_leaves(home, screen_factory):
    screen = screen_factory({})
    text = screen.wait_for("Close")
    lines = _menu_lines(text)
    assert "Sync Pending Now (greyed out)" in lines
    assert "Match Unmatched Books (greyed out)" in lines
    assert "Clear Pending... (greyed out)" in lines
    assert "Clear Cache (greyed out)" in lines
    assert "View Pending Sessions" in lines and "Advanced" in lines
    screen.keys(ESC)
    assert screen.close() == 0


def test_view_clear_pending_and_clear_cache(home, screen_factory):
    store = Store.open(home / "booklore-sync.db")
    for i in range(3):
        store.enqueue_session("a" * 32, 1000 + i, {})
    store.enqueue_rating("a" * 32, 8)
    store.upsert_book("a" * 32, title="Leaves")
    store.close()
    screen = screen_factory({})
    text = screen.wait_for("Close")
    assert "Sync Pending Now (3S, 1R)" in text and "Clear Pending... (3S, 1R)" in text
    assert "Match Unmatched Books (1)" in text

    # View Pending Sessions: read-only dialog, stays until a key is pressed
    screen.choose("View Pending Sessions")
    text = screen.wait_for("Press any key to close")
    assert "Total books seen: 1" in text and "Sessions:         3" in text
    screen.keys("x")
    screen.wait_for("Sync & Cache")

    # Clear Pending...: the checklist lists only non-empty queues, pre-selected
    screen.choose("Clear Pending...")
    text = screen.wait_for("Clear which pending queues?")
    assert "Sessions (3)" in text and "Ratings (1)" in text
    assert "Annotations" not in text.split("Clear which pending queues?")[1]
    screen.keys(ENTER)  # keep the pre-selection
    screen.wait_for("Clear Selected")
    screen.choose("Clear Selected")  # Cancel has the pointer: Enter alone discards nothing
    text = screen.wait_for("Sync & Cache")
    assert "Cleared 3 pending sessions." in text
    text += screen.read()
    assert "Sync Pending Now (greyed out)" in text

    # Clear Cache: immediate, then greyed out
    screen.choose("Clear Cache")
    text = screen.wait_for("Cleared the book cache")
    text += screen.read()
    assert "Clear Cache (greyed out)" in text
    screen.keys("q")
    assert screen.close() == 0
    with Store.open(home / "booklore-sync.db") as store:
        assert sum(store.counts().values()) == 0
        assert store.cache_counts()["total"] == 0
        assert store.enqueue_session("a" * 32, 1000, {}) == "discarded"


def test_sync_from_menu(home, kobo, emu, screen_factory):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    screen = screen_factory(make_env(emu.base_url))
    text = screen.wait_for("Close")
    assert re.search(r"Sync Pending Now \(\d+S, \d+A, \d+R, \d+B, \d+P\)", text)
    screen.keys(ENTER)
    text = screen.wait_for("Synced")
    assert "0 failed" in text
    text += screen.read()
    assert "Sync Pending Now (greyed out)" in text
    screen.keys(ESC)
    assert screen.close() == 0
    with open_store(cfg) as store:
        assert sum(store.counts().values()) == 0


def test_advanced_submenu_and_back(home, screen_factory):
    screen = screen_factory({})
    screen.wait_for("Close")
    screen.choose("Advanced")
    text = screen.wait_for("Re-match All Books in Cache")
    assert "Clear..." in text
    screen.choose("Clear...")
    text = screen.wait_for("Clear which synced-history records?")
    assert "Historical sessions (0)" in text and "Synced progress (0)" in text
    screen.keys(ENTER)  # nothing selected → cancelled
    screen.wait_for("nothing was cleared")
    screen.keys(ESC)  # back to the main menu
    screen.wait_for("Sync & Cache")
    screen.keys(ESC)
    assert screen.close() == 0


def test_menu_match_manual_from_terminal(home, emu, screen_factory):
    cfg = make_config(home, emu.base_url)
    with open_store(cfg) as store:
        store.upsert_book("c" * 32, file_path="/x/leaves-copy.epub", title="Leaves of Grass")
    screen = screen_factory(make_env(emu.base_url))
    screen.wait_for("Close")
    screen.choose("Match Unmatched Books (1)")
    text = screen.wait_for("Match them manually?")
    assert "No new matches found (1 still unmatched)" in text
    screen.keys("y", ENTER)  # a confirmation needs Enter
    text = screen.wait_for("Skip this book")
    assert "Leaves of Grass" in text and "(100%)" in text
    assert "Search again" in text and "Enter a BookLore ID" in text and "Stop" in text
    screen.keys(ENTER)  # the top result
    text = screen.wait_for("newly matched")
    assert "1 newly matched, 0 still unmatched" in text
    screen.keys(ESC)
    assert screen.close() == 0
    with open_store(cfg) as store:
        assert store.get_book_by_hash("c" * 32).match_method == "manual"

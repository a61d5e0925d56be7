"""`match`'s manual dialog in a real pseudo-terminal: it cannot misfire, and it holds
the store's lock only for a confirmed upload (spec §3, §4.3)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import cli_json
from tests.sync.conftest import make_config, make_env, open_store
from tests.sync.test_menu_pty import ENTER, ESC, Screen

WEAK = "d" * 32
STRONG = "c" * 32


@pytest.fixture
def screen_factory():
    screens = []

    def make(env, args):
        s = Screen(env, args)
        screens.append(s)
        return s

    yield make
    for s in screens:
        if s.child.isalive():
            s.child.terminate(force=True)


def _seed(cfg, fingerprint, title):
    with open_store(cfg) as store:
        store.upsert_book(fingerprint, file_path=f"/x/{fingerprint[:4]}.epub", title=title)
        store.enqueue_rating(fingerprint, 6)


def test_y_alone_does_not_answer_and_enter_on_weak_candidate_skips(home, emu, screen_factory):
    cfg = make_config(home, emu.base_url)
    _seed(cfg, WEAK, "Leaves of Zzzz Qqqq Xxxx")
    screen = screen_factory(make_env(emu.base_url), ("match",))
    screen.wait_for("Match them manually?")
    screen.keys("y")
    text = screen.read(0.8)
    assert "Skip this book" not in text  # y alone submits nothing
    screen.keys(ENTER)
    text = screen.wait_for("Skip this book")
    assert "%" in text  # a weak candidate is listed ...
    screen.keys(ENTER)  # ... but Enter alone skips the book
    text = screen.wait_for("still unmatched")
    assert "0 newly matched, 1 still unmatched" in text
    assert screen.close() == 0
    with open_store(cfg) as store:
        assert store.get_book_by_hash(WEAK).book_id is None
    assert emu.state.ratings() == []


def test_typed_ahead_keys_are_discarded_and_esc_leaves(home, emu, screen_factory):
    cfg = make_config(home, emu.base_url)
    _seed(cfg, STRONG, "Leaves of Grass")
    screen = screen_factory(make_env(emu.base_url), ("match",))
    screen.child.send("y" + ENTER + ENTER)  # typed before any question is on screen
    text = screen.wait_for("Match them manually?")
    text += screen.read(0.8)
    assert "Skip this book" not in text
    screen.keys(ESC)  # Esc leaves the confirmation: nothing changes
    text = screen.wait_for("still unmatched")
    assert screen.close() == 0
    with open_store(cfg) as store:
        assert store.get_book_by_hash(STRONG).book_id is None


def test_dialog_holds_no_lock_while_waiting(home, emu, kobo, screen_factory):
    cfg = make_config(home, emu.base_url)
    _seed(cfg, STRONG, "Leaves of Grass")
    env = make_env(emu.base_url)
    screen = screen_factory(env, ("match",))
    screen.wait_for("Match them manually?")
    screen.keys("y", ENTER)
    screen.wait_for("Skip this book")
    # while the dialog waits for a person, a sync runs (it is not refused with exit 4)
    code, data = cli_json("sync", "--json", env=env)
    assert code in (0, 1, 2) and code != 4, data
    # the best candidate (100 %) has the pointer: Enter links it and uploads its rating
    screen.keys(ENTER)
    text = screen.wait_for("newly matched")
    assert "1 newly matched" in text
    assert screen.close() == 0
    with open_store(cfg) as store:
        assert store.get_book_by_hash(STRONG).match_method == "manual"


def test_ctrl_c_exits_130_saying_what_was_done(home, emu, screen_factory):
    cfg = make_config(home, emu.base_url)
    _seed(cfg, WEAK, "Leaves of Zzzz Qqqq Xxxx")
    screen = screen_factory(make_env(emu.base_url), ("match",))
    screen.wait_for("Match them manually?")
    screen.keys("y", ENTER)
    screen.wait_for("Skip this book")
    screen.child.sendintr()
    text = screen.wait_for("Cancelled; 0 books matched before.")
    assert "Traceback" not in text
    assert screen.close() == 130


def test_no_terminal_no_dialog():
    proc = subprocess.run([sys.executable, "-m", "booklore_sync", "match", "--json"],
                          capture_output=True, text=True, input="")
    assert proc.returncode == 2  # no server configured: a configuration error, not a dialog

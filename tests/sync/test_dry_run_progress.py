"""`sync --dry-run` over real HTTP (reads only, nothing sent, the store unchanged, no
lock) and the sync's two counted steps: books resolved, then items uploaded."""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import pexpect

from booklore_sync.actions.dry_run import dry_run
from booklore_sync.actions.sync import SyncProgress, run_sync, sync_once
from booklore_sync.store import QUEUES, SyncLock
from tests.conftest import cli_json
from tests.sync.conftest import make_config, make_env, open_store, scan_into


def _dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def _fresh_store(cfg) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(cfg.store_path) + suffix).unlink(missing_ok=True)


def _server_totals(emu) -> dict[str, int]:
    st = emu.state
    return {"sessions": len(st.sessions()), "notes": len(st.notes_v2()),
            "book_notes": len(st.book_notes()), "bookmarks": len(st.bookmarks()),
            "ratings": len(st.ratings())}


def test_dry_run_counts_what_the_server_already_holds(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    with open_store(cfg) as store:
        by_book: dict[str, int] = {}
        for item in store.pending("sessions"):
            by_book[item.fingerprint] = by_book.get(item.fingerprint, 0) + 1
    assert len(by_book) >= 2
    # a first computer uploads one book's sessions only
    first_fp = max(by_book, key=lambda fp: by_book[fp])
    report = sync_once(cfg, only_fingerprints=[first_fp])
    sent = report.queues["sessions"].synced
    assert sent == by_book[first_fp] and len(emu.state.sessions()) == sent

    # a fresh store (another computer, or a lost store) holds the whole library again
    _fresh_store(cfg)
    scan_into(cfg, kobo)
    before = _dump(cfg.store_path)
    held = _server_totals(emu)
    emu.state.clear_request_log()

    code, data = cli_json("sync", "--dry-run", "--json", env=make_env(emu.base_url))
    assert code == 0, data
    assert data["dry_run"] is True and data["offline"] is False
    assert set(QUEUES) <= set(data)
    sessions = data["sessions"]
    assert sessions["already_there"] == sent  # the first computer's, found by overlap
    total = sum(by_book.values())
    assert sessions["would_send"] + sessions["already_there"] + sessions["skipped"] == total
    assert sessions["would_send"] > 0

    log = emu.request_log()
    assert log, "the dry run made no request at all"
    assert {e["method"] for e in log if not e["path"].endswith("/login")} == {"GET"}
    assert any("/sessions" in e["path"] or "reading-sessions" in e["path"] for e in log)
    assert _server_totals(emu) == held  # nothing sent
    assert _dump(cfg.store_path) == before  # nothing changed in the store

    # a real sync then does what the dry run announced
    report = sync_once(cfg)
    assert report.queues["sessions"].synced == sessions["would_send"] + sent
    assert len(emu.state.sessions()) == sent + sessions["would_send"]


def test_dry_run_takes_no_lock_and_offline_exits_3(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    lock = SyncLock(cfg.lock_path)
    lock.acquire()
    try:
        result = dry_run(cfg)
        assert result.error is None and not result.offline
        assert sum(result.counts["sessions"].values()) > 0
        assert result.book_lines  # what would be sent, per book
    finally:
        lock.release()
    url = emu.base_url
    emu.stop()
    code, data = cli_json("sync", "--dry-run", "--json", env=make_env(url))
    assert code == 3 and data["offline"] is True and data["dry_run"] is True
    assert data["error"]["type"] == "offline" and url in data["error"]["message"]
    assert all(v == 0 for q in QUEUES for v in data[q].values())


def test_dry_run_without_the_koreader_account_skips_progress(home, kobo, emu):
    cfg = make_config(home, emu.base_url, koreader=False)
    scan_into(cfg, kobo)
    result = dry_run(cfg)
    assert result.error is None
    pending = len(open_store(cfg).pending("progress"))
    assert pending and result.counts["progress"] == {"would_send": 0, "already_there": 0,
                                                     "skipped": pending}


def test_resolution_then_upload_progress(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    with open_store(cfg) as store:
        books = {i.fingerprint for q in QUEUES for i in store.pending(q)}
        items = sum(len(store.pending(q)) for q in QUEUES)
    events: list[tuple[str, int, int]] = []
    progress = SyncProgress(resolving=lambda d, t: events.append(("resolve", d, t)),
                            uploading=lambda d, t: events.append(("upload", d, t)))
    outcome = run_sync(cfg, on_progress=progress)
    assert not outcome.report.offline
    resolving = [e for e in events if e[0] == "resolve"]
    assert resolving[0][1] < resolving[-1][1] == resolving[-1][2] == len(books)
    assert [d for _, d, _ in resolving] == sorted(d for _, d, _ in resolving)
    assert {t for _, _, t in resolving} == {len(books)}
    last_resolve = max(i for i, e in enumerate(events) if e[0] == "resolve")
    uploads_after = [e for e in events[last_resolve:] if e[0] == "upload"]
    assert uploads_after and uploads_after[-1][1] == uploads_after[-1][2] == items
    # a plain callable still counts the uploads (the older form)
    plain: list[tuple[int, int]] = []
    sync_once(cfg, on_progress=lambda d, t: plain.append((d, t)))
    assert all(t >= d for d, t in plain)


def test_the_bar_on_a_terminal_says_resolving_then_uploading(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    env = dict(os.environ, **make_env(emu.base_url), COLUMNS="100", TERM="xterm")
    script = "from booklore_sync.entry import main; main()"
    child = pexpect.spawn(sys.executable, ["-c", script, "sync"], env=env, timeout=60,
                          encoding="utf-8", dimensions=(30, 100))
    child.expect(pexpect.EOF)
    child.close()
    text = child.before or ""
    assert child.exitstatus == 0, text
    assert "Resolving books" in text and "Uploading" in text
    assert text.index("Resolving books") < text.rindex("Uploading")

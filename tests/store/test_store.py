"""The local store's rules (spec §3)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from booklore_sync.store import (
    ALREADY_QUEUED,
    ALREADY_SYNCED,
    DISCARDED,
    QUEUED,
    UPDATED,
    LockBusy,
    Store,
    StoreError,
    StoreVersionError,
    SyncLock,
)
from booklore_sync.store.migrations import LATEST

FP = "59d481d168cca6267322f150c5f6a2a3"
FP2 = "41cce710f34e5ec21315e19c99821415"


def test_fresh_store_pragmas_and_schema(store):
    conn = store._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert store.schema_version() == LATEST
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    for t in ("book_cache", "pending_sessions", "pending_annotations", "pending_ratings",
              "pending_bookmarks", "pending_koreader_progress", "historical_sessions",
              "synced_annotations", "synced_bookmarks", "rating_sync_history",
              "synced_koreader_progress", "match_history", "schema_migrations"):
        assert t in tables
    for t in ("pending_sessions", "pending_annotations", "pending_ratings", "pending_bookmarks",
              "pending_koreader_progress"):
        cols = {r[1] for r in conn.execute(f"PRAGMA table_info({t})")}
        assert {"fingerprint", "retry_count", "last_attempt_at", "last_error",
                "last_status"} <= cols


def test_reopen_is_idempotent(home):
    path = home / "s.db"
    Store.open(path).close()
    s = Store.open(path)
    assert s.schema_version() == LATEST
    rows = s._conn.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0]
    assert rows == LATEST
    s.close()


def test_newer_file_is_refused_and_left_untouched(home):
    path = home / "s.db"
    Store.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_migrations VALUES (?, 'from the future', 'x')", (LATEST + 1,))
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreVersionError) as info:
        Store.open(path)
    assert str(path) in str(info.value) and "newer" in str(info.value)
    assert path.read_bytes() == before


def test_foreign_sqlite_file_is_refused(home):
    path = home / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes(x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="not a booklore-sync store"):
        Store.open(path)


def test_garbage_file_is_refused_with_its_name(home):
    path = home / "junk.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError) as info:
        Store.open(path)
    assert str(path) in str(info.value)


def test_session_keys(store):
    assert store.enqueue_session(FP, 1000, {"a": 1}) == QUEUED
    assert store.enqueue_session(FP, 1000, {"a": 2}) == ALREADY_QUEUED
    assert store.enqueue_session(FP, 1001, {}) == QUEUED
    assert store.enqueue_session(FP2, 1000, {}) == QUEUED
    assert store.counts()["sessions"] == 3
    first = store.pending("sessions")[0]
    assert first.payload == {"a": 1} and first.key == {"start_epoch": 1000}
    store.move_to_history("sessions", [first.id], book_id=7)
    assert store.enqueue_session(FP, 1000, {"a": 1}) == ALREADY_SYNCED
    assert store.counts()["sessions"] == 2


def test_insertion_order(store):
    for start in (50, 10, 30, 20):
        store.enqueue_session(FP, start, {})
    assert [i.key["start_epoch"] for i in store.pending("sessions")] == [50, 10, 30, 20]


def test_annotation_and_bookmark_keys(store):
    a = ("2024-01-02 10:00:00", "highlight", "/body/DocFragment[3]/body/p/text().5")
    assert store.enqueue_annotation(FP, *a, {"text": "x"}) == QUEUED
    assert store.enqueue_annotation(FP, *a, {"text": "y"}) == ALREADY_QUEUED
    assert store.enqueue_annotation(FP, a[0], "note", a[2], {}) == QUEUED
    assert store.enqueue_bookmark(FP, "2024-01-02 10:00:00", {}) == QUEUED
    assert store.enqueue_bookmark(FP, "2024-01-02 10:00:00", {}) == ALREADY_QUEUED
    item = store.pending("annotations")[0]
    store.move_to_history("annotations", [item.id], book_id=1, destination="annotation")
    assert store.enqueue_annotation(FP, *a, {}) == ALREADY_SYNCED
    bm = store.pending("bookmarks")[0]
    store.move_to_history("bookmarks", [bm.id], book_id=1)
    assert store.enqueue_bookmark(FP, "2024-01-02 10:00:00", {}) == ALREADY_SYNCED


def test_unconvertible_item_keeps_its_reason(store):
    store.enqueue_annotation(FP, "d", "highlight", "p", {"cfi": None}, last_error="no EPUB file")
    assert store.pending("annotations")[0].last_error == "no EPUB file"


def test_rating_latest_wins_and_last_synced_value(store):
    assert store.enqueue_rating(FP, 8) == QUEUED
    assert store.enqueue_rating(FP, 8) == ALREADY_QUEUED
    assert store.enqueue_rating(FP, 6) == UPDATED
    assert [i.key["rating"] for i in store.pending("ratings")] == [6]
    store.move_to_history("ratings", [store.pending("ratings")[0].id], book_id=3)
    assert store.enqueue_rating(FP, 6) == ALREADY_SYNCED
    assert store.enqueue_rating(FP, 10) == QUEUED  # a changed rating is queued again
    # changed back to the synced value before any sync: the queued 10 must not overwrite it
    assert store.enqueue_rating(FP, 6) == ALREADY_SYNCED
    assert store.counts()["ratings"] == 0


def test_progress_latest_wins(store):
    assert store.enqueue_progress(FP, "/body/p[1]", 0.25, {"device": "k"}) == QUEUED
    assert store.enqueue_progress(FP, "/body/p[9]", 0.5, {"device": "k"}) == UPDATED
    (item,) = store.pending("progress")
    assert item.key == {"progress": "/body/p[9]", "percentage": 0.5}
    store.move_to_history("progress", [item.id])
    assert store.last_synced_progress(FP) == ("/body/p[9]", 0.5)
    assert store.enqueue_progress(FP, "/body/p[9]", 0.5, {}) == ALREADY_SYNCED
    assert store.enqueue_progress(FP, "/body/p[12]", 0.6, {}) == QUEUED
    assert store.progress_history_count() == 1


def test_move_to_history_respects_a_value_changed_meanwhile(store):
    store.enqueue_rating(FP, 8)
    (item,) = store.pending("ratings")
    sent = {item.id: (8,)}
    store.enqueue_rating(FP, 4)  # a scan queued a newer value while 8 was being sent
    assert store.move_to_history("ratings", [item.id], expected=sent) == 0
    assert [i.key["rating"] for i in store.pending("ratings")] == [4]
    assert store.last_synced_rating(FP) is None


def test_clear_pending_discards_and_remembers(store):
    store.enqueue_session(FP, 1, {})
    store.enqueue_rating(FP, 8)
    store.enqueue_progress(FP, "x", 0.5, {})
    store.upsert_book(FP, title="Leaves")
    cleared = store.clear_pending(["sessions", "ratings"])
    assert cleared == {"sessions": 1, "ratings": 1}
    assert store.counts() == {"sessions": 0, "annotations": 0, "ratings": 0, "bookmarks": 0,
                              "progress": 1}
    assert store.cache_counts()["total"] == 1
    assert store.enqueue_session(FP, 1, {}) == DISCARDED
    assert store.enqueue_rating(FP, 8) == DISCARDED
    assert store.enqueue_rating(FP, 10) == QUEUED  # a changed rating is new
    store.clear_history(["discarded"])
    assert store.enqueue_session(FP, 1, {}) == QUEUED


def test_clear_history_is_selective(store):
    store.enqueue_session(FP, 1, {})
    store.enqueue_progress(FP, "x", 0.5, {})
    store.move_to_history("sessions", [store.pending("sessions")[0].id])
    store.move_to_history("progress", [store.pending("progress")[0].id])
    store.enqueue_session(FP, 2, {})
    assert store.clear_history(["sessions"]) == {"sessions": 1}
    assert store.progress_history_count() == 1
    assert store.counts()["sessions"] == 1
    assert store.enqueue_session(FP, 1, {}) == QUEUED


def test_cache_ids_are_stable_and_upsert_keeps_values(store):
    cid = store.upsert_book(FP, file_path="/b/leaves.epub", title="Leaves", isbn13="978")
    assert store.upsert_book(FP, file_path="/c/leaves.epub") == cid
    book = store.get_book(cid)
    assert book.file_path == "/c/leaves.epub" and book.title == "Leaves" and book.isbn13 == "978"
    store.set_book_id(cid, 42, "hash", 1.0)
    assert store.upsert_book(FP, title="Leaves of Grass") == cid
    assert store.get_book(cid).book_id == 42
    assert store.match_history(cid)[0]["method"] == "hash"


def test_extra_fingerprints_find_the_same_book(store):
    cid = store.upsert_book(FP, extra_hashes=["ffff0000ffff0000ffff0000ffff0000"])
    assert store.get_book_by_hash("ffff0000ffff0000ffff0000ffff0000").id == cid
    assert store.book_hashes(cid) == [FP, "ffff0000ffff0000ffff0000ffff0000"]


def test_queue_rows_survive_clear_cache_and_reattach(store):
    cid = store.upsert_book(FP, title="Leaves")
    store.set_book_id(cid, 42, "hash")
    store.enqueue_session(FP, 1, {})
    store.enqueue_annotation(FP, "d", "highlight", "p", {})
    assert store.pending("sessions")[0].book_id == 42
    assert store.clear_cache().books == 1
    assert store.cache_counts() == {"total": 0, "matched": 0, "unmatched": 0}
    assert store.counts()["sessions"] == 1 and store.counts()["annotations"] == 1
    orphan = store.pending("sessions")[0]
    assert orphan.cache_id is None and orphan.book_id is None
    new_id = store.upsert_book(FP, title="Leaves")
    assert new_id != cid
    again = store.pending("sessions")[0]
    assert again.cache_id == new_id and again.title == "Leaves"


def test_ensure_book_for_hash(store):
    store.enqueue_session(FP, 1, {})
    cid = store.ensure_book_for_hash(FP)
    assert store.ensure_book_for_hash(FP) == cid
    assert store.pending("sessions")[0].cache_id == cid


def test_record_attempt_and_skip(store):
    store.enqueue_session(FP, 1, {})
    (item,) = store.pending("sessions")
    store.record_attempt("sessions", [item.id], error="HTTP 500 from POST /x", status=500)
    store.record_skip("sessions", [item.id], "book not matched")
    store.record_attempt("sessions", [item.id], error="server lost", count_attempt=False)
    (item,) = store.pending("sessions")
    assert item.retry_count == 1 and item.last_error == "server lost"
    assert item.last_attempt_at is not None


def test_dry_run_transaction_rolls_back(store):
    with store.transaction(rollback=True):
        store.enqueue_session(FP, 1, {})
        store.upsert_book(FP)
        assert store.counts()["sessions"] == 1
    assert store.counts()["sessions"] == 0 and store.cache_counts()["total"] == 0


def test_failed_transaction_leaves_nothing(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.enqueue_session(FP, 1, {})
            raise RuntimeError("boom")
    assert store.counts()["sessions"] == 0


def test_two_connections_see_each_other(home):
    a = Store.open(home / "s.db")
    b = Store.open(home / "s.db")
    a.enqueue_session(FP, 1, {})
    assert b.counts()["sessions"] == 1
    a.close()
    b.close()


def test_lock_is_exclusive(home):
    first = SyncLock(home / "sync.lock")
    first.acquire()
    with pytest.raises(LockBusy, match="sync already in progress"):
        SyncLock(home / "sync.lock").acquire()
    first.release()
    with SyncLock(home / "sync.lock"):
        pass


def test_lock_recovers_after_killed_holder(home):
    script = textwrap.dedent(f"""
        import sys
        from booklore_sync.store import SyncLock
        SyncLock({str(home / 'sync.lock')!r}).acquire()
        print("held", flush=True)
        sys.stdin.read()  # held until the test closes our stdin (or kills us)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(LockBusy) as info:
            SyncLock(home / "sync.lock").acquire()
        assert str(proc.pid) in str(info.value)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        lock = SyncLock(home / "sync.lock")
        lock.acquire(wait_seconds=5)
        assert lock.held
        lock.release()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_lock_waits_briefly(home):
    first = SyncLock(home / "sync.lock")
    first.acquire()
    start = time.monotonic()
    with pytest.raises(LockBusy):
        SyncLock(home / "sync.lock").acquire(wait_seconds=0.3)
    assert time.monotonic() - start >= 0.3
    first.release()


def _v1_file(path):
    """A store file as version 1 of the schema left it, with some data."""
    from booklore_sync.store.db import _split_sql
    from booklore_sync.store.migrations import MIGRATIONS

    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                 "description TEXT NOT NULL, applied_at TEXT NOT NULL)")
    version, description, script = MIGRATIONS[0]
    for statement in _split_sql(script):
        conn.execute(statement)
    conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 'then')", (version, description))
    conn.execute("INSERT INTO pending_sessions(fingerprint, payload, created_at, start_epoch)"
                 " VALUES (?, '{}', 'then', 5)", (FP,))
    conn.execute("INSERT INTO book_cache(file_hash, title, created_at, updated_at)"
                 " VALUES (?, 'Old', 'then', 'then')", (FP,))
    conn.commit()
    conn.close()


@pytest.mark.parametrize("start_version", [0, 1])
def test_migrations_from_every_earlier_version(home, start_version):
    path = home / f"v{start_version}.db"
    if start_version == 1:
        _v1_file(path)
    s = Store.open(path)
    assert s.schema_version() == LATEST
    assert s.history_generation() == 0
    if start_version == 1:
        assert s.counts()["sessions"] == 1
        assert s._conn.execute("SELECT title FROM book_cache").fetchone()[0] == "Old"
    versions = [r[0] for r in s._conn.execute("SELECT version FROM schema_migrations")]
    assert versions == list(range(1, LATEST + 1))
    s.close()


def test_history_generation_goes_up_on_clear(store):
    g = store.history_generation()
    store.clear_history(["sessions"])
    assert store.history_generation() == g + 1
    store.clear_pending(["sessions"])
    assert store.history_generation() == g + 1


def test_unconvertible_row_gets_its_cfi_later(store):
    key = ("2024-01-01 10:00:00", "highlight", "/body/DocFragment[2]/body/p/text().0")
    store.enqueue_annotation(FP, *key, {"cfi": None, "text": "t"}, last_error="book file missing")
    assert store.enqueue_annotation(FP, *key, {"cfi": None, "text": "t"},
                                    last_error="book file missing") == ALREADY_QUEUED
    assert store.enqueue_annotation(FP, *key, {"cfi": "epubcfi(/6/4!/4/2/1,:0,:1)",
                                               "text": "t"}) == UPDATED
    (item,) = store.pending("annotations")
    assert item.payload["cfi"] == "epubcfi(/6/4!/4/2/1,:0,:1)" and item.last_error is None


def test_session_ranges(store):
    store.enqueue_session(FP, 100, {"endTime": "1970-01-01T00:03:20Z"})
    store.enqueue_session(FP, 300, {"endTime": "1970-01-01T00:06:40Z"})
    store.move_to_history("sessions", [store.pending("sessions")[1].id])
    assert sorted(store.session_ranges(FP)) == [(100, 200), (300, 400)]


def test_move_many_to_history_keeps_each_remote_id(store):
    for i in range(4):
        store.enqueue_bookmark(FP, f"2024-01-0{i + 1} 10:00:00", {})
    ids = [i.id for i in store.pending("bookmarks")]
    moved = store.move_many_to_history("bookmarks", [
        ([ids[0]], {"book_id": 7, "remote_id": 70}),
        ([ids[1]], {"book_id": 7, "remote_id": 71}),
        ([ids[2]], {"book_id": 8, "remote_id": None}),
    ])
    assert moved == 3
    rows = store._conn.execute(
        "SELECT datetime, book_id, remote_id FROM synced_bookmarks ORDER BY datetime").fetchall()
    assert [tuple(r) for r in rows] == [("2024-01-01 10:00:00", 7, 70),
                                        ("2024-01-02 10:00:00", 7, 71),
                                        ("2024-01-03 10:00:00", 8, None)]
    assert [i.id for i in store.pending("bookmarks")] == [ids[3]]

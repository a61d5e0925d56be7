"""Migration 3 and the rules it serves: kept links, Re-match All, server identity,
reconciliation records, status observations, the ledger columns (spec §2–§4.6)."""

from __future__ import annotations

import sqlite3

import pytest

from booklore_sync.common.vocab import LinkKind, MatchedBy, ReconcileKind, Settlement
from booklore_sync.store import KeptLink, ServerIdentity, Store
from booklore_sync.store.core import split_sql
from booklore_sync.store.migrations import LATEST, MIGRATIONS

FP = "59d481d168cca6267322f150c5f6a2a3"
FP2 = "41cce710f34e5ec21315e19c99821415"
FP3 = "0123456789abcdef0123456789abcdef"
SERVER = ServerIdentity("http://127.0.0.1:6060", "reader", "kobo")


# ----------------------------------------------------------------- migrations
def _old_file(path, upto: int) -> None:
    """A store file as schema version ``upto`` left it, with data of that era."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                 "description TEXT NOT NULL, applied_at TEXT NOT NULL)")
    for version, description, script in MIGRATIONS[:upto]:
        for statement in split_sql(script):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 'then')",
                     (version, description))
    for fp, book_id, method in ((FP, 7, "hash"), (FP2, 8, "manual"), (FP3, None, None)):
        conn.execute("INSERT INTO book_cache(file_hash, book_id, match_method, created_at,"
                     " updated_at) VALUES (?, ?, ?, 'then', 'then')", (fp, book_id, method))
    conn.execute("INSERT INTO pending_sessions(fingerprint, payload, created_at, start_epoch)"
                 " VALUES (?, '{}', 'then', 5)", (FP,))
    conn.execute("INSERT INTO synced_koreader_progress(fingerprint, progress, percentage,"
                 " outcome, synced_at) VALUES (?, '/p', 0.5, 'server_ahead', 'then')", (FP,))
    conn.execute("INSERT INTO historical_sessions(fingerprint, start_epoch, payload, synced_at)"
                 " VALUES (?, 1, '{}', 'then')", (FP,))
    conn.commit()
    conn.close()


@pytest.mark.parametrize("upto", [1, 2])
def test_migration_3_from_earlier_files_keeps_data_and_fills_new_columns(home, upto):
    path = home / "booklore-sync.db"
    _old_file(path, upto)
    with Store.open(path) as s:
        assert s.schema_version() == LATEST == 3
        assert [b.matched_by for b in s.books()] == ["fingerprint", "manual", None]
        assert s.pending("sessions")[0].in_flight_at is None
        assert s.settlements("progress") == {"server_newer": 1}
        assert s.settlements("sessions") == {"uploaded": 1}
        for table in ("kept_links", "replaced_plugin_matches", "reconciliations",
                      "status_observations"):
            assert s._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0
        assert s.history_generation() == 0  # store_meta exists whatever the start


def test_fresh_store_has_every_ledger_column(store):
    for table in ("historical_sessions", "synced_annotations", "synced_bookmarks",
                  "rating_sync_history", "synced_koreader_progress"):
        cols = {r[1] for r in store._conn.execute(f"PRAGMA table_info({table})")}
        assert {"remote_id", "sent", "settled"} <= cols, table
    for table in ("pending_sessions", "pending_annotations", "pending_ratings",
                  "pending_bookmarks", "pending_koreader_progress"):
        cols = {r[1] for r in store._conn.execute(f"PRAGMA table_info({table})")}
        assert {"in_flight_at", "abandoned_at"} <= cols, table
    with pytest.raises(sqlite3.IntegrityError):
        store._conn.execute("INSERT INTO kept_links VALUES ('x', 1, 'guess', 'now')")
    with pytest.raises(sqlite3.IntegrityError):
        store._conn.execute("INSERT INTO book_cache(file_hash, matched_by, created_at,"
                            " updated_at) VALUES ('y', 'title', 'n', 'n')")


# ----------------------------------------------------------------- kept links
def test_manual_link_survives_clear_cache_and_comes_back_on_rescan(store):
    cid = store.upsert_book(FP, title="Leaves")
    other = store.upsert_book(FP2, title="Other")
    store.link(cid, 42)
    store.set_book_id(other, 9, "hash", 1.0)  # automatic: not a kept link
    assert store.get_book(cid).matched_by == MatchedBy.MANUAL
    assert store.get_kept_link(FP) == KeptLink(FP, 42, LinkKind.MANUAL,
                                               store.get_kept_link(FP).linked_at)
    assert store.get_kept_link(FP2) is None
    store.enqueue_session(FP, 1, {})
    cleared = store.clear_cache()
    assert (cleared.books, cleared.links_kept) == (2, 1)
    assert store.pending("sessions")[0].book_id is None
    # the rescan rebuilds the rows: the kept link brings its ID back, the other waits
    new_id = store.upsert_book(FP, title="Leaves")
    assert new_id != cid
    book = store.get_book(new_id)
    assert (book.book_id, book.matched_by) == (42, "manual")
    assert store.get_book(store.upsert_book(FP2)).book_id is None
    assert store.pending("sessions")[0].book_id == 42
    # a row rebuilt for a queued fingerprint (sync's resolve step) gets it too
    store.clear_cache()
    assert store.get_book(store.ensure_book_for_hash(FP)).book_id == 42


def test_kept_link_attaches_through_a_secondary_fingerprint(store):
    store.set_kept_link(FP2, 77, "plugin")
    cid = store.upsert_book(FP, extra_hashes=[FP2])
    assert (store.get_book(cid).book_id, store.get_book(cid).matched_by) == (77, "plugin")


def test_kept_link_does_not_override_an_existing_match(store):
    cid = store.upsert_book(FP)
    store.set_book_id(cid, 5, "isbn", 1.0)
    store._conn.execute("INSERT INTO kept_links VALUES (?, 6, 'manual', 'then')", (FP,))
    store.upsert_book(FP, title="again")
    assert store.get_book(cid).book_id == 5


def test_link_replacing_a_plugin_match_records_it_and_blocks_readoption(store):
    cid = store.upsert_book(FP)
    assert store.adopt_plugin_match(FP, 10) is True
    assert (store.get_book(cid).book_id, store.get_book(cid).matched_by) == (10, "plugin")
    assert store.adopt_plugin_match(FP, 11) is False  # it has a match already
    store.link(cid, 12)
    assert store.get_kept_link(FP).kind is LinkKind.MANUAL
    assert store.plugin_match_replaced(FP, 10)
    store.drop_kept_link(FP)
    store.set_book_id(cid, None, None)
    assert store.adopt_plugin_match(FP, 10) is False  # replaced: never again
    assert store.adopt_plugin_match(FP, 13) is True   # a different ID in the plugin is new
    assert store.get_book(cid).book_id == 13


def test_adopting_before_the_book_is_cached_attaches_on_scan(store):
    assert store.adopt_plugin_match(FP, 21) is True
    assert store.get_book(store.upsert_book(FP)).book_id == 21
    assert [k.fingerprint for k in store.kept_links()] == [FP]
    assert store.drop_kept_link(FP) is True
    assert store.drop_kept_link(FP) is False


def test_manual_dialog_choice_is_a_kept_link(store):
    cid = store.upsert_book(FP)
    store.set_book_id(cid, 3, "manual", None)  # as the manual dialog records it
    assert store.get_kept_link(FP).book_id == 3


def test_book_not_found_clears_the_id_and_the_link_to_it(store):
    a, b = store.upsert_book(FP), store.upsert_book(FP2)
    store.link(a, 50)
    store.set_book_id(b, 60, "hash", 1.0)
    assert store.book_not_found(50) == 1
    assert store.get_book(a).book_id is None and store.get_kept_link(FP) is None
    assert store.get_book(b).book_id == 60
    store.clear_cache()
    assert store.get_book(store.upsert_book(FP)).book_id is None  # not brought back


# ------------------------------------------------------------- Re-match All
def test_rematch_all_forgets_ids_links_and_reconciliations(store):
    store.bind_server(SERVER)
    a, _b, c = store.upsert_book(FP), store.upsert_book(FP2), store.upsert_book(FP3)
    store.link(a, 1)
    store.adopt_plugin_match(FP2, 2)
    store.set_book_id(c, 3, "hash", 1.0)
    store.record_reconciled([1, 2], ReconcileKind.SESSIONS)
    store.record_reconciled(3, ReconcileKind.BOOK_NOTES)
    gone = store.forget_all_matches()
    assert (gone.book_ids, gone.links, gone.plugin_links_replaced, gone.reconciliations) == (
        3, 2, 1, 3)
    assert all(bk.book_id is None and bk.matched_by is None for bk in store.books())
    assert store.kept_links() == []
    assert store.plugin_match_replaced(FP2, 2) and not store.plugin_match_replaced(FP, 1)
    assert not store.is_reconciled(1, "sessions")
    assert store.adopt_plugin_match(FP2, 2) is False
    # the old name still does the whole step
    store.link(a, 4)
    assert store.forget_all_book_ids() == 1 and store.get_kept_link(FP) is None


# ------------------------------------------------------- server identity
def test_bind_server_forgets_server_bound_records_on_change(store):
    assert store.server_identity() is None
    assert store.bind_server(SERVER) is True
    assert store.server_identity() == SERVER
    store.record_reconciled(5, "sessions")
    store.observe_status(5, "READ")
    store.put_capabilities(SERVER.url, {"flavour": "fork"})
    assert store.bind_server(SERVER) is False  # same identity: everything stays
    assert store.is_reconciled(5, "sessions") and store.status_observation(5) is not None
    assert store.get_capabilities(SERVER.url) == {"flavour": "fork"}
    for changed in (ServerIdentity(SERVER.url, "someone-else", "kobo"),
                    ServerIdentity(SERVER.url, "someone-else", "kindle"),
                    ServerIdentity("http://other:6060", "someone-else", "kindle")):
        store.record_reconciled(5, "sessions")
        store.observe_status(5, "READ")
        store.put_capabilities(changed.url, {"flavour": "fork"})
        assert store.bind_server(changed) is True
        assert not store.is_reconciled(5, "sessions")
        assert store.status_observation(5) is None
        assert store.get_capabilities(changed.url) is None


def test_bind_server_keeps_kept_links_and_history(store):
    store.bind_server(SERVER)
    cid = store.upsert_book(FP)
    store.link(cid, 8)
    store.enqueue_session(FP, 1, {})
    store.move_to_history("sessions", [store.pending("sessions")[0].id], book_id=8)
    store.bind_server(ServerIdentity("http://elsewhere"))
    assert store.get_kept_link(FP).book_id == 8
    assert store.history_counts()["sessions"] == 1


# ------------------------------------------------------------ reconciliation
def test_reconciliation_records_per_kind_and_clear_history(store):
    store.bind_server(SERVER)
    store.record_reconciled([1, 2], ReconcileKind.SESSIONS)
    store.record_reconciled([1], ReconcileKind.BOOK_NOTES)
    store.record_reconciled([1], ReconcileKind.PDF_BOOKMARKS)
    store.record_reconciled([1], ReconcileKind.SESSIONS)  # again: no error, no duplicate
    assert store.reconciled_books("sessions") == {1, 2}
    store.clear_history(["ratings", "progress", "discarded"])
    assert store.reconciled_books("sessions") == {1, 2}
    store.clear_history(["sessions"])
    assert store.reconciled_books("sessions") == set()
    assert store.is_reconciled(1, "book_notes") and store.is_reconciled(1, "pdf_bookmarks")
    store.clear_history(["annotations"])
    assert not store.is_reconciled(1, "book_notes") and store.is_reconciled(1, "pdf_bookmarks")
    store.clear_history(["bookmarks"])
    assert not store.is_reconciled(1, "pdf_bookmarks")
    with pytest.raises(ValueError):
        store.record_reconciled(1, "ratings")
    store.record_reconciled(3, "sessions")
    assert store.forget_reconciliations("book_notes") == 0
    assert store.forget_reconciliations() == 1


# -------------------------------------------------------- status observations
def test_status_observation_keeps_its_first_sighting(store):
    store.bind_server(SERVER)
    first = store.observe_status(9, "READ", "2024-01-01T00:00:00Z")
    again = store.observe_status(9, "READ", "2024-06-01T00:00:00Z")
    assert again == first and again.first_seen == "2024-01-01T00:00:00Z"
    changed = store.observe_status(9, "ABANDONED", "2024-07-01T00:00:00Z")
    assert (changed.status, changed.first_seen) == ("ABANDONED", "2024-07-01T00:00:00Z")
    assert store.status_observation(9) == changed
    assert store.status_observation(10) is None


# ------------------------------------------------------------------ ledger
def test_ledger_records_remote_id_sent_and_settlement(store):
    store.enqueue_session(FP, 1, {"endTime": "x"})
    store.enqueue_session(FP, 2, {})
    s1, s2 = store.pending("sessions")
    store.move_to_history("sessions", [s1.id], book_id=3, remote_id=71)
    store.move_to_history("sessions", [s2.id], book_id=3,
                          settled=Settlement.FOUND_ON_SERVER)
    rows = store._conn.execute("SELECT start_epoch, remote_id, settled, sent"
                               " FROM historical_sessions ORDER BY start_epoch").fetchall()
    assert [tuple(r) for r in rows] == [(1, 71, "uploaded", None),
                                        (2, None, "found_on_server", None)]
    store.enqueue_annotation(FP, "d", "note", "p", {"text": "hi"})
    store.move_to_history("annotations", [store.pending("annotations")[0].id], book_id=3,
                          destination="book_note", remote_id=5,
                          sent={"noteContent": "hi"})
    row = store._conn.execute("SELECT remote_id, sent, settled FROM synced_annotations").fetchone()
    assert tuple(row) == (5, '{"noteContent": "hi"}', "uploaded")
    store.enqueue_bookmark(FP, "d", {"cfi": "c"})
    store.move_many_to_history("bookmarks", [
        ([store.pending("bookmarks")[0].id],
         {"book_id": 3, "remote_id": 9, "settled": "deleted_on_server"})])
    row = store._conn.execute("SELECT remote_id, sent, settled FROM synced_bookmarks").fetchone()
    assert tuple(row) == (9, '{"cfi": "c"}', "deleted_on_server")
    store.enqueue_progress(FP, "/p", 0.5)
    store.move_to_history("progress", [store.pending("progress")[0].id], outcome="server_ahead")
    assert store.settlements("progress") == {"server_newer": 1}
    with pytest.raises(ValueError):
        store.move_to_history("ratings", [1], settled="maybe")


def test_in_flight_and_abandoned_times(store):
    store.enqueue_session(FP, 1, {})
    (item,) = store.pending("sessions")
    assert (item.in_flight_at, item.abandoned_at) == (None, None)
    store.set_state("sessions", [item.id], "in_flight")
    (item,) = store.pending("sessions")
    assert item.state == "in_flight" and item.in_flight_at and item.abandoned_at is None
    store.record_attempt("sessions", [item.id], error="timed out", state="uncertain",
                         count_attempt=False)
    (item,) = store.pending("sessions")
    assert item.state == "uncertain" and item.abandoned_at and item.in_flight_at
    first = item.abandoned_at
    store._conn.execute("UPDATE pending_sessions SET abandoned_at = '2000-01-01T00:00:00Z'")
    store.set_state("sessions", [item.id], "uncertain")  # the first abandonment counts
    assert store.pending("sessions")[0].abandoned_at == "2000-01-01T00:00:00Z"
    assert first
    store.set_state("sessions", [item.id], "pending")
    (item,) = store.pending("sessions")
    assert (item.state, item.in_flight_at, item.abandoned_at) == ("pending", None, None)
    with pytest.raises(ValueError):
        store.set_state("sessions", [item.id], "lost")

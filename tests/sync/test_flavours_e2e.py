"""Every server flavour end to end (issue 10): grimmory, booklore, the fork, an old
BookLore release, a KOReader account with Sync switched off — over real HTTP against
the emulator, through the engine and through the command line."""

from __future__ import annotations

import json
import sqlite3

import pytest

from booklore_sync.actions.base import make_client
from booklore_sync.actions.sync import sync_once
from booklore_sync.booklore.errors import SyncDisabledError
from booklore_sync.booklore.texts import CUT_MARKER
from booklore_sync.store import QUEUES
from tests.conftest import run_cli
from tests.sync.conftest import make_config, make_env, open_store, scan_into

WRITES = ("POST", "PUT", "PATCH", "DELETE")
OLD_SENTENCE = ("this server (BookLore 1.16.3) has no annotation route; "
                "BookLore ≥ 1.18 or Grimmory needed")
OLD_NOTE_SENTENCE = ("this server (BookLore 1.16.3) has no in-book note route; "
                     "BookLore ≥ 1.18 or Grimmory needed")


def _link_all(cfg, emu) -> dict[str, int]:
    """Link every scanned book to the emulator's book with its hash (as `link` would):
    servers without by-hash routes cannot resolve fingerprints themselves."""
    by_hash = {}
    for book in emu.state.books():
        for f in book.get("files") or []:
            if f.get("currentHash"):
                by_hash[f["currentHash"]] = int(book["id"])
    linked = {}
    with open_store(cfg) as store:
        for b in store.books():
            book_id = by_hash.get(b.file_hash)
            if book_id is not None:
                store.set_book_id(store.ensure_book_for_hash(b.file_hash), book_id, "manual", 1.0)
                linked[b.file_hash] = book_id
    assert linked
    return linked


def _sync_cli(env):
    proc = run_cli("sync", "--json", env=env, timeout=120)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:  # pragma: no cover - a contract break
        raise AssertionError(f"not one JSON object: {proc.stdout!r}\n{proc.stderr}") from exc
    return proc.returncode, data, proc.stderr


def _writes(emu, since=0):
    return [e for e in emu.request_log(since) if e["method"] in WRITES
            and e["path"].startswith("/api/") and "/auth/" not in e["path"]]


def _pending(cfg):
    with open_store(cfg) as store:
        return {q: store.pending(q) for q in QUEUES}


def _db(cfg):
    return sqlite3.connect(cfg.store_path)


def _scanned_and_linked(home, kobo, emulator_factory, mode: str, **emu_kw):
    """An emulator of ``mode``, a config for it, the Kobo scanned and every book linked."""
    emu = emulator_factory(mode, **emu_kw)
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    _link_all(cfg, emu)
    return emu, cfg


# ------------------------------------------------------------------ grimmory
def test_grimmory_full_pipeline_cli(home, kobo, emulator_factory):
    emu, cfg = _scanned_and_linked(home, kobo, emulator_factory, "grimmory")
    queued = _pending(cfg)
    code, data, err = _sync_cli(make_env(emu.base_url))
    assert code == 0, (data, err)
    assert set(data) == {*QUEUES, "offline"} and data["offline"] is False
    for q in QUEUES:
        assert data[q] == {"synced": len(queued[q]), "failed": 0, "skipped": 0}, (q, err)
    # PDF bookmarks carry their page: grimmory stores and shows it
    pdf = [i for i in queued["bookmarks"] if i.payload.get("paged")]
    assert pdf
    stored_pages = {b.get("pageNumber") for b in emu.state.bookmarks()}
    assert {i.payload["page"] for i in pdf} <= stored_pages
    # the second sync sends nothing
    mark = emu.request_log()[-1]["seq"]
    code, data, err = _sync_cli(make_env(emu.base_url))
    assert code == 0, err
    assert all(data[q] == {"synced": 0, "failed": 0, "skipped": 0} for q in QUEUES)
    assert _writes(emu, mark) == []
    assert "Nothing to sync" in run_cli("sync", env=make_env(emu.base_url)).stdout


def test_grimmory_409_conflict_is_a_failure_with_the_server_text(home, kobo, emulator_factory):
    emu = emulator_factory("grimmory")
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    linked = _link_all(cfg, emu)
    emu.inject_fault("/api/v1/annotations", "status", method="POST", status=409, times=None,
                     body={"status": 409, "message": "A conflict occurred."})
    report = sync_once(cfg)
    tally = report.queues["annotations"]
    assert tally.failed >= 1 and report.exit_code == 1
    assert any("A conflict occurred." in why for why in tally.fail_reasons)
    assert emu.state.annotations() == []  # nothing taken for "already there"
    with open_store(cfg) as store:
        books = {b.file_hash: b.book_id for b in store.books()}
        failed = [i for i in store.pending("annotations") if i.retry_count == 1]
    assert failed and all("A conflict occurred." in (i.last_error or "") for i in failed)
    assert all(books[fp] == bid for fp, bid in linked.items())  # a 409 never unlinks


# ------------------------------------------------------------------ Sync off
def test_koreader_only_with_sync_off_fork_cli(home, kobo, emulator_factory):
    emu = emulator_factory("fork", koreader_sync=False)
    cfg = make_config(home, emu.base_url, booklore=False)
    scan_into(cfg, kobo)
    with _db(cfg) as db:  # a reader who only reads: sessions and positions
        for table in ("pending_ratings", "pending_annotations", "pending_bookmarks"):
            db.execute(f"DELETE FROM {table}")
    queued = _pending(cfg)
    assert queued["progress"] and queued["sessions"]
    code, data, err = _sync_cli(make_env(emu.base_url, booklore=False))
    assert code == 2, (data, err)
    assert data["offline"] is False
    assert data["exit_code"] == 2 and data["error"]["type"] == "account"
    assert "Sync is switched off" in data["error"]["message"]
    # progress: skipped (not failed), with the reason naming the switch
    assert data["progress"] == {"synced": 0, "failed": 0, "skipped": len(queued["progress"])}
    assert SyncDisabledError.REASON in err
    assert err.count(SyncDisabledError.REASON) == 1  # one line per class
    # the KOReader account stays usable: by-hash lookups and sessions went through
    assert data["sessions"]["synced"] == len(queued["sessions"])
    assert data["sessions"]["failed"] == 0
    assert len(emu.state.sessions()) == len(queued["sessions"])
    with open_store(cfg) as store:
        left = store.pending("progress")
    assert left and all(i.retry_count == 0 for i in left)
    assert all(i.last_error == SyncDisabledError.REASON for i in left)
    # the refused kosync routes: at most one request per book (units run concurrently),
    # and none at all once the answer is known
    kosync = [e for e in emu.request_log() if e["path"].startswith("/api/koreader/syncs/progress")]
    assert 1 <= len(kosync) <= len(queued["progress"])
    mark = emu.request_log()[-1]["seq"]
    code, data, err = _sync_cli(make_env(emu.base_url, booklore=False))
    assert code == 2 and data["progress"]["skipped"] == len(queued["progress"])
    again = [e for e in emu.request_log(mark) if e["path"].startswith("/api/koreader/syncs/")]
    assert 1 <= len(again) <= len(queued["progress"])


# ------------------------------------------------------------------ old release
def test_old_server_skips_annotations_once_cli(home, kobo, emulator_factory):
    emu, cfg = _scanned_and_linked(home, kobo, emulator_factory, "booklore", server_version="1.16.3")
    queued = _pending(cfg)
    in_book = [i for i in queued["annotations"] if not i.payload.get("paged")]
    assert in_book
    code, data, err = _sync_cli(make_env(emu.base_url))
    assert code == 0, (data, err)
    assert data["annotations"]["skipped"] == len(in_book)
    assert data["annotations"]["failed"] == 0
    assert err.count(OLD_SENTENCE) == 1, err
    # no request for a route this release lacks
    paths = [e["path"] for e in emu.request_log()]
    assert not any(p.startswith(("/api/v1/annotations", "/api/v2/book-notes")) for p in paths)
    with open_store(cfg) as store:
        left = store.pending("annotations")
        books = {b.file_hash: b.book_id for b in store.books()}
    assert all(i.retry_count == 0 and i.last_error in (OLD_SENTENCE, OLD_NOTE_SENTENCE)
               for i in left), [(i.retry_count, i.last_error) for i in left]
    assert all(books[i.fingerprint] is not None for i in left)  # never unlinked
    # the rest went as usual: sessions, ratings, bookmarks, progress
    for q in ("sessions", "ratings", "bookmarks", "progress"):
        assert data[q]["synced"] == len(queued[q]) and data[q]["failed"] == 0, q
    # a second run repeats the sentence once and still sends nothing for them
    mark = emu.request_log()[-1]["seq"]
    code, data, err = _sync_cli(make_env(emu.base_url))
    assert code == 0 and err.count(OLD_SENTENCE) == 1
    assert _writes(emu, mark) == []


def test_route_missing_404_never_unlinks_and_book_not_found_does(home, kobo, emulator_factory):
    emu = emulator_factory("booklore")
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    linked = _link_all(cfg, emu)
    # a proxy (or an older server) says the bookmark route is not there
    emu.inject_fault("/api/v1/bookmarks", "status", method="POST", status=404,
                     body={"status": 404, "message": "Resource not found."})
    report = sync_once(cfg)
    assert report.queues["bookmarks"].failed == 0
    assert report.queues["bookmarks"].skipped == len(_pending(cfg)["bookmarks"]) > 0
    with open_store(cfg) as store:
        assert {b.file_hash: b.book_id for b in store.books()} == {
            fp: bid for fp, bid in linked.items()}


def test_book_not_found_clears_id_and_kept_link(home, kobo, emulator_factory):
    emu, cfg = _scanned_and_linked(home, kobo, emulator_factory, "booklore")
    sessions = _pending(cfg)["sessions"]
    item = sessions[0]
    with open_store(cfg) as store:
        store.set_kept_link(item.fingerprint, item.book_id, "manual")
    # every book of the sessions has gone from the server
    for book_id in {i.book_id for i in sessions}:
        emu.state.update_book(book_id, deleted=True)
    report = sync_once(cfg)
    assert report.queues["sessions"].failed == 0
    with open_store(cfg) as store:
        book = store.get_book_by_hash(item.fingerprint)
        assert book is not None and book.book_id is None
        assert store.get_kept_link(item.fingerprint) is None


# ------------------------------------------------------------------ texts
def _set_payload(cfg, queue_table: str, item_id: int, **values) -> None:
    with _db(cfg) as db:
        (payload,) = db.execute(f"SELECT payload FROM {queue_table} WHERE id = ?",
                                (item_id,)).fetchone()
        data = json.loads(payload)
        data.update(values)
        db.execute(f"UPDATE {queue_table} SET payload = ? WHERE id = ?",
                   (json.dumps(data), item_id))


def test_blank_and_long_texts(home, kobo, emulator_factory):
    emu, cfg = _scanned_and_linked(home, kobo, emulator_factory, "grimmory")
    items = _pending(cfg)["annotations"]
    highlights = [i for i in items if not i.payload.get("paged") and i.key["kind"] == "highlight"]
    notes = [i for i in items if not i.payload.get("paged") and i.key["kind"] == "note"]
    paged = [i for i in items if i.payload.get("paged")]
    assert highlights and notes and paged
    blank_hl, long_note, blank_pdf = highlights[0], notes[0], paged[0]
    _set_payload(cfg, "pending_annotations", blank_hl.id, text="")
    _set_payload(cfg, "pending_annotations", blank_pdf.id, text="  ", note="")
    long_text = "é" * 40_000  # 80,000 bytes of UTF-8
    _set_payload(cfg, "pending_annotations", long_note.id, note=long_text)
    report = sync_once(cfg)
    tally = report.queues["annotations"]
    assert tally.skip_reasons["blank text: nothing to send"] == 2
    assert tally.failed == 0 and report.exit_code == 0
    with open_store(cfg) as store:
        left = {i.id: i for i in store.pending("annotations")}
    assert set(left) == {blank_hl.id, blank_pdf.id}
    assert all(i.retry_count == 0 for i in left.values())
    notes_v2 = [n for n in emu.state.notes_v2() if n["noteContent"].endswith(CUT_MARKER)]
    assert len(notes_v2) == 1
    assert len(notes_v2[0]["noteContent"].encode()) <= 65_535
    assert report.cut and report.cut[0]["id"] == long_note.id
    assert any("1 note cut to fit" in m for m in report.messages)
    assert report.to_json()["cut"][0]["queue"] == "annotations"


# ------------------------------------------------------------------ sessions
def test_transient_batch_500_on_fork_falls_back_for_this_run_only(home, kobo, emulator_factory):
    emu = emulator_factory("fork")
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    cfg.file_values["http.max_concurrency"] = 1  # one book after the other
    queued = _pending(cfg)["sessions"]
    assert len({i.fingerprint for i in queued}) > 1
    emu.inject_fault("/api/v1/reading-sessions/batch", "status", method="POST", status=500,
                     times=None, body={"status": 500, "message": "An unexpected error occurred."})
    report = sync_once(cfg)
    assert report.queues["sessions"].synced == len(queued) and report.exit_code == 0
    log = emu.request_log()
    batches = [e for e in log if e["path"] == "/api/v1/reading-sessions/batch"]
    singles = [e for e in log if e["path"] == "/api/v1/reading-sessions" and e["method"] == "POST"]
    assert [b["status"] for b in batches] == [500]  # not tried again in this run
    assert len(singles) == len(queued)  # the refused chunk and the rest one by one
    assert len(emu.state.sessions()) == len(queued)
    # the next run tries the batch again: nothing remembered the transient fault
    with open_store(cfg) as store:
        client = make_client(cfg, store)
        try:
            caps = client.probe()
            assert caps.batch is True and client.batch_enabled
        finally:
            client.close()


def test_batch_refused_by_booklore_is_not_tried(home, kobo, emulator_factory):
    emu, cfg = _scanned_and_linked(home, kobo, emulator_factory, "booklore")
    report = sync_once(cfg)
    assert report.exit_code == 0 and report.queues["sessions"].failed == 0
    assert not [e for e in emu.request_log() if e["path"].endswith("/batch")]


# ------------------------------------------------------------------ tokens
def test_short_lived_tokens_do_not_refresh_before_every_request(home, kobo, emulator_factory):
    emu = emulator_factory("fork", access_token_ttl=30)
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    report = sync_once(cfg)
    assert report.exit_code == 0
    log = emu.request_log()
    token_requests = [e for e in log if e["path"] in ("/api/v1/auth/login", "/api/v1/auth/refresh")]
    bearer = [e for e in log if e["auth"] == "bearer"]
    assert len(bearer) >= 5
    assert len(token_requests) <= 2, [e["path"] for e in token_requests]


# ------------------------------------------------------------------ the contract
@pytest.mark.parametrize("mode", ["fork", "booklore", "grimmory"])
def test_command_line_contract_is_the_same_in_every_mode(home, kobo, emulator_factory, mode):
    emu, cfg = _scanned_and_linked(home, kobo, emulator_factory, mode)
    code, data, err = _sync_cli(make_env(emu.base_url))
    assert code == 0, err
    assert set(data) == {*QUEUES, "offline"}
    assert all(set(data[q]) == {"synced", "failed", "skipped"} for q in QUEUES)
    assert all(data[q]["failed"] == 0 and data[q]["skipped"] == 0 for q in QUEUES)
    proc = run_cli("sync", env=make_env(emu.base_url))
    assert proc.returncode == 0 and "Nothing to sync" in proc.stdout


# ------------------------------------------------------------------ comics and PDFs
def _as_comic(cfg, queue_table: str, items) -> None:
    for i in items:
        _set_payload(cfg, queue_table, i.id, book_type="CBX")


def test_cbx_bookmarks_and_notes_are_keyed_by_page(home, kobo, emulator_factory):
    emu, cfg = _scanned_and_linked(home, kobo, emulator_factory, "booklore")
    queued = _pending(cfg)
    marks = [i for i in queued["bookmarks"] if i.payload.get("paged")]
    notes = [i for i in queued["annotations"] if i.payload.get("paged") and i.key["kind"] == "note"]
    assert marks and notes
    _as_comic(cfg, "pending_bookmarks", marks)
    _as_comic(cfg, "pending_annotations", notes)
    # one page already bookmarked in BookLore's own comic reader: 409 = already there
    with open_store(cfg) as store:
        client = make_client(cfg, store)
        try:
            client.probe()
            client.create_cbx_bookmark(marks[0].book_id, marks[0].payload["page"])
        finally:
            client.close()
    report = sync_once(cfg)
    assert report.exit_code == 0, report.messages
    assert report.queues["bookmarks"].synced == len(queued["bookmarks"])
    for m in marks:
        on_page = [b for b in emu.state.bookmarks(m.book_id) if b.get("cfi") == str(m.payload["page"])]
        assert len(on_page) == 1
    for n in notes:
        v2 = [x for x in emu.state.notes_v2(n.book_id) if x["cfi"] == str(n.payload["page"])]
        assert [x["noteContent"] for x in v2] == [n.payload["note"]]
    assert not [b for b in emu.state.book_notes() if notes[0].payload["note"] in b["content"]]
    mark = emu.request_log()[-1]["seq"]
    assert sync_once(cfg).exit_code == 0 and _writes(emu, mark) == []


def test_cbx_note_on_a_taken_page_goes_as_a_book_note(home, kobo, emulator_factory):
    emu, cfg = _scanned_and_linked(home, kobo, emulator_factory, "grimmory")
    notes = [i for i in _pending(cfg)["annotations"]
             if i.payload.get("paged") and i.key["kind"] == "note"]
    _as_comic(cfg, "pending_annotations", notes)
    note = notes[0]
    with open_store(cfg) as store:
        client = make_client(cfg, store)
        try:
            client.probe()
            client.create_cbx_note(note.book_id, note.payload["page"], note_content="someone else's")
        finally:
            client.close()
    report = sync_once(cfg)
    assert report.exit_code == 0 and report.queues["annotations"].failed == 0
    v2 = [x for x in emu.state.notes_v2(note.book_id) if x["cfi"] == str(note.payload["page"])]
    assert [x["noteContent"] for x in v2] == ["someone else's"]
    assert [b for b in emu.state.book_notes(note.book_id) if note.payload["note"] in b["content"]]


def test_pdf_bookmark_twice_on_grimmory_is_already_there(home, kobo, emulator_factory):
    emu, cfg = _scanned_and_linked(home, kobo, emulator_factory, "grimmory")
    pdf = [i for i in _pending(cfg)["bookmarks"] if i.payload.get("paged")]
    with open_store(cfg) as store:
        client = make_client(cfg, store)
        try:
            client.probe()
            client.create_pdf_bookmark(pdf[0].book_id, pdf[0].payload["page"], title="mine")
        finally:
            client.close()
    report = sync_once(cfg)
    assert report.exit_code == 0 and report.queues["bookmarks"].failed == 0
    on_page = [b for b in emu.state.bookmarks(pdf[0].book_id)
               if b.get("pageNumber") == pdf[0].payload["page"]]
    assert len(on_page) == 1  # grimmory's 409 "already exists on this page" = there


# ------------------------------------------------------------------ the ladder
def test_classify_reads_answers():
    from booklore_sync.booklore import errors as E
    from booklore_sync.store.types import QueueItem
    from booklore_sync.sync.outcomes import AccountDown, Failed, Gone, Skipped, Synced, classify

    items = [QueueItem("progress", 1, "f" * 32, {}, "2024-01-01T00:00:00Z", 0, None, None, None,
                       "pending", {}, book_id=3)]
    off = classify("progress", items, E.SyncDisabledError("Sync is disabled for this user",
                                                          status=401))
    assert isinstance(off, Skipped) and off.reason == E.SyncDisabledError.REASON and off.sync_off
    rejected = E.AuthError("bad", account="koreader", kind="rejected", status=403)
    assert isinstance(classify("progress", items, rejected), AccountDown)
    route = E.RouteMissingError(OLD_SENTENCE, capability="annotations", status=404)
    out = classify("annotations", items, route)
    assert isinstance(out, Skipped) and out.reason == OLD_SENTENCE and out.route_missing
    blank = classify("annotations", items, E.BlankTextError())
    assert isinstance(blank, Skipped) and blank.reason == "blank text: nothing to send"
    conflict = classify("annotations", items, E.ConflictError("A conflict occurred.", status=409))
    assert isinstance(conflict, Failed) and "A conflict occurred." in conflict.reason
    assert isinstance(classify("bookmarks", items, E.AlreadyExistsError("x", status=409)), Synced)
    proxy = E.NotFoundError("Resource not found.", status=404)
    assert isinstance(classify("bookmarks", items, proxy), Failed)  # never unlinks
    assert isinstance(classify("bookmarks", items, E.BookNotFoundError(
        "Book not found with ID: 3", status=404)), Gone)

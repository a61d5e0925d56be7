"""First-contact reconciliation and the settle wait (spec §4.1 "First contact is
reconciled", "Exactly once"; booklore-api.md §5.3–5.4; issue 11 items 1 and 6), over
real HTTP against the emulator.  Another uploader (the BookLore Sync plugin, a second
computer, a lost store) has put some of the same reading on the server before this
store's first sync: nothing may be doubled, everything missing must arrive, and first
contact costs one read per book and kind."""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from booklore_sync.actions.sync import sync_once
from booklore_sync.booklore import BookLoreClient
from booklore_sync.booklore.session_models import SessionIn
from booklore_sync.common.vocab import ReconcileKind
from booklore_sync.store import QUEUES
from booklore_sync.store.types import ServerIdentity
from booklore_sync.sync.reconcile import WAITING, settle_wait, split_waiting
from tests.sync.conftest import make_config, open_store, scan_into

SESSIONS_LIST = "/api/v1/reading-sessions/book/"
NOTES_LIST = "/api/v1/book-notes/book/"
BOOKMARKS_LIST = "/api/v1/bookmarks/book/"
SESSIONS = "/api/v1/reading-sessions"
BATCH = "/api/v1/reading-sessions/batch"
NOTES_V1 = "/api/v1/book-notes"
BOOKMARKS = "/api/v1/bookmarks"


def _t(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def _gets(log, prefix: str) -> list[dict]:
    return [e for e in log if e["method"] == "GET" and e["path"].startswith(prefix)]


def _posts(log, path: str) -> list[dict]:
    return [e for e in log if e["method"] == "POST" and e["path"] == path]


def _sent_starts(log) -> set[str]:
    out = set()
    for e in log:
        if e["method"] == "POST" and e["path"] in (SESSIONS, BATCH) and e["status"] in (200, 201, 202):
            for s in e["body"].get("sessions") or [e["body"]]:
                out.add(s["startTime"][:19])
    return out


def _overlaps(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@pytest.fixture
def other(emu):
    """A second uploader, talking to the same server with the same account."""
    client = BookLoreClient(emu.base_url, booklore_user="demo", booklore_password="demo",
                            koreader_user="demo", koreader_password="demo")
    yield client
    client.close()


@pytest.fixture
def scanned(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    with open_store(cfg) as store:
        queued = {q: store.pending(q) for q in QUEUES}
    return cfg, queued


def _book_id(client: BookLoreClient, fingerprint: str) -> int:
    book = client.find_book_by_hash(fingerprint)
    assert book is not None
    return int(book.id)


def _session(item, shift: int = 0, trim: int = 0) -> SessionIn:
    start = _t(item.payload["startTime"]) + timedelta(seconds=shift + trim)
    end = _t(item.payload["endTime"]) + timedelta(seconds=shift - trim)
    return SessionIn(start_time=start, end_time=end,
                     duration_seconds=int((end - start).total_seconds()))


def _server_sessions(emu) -> list[tuple[int, datetime, datetime]]:
    out = []
    for s in emu.state.sessions():
        start = _t(s["startTime"][:19] + "Z")
        end = _t(s["endTime"][:19] + "Z")
        out.append((s["bookId"], start, end))
    return out


def _assert_every_session_once(emu, ids, sessions) -> None:
    """Each local session overlaps exactly one server session of its book, and the
    server holds no session that overlaps another of the same book (no double)."""
    server = _server_sessions(emu)
    for item in sessions:
        mine = (_t(item.payload["startTime"]), _t(item.payload["endTime"]))
        hits = [s for s in server if s[0] == ids[item.fingerprint] and _overlaps(mine, s[1:])]
        assert len(hits) == 1, (item.payload["startTime"], hits)
    for n, a in enumerate(server):
        for b in server[n + 1:]:
            assert not (a[0] == b[0] and _overlaps(a[1:], b[1:])), (a, b)


def _seed_other_uploader(other, queued) -> dict:
    """The other uploader sends, before this store's first sync: three sessions of the
    EPUB with five (one exact, one shifted by 20 s, one trimmed inside), a v1 note for
    one PDF highlight (its text alone, with its page), a note with the same text on
    another page (not ours), and a PDF bookmark on the same page with its own title."""
    by_fp = Counter(i.fingerprint for i in queued["sessions"])
    epub_fp = by_fp.most_common(1)[0][0]
    epub_sessions = [i for i in queued["sessions"] if i.fingerprint == epub_fp]
    assert len(epub_sessions) >= 3
    epub_id = _book_id(other, epub_fp)
    for item, how in zip(epub_sessions, ({}, {"shift": 20}, {"trim": 15}), strict=False):
        other.post_session(epub_id, "EPUB", _session(item, **how))

    highlight = next(i for i in queued["annotations"]
                     if i.payload.get("paged") and i.key["kind"] == "highlight"
                     and i.payload.get("page") == 1 and i.payload["text"] == "34")
    pdf_id = _book_id(other, highlight.fingerprint)
    other.create_book_note_v1(pdf_id, title="p. 7", content="34")  # another page: not it
    other.create_book_note_v1(pdf_id, title="p. 1", content="34\r\n")
    mark = next(i for i in queued["bookmarks"]
                if i.payload.get("paged") and i.fingerprint == highlight.fingerprint)
    other.create_pdf_bookmark(pdf_id, int(mark.payload["page"]),
                              title=f"p. {mark.payload['page']} — from the plugin")
    return {"sessions": epub_sessions[:3], "note": highlight, "bookmark": mark}


def _books_with(queued, queue: str, pred=lambda i: True) -> set[str]:
    return {i.fingerprint for i in queued[queue] if pred(i)}


def _paged(item) -> bool:
    return bool(item.payload.get("paged"))


@pytest.mark.parametrize("concurrency", [1, 4])
def test_fresh_store_meets_the_reading_already_on_the_server(scanned, emu, other,
                                                             concurrency):
    cfg, queued = scanned
    cfg.file_values["http.max_concurrency"] = concurrency
    seeded = _seed_other_uploader(other, queued)
    notes_before = len(emu.state.book_notes())
    since = emu.request_log()[-1]["seq"]

    report = sync_once(cfg)
    assert report.exit_code == 0, (report.messages, report.to_json())
    for q in QUEUES:
        assert report.queues[q].synced == len(queued[q]), q
    log = emu.request_log(since)
    with open_store(cfg) as store:
        assert store.counts() == {q: 0 for q in QUEUES}
        ids = {b.file_hash: b.book_id for b in store.books()}
        assert store.settlements("sessions") == {
            "found_on_server": 3, "uploaded": len(queued["sessions"]) - 3}
        assert store.settlements("annotations").get("found_on_server") == 1
        assert store.settlements("bookmarks").get("found_on_server") == 1
        for kind, queue, pred in ((ReconcileKind.SESSIONS, "sessions", lambda i: True),
                                  (ReconcileKind.BOOK_NOTES, "annotations", _paged),
                                  (ReconcileKind.PDF_BOOKMARKS, "bookmarks", _paged)):
            assert store.reconciled_books(kind) == {
                ids[fp] for fp in _books_with(queued, queue, pred)}

    # nothing doubled, everything missing delivered
    _assert_every_session_once(emu, ids, queued["sessions"])
    assert not _sent_starts(log) & {i.payload["startTime"][:19] for i in seeded["sessions"]}
    paged_notes = [i for i in queued["annotations"] if _paged(i)]
    assert len(emu.state.book_notes()) == notes_before + len(paged_notes) - 1
    sent_notes = [e["body"]["content"] for e in _posts(log, NOTES_V1)]
    assert len(sent_notes) == len(paged_notes) - 1 and "34" not in sent_notes
    pdf_marks = [i for i in queued["bookmarks"] if _paged(i)]
    no_cfi = [b for b in emu.state.bookmarks() if not b.get("cfi")]
    assert len(no_cfi) == len(pdf_marks)
    assert len([e for e in _posts(log, BOOKMARKS) if not e["body"].get("cfi")]) == \
        len(pdf_marks) - 1

    # one reconciliation read per book and kind, no more
    assert len(_gets(log, SESSIONS_LIST)) == len(_books_with(queued, "sessions"))
    assert len(_gets(log, NOTES_LIST)) == len(_books_with(queued, "annotations", _paged))
    assert len(_gets(log, BOOKMARKS_LIST)) == len(_books_with(queued, "bookmarks", _paged))

    # first contact is made once: a new session of a reconciled book costs no read
    item = seeded["sessions"][0]
    start = _t(item.payload["startTime"]) + timedelta(days=400)
    with open_store(cfg) as store:
        store.enqueue_session(item.fingerprint, int(start.timestamp()), dict(
            item.payload, startTime=start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            endTime=(start + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            durationSeconds=300))
    since = emu.request_log()[-1]["seq"]
    report = sync_once(cfg)
    assert report.exit_code == 0 and report.queues["sessions"].synced == 1
    log = emu.request_log(since)
    assert _gets(log, SESSIONS_LIST) == []
    assert _sent_starts(log) == {start.strftime("%Y-%m-%dT%H:%M:%S")}


def test_a_book_the_server_never_saw_costs_one_read(scanned, emu):
    cfg, queued = scanned
    report = sync_once(cfg)
    assert report.exit_code == 0, report.messages
    log = emu.request_log()
    books = _books_with(queued, "sessions")
    reads = _gets(log, SESSIONS_LIST)
    assert len(reads) == len(books)
    assert all("page=0" in (e["query"] or "") for e in reads)
    with open_store(cfg) as store:
        assert store.settlements("sessions") == {"uploaded": len(queued["sessions"])}


@pytest.mark.parametrize("how", ["clear_history", "rematch"])
def test_clear_history_and_rematch_reconcile_again(scanned, emu, kobo, how):
    """A cleared ledger queues the items again at the next scan; the next sync reads the
    server once more and settles every one of them as found — nothing is sent."""
    cfg, queued = scanned
    assert sync_once(cfg).exit_code == 0
    with open_store(cfg) as store:
        if how == "clear_history":
            store.clear_history(["sessions", "annotations", "bookmarks"])
        else:
            from booklore_sync.actions.match import run_rematch

            store.clear_history(["sessions"])  # so the scan queues them again
    if how == "rematch":
        code, result, messages = run_rematch(cfg, confirm=lambda warnings: True)
        assert code == 0, messages
    scan_into(cfg, kobo)
    with open_store(cfg) as store:
        again = {q: store.pending(q) for q in ("sessions", "annotations", "bookmarks")}
        assert len(again["sessions"]) == len(queued["sessions"])
        assert not store.reconciled_books(ReconcileKind.SESSIONS)
    sessions_before = len(emu.state.sessions())
    notes_before = len(emu.state.book_notes())
    since = emu.request_log()[-1]["seq"]

    report = sync_once(cfg)
    assert report.exit_code == 0, report.messages
    log = emu.request_log(since)
    assert len(_gets(log, SESSIONS_LIST)) == len(_books_with(queued, "sessions"))
    assert _sent_starts(log) == set()
    assert len(emu.state.sessions()) == sessions_before
    assert len(emu.state.book_notes()) == notes_before
    with open_store(cfg) as store:
        assert store.counts() == {q: 0 for q in QUEUES}
        assert store.settlements("sessions").get("found_on_server") == len(queued["sessions"])


def test_without_the_booklore_account_sessions_go_unchecked_and_it_is_said(home, kobo, emu):
    cfg = make_config(home, emu.base_url, booklore=False)
    scan_into(cfg, kobo)
    with open_store(cfg) as store:
        books = {i.fingerprint for i in store.pending("sessions")}
    report = sync_once(cfg)
    unchecked = [m for m in report.messages if "without checking" in m]
    assert unchecked == [f"sessions of {len(books)} books were sent without checking what the "
                         "server already holds (first-contact reconciliation needs the "
                         "BookLore account)"]
    assert _gets(emu.request_log(), SESSIONS_LIST) == []
    with open_store(cfg) as store:
        assert not store.reconciled_books(ReconcileKind.SESSIONS)


def test_a_failed_reconciliation_read_leaves_the_books_sessions_unsent(scanned, emu):
    cfg, queued = scanned
    emu.state.inject_fault(SESSIONS_LIST, action="status", status=500, method="GET",
                           match="prefix", times=1)
    report = sync_once(cfg)
    assert report.exit_code == 1
    assert report.queues["sessions"].failed >= 1
    with open_store(cfg) as store:
        left = store.pending("sessions")
        assert left and all(i.state == "pending" and i.retry_count == 1 for i in left)
        failed_book = left[0].book_id
        assert failed_book not in store.reconciled_books(ReconcileKind.SESSIONS)
    assert [s for s in emu.state.sessions() if s["bookId"] == failed_book] == []
    since = emu.request_log()[-1]["seq"]
    report = sync_once(cfg)
    assert report.exit_code == 0, report.messages
    assert len(_gets(emu.request_log(since), SESSIONS_LIST)) == 1  # done now
    with open_store(cfg) as store:
        assert failed_book in store.reconciled_books(ReconcileKind.SESSIONS)
        ids = {b.file_hash: b.book_id for b in store.books()}
    _assert_every_session_once(emu, ids, queued["sessions"])


def test_a_changed_account_forgets_the_reconciliation(scanned, emu):
    cfg, queued = scanned
    assert sync_once(cfg).exit_code == 0
    with open_store(cfg) as store:
        assert store.reconciled_books(ReconcileKind.SESSIONS)
        store.bind_server(ServerIdentity(emu.base_url, "someone-else", "demo"))
        assert not store.reconciled_books(ReconcileKind.SESSIONS)


# ------------------------------------------------------------------ the settle wait
def test_settle_wait_rule():
    assert settle_wait({"sync.settle_seconds": 60, "http.read_timeout_seconds": 30}) == 60
    assert settle_wait({"sync.settle_seconds": 60, "http.read_timeout_seconds": 45}) == 90
    assert settle_wait({"sync.settle_seconds": 0, "http.read_timeout_seconds": 45}) == 0
    assert settle_wait({"http.read_timeout_seconds": 10}) == 60  # the default


def test_a_batch_stored_after_the_client_gave_up_is_not_doubled(home, kobo, emu):
    """The server stores the batch 2.5 s after it arrived; the client gives up after
    1.5 s.  The next run, at once, must not resend (nor check: the server has not
    applied it yet); a run after the settle time finds the sessions and sends none."""
    cfg = make_config(home, emu.base_url, read_timeout=1.5)
    cfg.file_values["sync.settle_seconds"] = 4  # more than 2 × 1.5 s: the wait is 4 s
    cfg.file_values["http.max_concurrency"] = 4  # the books' batches abandoned together
    scan_into(cfg, kobo)
    with open_store(cfg) as store:
        queued = store.pending("sessions")
        books = {i.fingerprint for i in queued}
    emu.state.inject_fault(BATCH, action="commit_then_hang", method="POST", delay_ms=2500,
                           times=None)
    first = sync_once(cfg)
    assert first.exit_code == 1
    assert first.queues["sessions"].failed == len(queued)
    emu.state.clear_faults()

    since = emu.request_log()[-1]["seq"]
    second = sync_once(cfg)  # at once: the sessions wait for the server to settle
    tally = second.queues["sessions"]
    # (on a slow machine a book's wait may already be over: then it was checked)
    assert tally.skipped >= 1 and tally.failed == 0, second.to_json()
    assert tally.skipped + tally.synced == len(queued)
    reasons = list(tally.skip_reasons)
    assert all(r.startswith("waiting for the server to settle an earlier upload (retry "
                            "after ") for r in reasons)
    log = emu.request_log(since)
    assert _sent_starts(log) == set()
    with open_store(cfg) as store:
        left = store.pending("sessions")
        assert len(left) == tally.skipped
        assert all(i.state == "uncertain" and i.retry_count == 1 for i in left)
        assert all(i.last_error.startswith("waiting for the server") for i in left)
        assert sum(store.settlements("sessions").values()) == tally.synced

    # the late commits land; a run after the settle time checks and finds them all
    deadline = time.monotonic() + 30
    while len(emu.state.sessions()) < len(queued) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(emu.state.sessions()) == len(queued)
    while True:
        with open_store(cfg) as store:
            _, waiting = split_waiting(store.pending("sessions"), settle_wait(cfg.settings()))
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    since = emu.request_log()[-1]["seq"]
    third = sync_once(cfg)
    assert third.exit_code == 0, third.messages
    assert third.queues["sessions"].synced == len(left)
    log = emu.request_log(since)
    assert _sent_starts(log) == set()
    assert 1 <= len(_gets(log, SESSIONS_LIST)) <= len(books)
    with open_store(cfg) as store:
        ids = {b.file_hash: b.book_id for b in store.books()}
        assert store.counts()["sessions"] == 0
    _assert_every_session_once(emu, ids, queued)


def test_settle_seconds_zero_checks_on_the_next_run(home, kobo, emu):
    cfg = make_config(home, emu.base_url, read_timeout=0.5)
    cfg.file_values["sync.settle_seconds"] = 0
    scan_into(cfg, kobo)
    emu.state.inject_fault(BATCH, action="commit_then_drop", method="POST", times=None)
    assert sync_once(cfg).exit_code == 1
    emu.state.clear_faults()
    report = sync_once(cfg)
    assert report.exit_code == 0, report.messages
    assert not any(r.startswith(WAITING[:20]) for r in report.queues["sessions"].skip_reasons)


# ------------------------------------------------------------------ the matching rules
def _item(queue: str, n: int, payload: dict, state: str = "pending", dt: str = ""):
    from booklore_sync.store import QueueItem

    return QueueItem(queue=queue, id=n, fingerprint="f" * 32, payload=payload,
                     created_at="", retry_count=0, last_attempt_at=None, last_error=None,
                     last_status=None, state=state, key={"datetime": dt or f"2024-01-01 0{n}"})


def test_session_overlap_in_whole_seconds_touching_is_not_overlapping():
    from booklore_sync.booklore.session_models import ServerSession
    from booklore_sync.sync.reconcile import overlapping_sessions

    def server(start: str, end: str) -> ServerSession:
        return ServerSession.from_json({"id": 1, "bookId": 1, "startTime": start,
                                        "endTime": end, "durationSeconds": 1})

    def local(n: int, start: str, end: str):
        return _item("sessions", n, {"startTime": start, "endTime": end})

    items = [local(1, "2024-01-01T10:00:00Z", "2024-01-01T10:30:00Z"),  # touches: no
             local(2, "2024-01-01T11:00:00Z", "2024-01-01T11:30:00Z"),  # inside: yes
             local(3, "2024-01-01T11:30:00Z", "2024-01-01T12:00:00Z"),  # shifted: yes
             local(4, "2024-01-01T13:00:00Z", "2024-01-01T13:10:00Z")]  # none: no
    found = overlapping_sessions(items, [
        server("2024-01-01T10:30:00.900Z", "2024-01-01T10:40:00Z"),
        server("2024-01-01T10:50:00Z", "2024-01-01T11:40:00.500Z")])
    assert [i.id for i in found] == [2, 3]


def test_notes_match_text_and_page_each_server_note_once_oldest_first():
    from booklore_sync.booklore.items import NoteV1
    from booklore_sync.sync.reconcile import match_notes

    def note(n: int, title: str, content: str) -> NoteV1:
        return NoteV1.from_json({"id": n, "bookId": 1, "title": title, "content": content})

    pdf = {"paged": True, "page": 3, "text": "quoted", "note": "mine", "chapter": None}
    newer = _item("annotations", 1, pdf, dt="2024-02-01 00:00:00")
    older = _item("annotations", 2, pdf, dt="2024-01-01 00:00:00")
    epub = _item("annotations", 3, {"paged": False, "note": "  a thought\r\n", "text": "x",
                                    "chapter": "One"})
    found = match_notes([newer, older, epub], [
        note(10, "p. 4", "quoted"),  # another page
        note(11, "p. 3 — Intro", "mine"),  # the note alone, same page
        note(12, "Chapter One", "a thought"),  # no page named: the text decides
    ])
    assert found == {2: 11, 3: 12}
    assert match_notes([older], [note(11, "p. 3", "mine")], exclude=[11]) == {}


def test_pdf_bookmarks_match_by_page_or_the_doubtful_ones_title():
    from booklore_sync.booklore.items import Bookmark
    from booklore_sync.sync.reconcile import match_bookmarks

    def mark(n: int, title: str, page=None, cfi=None) -> Bookmark:
        return Bookmark.from_json({"id": n, "bookId": 1, "title": title, "pageNumber": page,
                                   "cfi": cfi})

    on5 = _item("bookmarks", 1, {"paged": True, "page": 5, "title": "p. 5"})
    on50 = _item("bookmarks", 2, {"paged": True, "page": 50, "title": "p. 50"})
    on7 = _item("bookmarks", 3, {"paged": True, "page": 7, "title": "p. 7"})
    vague = _item("bookmarks", 4, {"paged": True, "page": None, "title": "Bookmark"},
                  state="uncertain")
    found = match_bookmarks([on5, on50, on7, vague], [
        mark(1, "p. 50x"),  # not "p. 5" followed by the end or " —"
        mark(2, "p. 5 — Setup"), mark(3, "", page=7), mark(4, "p. 50", cfi="3"),
        mark(5, "Bookmark")])
    assert found == {1: 2, 3: 3, 4: 5}


def test_split_waiting_counts_from_the_abandonment_or_the_in_flight_mark():
    from dataclasses import replace

    base = _item("sessions", 1, {}, state="uncertain")
    now = _t("2024-05-01T12:00:00Z").timestamp()
    abandoned = replace(base, abandoned_at="2024-05-01T11:59:30Z")
    killed = replace(base, id=2, state="in_flight", in_flight_at="2024-05-01T11:58:00Z")
    pending = replace(base, id=3, state="pending", in_flight_at=None)
    old = replace(base, id=4, abandoned_at="2024-05-01T11:00:00Z")
    ready, waiting = split_waiting([abandoned, killed, pending, old], 60, now)
    assert [i.id for i in ready] == [2, 3, 4]
    [(reason, items)] = waiting.items()
    assert [i.id for i in items] == [1]
    assert reason.startswith("waiting for the server to settle an earlier upload (retry after ")
    assert split_waiting([abandoned], 0, now) == ([abandoned], {})

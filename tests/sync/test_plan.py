"""The sync planner and the outcome classifier, without HTTP (issue 9 item 4)."""

from __future__ import annotations

import threading

import pytest

from booklore_sync.booklore import errors as E
from booklore_sync.store import QueueItem
from booklore_sync.sync import plan as P
from booklore_sync.sync.execute import Pool, RunState
from booklore_sync.sync.outcomes import (
    BOOK_GONE,
    NO_BY_HASH,
    NOT_MATCHED,
    AccountDown,
    Failed,
    Gone,
    Lost,
    Missing,
    Skipped,
    classify,
)

_ids = iter(range(1, 10**6))


def item(queue: str, *, fp: str = "f1", book_id: int | None = 1, state: str = "pending",
         key: dict | None = None, book_type: str | None = None, **payload) -> QueueItem:
    return QueueItem(queue, next(_ids), fp, payload, "2024-01-01T00:00:00Z", 0, None, None,
                     None, state, key or {}, cache_id=None, book_id=book_id,
                     book_type=book_type)


# ------------------------------------------------------------------ matching
def test_split_matched_skips_unmatched_and_fails_lookup_errors():
    ready = item("ratings", fp="a", book_id=3)
    unmatched = item("ratings", fp="b", book_id=None)
    failed = item("ratings", fp="c", book_id=None)
    err = E.ServerError("boom", status=500)
    got, outcomes = P.split_matched("ratings", [ready, unmatched, failed], {"c": err}, False)
    assert got == [ready]
    (fail,) = [o for o in outcomes if isinstance(o, Failed)]
    assert fail.items == [failed] and fail.status == 500 and "looking the book up" in fail.reason
    (skip,) = [o for o in outcomes if isinstance(o, Skipped)]
    assert skip.items == [unmatched] and skip.reason == NOT_MATCHED
    _, outcomes = P.split_matched("ratings", [unmatched], {}, True)
    assert outcomes[0].reason == NO_BY_HASH


# ------------------------------------------------------------------ ratings
def test_ratings_one_request_per_value_and_500_books():
    items = [item("ratings", book_id=b, key={"rating": 8 if b % 2 else 6})
             for b in range(1, 1202)]
    units = P.plan_ratings(items, group_max=500)
    by_value: dict[int, list[int]] = {}
    for unit in units:
        assert len(unit.by_book) <= 500
        by_value.setdefault(unit.rating, []).extend(unit.by_book)
    assert sorted(by_value) == [6, 8]
    assert sorted(by_value[8] + by_value[6]) == list(range(1, 1202))
    assert len(units) == 4  # 601 eights → 2 requests, 600 sixes → 2 requests


# ------------------------------------------------------------------ annotations
@pytest.mark.parametrize(("kind", "paged", "destination", "parts"), [
    ("highlight", False, "both", ["annotation"]),
    ("note", False, "in_book", ["note_v2"]),
    ("note", False, "in_booklore", ["book_note"]),
    ("note", False, "both", ["note_v2", "book_note"]),
    ("highlight", True, "in_book", ["book_note"]),
    ("note", True, "both", ["book_note"]),
])
def test_annotation_parts(kind, paged, destination, parts):
    a = item("annotations", key={"kind": kind}, paged=paged, cfi="epubcfi(/6/2)")
    assert P.annotation_parts(a, destination) == parts


def test_plan_annotations_groups_per_book_in_order_and_skips_missing_cfi():
    a1 = item("annotations", book_id=1, key={"kind": "highlight"}, cfi="x")
    b1 = item("annotations", book_id=2, key={"kind": "highlight"}, cfi="y")
    a2 = item("annotations", book_id=1, key={"kind": "note"}, cfi="z")
    no_cfi = item("annotations", book_id=1, key={"kind": "highlight"}, cfi=None)
    pdf = item("annotations", book_id=2, key={"kind": "highlight"}, paged=True)
    units, outcomes = P.plan_annotations([a1, b1, a2, no_cfi, pdf], "both")
    assert [(u.book_id, [i.id for i in u.items]) for u in units] == [
        (1, [a1.id, a2.id]), (2, [b1.id, pdf.id])]
    assert units[0].parts[a2.id] == ["note_v2", "book_note"]
    assert [o.items for o in outcomes] == [[no_cfi]]
    # only the undeduplicated uploads are marked in flight, and doubtful ones stay so
    assert P.to_mark_in_flight(units) == [a2.id, pdf.id]
    pdf.state = "uncertain"
    assert P.to_mark_in_flight(units) == [a2.id]
    assert P.needs_remote_ids(units) == [2]


def test_plan_bookmarks_marks_only_pages():
    epub = item("bookmarks", book_id=1, cfi="c", title="t")
    pdf = item("bookmarks", book_id=1, paged=True, title="p. 3")
    nothing = item("bookmarks", book_id=1, title="no place")
    units, outcomes = P.plan_bookmarks([epub, pdf, nothing])
    assert [i.id for i in units[0].items] == [epub.id, pdf.id]
    assert [o.items for o in outcomes] == [[nothing]]
    assert P.to_mark_in_flight(units) == [pdf.id]


# ------------------------------------------------------------------ sessions
def test_plan_sessions_per_book_type_and_unknown_format():
    s1 = item("sessions", book_id=1, bookType="EPUB")
    s2 = item("sessions", book_id=1, book_type="PDF")
    s3 = item("sessions", book_id=1, bookType="EPUB")
    s4 = item("sessions", book_id=2)
    s5 = item("sessions", book_id=3)
    raws = {3: {"primaryFile": {"bookType": "CBX"}}}
    units, outcomes = P.plan_sessions(
        [s1, s2, s3, s4, s5], lambda i: P.session_book_type(i, raws.get(i.book_id)), 2)
    assert [(u.book_id, [(t, [i.id for i in g]) for t, g in u.groups]) for u in units] == [
        (1, [("EPUB", [s1.id, s3.id]), ("PDF", [s2.id])]), (3, [("CBX", [s5.id])])]
    assert [o.items for o in outcomes] == [[s4]]
    assert P.needs_server_type(s4) and not P.needs_server_type(s2)
    assert [len(c) for c in P.chunks([s1, s2, s3, s4, s5], 2)] == [2, 2, 1]


# ------------------------------------------------------------------ classify
def test_classify_is_the_one_error_ladder():
    items = [item("bookmarks")]
    assert isinstance(classify("bookmarks", items, E.OfflineError("down")), Lost)
    auth = E.AuthError("no", account="booklore", kind="rejected", status=401)
    assert isinstance(classify("bookmarks", items, auth), AccountDown)
    missing = classify("bookmarks", items, E.NotConfiguredError("x", account="booklore"))
    assert isinstance(missing, Missing) and missing.account == "booklore"
    unknown = classify("bookmarks", items, E.OutcomeUnknownError("timeout"),
                       unknown_state="uncertain")
    assert isinstance(unknown, Failed) and unknown.state == "uncertain"
    assert unknown.reason.startswith("outcome unknown: ")
    gone = E.NotFoundError("Book not found with ID: 4", status=404)
    assert isinstance(classify("bookmarks", items, gone), Gone)
    fp = classify("progress", items, gone, not_found="fingerprint")
    assert isinstance(fp, Skipped) and "fingerprint" in fp.reason
    assert isinstance(classify("ratings", items, gone, not_found="fail"), Failed)
    five = E.ServerError("oops", status=500)
    assert isinstance(classify("bookmarks", items, five, check_book=lambda: True), Gone)
    kept = classify("bookmarks", items, five, check_book=lambda: False)
    assert isinstance(kept, Failed) and kept.status == 500
    assert BOOK_GONE.startswith("book not found on server")


# ------------------------------------------------------------------ pool
def test_pool_bounds_concurrency_and_stops_starting_units():
    state = RunState(["booklore"])
    pool = Pool(3, state)
    running = 0
    peak = 0
    lock = threading.Lock()
    full = threading.Event()  # three units are running at once

    def work(n: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            if running == 3:
                full.set()
        full.wait(timeout=10)
        with lock:
            running -= 1
        return n

    try:
        assert sorted(pool.run(work, list(range(20)))) == list(range(20))
        assert peak == 3
        done = []
        for n in pool.run(work, list(range(50))):
            done.append(n)
            state.stop.set()  # the server is lost: no further unit starts
        assert len(done) < 50
    finally:
        pool.close()


def test_pool_of_one_runs_on_the_callers_thread():
    state = RunState([])
    threads = set()
    result = list(Pool(1, state).run(lambda n: threads.add(threading.get_ident()) or n, [1, 2]))
    assert result == [1, 2] and threads == {threading.get_ident()}

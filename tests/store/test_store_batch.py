"""Store.enqueue_many: the same outcomes and rows as the single enqueue methods."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booklore_sync.store import (
    ALREADY_QUEUED,
    ALREADY_SYNCED,
    DISCARDED,
    QUEUED,
    UPDATED,
    Store,
)
from tests.conftest import new_store

FP = "59d481d168cca6267322f150c5f6a2a3"
FP2 = "41cce710f34e5ec21315e19c99821415"
TABLES = ("pending_sessions", "pending_annotations", "pending_bookmarks", "pending_ratings",
          "pending_koreader_progress", "discarded_items", "book_cache")


def _single(store: Store, queue: str, row: tuple) -> str:
    return {"sessions": store.enqueue_session, "annotations": store.enqueue_annotation,
            "bookmarks": store.enqueue_bookmark, "ratings": store.enqueue_rating,
            "progress": store.enqueue_progress}[queue](*row)


def _dump(store: Store) -> dict[str, list[tuple]]:
    out = {}
    for t in TABLES:
        cur = store._conn.execute(f"SELECT * FROM {t} ORDER BY rowid")
        names = [d[0] for d in cur.description]
        # ids keep their order; their values may differ (a single enqueue that finds its
        # key queued still burns an AUTOINCREMENT id)
        out[t] = [tuple(v for n, v in zip(names, r, strict=True)
                        if n not in ("id", "created_at", "discarded_at", "updated_at"))
                  for r in cur]
    return out


def test_outcomes_match_the_single_methods(store):
    key = ("2024-01-01 10:00:00", "highlight", "/body/DocFragment[2]/body/p/text().0")
    rows = [
        (FP, *key, {"cfi": None, "text": "t"}, "book file missing"),
        (FP, *key, {"cfi": None, "text": "t"}, "book file missing"),
        (FP, *key, {"cfi": "epubcfi(/6/4!/4/2/1,:0,:1)", "text": "t"}),
        (FP, *key, {"cfi": "epubcfi(/6/4!/4/2/1,:0,:2)", "text": "t"}),
        (FP2, *key, {"text": "other book"}),
    ]
    assert store.enqueue_many("annotations", rows) == [QUEUED, ALREADY_QUEUED, UPDATED,
                                                       ALREADY_QUEUED, QUEUED]
    (item, _other) = store.pending("annotations")
    assert item.payload["cfi"] == "epubcfi(/6/4!/4/2/1,:0,:1)" and item.last_error is None
    assert store.enqueue_many("ratings", [(FP, 8), (FP, 8), (FP, 6), (FP2, 4)]) == [
        QUEUED, ALREADY_QUEUED, UPDATED, QUEUED]
    store.move_to_history("ratings", [store.pending("ratings")[0].id], book_id=3)
    assert store.enqueue_many("ratings", [(FP, 6), (FP, 10), (FP, 6)]) == [
        ALREADY_SYNCED, QUEUED, ALREADY_SYNCED]
    assert store.counts()["ratings"] == 1  # FP2's 4
    store.clear_pending(["bookmarks", "progress"])
    store.enqueue_bookmark(FP, "d1", {})
    store.enqueue_progress(FP, "/p[1]", 0.5, {})
    store.clear_pending(["bookmarks", "progress"])
    assert store.enqueue_many("bookmarks", [(FP, "d1", {}), (FP, "d2", {}, "no CFI")]) == [
        DISCARDED, QUEUED]
    assert store.enqueue_many("progress", [(FP, "/p[1]", 0.5, {}), (FP, "/p[2]", 0.6),
                                           (FP, "/p[1]", 0.5), (FP, "/p[3]", 0.7)]) == [
        DISCARDED, QUEUED, DISCARDED, UPDATED]
    assert store.pending("progress")[0].key == {"progress": "/p[3]", "percentage": 0.7}
    assert store.enqueue_many("sessions", []) == []


def test_unstorable_rows_fail_in_their_place(store):
    rows = [(FP, "d1", {"text": "ok"}), (FP, "d2", {"text": "bad \udcff"}), (FP, "d3", {})]
    with pytest.raises(UnicodeEncodeError):
        store.enqueue_many("bookmarks", rows)
    # as with single calls, the rows before the failing one stay queued
    assert [i.key["datetime"] for i in store.pending("bookmarks")] == ["d1"]
    with pytest.raises(sqlite3.IntegrityError):
        store.enqueue_many("progress", [(FP, "/p", float("nan"))])


def test_large_batches_are_chunked(store):
    rows = [(FP, i, {"n": i}) for i in range(1000)] + [(FP, 5, {})]
    assert store.enqueue_many("sessions", rows) == [QUEUED] * 1000 + [ALREADY_QUEUED]
    assert [i.key["start_epoch"] for i in store.pending("sessions")] == list(range(1000))


# ------------------------------------------------------------- differential
fps = st.sampled_from([FP, FP2])
texts = st.sampled_from(["a", "b", "/body/p[1]", "é"])
payloads = st.fixed_dictionaries({}, optional={"cfi": st.sampled_from([None, "", "epubcfi(/6)"]),
                                               "text": texts})
errors = st.sampled_from([None, None, "no CFI", ""])
rows_by_queue = {
    "annotations": st.tuples(fps, texts, st.sampled_from(["highlight", "note"]), texts,
                             payloads, errors),
    "bookmarks": st.tuples(fps, texts, payloads, errors),
    "sessions": st.tuples(fps, st.integers(0, 3), payloads),
    "ratings": st.tuples(fps, st.integers(1, 3), payloads),
    "progress": st.tuples(fps, texts, st.sampled_from([0.25, 0.5, 1.0]), payloads),
}
steps = st.one_of(
    *[st.tuples(st.just("enqueue"), st.just(q), st.lists(s, max_size=8))
      for q, s in rows_by_queue.items()],
    st.tuples(st.just("sync"), st.sampled_from(list(rows_by_queue)), st.integers(0, 3)),
    st.tuples(st.just("clear"), st.sampled_from(list(rows_by_queue)), st.just(0)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
@given(st.lists(steps, max_size=10))
def test_same_as_single_calls(tmp_path, ops):
    one = new_store(tmp_path / f"one-{id(ops)}.db")
    many = new_store(tmp_path / f"many-{id(ops)}.db")
    try:
        for op, queue, arg in ops:
            if op == "enqueue":
                expected = [_single(one, queue, r) for r in arg]
                assert many.enqueue_many(queue, arg) == expected
            elif op == "sync":
                for s in (one, many):
                    items = s.pending(queue)[:arg]
                    s.move_to_history(queue, [i.id for i in items], book_id=1)
            else:
                for s in (one, many):
                    s.clear_pending([queue])
            assert _dump(one) == _dump(many)
    finally:
        one.close()
        many.close()

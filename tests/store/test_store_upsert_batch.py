"""``upsert_books`` / the batched file memo: the outcome of the single calls in order."""

from __future__ import annotations

import random

import pytest

from booklore_sync.common.vocab import LinkKind
from booklore_sync.store import Store
from booklore_sync.store.books import BookUpsert
from tests.conftest import new_store

FP = "59d481d168cca6267322f150c5f6a2a3"
FP2 = "41cce710f34e5ec21315e19c99821415"
FP3 = "0123456789abcdef0123456789abcdef"


def _state(store: Store) -> tuple[list[tuple], list[tuple]]:
    conn = store._conn
    books = [tuple(r) for r in conn.execute(
        "SELECT id, file_hash, file_path, title, author, isbn10, isbn13, book_type, book_id,"
        " match_method, matched_by FROM book_cache ORDER BY id")]
    hashes = [tuple(r) for r in conn.execute(
        "SELECT hash, cache_id FROM book_hashes ORDER BY hash")]
    return books, hashes


def _random_batch(rnd: random.Random, pool: list[str]) -> list[BookUpsert]:
    out = []
    for _ in range(rnd.randint(1, 12)):
        hashes = rnd.sample(pool, rnd.randint(1, 3))
        out.append(BookUpsert(hashes[0], rnd.choice([None, "/a", "/b"]),
                              rnd.choice([None, "T1", "T2"]), rnd.choice([None, "A"]),
                              None, rnd.choice([None, "978"]), rnd.choice([None, "PDF"]),
                              tuple(hashes[1:])))
    return out


@pytest.mark.parametrize("seed", range(60))
def test_batch_upsert_matches_single_calls_in_order(tmp_path, seed):
    rnd = random.Random(seed)
    pool = [f"{i:032x}" for i in range(10)]
    single = new_store(tmp_path / "single.db")
    batched = new_store(tmp_path / "batched.db")
    for s in (single, batched):  # the same kept links and one matched row on both sides
        s.set_kept_link(pool[1], 11, LinkKind.MANUAL)
        s.set_kept_link(pool[4], 44, LinkKind.PLUGIN)
    for _ in range(4):
        batch = _random_batch(rnd, pool)
        want = [single.upsert_book(b.file_hash, file_path=b.file_path, title=b.title,
                                   author=b.author, isbn10=b.isbn10, isbn13=b.isbn13,
                                   book_type=b.book_type, extra_hashes=b.extra_hashes)
                for b in batch]
        assert batched.upsert_books(batch) == want
        assert _state(batched) == _state(single)
    single.close()
    batched.close()


def test_batch_gives_a_new_row_the_kept_link_of_its_fingerprint(store):
    store.set_kept_link(FP2, 42, LinkKind.MANUAL)
    store.set_kept_link(FP3, 43, LinkKind.PLUGIN)
    a, b, c = store.upsert_books([BookUpsert(FP, title="no link"),
                                  BookUpsert(FP2, title="linked"),
                                  BookUpsert("f" * 32, extra_hashes=(FP3,))])
    assert store.get_book(a).book_id is None
    linked = store.get_book(b)
    assert (linked.book_id, linked.match_method, linked.matched_by) == (42, "manual", "manual")
    assert store.get_book(c).book_id == 43  # through a secondary fingerprint
    # an existing match is never overridden by a kept link
    store.set_kept_link(FP, 50, LinkKind.MANUAL)
    store.set_book_id(a, 7, "hash")
    store.upsert_books([BookUpsert(FP, title="again")])
    assert store.get_book(a).book_id == 7


def test_batched_file_memo(store):
    assert store.get_file_memos([]) == {}
    store.put_file_memos([("/a", 1, 2, "x"), ("/b", 3, 4, "y")])
    store.put_file_memos([("/a", 5, 6, "z")])
    paths = [f"/n{i}" for i in range(1200)] + ["/a", "/b", "/a"]
    assert store.get_file_memos(paths) == {"/a": (5, 6, "z"), "/b": (3, 4, "y")}
    assert store.get_file_memo("/a") == (5, 6, "z")

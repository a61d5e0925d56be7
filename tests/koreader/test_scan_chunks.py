"""The scan's store reads and writes in chunks (cache rows, file memos): the same store,
whatever the chunk size, and a kept link reaches a book cached in a batch."""

from __future__ import annotations

from pathlib import Path

import pytest

from booklore_sync.common.vocab import LinkKind
from booklore_sync.koreader import sidecar_import
from booklore_sync.koreader.scan import scan_source
from booklore_sync.store import Store

TALL = "41cce710f34e5ec21315e19c99821415"


def _dump(store: Store) -> dict[str, list[tuple]]:
    conn = store._conn
    out = {}
    for table, order in (("book_cache", "id"), ("book_hashes", "hash"),
                         ("file_memo", "path"), ("pending_annotations", "id"),
                         ("pending_bookmarks", "id"), ("pending_koreader_progress", "id"),
                         ("pending_ratings", "id")):
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")
                if r[1] not in ("created_at", "updated_at", "matched_at")]
        out[table] = [tuple(r) for r in conn.execute(
            f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}")]
    return out


def _scan_twice(path: Path, source: Path) -> tuple[Store, dict[str, list[tuple]]]:
    store = Store.open(path)
    store.set_kept_link(TALL, 77, LinkKind.MANUAL)
    first = scan_source(store, source, {"device.timezone": "UTC"}, now=1_800_000_000)
    again = scan_source(store, source, {"device.timezone": "UTC"}, now=1_800_000_000)
    assert sum(again.queued.values()) == 0 and again.books == first.books
    return store, _dump(store)


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_small_chunks_give_the_same_store(tmp_path, kobo_copy, monkeypatch, chunk):
    whole, want = _scan_twice(tmp_path / "whole.db", kobo_copy)
    monkeypatch.setattr(sidecar_import, "CHUNK", chunk)
    small, got = _scan_twice(tmp_path / "small.db", kobo_copy)
    assert want["book_cache"] and want["file_memo"]
    assert got == want
    book = small.get_book_by_hash(TALL)
    assert book is not None and book.book_id == 77  # the kept link, applied in the batch
    whole.close()
    small.close()

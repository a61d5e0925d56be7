"""The scan with worker processes (``koreader/parallel.py``) and the rescan by stat
signature: the same store and the same report as the one-process scan, whatever
happens to the workers; an unchanged sidecar is not read, a rewritten one always is."""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import unicodedata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from booklore_sync.koreader import candidates, parallel, safeio, sidecar_import
from booklore_sync.koreader.scan import scan_source
from booklore_sync.store import Store

from .conftest import KOBO
from .damage import _bad_utf8, _flip, _nest, _swap_types, _truncate

NOW = 1_800_000_000
SETTINGS = {"device.timezone": "UTC"}
TABLES = (("book_cache", "id"), ("book_hashes", "hash"), ("file_memo", "path"),
          ("pending_annotations", "id"), ("pending_bookmarks", "id"),
          ("pending_koreader_progress", "id"), ("pending_ratings", "id"),
          ("pending_sessions", "id"))

needs_fork = pytest.mark.skipif(sys.platform == "win32" or not hasattr(os, "fork"),
                                reason="the pool needs the fork start method")


def _dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    conn = store._conn
    out = {}
    for table, order in TABLES:
        cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")
                if r[1] not in ("created_at", "updated_at", "matched_at")]
        out[table] = [tuple(r) for r in conn.execute(
            f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}")]
    return out


def _odd_name(stem: str, i: int) -> str:
    """File names a device may hold: bytes that are no UTF-8, decomposed accents,
    brackets, quotes and spaces."""
    kind = i % 4
    if kind == 0:
        return os.fsdecode(stem.encode() + b"-caf\xe9")  # Latin-1 bytes
    if kind == 1:
        return unicodedata.normalize("NFD", f"{stem} Éé ñ")
    if kind == 2:
        return f"{stem} [vol. 2] 'x' \"y\""
    return f"{stem}-日本語"


def _device(tmp: Path, n: int = 40, seed: int = 5) -> Path:
    """The Kobo fixture plus ``n`` more books (PDF and EPUB copies under odd names),
    some of their sidecars damaged, one empty, one with a backup, one with custom
    metadata, one whose book is gone."""
    rng = random.Random(seed)
    root = tmp / "device"
    shutil.copytree(KOBO, root)
    books = root / "Books"
    shelf = books / "more"
    shelf.mkdir()
    sources = [("leaves", "epub"), ("tall", "pdf"), ("2col", "pdf")]
    ops = [_truncate, _flip, _bad_utf8, _swap_types, _nest]
    for i in range(n):
        stem, ext = sources[i % len(sources)]
        name = _odd_name(f"{stem}{i:02d}", i)
        book = shelf / f"{name}.{ext}"
        shutil.copyfile(books / f"{stem}.{ext}", book)
        if i % 7 == 3:  # different bytes: its own fingerprint
            with open(book, "ab") as fh:
                fh.write(rng.randbytes(64))
        sdr = shelf / f"{name}.sdr"
        sdr.mkdir()
        raw = (books / f"{stem}.sdr" / f"metadata.{ext}.lua").read_bytes()
        if i % 5 == 2:
            raw = ops[(i // 5) % len(ops)](rng, raw)
        if i == 11:
            raw = b""
        (sdr / f"metadata.{ext}.lua").write_bytes(raw)
        if i == 17:
            (sdr / f"metadata.{ext}.lua.old").write_bytes(
                (books / f"{stem}.sdr" / f"metadata.{ext}.lua").read_bytes())
        if i == 23:
            (sdr / "custom_metadata.lua").write_bytes(
                b'return {\n    ["custom_props"] = {\n        ["title"] = "Own title",\n'
                b'        ["authors"] = "Someone\\nElse",\n    },\n}\n')
        if i == 29:
            book.unlink()
    return root


def _scan(db: Path, source: Path, workers: str, monkeypatch: pytest.MonkeyPatch,
          ) -> tuple[Store, list[dict[str, Any]]]:
    monkeypatch.setenv(parallel.ENV, workers)
    store = Store.open(db)
    reports = []
    for _ in range(2):
        report = scan_source(store, source, SETTINGS, now=NOW)
        reports.append(report.to_json())
    return store, reports


@pytest.fixture
def device(tmp_path: Path) -> Path:
    return _device(tmp_path)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "CHUNK", 3)
    _trust_stats_at_once(monkeypatch)


@pytest.fixture
def applied(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the books whose outcome came from a worker."""
    calls: list[int] = []
    real = parallel._apply

    def counting(ctx: Any, events: Any) -> None:
        calls.append(1)
        real(ctx, events)
    monkeypatch.setattr(parallel, "_apply", counting)
    return calls


def _baseline(tmp_path: Path, device: Path, monkeypatch: pytest.MonkeyPatch,
              ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    store, reports = _scan(tmp_path / "one.db", device, "0", monkeypatch)
    want = _dump(store)
    store.close()
    assert reports[0]["books"] > 30 and reports[0]["errors"] and reports[0]["warnings"]
    assert sum(reports[1]["queued"].values()) == 0
    return want, reports


@needs_fork
def test_pool_gives_the_same_store_and_report(tmp_path, device, monkeypatch, small_chunks,
                                              applied):
    want, want_reports = _baseline(tmp_path, device, monkeypatch)
    store, reports = _scan(tmp_path / "pool.db", device, "2", monkeypatch)
    assert len(applied) > 20  # the workers did the work
    assert reports == want_reports
    assert _dump(store) == want
    store.close()


def dying_work(indexes: list[int], memos: Any) -> Any:
    """A worker killed in the middle of its chunk (module level: the pool pickles it)."""
    if 10 in indexes:
        os._exit(9)
    return REAL_WORK(indexes, memos)


def failing_work(indexes: list[int], memos: Any) -> Any:
    if 7 in indexes:
        raise RuntimeError("a worker's own failure")
    return REAL_WORK(indexes, memos)


REAL_WORK = parallel._work


@needs_fork
@pytest.mark.parametrize("work", [dying_work, failing_work])
def test_a_failed_worker_loses_nothing(tmp_path, device, monkeypatch, small_chunks, applied,
                                       work):
    want, want_reports = _baseline(tmp_path, device, monkeypatch)
    monkeypatch.setattr(parallel, "_work", work)
    store, reports = _scan(tmp_path / "pool.db", device, "2", monkeypatch)
    assert applied  # chunks before the failure came from the workers
    assert reports == want_reports
    assert _dump(store) == want
    store.close()


@needs_fork
def test_a_book_the_worker_cannot_finish_is_done_by_the_main_process(
        tmp_path, device, monkeypatch, small_chunks, applied):
    """A memo the worker was not given: that book alone goes back (here: every book's)."""
    want, want_reports = _baseline(tmp_path, device, monkeypatch)
    real_keys = sidecar_import.memo_keys
    monkeypatch.setattr(sidecar_import, "memo_keys",
                        lambda ctx, groups: [k for k in real_keys(ctx, groups)
                                             if not k.startswith("sidecar")])
    store, reports = _scan(tmp_path / "pool.db", device, "2", monkeypatch)
    assert not applied  # all books came back
    assert reports == want_reports
    assert _dump(store) == want
    store.close()


def test_workers_setting(monkeypatch):
    monkeypatch.setenv(parallel.ENV, "0")
    assert parallel.workers_for(10_000) == 0
    monkeypatch.setenv(parallel.ENV, "off")
    assert parallel.workers_for(10_000) == 0
    monkeypatch.delenv(parallel.ENV)
    assert parallel.workers_for(parallel.MIN_BOOKS - 1) == 0  # not worth a pool
    if hasattr(os, "fork"):
        monkeypatch.setenv(parallel.ENV, "3")
        assert parallel.workers_for(5) == 3


# ------------------------------------------------------------- rescan by stat
def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = safeio.read_regular

    def reading(path: Any, limit: int = safeio.DEFAULT_LIMIT) -> bytes:
        seen.append(os.fspath(path))
        return real(path, limit)
    monkeypatch.setattr(sidecar_import, "read_regular", reading)
    return seen


def test_rescan_does_not_read_unchanged_sidecars(tmp_path, kobo_copy, monkeypatch):
    _trust_stats_at_once(monkeypatch)
    monkeypatch.setenv(parallel.ENV, "0")
    store = Store.open(tmp_path / "s.db")
    first = scan_source(store, kobo_copy, SETTINGS, now=NOW)
    reads = _reads(monkeypatch)
    again = scan_source(store, kobo_copy, SETTINGS, now=NOW)
    assert again.books == first.books and sum(again.queued.values()) == 0
    doc_mode = [r for r in reads if "/Books/" in r and r.endswith(".lua")]
    assert doc_mode == []  # hash mode (its book named inside the sidecar) is still read
    store.close()


def test_a_rewritten_sidecar_is_read_again_even_with_the_same_size_and_time(
        tmp_path, kobo_copy, monkeypatch):
    """KOReader writes a new file and renames it over the old one: a new inode (and
    ctime) even when size and mtime come out the same."""
    _trust_stats_at_once(monkeypatch)
    monkeypatch.setenv(parallel.ENV, "0")
    store = Store.open(tmp_path / "s.db")
    scan_source(store, kobo_copy, SETTINGS, now=NOW)
    side = kobo_copy / "Books" / "tall.sdr" / "metadata.pdf.lua"
    st = side.stat()
    raw = side.read_bytes()
    new = raw.replace(b'["rating"] = 5', b'["rating"] = 3', 1)  # same length
    assert new != raw and len(new) == len(raw)
    tmp = side.with_name(side.name + ".tmp")
    tmp.write_bytes(new)
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, side)
    assert side.stat().st_size == st.st_size and side.stat().st_mtime_ns == st.st_mtime_ns
    reads = _reads(monkeypatch)
    again = scan_source(store, kobo_copy, SETTINGS, now=NOW)
    assert str(side) in reads
    assert again.queued["ratings"] == 1  # the new rating, as an update
    store.close()


def _trust_stats_at_once(monkeypatch):
    """The rescan may trust a stat signature however recent the file."""
    monkeypatch.setattr(candidates, "SETTLE_NS", 0)
    monkeypatch.setattr(candidates, "FINE_SETTLE_NS", 0)


def _stat(mtime_ns: int, ctime_ns: int) -> SimpleNamespace:
    return SimpleNamespace(st_size=10, st_mtime_ns=mtime_ns, st_ctime_ns=ctime_ns,
                           st_ino=7, st_dev=3)


def test_a_sidecar_changed_just_before_the_scan_has_no_stat_signature(tmp_path):
    f = tmp_path / "metadata.pdf.lua"
    f.write_bytes(b"return {}\n")
    st = f.stat()
    now = max(st.st_mtime_ns, st.st_ctime_ns)
    assert candidates.stat_signature(st, now) is None
    sig = candidates.stat_signature(st, now + candidates.SETTLE_NS + 1)
    assert sig == f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}"
    # FAT's whole-second times (2 s steps) need the long wait; sub-second times the short
    coarse, fine = _stat(10**18, 10**18), _stat(10**18 + 123_456_789, 10**18 + 123_456_789)
    for st, wait in ((coarse, candidates.SETTLE_NS), (fine, candidates.FINE_SETTLE_NS)):
        changed = max(st.st_mtime_ns, st.st_ctime_ns)
        assert candidates.stat_signature(st, changed + wait - 1) is None
        assert candidates.stat_signature(st, changed + wait + 1) == "10:%d:%d:7:3" % (
            st.st_mtime_ns, st.st_ctime_ns)
    assert candidates.FINE_SETTLE_NS < candidates.SETTLE_NS


def test_memos_of_older_scans_still_serve(tmp_path, kobo_copy, monkeypatch):
    """A memo without the stat token (written before it existed) is read as before."""
    monkeypatch.setenv(parallel.ENV, "0")
    store = Store.open(tmp_path / "s.db")
    scan_source(store, kobo_copy, SETTINGS, now=NOW)
    conn = store._conn
    rows = conn.execute("SELECT path, digest FROM file_memo WHERE path LIKE 'sidecar%'").fetchall()
    assert rows
    for path, digest in rows:
        token, _stat, book = sidecar_import.memo_parts(digest)  # type: ignore[misc]
        json.loads(book)
        conn.execute("UPDATE file_memo SET digest = ? WHERE path = ?", (f"{token}|{book}", path))
    _trust_stats_at_once(monkeypatch)
    again = scan_source(store, kobo_copy, SETTINGS, now=NOW)
    assert sum(again.queued.values()) == 0 and not again.errors
    reads = _reads(monkeypatch)  # the memos read by content got their stat token
    third = scan_source(store, kobo_copy, SETTINGS, now=NOW)
    assert third.to_json() == again.to_json()
    assert [r for r in reads if "/Books/" in r and r.endswith(".lua")] == []
    store.close()

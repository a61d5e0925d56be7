"""The state one scan shares between its steps (device discovery, sidecars,
statistics, rows, sink), and its one ``stat`` per path."""

from __future__ import annotations

import errno
import gc
import os
import stat as stat_mod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from booklore_sync.koreader.discovery import Layout, PathMapper
from booklore_sync.koreader.fingerprint import partial_md5
from booklore_sync.koreader.paths import to_store
from booklore_sync.koreader.report import QUEUE_NAMES, ScanReport
from booklore_sync.koreader.sink import Sink
from booklore_sync.koreader.statistics import Session, StatsBook
from booklore_sync.store.books import BookUpsert

__all__ = ["ScanContext", "ScannedBook"]

# the errors Path.is_file() / Path.exists() read as "no"
_IGNORED_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP,
                             errno.ENAMETOOLONG, errno.EACCES})


@dataclass
class ScannedBook:
    """What a processed sidecar contributes to the session mapping."""
    primary: str
    candidates: list[str]
    book_type: str | None
    title: str | None = None
    authors: str | None = None


class ScanContext:
    def __init__(self, store: Any, layout: Layout, cfg: Mapping[str, Any], now: int,
                 report: ScanReport, on_progress: Callable[[int, int], None] | None):
        self.store = store
        self.layout = layout
        self.cfg = cfg
        self.now = now
        self.report = report
        self.on_progress = on_progress
        self.file_times = bool(cfg.get("device.file_times", True))
        self.mapper = PathMapper(layout.device_root, cfg.get("scan.path_map") or {})
        self.device_id: str | None = None
        self.device_name = str(cfg.get("device.name") or "booklore-sync")
        self.custom_colors: Mapping[str, Any] = {}
        self.reader_settings: Mapping[str, Any] = {}    # settings.reader.lua
        self.history_paths: list[str] = []
        self.device_data_dir: str | None = None     # the data directory's device path
        self.books: list[ScannedBook] = []
        self.fp_index: dict[str, ScannedBook] = {}
        self.stats_books: dict[int, StatsBook] = {}
        self.sessions: list[Session] = []
        self.stats_last_end: dict[str, int] = {}
        self.digest_cache: dict[str, str | None] = {}
        self.tz = _zone(cfg.get("device.timezone"))
        self.signature = ""
        self.signature_bytes = b""
        self.switches = {q: bool(cfg.get(f"sync.{q}", True)) for q in QUEUE_NAMES}
        # one stat per path and scan (the same files are asked about several times)
        self.stats: dict[str, os.stat_result | OSError | ValueError] = {}
        self.sink = Sink(store, report)
        self.listings: dict[str, frozenset[str]] = {}
        # the store's writes of the scan, applied in chunks (``flush_store``)
        self.pending_books: list[BookUpsert] = []
        self.pending_memos: list[tuple[str, int, int, str]] = []
        self.memos: dict[str, tuple[int, int, str] | None] = {}  # prefetched, used once
        self.gc_paused = False  # automatic collections off for the scan: collect_young

    def collect_young(self) -> None:
        """While the scan holds automatic garbage collection off: the young objects'."""
        if self.gc_paused:
            gc.collect(1)

    def on(self, queue: str) -> bool:
        return self.switches[queue] if queue in self.switches else \
            bool(self.cfg.get(f"sync.{queue}", True))

    def enqueue(self, queue: str, row: tuple[Any, ...]) -> None:
        self.sink.enqueue(queue, row)

    def flush(self) -> None:
        self.flush_store()
        self.sink.flush()

    # ------------------------------------------------- batched store writes
    def add_book(self, book: BookUpsert) -> None:
        """``store.upsert_book`` of one book, applied with its chunk (cache ids unused)."""
        self.pending_books.append(book)

    def flush_store(self) -> None:
        """The waiting cache rows and file memos into the store, a few statements each."""
        if self.pending_books:
            books, self.pending_books = self.pending_books, []
            self.store.upsert_books(books)
        if self.pending_memos:
            memos, self.pending_memos = self.pending_memos, []
            self.store.put_file_memos(memos)

    def prefetch_memos(self, keys: Iterable[str]) -> None:
        """Read the file memos of ``keys`` (store form) in one query; each is used once."""
        self.flush_store()  # a memo written but not yet stored must not read as missing
        wanted = [k for k in keys if k not in self.memos]
        found = self.store.get_file_memos(wanted)
        for k in wanted:
            self.memos[k] = found.get(k)

    def get_memo(self, key: str) -> tuple[int, int, str] | None:
        if key in self.memos:
            return self.memos.pop(key)
        return self.store.get_file_memo(key)

    def put_memo(self, key: str, size: int, mtime_ns: int, digest: str) -> None:
        self.memos.pop(key, None)
        self.pending_memos.append((key, size, mtime_ns, digest))

    # ---------------------------------------------------------------- stats
    def stat(self, path: Path | str) -> os.stat_result | OSError | ValueError:
        """The scan's one ``os.stat`` of ``path``: its result or its error."""
        key = str(path)
        st = self.stats.get(key)
        if st is None:
            try:
                st = os.stat(key)
            except (OSError, ValueError) as exc:  # ValueError: an embedded NUL
                st = exc
            self.stats[key] = st
        return st

    def is_file(self, path: Path | str) -> bool:
        """A regular file (symlinks followed); anything unreachable is "no"."""
        st = self.stat(path)
        if isinstance(st, Exception):
            return False
        return stat_mod.S_ISREG(st.st_mode)

    def exists(self, path: Path | str) -> bool:
        st = self.stat(path)
        return not isinstance(st, Exception)

    def file_digest(self, path: Path) -> str | None:
        """The partial MD5 of a regular file (memoised by size and mtime in the store)."""
        key = str(path)
        if key in self.digest_cache:
            return self.digest_cache[key]
        digest = None
        st = self.stat(path)
        if not isinstance(st, Exception) and stat_mod.S_ISREG(st.st_mode):
            memo_key = to_store(key)
            try:
                memo = self.get_memo(memo_key)
                if memo is not None and memo[0] == st.st_size and memo[1] == st.st_mtime_ns:
                    digest = memo[2]
                else:
                    digest = partial_md5(path)
                    self.put_memo(memo_key, st.st_size, st.st_mtime_ns, digest)
            except OSError:
                digest = None
        self.digest_cache[key] = digest
        return digest

    def file_state(self, path: Path | str | None) -> str:
        if path is None:
            return "none"
        st = self.stat(path)
        if isinstance(st, Exception):
            return "missing"
        return f"{st.st_size}:{st.st_mtime_ns}"

    def register(self, book: ScannedBook) -> None:
        self.books.append(book)
        for h in book.candidates:
            self.fp_index.setdefault(h, book)


def _zone(name: Any) -> Any:
    if not name:
        return None
    try:
        from zoneinfo import ZoneInfo
        return ZoneInfo(str(name))
    except Exception:  # noqa: BLE001 - an unknown zone falls back to local time
        return None

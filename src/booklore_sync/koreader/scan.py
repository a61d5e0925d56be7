"""``scan SOURCE``: turn a KOReader device or synced folder into queued items.

sync-and-cache.md §5; koreader-data.md throughout.  Never writes to SOURCE and
never contacts a server.  Every malformed file is reported (``errors``) and
skipped; items queued without a CFI, sidecars without a reachable book file,
sessions held back for a reason, suspicious clocks … are ``warnings``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import stat as stat_mod
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from booklore_sync.koreader import annotations as ann
from booklore_sync.koreader.books import BookMeta, book_meta, book_type_for, is_paging_type
from booklore_sync.koreader.cfi import CONVERTER_VERSION, CfiConverter, is_epub_xpointer
from booklore_sync.koreader.discovery import (
    Candidate,
    Layout,
    PathMapper,
    SidecarGroup,
    SourceError,
    choose_sidecar,
    collect_groups,
    find_layout,
    order_candidates,
)
from booklore_sync.koreader.epub import EpubError, EpubPackage
from booklore_sync.koreader.fingerprint import partial_md5
from booklore_sync.koreader.luatable import LuaParseError, as_list, parse
from booklore_sync.koreader.statistics import (
    CLOCK_MIN_EPOCH,
    Session,
    StatisticsError,
    StatsBook,
    derive_sessions,
    keep_session,
    session_payload,
)
from booklore_sync.settings_defaults import DEFAULTS

__all__ = ["ScanReport", "SourceError", "scan_source", "QUEUE_NAMES"]

QUEUE_NAMES = ("sessions", "annotations", "ratings", "bookmarks", "progress")
NEW = frozenset({"queued", "updated"})
SCAN_VERSION = 1
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
_CUSTOM = "custom_metadata.lua"
_NAIVE_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)
_BOOK_TOKEN = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_DOC_PATH = re.compile(rb'\["doc_path"\]\s*=\s*"((?:[^"\\\n]|\\.)*)"')


@dataclass
class ScanReport:
    books: int = 0
    queued: dict[str, int] = field(default_factory=lambda: {q: 0 for q in QUEUE_NAMES})
    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    dry_run: bool = False
    data_dir: str | None = None

    def error(self, file: str | os.PathLike[str], message: str) -> None:
        self.errors.append({"file": str(file), "error": message})

    def warn(self, file: str | os.PathLike[str], message: str) -> None:
        self.warnings.append({"file": str(file), "error": message})

    def count(self, queue: str, outcome: str) -> None:
        if outcome in NEW:
            self.queued[queue] += 1

    def to_json(self) -> dict[str, Any]:
        """Spec §6.4's ``scan --json`` shape (+ ``warnings``)."""
        return {"books": self.books, "queued": dict(self.queued),
                "errors": list(self.errors), "warnings": list(self.warnings)}


@dataclass
class _Book:
    """What a processed sidecar contributes to the session mapping."""
    primary: str
    candidates: list[str]
    book_type: str | None
    title: str | None = None
    authors: str | None = None


class _Scan:
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
        self.history_paths: list[str] = []
        self.books: list[_Book] = []
        self.fp_index: dict[str, _Book] = {}
        self.stats_books: dict[int, StatsBook] = {}
        self.sessions: list[Session] = []
        self.stats_last_end: dict[str, int] = {}
        self.digest_cache: dict[str, str | None] = {}
        self.tz = _zone(cfg.get("device.timezone"))
        self.signature = ""
        self.switches = {q: bool(cfg.get(f"sync.{q}", True)) for q in QUEUE_NAMES}
        # one stat per path and scan (the same files are asked about several times)
        self.stats: dict[str, os.stat_result | OSError | ValueError] = {}
        # queue rows waiting for one Store.enqueue_many per queue (see enqueue)
        self.pending_rows: dict[str, list[tuple[Any, ...]]] = {q: [] for q in QUEUE_NAMES}
        self.pending_count = 0
        self.batched = callable(getattr(store, "enqueue_many", None))
        self.listings: dict[str, frozenset[str]] = {}
        self.signature_bytes = b""

    def on(self, queue: str) -> bool:
        return self.switches[queue] if queue in self.switches else \
            bool(self.cfg.get(f"sync.{queue}", True))

    # ------------------------------------------------------------- queueing
    def enqueue(self, queue: str, row: tuple[Any, ...]) -> None:
        """Queue one item: ``row`` holds the arguments of ``store.enqueue_<queue>``.

        Rows wait for a batched ``enqueue_many`` (same outcomes as the single calls in
        the same order).  A row the store could refuse (text SQLite cannot encode)
        goes through the single method right away, after the waiting rows, so that
        its error surfaces in its book as before.
        """
        if not self.batched or not _storable(row):
            self.flush()
            self.report.count(queue, _SINGLE[queue](self.store, *row))
            return
        self.pending_rows[queue].append(row)
        self.pending_count += 1
        if self.pending_count >= 4000:
            self.flush()

    def flush(self) -> None:
        if not self.pending_count:
            return
        for queue, rows in self.pending_rows.items():
            if rows:
                for outcome in self.store.enqueue_many(queue, rows):
                    self.report.count(queue, outcome)
                rows.clear()
        self.pending_count = 0

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
        """``Path.is_file()`` on the scan's one stat of ``path``."""
        st = self.stat(path)
        if isinstance(st, Exception):
            if isinstance(st, ValueError) or st.errno in _IGNORED_ERRNOS:
                return False
            raise st
        return stat_mod.S_ISREG(st.st_mode)

    def exists(self, path: Path | str) -> bool:
        """``Path.exists()`` on the scan's one stat of ``path``."""
        st = self.stat(path)
        if isinstance(st, Exception):
            if isinstance(st, ValueError) or st.errno in _IGNORED_ERRNOS:
                return False
            raise st
        return True

    # ------------------------------------------------------------ settings
    def read_lua_with_backup(self, path: Path) -> Any:
        """A data-dir Lua file with its ``.old`` backup (newest-valid rule)."""
        cands = []
        for p, kind, primary in ((path, "main", None), (Path(str(path) + ".old"), "main.old", path)):
            try:
                cands.append(Candidate(kind, p, p.stat().st_mtime, primary))
            except OSError:
                pass
        if not cands:
            return None
        group = SidecarGroup(key=str(path), candidates=cands)
        chosen = choose_sidecar(group, self.file_times)
        if chosen is None:
            return None
        for f, reason in chosen.errors:
            self.report.error(f, reason)
        return chosen.data

    def read_settings(self) -> None:
        dd = self.layout.data_dir
        settings = self.read_lua_with_backup(dd / "settings.reader.lua") or {}
        dev = settings.get("device_id")
        if isinstance(dev, str) and dev.strip():
            self.device_id = dev.strip()
        colors = settings.get("highlight_custom_colors")
        if isinstance(colors, Mapping):
            self.custom_colors = colors
        kosync = self.read_lua_with_backup(dd / "settings" / "kosync.lua")
        if isinstance(kosync, Mapping):
            ks = kosync.get("settings") if isinstance(kosync.get("settings"), Mapping) else kosync
            host = ks.get("kosync_hostname")
            if isinstance(host, str) and host.strip():
                self.device_name = host.strip()
        hist_path = dd / "history.lua"
        if hist_path.exists():
            try:
                hist = parse(hist_path.read_bytes(), file=str(hist_path))
                for h in as_list(hist):
                    if isinstance(h, Mapping) and isinstance(h.get("file"), str):
                        self.history_paths.append(h["file"])
            except LuaParseError as exc:
                self.report.error(hist_path, f"not a valid KOReader Lua file: {exc.message} "
                                             f"(line {exc.line}, column {exc.column})")
            except OSError as exc:
                self.report.error(hist_path, f"cannot read: {exc}")

    # ---------------------------------------------------------- statistics
    def read_statistics(self) -> None:
        path = self.layout.data_dir / "settings" / "statistics.sqlite3"
        if not path.exists():
            return
        try:
            books, sessions, last_end = derive_sessions(path, self.cfg, self.now)
        except StatisticsError as exc:
            self.report.error(path, str(exc).split(": ", 1)[-1] if str(exc).startswith(str(path))
                              else str(exc))
            return
        self.stats_books = books
        self.sessions = sessions
        for bid, end in last_end.items():
            b = books.get(bid)
            if b is not None and b.md5:
                self.stats_last_end[b.md5] = max(end, self.stats_last_end.get(b.md5, 0))

    # ------------------------------------------------------------ digests
    def file_digest(self, path: Path) -> str | None:
        key = str(path)
        if key in self.digest_cache:
            return self.digest_cache[key]
        digest = None
        try:
            st = self.stat(path)
            if isinstance(st, Exception):
                raise st
            memo = self.store.get_file_memo(key)
            if memo is not None and memo[0] == st.st_size and memo[1] == st.st_mtime_ns:
                digest = memo[2]
            else:
                digest = partial_md5(path)
                self.store.put_file_memo(key, st.st_size, st.st_mtime_ns, digest)
        except OSError:
            digest = None
        self.digest_cache[key] = digest
        return digest

    def file_state(self, path: Path | str | None) -> str:
        if path is None:
            return "none"
        st = self.stat(path)
        if isinstance(st, Exception):
            if isinstance(st, OSError):
                return "missing"
            raise st  # as Path.stat() would
        return f"{st.st_size}:{st.st_mtime_ns}"

    # -------------------------------------------------------------- groups
    def run_groups(self) -> None:
        listings: dict[str, frozenset[str]] = {}
        groups, book_files = collect_groups(self.layout, self.mapper, self.history_paths,
                                            listings)
        self.listings = listings
        path_groups = [g for g in groups if g.hash is None]
        hash_groups = {g.hash: g for g in groups if g.hash is not None}
        claimed: dict[str, SidecarGroup] = {}
        for g in path_groups:
            if g.book_path is not None and self.is_file(g.book_path):
                claimed[_norm(g.book_path)] = g
                d = self.file_digest(g.book_path)
                if d is not None and d in hash_groups:
                    hg = hash_groups.pop(d)
                    g.candidates.extend(hg.candidates)
                    g.sdr_dir = g.sdr_dir or hg.sdr_dir
        ordered = path_groups + list(hash_groups.values())
        total = len(ordered)
        for i, g in enumerate(ordered, 1):
            try:
                self.process_group(g, claimed, book_files)
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
                # last-resort guard: one bad book never stops the scan
                self.report.error(g.candidates[0].path, f"cannot import: {exc!r}")
            if self.on_progress is not None:
                self.on_progress(i, total)
        self.flush()

    def locate_hash_book(self, g: SidecarGroup, doc_path: str | None,
                         claimed: dict[str, SidecarGroup], book_files: list[str]) -> Path | None:
        local = self.mapper.to_local(doc_path)
        if local is not None and self.is_file(local):
            return local
        for name in book_files:
            f = Path(name)
            if _norm(f) in claimed:
                continue
            if self.file_digest(f) == g.hash:
                return f
        return None

    def memo_key(self, path: Path) -> str:
        return "sidecar\x00" + str(path)

    def process_group(self, g: SidecarGroup, claimed: dict[str, SidecarGroup],
                      book_files: list[str]) -> None:
        # ---- cheap path: the sidecar that won last time is unchanged
        first = None
        first_raw = b""
        first_token = None
        for cand in order_candidates(g.candidates, self.file_times):
            try:
                with open(cand.path, "rb", buffering=0) as fh:  # Path.read_bytes(), leaner
                    first_raw = fh.read()
            except OSError:
                break
            if first_raw.strip():
                first = cand
            break
        if first is not None:
            book_path = g.book_path
            if g.hash is not None and book_path is None:
                m = _DOC_PATH.search(first_raw)
                if m:
                    book_path = self.mapper.to_local(m.group(1).decode("utf-8", "replace"))
            token = self.sidecar_token(first_raw, book_path, g)
            first_token = token
            memo = self.store.get_file_memo(self.memo_key(first.path))
            if memo is not None and memo[2].startswith(token + "|"):
                self.report.books += 1
                self.restore_book(memo[2][len(token) + 1:])
                return
        first_path = first.path if first is not None else None

        def read(path: Path) -> bytes:
            # the first candidate was read above: parse those very bytes
            return first_raw if path is first_path else path.read_bytes()

        chosen = choose_sidecar(g, self.file_times, read)
        if chosen is None:
            return
        for f, reason in chosen.errors:
            self.report.error(f, reason)
        if chosen.data is None or chosen.candidate is None:
            return
        data = chosen.data
        book_path = g.book_path
        doc_path = data.get("doc_path") if isinstance(data.get("doc_path"), str) else None
        if book_path is None or not self.is_file(book_path):
            mapped = self.mapper.to_local(doc_path)
            if g.hash is not None:
                book_path = self.locate_hash_book(g, doc_path, claimed, book_files)
            elif mapped is not None and self.is_file(mapped):
                book_path = mapped
        errors_before = len(self.report.errors) + len(self.report.warnings)
        book = self.import_book(g, chosen.candidate, data, book_path, doc_path)
        if book is None:
            return
        self.report.books += 1
        clean = len(self.report.errors) + len(self.report.warnings) == errors_before
        if clean and chosen.candidate is first:
            try:
                st = chosen.candidate.path.stat()
                token = first_token or self.sidecar_token(
                    chosen.raw, book_path if g.hash is not None else g.book_path, g)
                self.store.put_file_memo(self.memo_key(chosen.candidate.path), st.st_size,
                                         st.st_mtime_ns, token + "|" + _book_token(book))
            except OSError:
                pass

    def sidecar_token(self, raw: bytes, book_path: Path | None, g: SidecarGroup) -> str:
        h = hashlib.md5(raw)
        h.update(self.signature_bytes)
        h.update(self.file_state(book_path).encode())
        custom = self.custom_path(g)
        if custom is not None:
            h.update(self.file_state(custom).encode())
        return h.hexdigest()

    def custom_path(self, g: SidecarGroup) -> str | None:
        """``<sdr>/custom_metadata.lua`` as a string; when the ``.sdr`` listing read by
        discovery has no such name, the scan's stat of it is that of a missing file."""
        if g.sdr_dir is None:
            return None
        sdr = str(g.sdr_dir)
        path = sdr + os.sep + _CUSTOM  # str(g.sdr_dir / _CUSTOM)
        if path not in self.stats:
            names = self.listings.get(sdr)
            if names is not None and _CUSTOM not in names:
                self.stats[path] = FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT),
                                                     path)
        return path

    def restore_book(self, token: str) -> None:
        try:
            info = json.loads(token)
            book = _Book(info["p"], list(info["c"]), info.get("t"), info.get("n"), info.get("a"))
        except (ValueError, KeyError, TypeError):
            return
        self.register(book)

    def register(self, book: _Book) -> None:
        self.books.append(book)
        for h in book.candidates:
            self.fp_index.setdefault(h, book)

    # ---------------------------------------------------------------- book
    def import_book(self, g: SidecarGroup, cand: Candidate, data: dict[str, Any],
                    book_path: Path | None, doc_path: str | None) -> _Book | None:
        report = self.report
        sidecar_path = cand.path
        file_exists = book_path is not None and self.is_file(book_path)
        file_digest = self.file_digest(book_path) if file_exists and book_path else None
        stored = data.get("partial_md5_checksum")
        stored = stored.lower() if isinstance(stored, str) and _HEX32.match(stored) else None
        candidates: list[str] = []
        for h in (stored, file_digest, g.hash):
            if h and h not in candidates:
                candidates.append(h)
        if not candidates:
            report.error(sidecar_path, "no fingerprint: the sidecar has no partial_md5_checksum "
                                       "and the book file is not reachable")
            return None
        primary = candidates[0]
        name = (book_path.name if book_path is not None
                else (doc_path.rsplit("/", 1)[-1] if doc_path else None))
        if name is None and g.sdr_dir is not None:
            ext = cand.path.name.split(".")[1] if cand.path.name.startswith("metadata.") else ""
            name = g.sdr_dir.name[:-4] + (f".{ext}" if ext and ext != "_" else "")
        book_type = book_type_for(name) if name else None
        if not file_exists:
            report.warn(sidecar_path, f"book file not found ({doc_path or book_path}); its "
                                      "highlights and bookmarks are queued without a CFI")
        # custom metadata
        custom = None
        if g.sdr_dir is not None:
            custom_path = self.custom_path(g)
            if custom_path is not None and self.exists(custom_path):
                cm = Path(custom_path)
                try:
                    custom = parse(cm.read_bytes(), file=str(cm))
                    if not isinstance(custom, dict):
                        custom = None
                except LuaParseError as exc:
                    report.error(cm, f"not a valid KOReader Lua file: {exc.message} "
                                     f"(line {exc.line}, column {exc.column})")
                except OSError as exc:
                    report.error(cm, f"cannot read: {exc}")
        # the EPUB, when metadata is missing or a CFI is needed
        pkg: EpubPackage | None = None
        is_epub = bool(name) and str(name).lower().endswith(".epub")
        items, problems = ann.extract_items(data)
        for p in problems:
            report.warn(sidecar_path, p)
        needs_cfi = any(not it.paged for it in items)
        doc_props = data.get("doc_props") if isinstance(data.get("doc_props"), Mapping) else {}
        needs_opf = not doc_props.get("identifiers") or not doc_props.get("title")
        if file_exists and is_epub and (needs_cfi or needs_opf):
            try:
                pkg = EpubPackage.open(book_path)  # type: ignore[arg-type]
            except EpubError as exc:
                report.warn(book_path, f"cannot read the EPUB: {exc}")  # type: ignore[arg-type]
        try:
            meta: BookMeta = book_meta(data, custom, name, pkg)
            file_path = str(book_path) if book_path is not None else (
                str(self.mapper.to_local(doc_path)) if self.mapper.to_local(doc_path) else doc_path)
            self.store.upsert_book(
                primary, file_path=file_path, title=meta.title, author=meta.author,
                isbn10=meta.isbn10, isbn13=meta.isbn13, book_type=book_type,
                extra_hashes=tuple(candidates[1:]))
            book = _Book(primary, candidates, book_type, meta.title,
                         "\n".join(meta.authors) if meta.authors else None)
            self.register(book)
            self.queue_items(items, primary, book_type, data, pkg, book_path, file_exists,
                             sidecar_path, name)
            self.queue_rating(data, primary)
            self.queue_progress(data, primary, candidates, cand)
        finally:
            if pkg is not None:
                pkg.close()
        return book

    # --------------------------------------------------------------- items
    def queue_items(self, items: list[ann.Item], fp: str, book_type: str | None,
                    data: Mapping[str, Any], pkg: EpubPackage | None, book_path: Path | None,
                    file_exists: bool, sidecar_path: Path, name: str | None) -> None:
        report = self.report
        dom = data.get("cre_dom_version")
        dom_version = int(dom) if isinstance(dom, (int, float)) and not isinstance(dom, bool) \
            else None
        conv: CfiConverter | None = None
        if pkg is not None:
            conv = CfiConverter(pkg, dom_version)
        paging_book = is_paging_type(name)
        for it in items:
            queue = "bookmarks" if it.kind == "bookmark" else "annotations"
            if not self.on(queue):
                continue
            self.check_clock(it.datetime, sidecar_path)
            paged = it.paged or (paging_book and not isinstance(it.pos0 or it.page, str))
            cfi = None
            reason = None
            if not paged:
                if conv is not None:
                    if it.kind == "bookmark":
                        res = conv.point(it.page) if isinstance(it.page, str) else None
                    else:
                        res = conv.range(it.pos0, it.pos1, it.text)
                    if res is None:
                        reason = "the bookmark has no position"
                    else:
                        cfi, reason = res.cfi, res.reason
                elif not file_exists:
                    reason = f"book file not found ({book_path or 'unknown path'}): no CFI yet"
                elif not (name or "").lower().endswith(".epub"):
                    reason = (f"no EPUB CFI for a {book_type_for(name)} book in a reflowable "
                              f"format ({name})")
                elif not is_epub_xpointer(it.pos0 if it.kind != "bookmark" else it.page):
                    reason = "not an EPUB position"
                else:
                    reason = "the EPUB could not be read"
                if cfi is None:
                    reason = reason or "not convertible"
                    report.warn(sidecar_path, f"{it.kind} of {it.datetime}: no CFI — {reason}")
            position = ann.position_key(it)
            if it.kind == "bookmark":
                payload: dict[str, Any] = {
                    "paged": paged, "cfi": cfi, "title": ann.bookmark_title(it),
                    "page": it.page_number if paged else None, "chapter": it.chapter,
                    "text": it.text, "datetime": it.datetime,
                }
                if not paged:
                    payload["xpointer"] = it.page if isinstance(it.page, str) else None
                    payload["cfi_converter"] = CONVERTER_VERSION
                self.enqueue("bookmarks", (fp, it.datetime, payload,
                                           None if paged else reason))
            else:
                payload = {
                    "kind": it.kind, "paged": paged, "book_type": book_type, "cfi": cfi,
                    "text": it.text, "note": ann.plain_note(it.note, it.note_format),
                    "chapter": it.chapter,
                    "color": ann.color_hex(it.color, self.custom_colors),
                    "style": ann.style_for(it.drawer),
                    "page": it.page_number if paged else None, "datetime": it.datetime,
                }
                if not paged:
                    payload["pos0"] = it.pos0 if isinstance(it.pos0, str) else None
                    payload["pos1"] = it.pos1 if isinstance(it.pos1, str) else None
                    payload["cfi_converter"] = CONVERTER_VERSION
                self.enqueue("annotations", (fp, it.datetime, it.kind, position, payload,
                                             None if paged else reason))

    def check_clock(self, dt: str, file: Path) -> None:
        try:
            parsed = datetime.fromisoformat(dt.strip()[:19])
        except (ValueError, AttributeError, TypeError):
            return
        if parsed.tzinfo is None:
            # a zone moves local time by less than a day: well inside the window, the
            # exact epoch cannot be out of it
            naive = (parsed - _NAIVE_EPOCH) // _SECOND
            if CLOCK_MIN_EPOCH + 86400 <= naive <= self.now:
                return
        epoch = _local_epoch(dt, self.tz)
        if epoch is None:
            return
        if epoch < CLOCK_MIN_EPOCH or epoch > self.now + 86400:
            self.report.warn(file, f"suspicious device clock: datetime {dt!r} (queued as is)")

    # ------------------------------------------------------ rating/progress
    def queue_rating(self, data: Mapping[str, Any], fp: str) -> None:
        if not self.on("ratings"):
            return
        summary = data.get("summary")
        if not isinstance(summary, Mapping):
            return
        r = summary.get("rating")
        if not isinstance(r, (int, float)) or isinstance(r, bool) or not math.isfinite(r):
            return
        stars = min(5, max(1, math.floor(r)))
        self.enqueue("ratings", (fp, stars * 2))

    def queue_progress(self, data: Mapping[str, Any], fp: str, candidates: list[str],
                       cand: Candidate) -> None:
        if not self.on("progress"):
            return
        pf = data.get("percent_finished")
        if not isinstance(pf, (int, float)) or isinstance(pf, bool):
            pf = data.get("last_percent")
        if not isinstance(pf, (int, float)) or isinstance(pf, bool) or not math.isfinite(pf):
            return
        xp = data.get("last_xpointer")
        lp = data.get("last_page")
        if isinstance(xp, str) and xp:
            progress = xp
        elif isinstance(lp, (int, float)) and not isinstance(lp, bool) and math.isfinite(lp):
            progress = str(int(lp))
        else:
            return
        pct = math.floor(float(pf) * 10000) / 10000
        if pct <= 0:
            return
        pct = min(pct, 1.0)
        times = [self.stats_last_end[h] for h in candidates if h in self.stats_last_end]
        if self.file_times:
            times.append(int(cand.mtime))
        payload = {"device": self.device_name, "device_id": self.device_id,
                   "position_time": max(times) if times else None}
        self.enqueue("progress", (fp, progress, pct, payload))

    # ------------------------------------------------------------- sessions
    def queue_sessions(self) -> None:
        if not self.on("sessions") or not self.sessions:
            return
        path = self.layout.data_dir / "settings" / "statistics.sqlite3"
        dp = int(self.cfg.get("sessions.progress_decimal_places", 2))
        dp = max(0, min(5, dp))
        by_title: dict[tuple[str, str], _Book] = {}
        for b in self.books:
            if b.title:
                by_title.setdefault((b.title, b.authors or ""), b)
        ranges: dict[str, list[tuple[int, int]]] = {}
        reported: set[int] = set()
        for s in self.sessions:
            sb = self.stats_books.get(s.id_book)
            if sb is None:
                if s.id_book not in reported:
                    reported.add(s.id_book)
                    self.report.warn(path, f"page statistics of unknown book id {s.id_book} skipped")
                continue
            if sb.md5:
                book = self.fp_index.get(sb.md5)
                fp = book.primary if book else sb.md5
            else:
                authors = "" if sb.authors in ("N/A",) else sb.authors
                book = by_title.get((sb.title, authors)) or by_title.get((sb.title, sb.authors))
                if book is None:
                    if s.id_book not in reported:
                        reported.add(s.id_book)
                        self.report.warn(path, f"book {sb.title!r} has no md5 and matches no "
                                               "sidecar: its sessions are skipped")
                    continue
                fp = book.primary
            if not s.final:
                continue
            why = keep_session(s, self.cfg, self.now)
            if why is not None:
                if why.startswith("clock"):
                    self.report.warn(path, f"session of {sb.title!r} at {s.start} not queued: {why}")
                continue
            existing = ranges.get(fp)
            if existing is None:
                existing = ranges[fp] = _session_ranges(self.store, fp)
            if any(start != s.start and s.start < end and start < s.end
                   for start, end in existing):
                self.report.warn(path, f"session of {sb.title!r} starting {s.start} overlaps an "
                                       "existing session: not queued")
                continue
            book_type = book.book_type if book else None
            # (ranges of a book are read before any of its sessions is queued, so
            # queueing them in a batch below changes nothing)
            self.enqueue("sessions", (fp, s.start, session_payload(s, book_type, dp)))
        self.flush()


_SINGLE: dict[str, Callable[..., str]] = {
    "annotations": lambda store, *a: store.enqueue_annotation(*a),
    "bookmarks": lambda store, *a: store.enqueue_bookmark(*a),
    "ratings": lambda store, *a: store.enqueue_rating(*a),
    "progress": lambda store, *a: store.enqueue_progress(*a),
    "sessions": lambda store, *a: store.enqueue_session(*a),
}
# the errors Path.is_file() / Path.exists() read as "no"
_IGNORED_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP})


def _storable(row: tuple[Any, ...]) -> bool:
    """Every text of a queue row (payload values included) can be stored as UTF-8."""
    for v in row:
        t = type(v)
        if t is str:
            if not v.isascii() and not _utf8(v):
                return False
        elif t is dict:
            for x in v.values():
                t = type(x)
                if t is str:
                    if not x.isascii() and not _utf8(x):
                        return False
                elif t is dict or t is list or t is tuple:
                    return False  # not in our payloads: let the single method decide
        elif t is not int and t is not float and v is not None and t is not bool:
            return False
    return True


def _utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _book_token(book: _Book) -> str:
    return _BOOK_TOKEN.encode({"p": book.primary, "c": book.candidates, "t": book.book_type,
                               "n": book.title, "a": book.authors})


def _norm(p: Path) -> str:
    s = str(p)
    return s if s.isascii() else unicodedata.normalize("NFC", s)  # ASCII is NFC already


def _zone(name: Any) -> Any:
    if not name:
        return None
    try:
        from zoneinfo import ZoneInfo
        return ZoneInfo(str(name))
    except Exception:  # noqa: BLE001 - an unknown zone falls back to local time
        return None


def _local_epoch(dt: str, tz: Any) -> int | None:
    try:
        parsed = datetime.fromisoformat(dt.strip()[:19])
    except (ValueError, AttributeError, TypeError):
        return None
    try:
        if tz is None:
            return int(parsed.timestamp())
        return int(parsed.replace(tzinfo=tz).timestamp())
    except (OverflowError, OSError, ValueError):
        return None


def _iso_epoch(s: Any) -> int | None:
    if not isinstance(s, str):
        return None
    try:
        return int(datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=__import__("datetime").timezone.utc).timestamp())
    except ValueError:
        return None


def _session_ranges(store: Any, fp: str) -> list[tuple[int, int]]:
    """(start, end) of the sessions already queued or synced for ``fp`` (§3.5 step 7)."""
    return store.session_ranges(fp)


def _settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    cfg = dict(DEFAULTS)
    if settings:
        cfg.update({k: v for k, v in settings.items() if v is not None or k == "device.timezone"})
    return cfg


def _signature(store: Any, cfg: Mapping[str, Any]) -> str:
    keys = sorted(k for k in cfg if k.startswith(("sync.", "device.", "scan.", "annotations.")))
    # what scans skipped as synced or discarded can come back only when that history is
    # cleared: the store's history generation says when
    history = store.history_generation()
    blob = json.dumps([SCAN_VERSION, CONVERTER_VERSION, [(k, cfg[k]) for k in keys], history],
                      sort_keys=True, default=str)
    return hashlib.md5(blob.encode()).hexdigest()


def scan_source(store: Any, source: Path | str, settings: Mapping[str, Any] | None = None, *,
                dry_run: bool = False, now: int | float | None = None,
                on_progress: Callable[[int, int], None] | None = None) -> ScanReport:
    """Scan SOURCE and queue what is new.  Raises :class:`SourceError` when SOURCE
    is missing or holds no KOReader data directory."""
    layout = find_layout(source)
    cfg = _settings(settings)
    report = ScanReport(dry_run=dry_run, data_dir=str(layout.data_dir))
    scan = _Scan(store, layout, cfg, int(now if now is not None else time.time()), report,
                 on_progress)
    scan.read_settings()
    scan.read_statistics()
    with store.transaction(rollback=dry_run):
        scan.signature = _signature(store, cfg)
        scan.signature_bytes = scan.signature.encode()
        scan.run_groups()
        scan.queue_sessions()
    return report

"""From sidecar groups to books and their queue rows (koreader-data §4, §6;
sync-and-cache §5): choose the sidecar, find the book file, fingerprint it, cache
the book, then hand its items to ``rows``.

An unchanged sidecar whose book is unchanged is recognised by a memo in the store
and skipped cheaply (the rescan).  One book's failure never stops the scan.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import sqlite3
import unicodedata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from booklore_sync.koreader import annotations as ann
from booklore_sync.koreader import parallel
from booklore_sync.koreader.books import BookMeta, book_meta, book_type_for
from booklore_sync.koreader.candidates import (
    Candidate,
    SidecarGroup,
    choose_sidecar,
    order_candidates,
)
from booklore_sync.koreader.context import ScanContext, ScannedBook
from booklore_sync.koreader.discovery import collect_groups
from booklore_sync.koreader.epub import EpubError, EpubPackage
from booklore_sync.koreader.luatable import LuaParseError, parse
from booklore_sync.koreader.paths import is_utf8, to_store
from booklore_sync.koreader.report import display_text
from booklore_sync.koreader.rows import queue_items, queue_progress, queue_rating
from booklore_sync.koreader.safeio import UnreadableFile, read_regular
from booklore_sync.store.books import BookUpsert

__all__ = ["run_groups", "process_group", "process_guarded", "import_book"]

CHUNK = 500  # books per batch of store reads and writes
_HEX32 = re.compile(r"^[0-9a-fA-F]{32}$")
_CUSTOM = "custom_metadata.lua"
_BOOK_TOKEN = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))
_DOC_PATH = re.compile(rb'\["doc_path"\]\s*=\s*"((?:[^"\\\n]|\\.)*)"')


def _norm(p: Path) -> str:
    s = str(p)
    return s if s.isascii() else unicodedata.normalize("NFC", s)  # ASCII is NFC already


def run_groups(ctx: ScanContext) -> None:
    listings: dict[str, frozenset[str]] = {}
    groups, book_files = collect_groups(ctx.layout, ctx.mapper, ctx.history_paths,
                                        listings, warn=ctx.report.warn)
    ctx.listings = listings
    path_groups = [g for g in groups if g.hash is None]
    hash_groups = {g.hash: g for g in groups if g.hash is not None}
    claimed: dict[str, SidecarGroup] = {}
    # hash-mode sidecars look for their book among the book files of the others
    for start in range(0, len(path_groups), CHUNK) if hash_groups else ():
        chunk = path_groups[start:start + CHUNK]
        ctx.prefetch_memos(to_store(str(g.book_path)) for g in chunk if g.book_path is not None)
        for g in chunk:
            if g.book_path is not None and ctx.is_file(g.book_path):
                claimed[_norm(g.book_path)] = g
                d = ctx.file_digest(g.book_path)
                if d is not None and d in hash_groups:
                    hg = hash_groups.pop(d)
                    g.candidates.extend(hg.candidates)
                    g.sdr_dir = g.sdr_dir or hg.sdr_dir
    ctx.memos.clear()
    ordered = path_groups + list(hash_groups.values())
    total = len(ordered)
    done = 0
    workers = parallel.workers_for(len(path_groups)) if ctx.sink.normalised else 0
    if workers:
        # the books beside their sidecars in worker processes (the store stays here);
        # the hash-mode ones, which look at other books' files, below
        def local(g: SidecarGroup) -> None:
            process_guarded(ctx, g, claimed, book_files)
        parallel.run_pooled(ctx, path_groups, total, workers, process_guarded, local,
                            memo_keys, quick_restore)
        done = len(path_groups)
    for i in range(done, total):
        if (i - done) % CHUNK == 0:  # the next chunk: its file memos in one query
            ctx.collect_young()
            ctx.flush_store()
            ctx.memos.clear()
            ctx.prefetch_memos(memo_keys(ctx, ordered[i:i + CHUNK]))
        process_guarded(ctx, ordered[i], claimed, book_files)
        if ctx.on_progress is not None:
            ctx.on_progress(i + 1, total)
    ctx.flush()


def memo_keys(ctx: ScanContext, groups: list[SidecarGroup]) -> list[str]:
    """The file memos the groups will ask for: their sidecars' and their books'."""
    keys = [memo_key(ctx, c.path) for g in groups for c in g.candidates]
    keys += [to_store(str(g.book_path)) for g in groups if g.book_path is not None]
    return keys


def quick_restore(ctx: ScanContext, g: SidecarGroup,
                  memos: Mapping[str, tuple[int, int, str] | None]) -> Callable[[], None] | None:
    """For the pool: what :func:`process_group` does for a book whose sidecar is
    unchanged by its stat (to do in its turn), or None when the book needs work."""
    lead = order_candidates(g.candidates, ctx.file_times)[0]
    same = unchanged_by_stat(ctx, g, lead, memos.get(memo_key(ctx, lead.path)))
    if same is None:
        return None

    def restore() -> None:
        ctx.report.books += 1
        restore_book(ctx, same)
    return restore


def process_guarded(ctx: ScanContext, g: SidecarGroup, claimed: dict[str, SidecarGroup],
                    book_files: list[str]) -> None:
    """:func:`process_group`; a failure is this book's error, never the scan's end."""
    try:
        process_group(ctx, g, claimed, book_files)
    except sqlite3.OperationalError:
        raise  # the store itself failed (disk full, locked): not this book's fault
    except RecursionError:
        ctx.report.error(g.candidates[0].path, "cannot import: data nested too deeply")
    except Exception as exc:  # noqa: BLE001 - last-resort guard: one bad book never stops the scan
        ctx.report.error(g.candidates[0].path,
                         f"cannot import: {type(exc).__name__}: {exc}")


def locate_hash_book(ctx: ScanContext, g: SidecarGroup, doc_path: str | None,
                     claimed: dict[str, SidecarGroup], book_files: list[str]) -> Path | None:
    local = ctx.mapper.to_local(doc_path)
    if local is not None and ctx.is_file(local):
        return local
    for name in book_files:
        f = Path(name)
        if _norm(f) in claimed:
            continue
        if ctx.file_digest(f) == g.hash:
            return f
    return None


def memo_key(ctx: ScanContext, path: Path) -> str:
    return "sidecar\x00" + to_store(path)


def process_group(ctx: ScanContext, g: SidecarGroup, claimed: dict[str, SidecarGroup],
                  book_files: list[str]) -> None:
    # ---- cheap paths: the sidecar that won last time is unchanged
    lead = order_candidates(g.candidates, ctx.file_times)[0]
    memo = ctx.get_memo(memo_key(ctx, lead.path))
    same = unchanged_by_stat(ctx, g, lead, memo)
    if same is not None:  # not even read: its stat says it is the file of last time
        ctx.report.books += 1
        restore_book(ctx, same)
        return
    first = None
    first_raw = b""
    first_token = None
    try:
        first_raw = read_regular(lead.path)
        if first_raw.strip():
            first = lead
    except UnreadableFile:
        pass  # choose_sidecar reports it
    if first is not None:
        book_path = g.book_path
        if g.hash is not None and book_path is None:
            m = _DOC_PATH.search(first_raw)
            if m:
                book_path = ctx.mapper.to_local(m.group(1).decode("utf-8", "surrogateescape"))
        token = sidecar_token(ctx, first_raw, book_path, g)
        first_token = token
        if memo is not None:
            parts = memo_parts(memo[2])
            if parts is not None and parts[0] == token:
                ctx.report.books += 1
                restore_book(ctx, parts[2])
                by_stat = stat_token(ctx, g, lead)
                st = ctx.stat(lead.path)
                if by_stat is not None and by_stat != parts[1] and not isinstance(st, Exception):
                    # read because it had just changed (or by an older scan): next time
                    # its stat will do
                    ctx.put_memo(memo_key(ctx, lead.path), st.st_size, st.st_mtime_ns,
                                 f"{token}|{by_stat}|{parts[2]}")
                return
    first_path = first.path if first is not None else None

    def read(path: Path) -> bytes:
        # the first candidate was read above: parse those very bytes
        return first_raw if path is first_path else read_regular(path)

    chosen = choose_sidecar(g, ctx.file_times, read)
    if chosen is None:
        for cand in g.candidates:
            ctx.report.warn(cand.path, "an empty sidecar: skipped (KOReader ignores it)")
        return
    for f, reason in chosen.errors:
        ctx.report.error(f, reason)
    if chosen.data is None or chosen.candidate is None:
        for f, reason in chosen.skipped:
            ctx.report.warn(f, reason)
        return
    data = chosen.data
    for problem in ann.type_problems(data):
        ctx.report.warn(chosen.candidate.path, problem)
    damaged = [k for k in data if isinstance(k, str) and not is_utf8(k)]
    if damaged:
        ctx.report.warn(chosen.candidate.path, "keys with invalid UTF-8 ignored (a damaged "
                        f"file?): {', '.join(display_text(repr(k)) for k in damaged[:5])}")
    book_path = g.book_path
    doc_path = data.get("doc_path") if isinstance(data.get("doc_path"), str) else None
    if book_path is None or not ctx.is_file(book_path):
        mapped = ctx.mapper.to_local(doc_path)
        if g.hash is not None:
            book_path = locate_hash_book(ctx, g, doc_path, claimed, book_files)
        elif mapped is not None and ctx.is_file(mapped):
            book_path = mapped
    errors_before = len(ctx.report.errors) + len(ctx.report.warnings)
    book = import_book(ctx, g, chosen.candidate, data, book_path, doc_path)
    if book is None:
        return
    ctx.report.books += 1
    clean = len(ctx.report.errors) + len(ctx.report.warnings) == errors_before
    if clean and chosen.candidate is first:
        st = ctx.stat(chosen.candidate.path)
        if not isinstance(st, Exception):
            token = first_token or sidecar_token(
                ctx, chosen.raw, book_path if g.hash is not None else g.book_path, g)
            by_stat = stat_token(ctx, g, chosen.candidate) or "-"
            ctx.put_memo(memo_key(ctx, chosen.candidate.path), st.st_size,
                         st.st_mtime_ns, f"{token}|{by_stat}|{_book_token(book)}")


def stat_token(ctx: ScanContext, g: SidecarGroup, cand: Candidate) -> str | None:
    """What :func:`sidecar_token` says, from the sidecar's stat signature instead of its
    bytes (None: no signature, the sidecar is read).  Books found through the
    sidecar's own ``doc_path`` (hash mode) are always read."""
    if cand.stat_sig is None or g.hash is not None:
        return None
    h = hashlib.md5(cand.stat_sig.encode())
    h.update(ctx.signature_bytes)
    h.update(ctx.file_state(g.book_path).encode())
    custom = custom_path(ctx, g)
    if custom is not None:
        h.update(ctx.file_state(custom).encode())
    return h.hexdigest()


def memo_parts(digest: str) -> tuple[str, str | None, str] | None:
    """A sidecar memo ``<content token>|<stat token or ->|<book JSON>`` in its parts
    (memos of older scans have no stat token)."""
    if len(digest) < 34 or digest[32] != "|":
        return None
    rest = digest[33:]
    if rest[:2] == "-|":
        return digest[:32], None, rest[2:]
    if len(rest) > 33 and rest[32] == "|" and _HEX32.match(rest[:32]):
        return digest[:32], rest[:32], rest[33:]
    return digest[:32], None, rest


def unchanged_by_stat(ctx: ScanContext, g: SidecarGroup, lead: Candidate,
                      memo: tuple[int, int, str] | None) -> str | None:
    """The book JSON of ``memo`` when the sidecar's stat token matches the one recorded
    with it (the sidecar then need not be read), else None."""
    if memo is None or lead.stat_sig is None:
        return None
    parts = memo_parts(memo[2])
    if parts is None or parts[1] is None or parts[1] != stat_token(ctx, g, lead):
        return None
    return parts[2]


def sidecar_token(ctx: ScanContext, raw: bytes, book_path: Path | None, g: SidecarGroup) -> str:
    h = hashlib.md5(raw)
    h.update(ctx.signature_bytes)
    h.update(ctx.file_state(book_path).encode())
    custom = custom_path(ctx, g)
    if custom is not None:
        h.update(ctx.file_state(custom).encode())
    return h.hexdigest()


def custom_path(ctx: ScanContext, g: SidecarGroup) -> str | None:
    """``<sdr>/custom_metadata.lua`` as a string; when the ``.sdr`` listing read by
    discovery has no such name, the scan's stat of it is that of a missing file."""
    if g.sdr_dir is None:
        return None
    sdr = str(g.sdr_dir)
    path = sdr + os.sep + _CUSTOM  # str(g.sdr_dir / _CUSTOM)
    if path not in ctx.stats:
        names = ctx.listings.get(sdr)
        if names is not None and _CUSTOM not in names:
            ctx.stats[path] = FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT),
                                                 path)
    return path


def restore_book(ctx: ScanContext, token: str) -> None:
    try:
        info = json.loads(token)
        book = ScannedBook(info["p"], list(info["c"]), info.get("t"), info.get("n"), info.get("a"))
    except (ValueError, KeyError, TypeError):
        return
    ctx.register(book)


def import_book(ctx: ScanContext, g: SidecarGroup, cand: Candidate, data: dict[str, Any],
                book_path: Path | None, doc_path: str | None) -> ScannedBook | None:
    report = ctx.report
    sidecar_path = cand.path
    file_exists = book_path is not None and ctx.is_file(book_path)
    file_digest = ctx.file_digest(book_path) if file_exists and book_path else None
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
        cpath = custom_path(ctx, g)
        if cpath is not None and (ctx.exists(cpath) or (
                _CUSTOM in ctx.listings.get(str(g.sdr_dir), (_CUSTOM,))
                and os.path.lexists(cpath))):  # a dangling link is reported
            cm = Path(cpath)
            try:
                custom = parse(read_regular(cm), file=str(cm))
                if not isinstance(custom, dict):
                    custom = None
            except LuaParseError as exc:
                report.error(cm, f"not a valid KOReader Lua file: {exc.message} "
                                 f"(line {exc.line}, column {exc.column})")
            except UnreadableFile as exc:
                report.error(cm, str(exc))
    # the EPUB, when metadata is missing or a CFI is needed
    pkg: EpubPackage | None = None
    is_epub = bool(name) and str(name).lower().endswith(".epub")
    items, problems = ann.extract_items(data)
    for p in problems:
        report.warn(sidecar_path, p)
    needs_cfi = any(not it.paged for it in items)
    props = data.get("doc_props")
    doc_props: Mapping[str, Any] = props if isinstance(props, Mapping) else {}
    needs_opf = not doc_props.get("identifiers") or not doc_props.get("title")
    if file_exists and is_epub and (needs_cfi or needs_opf):
        try:
            pkg = EpubPackage.open(book_path)  # type: ignore[arg-type]
        except EpubError as exc:
            report.warn(book_path, f"cannot read the EPUB: {exc}")  # type: ignore[arg-type]
    try:
        meta: BookMeta = book_meta(data, custom, name, pkg)
        if book_path is not None:
            file_path: str | None = str(book_path)
        else:
            local = ctx.mapper.to_local(doc_path)
            file_path = str(local) if local is not None else doc_path
        title = display_text(meta.title) if meta.title else meta.title
        author = display_text(meta.author) if meta.author else meta.author
        ctx.add_book(BookUpsert(
            primary, to_store(file_path) if file_path else file_path, title, author,
            meta.isbn10, meta.isbn13, book_type, tuple(candidates[1:])))
        book = ScannedBook(primary, candidates, book_type, title,
                     "\n".join(meta.authors) if meta.authors else None)
        ctx.register(book)
        queue_items(ctx, items, primary, book_type, data, pkg, book_path, file_exists,
                    sidecar_path, name)
        queue_rating(ctx, data, primary)
        queue_progress(ctx, data, primary, candidates, cand)
    finally:
        if pkg is not None:
            pkg.close()
    return book


def _book_token(book: ScannedBook) -> str:
    return _BOOK_TOKEN.encode({"p": book.primary, "c": book.candidates, "t": book.book_type,
                               "n": book.title, "a": book.authors})

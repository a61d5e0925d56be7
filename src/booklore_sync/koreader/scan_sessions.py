"""Reading sessions from the statistics database into the sessions queue
(koreader-data §3.5 steps 6–8; sync-and-cache §5)."""

from __future__ import annotations

import os

from booklore_sync.koreader.context import ScanContext, ScannedBook
from booklore_sync.koreader.statistics import (
    StatisticsError,
    derive_sessions,
    keep_session,
    session_payload,
)

__all__ = ["read_statistics", "queue_sessions"]


def read_statistics(ctx: ScanContext) -> None:
    path = ctx.layout.data_dir / "settings" / "statistics.sqlite3"
    if not os.path.lexists(path):
        return
    problems: list[tuple[str, str]] = []
    try:
        books, sessions, last_end = derive_sessions(path, ctx.cfg, ctx.now, problems=problems)
    except StatisticsError as exc:
        text = str(exc)
        for prefix in (f"{path}: ", f"{path}-wal: ", f"{path}-shm: ", f"{path}-journal: "):
            if text.startswith(prefix):
                text = text[len(prefix):]
                break
        ctx.report.error(path, text)
        return
    for level, message in problems:
        (ctx.report.error if level == "error" else ctx.report.warn)(path, message)
    ctx.stats_books = books
    ctx.sessions = sessions
    for bid, end in last_end.items():
        b = books.get(bid)
        if b is not None and b.md5:
            ctx.stats_last_end[b.md5] = max(end, ctx.stats_last_end.get(b.md5, 0))


def queue_sessions(ctx: ScanContext) -> None:
    if not ctx.on("sessions") or not ctx.sessions:
        return
    path = ctx.layout.data_dir / "settings" / "statistics.sqlite3"
    dp = int(ctx.cfg.get("sessions.progress_decimal_places", 2))
    dp = max(0, min(5, dp))
    by_title: dict[tuple[str, str], ScannedBook] = {}
    for b in ctx.books:
        if b.title:
            by_title.setdefault((b.title, b.authors or ""), b)
    ranges: dict[str, list[tuple[int, int]]] = {}
    reported: set[int] = set()
    for s in ctx.sessions:
        sb = ctx.stats_books.get(s.id_book)
        if sb is None:
            if s.id_book not in reported:
                reported.add(s.id_book)
                ctx.report.warn(path, f"page statistics of unknown book id {s.id_book} skipped")
            continue
        if sb.md5:
            book = ctx.fp_index.get(sb.md5)
            fp = book.primary if book else sb.md5
        else:
            authors = "" if sb.authors in ("N/A",) else sb.authors
            book = by_title.get((sb.title, authors)) or by_title.get((sb.title, sb.authors))
            if book is None:
                if s.id_book not in reported:
                    reported.add(s.id_book)
                    ctx.report.warn(path, f"book {sb.title!r} has no md5 and matches no "
                                           "sidecar: its sessions are skipped")
                continue
            fp = book.primary
        if not s.final:
            continue
        why = keep_session(s, ctx.cfg, ctx.now)
        if why is not None:
            if why.startswith("clock"):
                ctx.report.warn(path, f"session of {sb.title!r} at {s.start} not queued: {why}")
            continue
        existing = ranges.get(fp)
        if existing is None:
            existing = ranges[fp] = ctx.store.session_ranges(fp)
        if any(start != s.start and s.start < end and start < s.end
               for start, end in existing):
            ctx.report.warn(path, f"session of {sb.title!r} starting {s.start} overlaps an "
                                   "existing session: not queued")
            continue
        book_type = book.book_type if book else None
        # (ranges of a book are read before any of its sessions is queued, so
        # queueing them in a batch below changes nothing)
        ctx.enqueue("sessions", (fp, s.start, session_payload(s, book_type, dp)))
    ctx.flush()

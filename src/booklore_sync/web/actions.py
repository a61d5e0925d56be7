"""The one seam between the web page and the library (spec §10.5).

Every action the page offers is answered here by calling the same functions
as the command line and the terminal menu (``actions.sync``, ``actions.match``,
``actions.clear``, ``labels``, ``status``); the manual-match walk is in
:mod:`booklore_sync.web.matching` and the watch thread in
:mod:`booklore_sync.web.watching`.  Nothing here prints or renders HTML; when
the library layer changes, only these modules follow it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from booklore_sync import render
from booklore_sync.actions import clear
from booklore_sync.actions.base import LOCKED
from booklore_sync.actions.base import ActionError as LibraryError
from booklore_sync.config import Config
from booklore_sync.labels import Entry, menu_entries
from booklore_sync.menu import (
    CLEAR_PENDING_WARNING,
    HISTORY_LABELS,
    HISTORY_WARNING,
    QUEUE_LABELS,
)
from booklore_sync.store.db import Store
from booklore_sync.store.lock import LockBusy, SyncLock
from booklore_sync.store.queries import QUEUES

LOCK_WAIT_SECONDS = 5.0  # spec §10.1: wait up to 5 s, then 409
HISTORY_ORDER = tuple(HISTORY_LABELS)  # the five ledgers, then the discarded list
SYNC_PHASES = ("ratings", "annotations", "bookmarks", "progress", "sessions")  # engine order

__all__ = [
    "CLEAR_PENDING_WARNING", "HISTORY_LABELS", "HISTORY_ORDER", "HISTORY_WARNING",
    "QUEUE_LABELS", "ActionError", "Busy", "JobResult",
]


class Busy(Exception):
    """Another process (or a running job) holds the store's lock; nothing was changed."""

    def __init__(self, holder: str):
        super().__init__(f"Busy: {holder} holds the store; nothing was changed.")
        self.holder = holder


class ActionError(Exception):
    """A user-facing failure (server away, configuration missing): one message."""


# ----------------------------------------------------------------- the lock
def lock_holder(cfg: Config) -> str | None:
    """``process N`` while someone holds the store's lock, else None.

    Read-only: the lock file is never created here, and is held only for the
    instant of the probe.
    """
    try:
        fd = os.open(cfg.lock_path, os.O_RDWR)
    except OSError:
        return None
    try:
        from booklore_sync.store import lock as lock_module

        if lock_module._try_lock(fd):
            lock_module._unlock(fd)
            return None
        pid = lock_module._read_holder(fd)
        return f"process {pid}" if pid else "another process"
    finally:
        os.close(fd)


def take_lock(cfg: Config) -> SyncLock:
    """The store's lock, waiting up to 5 s; Busy when it stays held."""
    lock = SyncLock(cfg.lock_path)
    try:
        lock.acquire(wait_seconds=LOCK_WAIT_SECONDS)
    except LockBusy:
        raise Busy(lock_holder(cfg) or "another process") from None
    return lock


@contextmanager
def locked(cfg: Config) -> Iterator[None]:
    lock = take_lock(cfg)
    try:
        yield
    finally:
        lock.release()


def ensure_free(cfg: Config) -> None:
    """Wait (up to 5 s) until the lock is free, without keeping it (for jobs whose
    library call takes the lock itself)."""
    take_lock(cfg).release()


# ------------------------------------------------------------------- reading
def _read_store(cfg: Config) -> Store | None:
    """The store for reading, or None when there is none yet (views never create it)."""
    if not cfg.store_path.exists():
        return None
    return Store.open(cfg.store_path)


@dataclass
class MenuState:
    entries: list[Entry]
    holder: str | None
    server: str | None


def public_url(url: str | None) -> str | None:
    """The server URL without user information (spec §10.1)."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def menu_state(cfg: Config) -> MenuState:
    store = _read_store(cfg)
    if store is None:
        counts = {q: 0 for q in QUEUES}
        cache = {"total": 0, "matched": 0, "unmatched": 0}
    else:
        with store:
            counts, cache = store.counts(), store.cache_counts()
    return MenuState(menu_entries(counts, cache), lock_holder(cfg), public_url(cfg.url))


def status(cfg: Config) -> dict[str, Any]:
    """The data of ``status --verbose --json`` (empty state without a store), with the
    pending items grouped by book as ``status --verbose`` shows them."""
    from booklore_sync.status import status_data

    store = _read_store(cfg)
    if store is None:
        data: dict[str, Any] = {
            "book_cache": {"total": 0, "matched": 0, "unmatched": 0},
            "pending": {q: 0 for q in QUEUES}, "progress_history": 0, "items": []}
    else:
        with store:
            data = status_data(store, verbose=True)
    if "books" not in data:
        data["books"] = _group_by_book(data.get("items", []))
    return data


def _group_by_book(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    books: dict[str, dict[str, Any]] = {}
    for it in items:
        book = books.setdefault(it["fingerprint"], {
            "fingerprint": it["fingerprint"], "title": it.get("title"),
            "book_id": it.get("book_id"), "pending": {}, "retries": {}, "reasons": {}})
        q = it["queue"]
        book["pending"][q] = book["pending"].get(q, 0) + 1
        book["retries"][q] = max(book["retries"].get(q, 0), it.get("retry_count") or 0)
        reason = it.get("reason") or it.get("last_error") or (
            "not tried yet" if not it.get("retry_count") else "failed")
        key = (q, reason)
        book["reasons"][key] = book["reasons"].get(key, 0) + 1
    out = []
    for book in books.values():
        book["reasons"] = [{"queue": q, "reason": r, "count": n}
                           for (q, r), n in book["reasons"].items()]
        out.append(book)
    return out


# ------------------------------------------------------------ quick actions
@contextmanager
def _library(cfg: Config) -> Iterator[None]:
    """A library action's ``locked`` error as Busy (the page's 409), naming the holder;
    its other errors (a broken store, say) as the page's one-message ActionError."""
    try:
        yield
    except LibraryError as exc:
        if exc.kind == LOCKED:
            raise Busy(lock_holder(cfg) or "another process") from None
        raise ActionError(exc.message) from None


def pending_counts(cfg: Config) -> dict[str, int]:
    """The queue sizes (zeros when there is no store yet; views never create it)."""
    with _library(cfg):
        return clear.pending_counts(cfg)


def history_counts(cfg: Config) -> dict[str, int]:
    with _library(cfg):
        return clear.history_counts(cfg)


def clear_pending(cfg: Config, queues: list[str]) -> list[str]:
    """Clear Pending (§4.4) through the library (which takes the lock); the CLI's lines."""
    with _library(cfg):
        result = clear.clear_pending(cfg, queues)
    return [render.pending_cleared(q, result.counts[q]) for q in QUEUES if q in queues]


def clear_history(cfg: Config, names: list[str]) -> list[str]:
    """Advanced → Clear… (§4.5) through the library; the CLI's result lines."""
    with _library(cfg):
        result = clear.clear_history(cfg, names)
    return [render.history_cleared(n, result.counts[n]) for n in HISTORY_ORDER if n in names]


def clear_cache(cfg: Config) -> str:
    """Clear Cache (§4.6) through the library, with the message of §4.6."""
    with _library(cfg):
        result = clear.clear_cache(cfg)
    return render.cache_cleared(result.cleared, result.links_kept)


# --------------------------------------------------------------------- jobs
@dataclass
class JobResult:
    """What a finished job shows: a toast, detail lines, and for sync its JSON."""

    toast: str
    lines: list[str] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    busy: str | None = None          # the lock was taken between the check and the run
    offer_manual: int = 0            # match: unmatched books to offer manual matching for


Progress = Callable[[str, int, int], None]  # phase, done, total


def _phase_tracker(cfg: Config, progress: Progress) -> Callable[[int, int], None]:
    """The engine reports done/total; the phase follows from the queue sizes (it
    syncs ratings, annotations, bookmarks, progress, sessions in that order)."""
    sizes = pending_counts(cfg)

    def tick(done: int, total: int) -> None:
        edge = 0
        phase = SYNC_PHASES[-1]
        for name in SYNC_PHASES:
            edge += sizes.get(name, 0)
            if done <= edge and sizes.get(name, 0):
                phase = name
                break
        progress(phase, done, total)

    return tick


def _report_lines(report: Any) -> list[str]:
    lines = list(report.messages) + list(report.config_errors)
    for account in sorted(report.missing_accounts):
        name = "BookLore" if account == "booklore" else "KOReader"
        lines.append(f"The {name} account is not configured, so its items stay queued.")
    lines += list(report.rejected_accounts.values())
    if not (report.offline or report.locked):
        lines += report.summary_lines()
    return lines


def _skipped(report: Any) -> int:
    return sum(t.skipped for t in report.queues.values())


def run_sync(cfg: Config, progress: Progress) -> JobResult:
    """Sync Pending Now, as ``sync`` does it."""
    from booklore_sync.actions.sync import sync_once

    progress("resolve", 0, sum(pending_counts(cfg).values()))
    report = sync_once(cfg, on_progress=_phase_tracker(cfg, progress))
    if report.locked:
        return JobResult(toast="", busy=lock_holder(cfg) or "another process")
    toast = (f"Synced {report.synced} items, {report.failed} failed, "
             f"{_skipped(report)} skipped.")
    return JobResult(toast=toast, lines=_report_lines(report), summary=report.to_json())


def run_auto_match(cfg: Config, progress: Progress) -> JobResult:
    """Match Unmatched Books, automatic step and the uploads of newly matched books."""
    from booklore_sync.actions.match import run_match

    progress("resolve", 0, 0)
    outcome = run_match(cfg, interactive=False)
    if outcome.exit_code == 4:
        return JobResult(toast="", busy=lock_holder(cfg) or "another process")
    lines = list(outcome.messages)
    uploads = outcome.uploads
    if uploads.synced or uploads.failed:
        lines += [f"uploaded: {line}" for line in uploads.summary_lines()]
    offer = 0
    if outcome.exit_code in (0, 1) and not outcome.matched and not _unreachable(outcome):
        offer = outcome.still_unmatched
    return JobResult(toast=f"{outcome.matched} newly matched, {outcome.still_unmatched} "
                     "still unmatched.", lines=lines, summary=outcome.to_json(),
                     offer_manual=offer)


def _unreachable(outcome: Any) -> bool:
    return any("cannot be reached" in m or "stopped answering" in m for m in outcome.messages)


def run_rematch_all(cfg: Config, progress: Progress) -> JobResult:
    """Re-match All Books in Cache (the confirmation was the page before)."""
    from booklore_sync.actions.match import run_rematch

    progress("resolve", 0, 0)
    code, result, messages = run_rematch(cfg, confirm=None)
    if code == 4:
        return JobResult(toast="", busy=lock_holder(cfg) or "another process")
    if result is None:
        return JobResult(toast="Nothing was changed.", lines=messages)
    return JobResult(
        toast=(f"Re-matched: {result.rematched}; changed: {result.changed}; now unmatched: "
               f"{result.now_unmatched}; newly matched: {result.newly_matched}; still "
               f"unmatched: {result.unmatched}."),
        lines=messages,
        summary={"rematched": result.rematched, "changed": result.changed,
                 "now_unmatched": result.now_unmatched})

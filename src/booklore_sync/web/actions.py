"""The one seam between the web page and the library (spec §10.5).

Every action the page offers is answered here by calling the same functions
as the command line and the terminal menu (``sync.runner``, ``sync.matching``,
``sync.matcher``, the store's clear methods, ``labels``, ``status``, ``watch``).
Nothing here prints or renders HTML; when the library layer changes, only
this module follows it.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from booklore_sync.config import Config, ConfigError
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

if TYPE_CHECKING:
    from booklore_sync.watch import Cycle as WatchCycle

LOCK_WAIT_SECONDS = 5.0  # spec §10.1: wait up to 5 s, then 409
HISTORY_ORDER = tuple(HISTORY_LABELS)  # the five ledgers, then the discarded list
SYNC_PHASES = ("ratings", "annotations", "bookmarks", "progress", "sessions")  # engine order

__all__ = [
    "CLEAR_PENDING_WARNING", "HISTORY_LABELS", "HISTORY_ORDER", "HISTORY_WARNING",
    "QUEUE_LABELS", "Busy", "JobResult", "ManualBook", "WatchLoop",
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


def pending_counts(cfg: Config) -> dict[str, int]:
    store = _read_store(cfg)
    if store is None:
        return {q: 0 for q in QUEUES}
    with store:
        return store.counts()


def history_counts(cfg: Config) -> dict[str, int]:
    store = _read_store(cfg)
    if store is None:
        return {name: 0 for name in HISTORY_ORDER}
    with store:
        return store.history_counts()


# ------------------------------------------------------------ quick actions
def clear_pending(cfg: Config, queues: list[str]) -> list[str]:
    """Clear Pending (§4.4) under the lock; the CLI's result lines."""
    chosen = [q for q in QUEUES if q in queues]
    with locked(cfg), Store.open(cfg.store_path) as store:
        cleared = store.clear_pending(chosen)
    return [f"Cleared {cleared[q]} pending {q}." for q in chosen]


def clear_history(cfg: Config, names: list[str]) -> list[str]:
    """Advanced → Clear… (§4.5) under the lock; the CLI's result lines."""
    chosen = [n for n in HISTORY_ORDER if n in names]
    with locked(cfg), Store.open(cfg.store_path) as store:
        cleared = store.clear_history(chosen)
    return [f"Cleared {cleared[n]} rows of {HISTORY_LABELS[n].lower()}." for n in chosen]


def clear_cache(cfg: Config) -> str:
    """Clear Cache (§4.6) under the lock, with the message of §4.6."""
    with locked(cfg), Store.open(cfg.store_path) as store:
        cleared = store.clear_cache()
        removed, kept = cleared.books, cleared.links_kept
    books = "1 book" if removed == 1 else f"{removed} books"
    links = "1 manual link is" if kept == 1 else f"{kept} manual links are"
    return (f"Cleared the book cache ({books}); {links} kept. "
            "Run `booklore-sync scan` to rebuild it.")


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


# ----------------------------------------------------------- manual matching
@dataclass
class ManualBook:
    cache_id: int
    heading: str
    term: str
    candidates: list[Any]   # sync.matcher.Candidate
    best_percent: int | None


def unmatched_ids(cfg: Config) -> list[int]:
    store = _read_store(cfg)
    if store is None:
        return []
    with store:
        return [b.id for b in store.books(unmatched_only=True)]


@contextmanager
def _matcher(cfg: Config, store: Store) -> Iterator[Any]:
    from booklore_sync.actions.sync import make_client
    from booklore_sync.sync.matcher import Matcher, ServerUnavailable

    try:
        client = make_client(cfg, store)
    except ConfigError as exc:
        raise ActionError(str(exc)) from None
    with client:
        matcher = Matcher(store, client)
        try:
            matcher.connect()
            yield matcher
        except ServerUnavailable as exc:
            raise ActionError(f"{str(exc)[:1].upper()}{str(exc)[1:]}; nothing was changed.") \
                from None


def manual_book(cfg: Config, cache_id: int, index: int, count: int,
                term: str | None) -> ManualBook | None:
    """One unmatched book with up to five candidates (None when it is matched by now)."""
    from booklore_sync.sync.manual import describe
    from booklore_sync.sync.matcher import search_term

    store = _read_store(cfg)
    if store is None:
        return None
    with store:
        book = store.get_book(cache_id)
        if book is None or book.book_id is not None:
            return None
        term = term or search_term(book)
        with _matcher(cfg, store) as matcher:
            candidates = matcher.search(term)
    best = max((c.percent for c in candidates), default=None)
    return ManualBook(cache_id, f"[{index}/{count}] {describe(book)}", term, candidates, best)


def lookup_book(cfg: Config, book_id: int) -> tuple[str, str] | None:
    """(title, authors) of the server's book with this ID, or None when it has none."""
    with Store.open(cfg.store_path) as store, _matcher(cfg, store) as matcher:
        found = matcher.lookup_id(book_id)
    if found is None:
        return None
    authors = ", ".join(getattr(found, "authors", ()) or ()) or "unknown author"
    return (getattr(found, "title", None) or "(untitled)", authors)


def confirm_match(cfg: Config, cache_id: int, book_id: int,
                  score: float | None) -> list[str]:
    """Link the book (a manual match) and upload its pending items, under the lock."""
    from booklore_sync.actions.sync import sync_locked

    with locked(cfg), Store.open(cfg.store_path) as store:
        book = store.get_book(cache_id)
        if book is None:
            raise ActionError("That book is no longer in the cache; nothing was changed.")
        with _matcher(cfg, store) as matcher:
            if matcher.lookup_id(book_id) is None:
                raise ActionError(f"BookLore has no book with ID {book_id}; nothing was changed.")
            matcher.confirm(cache_id, book_id, method="manual", confidence=score)
            lines = [f"Matched {book.display_name} to BookLore book {book_id}."]
            fingerprints = set(store.book_hashes(cache_id))
            if fingerprints:
                report = sync_locked(cfg, store, matcher.client, only_fingerprints=fingerprints)
                if report.synced or report.failed or _skipped(report):
                    lines += [f"uploaded: {line}" for line in report.summary_lines()]
                lines += list(report.messages)
    return lines


# --------------------------------------------------------------------- watch
@dataclass
class Cycle:
    time: str
    scan: str
    sync: str


class WatchLoop:
    """``watch SOURCE`` in a thread of ``serve``, keeping its last ten cycles."""

    def __init__(self, cfg: Config, source: Path, interval: float,
                 echo: Callable[[str], None] | None = None):
        from booklore_sync.watch import Watcher

        self.cycles: deque[Cycle] = deque(maxlen=10)
        self.interval = interval
        self.last_at: datetime | None = None
        self._echo = echo
        self._lock = threading.Lock()
        self.watcher = Watcher(cfg, source, interval=interval, on_cycle=self._on_cycle)
        self.thread = threading.Thread(target=self._run, name="watch", daemon=True)

    def _run(self) -> None:
        from booklore_sync.watch import stamp

        self.watcher.run()
        if self._echo is not None:
            self._echo(f"{stamp()} watch: stopped")

    def _on_cycle(self, cycle: WatchCycle) -> None:
        from booklore_sync import render

        now = datetime.now().astimezone()
        with self._lock:
            self.last_at = now  # the next run is due an interval after any cycle
        if not cycle.worth_a_line:
            return
        if self._echo is not None:
            self._echo(render.cycle_line(cycle))
        scan, rest = render.cycle_parts(cycle)
        with self._lock:
            self.cycles.appendleft(Cycle(now.isoformat(timespec="seconds"), scan,
                                         "; ".join(rest)))

    def recent(self) -> list[Cycle]:
        with self._lock:
            return list(self.cycles)

    def next_run(self) -> str | None:
        with self._lock:
            if self.last_at is None:
                return None
            due = self.last_at.timestamp() + self.interval
        return datetime.fromtimestamp(due).astimezone().isoformat(timespec="seconds")

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.watcher.stop.set()
        self.watcher.changed.set()
        self.thread.join(timeout)

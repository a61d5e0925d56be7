"""Books read in parallel on the machine's cores (sync-and-cache §9 p2).

A first scan of a large library spends most of its time on work that needs no
store: reading and parsing sidecars, fingerprinting book files, opening EPUBs and
converting positions to CFIs, building queue rows.  Above :data:`MIN_BOOKS` books
and with two cores or more, that work runs in forked worker processes, chunk by
chunk; the main process keeps the store to itself and applies each book's
outcome in the scan's order, exactly as the single-process scan would have:

* a worker runs the very same :func:`~booklore_sync.koreader.sidecar_import.
  process_guarded` on a context that *records* instead of writing: warnings,
  errors, cache rows, file memos, queue rows (checked and normalised by
  ``batchable``) and the books for the session mapping, in order;
* it is given the file memos of its chunk, read by the main process just before
  (one query); a step that needs the store beyond them (a memo not prefetched, a
  queue row only the store's single method may judge) hands the whole book back
  to the main process, which processes it there in its place;
* a worker that dies or fails, or a pool that cannot start, costs nothing but
  time: the chunk (and all after it) is processed in the main process.

``BOOKLORE_SYNC_SCAN_WORKERS`` sets it: ``0`` (or ``1``, ``off``) never, ``N``
always with N workers (for any number of books), unset or ``auto`` the default.
The pool needs the ``fork`` start method (the workers inherit the scan's state);
elsewhere, or with other threads running in the process, the scan runs in one
process.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from booklore_sync.koreader.candidates import SidecarGroup
from booklore_sync.koreader.context import ScanContext, ScannedBook
from booklore_sync.koreader.report import ScanReport
from booklore_sync.store.books import BookUpsert
from booklore_sync.store.queue_rows import batchable

__all__ = ["ENV", "MIN_BOOKS", "workers_for", "run_pooled"]

ENV = "BOOKLORE_SYNC_SCAN_WORKERS"
MIN_BOOKS = 500   # below this the pool's start-up costs more than it saves
CHUNK = 200       # books per task

Process = Callable[[ScanContext, SidecarGroup, dict[str, SidecarGroup], list[str]], None]
MemoKeys = Callable[[ScanContext, list[SidecarGroup]], list[str]]
Memos = dict[str, "tuple[int, int, str] | None"]
Quick = Callable[[ScanContext, SidecarGroup, Memos], "Callable[[], None] | None"]
Result = list["tuple[int, list[tuple[Any, ...]]] | None"]

# what the forked workers inherit: the scan's context, its groups, the step
_STATE: dict[str, Any] = {}


class NeedsMain(BaseException):
    """A step a worker cannot take without the store: the book goes to the main
    process.  (A ``BaseException``: the per-book guard must not report it.)"""


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def workers_for(books: int) -> int:
    """How many worker processes a scan of ``books`` books uses (0: none)."""
    setting = os.environ.get(ENV, "").strip().lower()
    if setting in ("0", "1", "off", "no", "false", "none"):
        return 0
    if setting.isdigit():
        wanted = int(setting)
    else:
        if books < MIN_BOOKS or threading.active_count() > 1:
            return 0  # forking a process with other threads running is not safe
        wanted = _cores()
    if wanted < 2 or books == 0 or "fork" not in multiprocessing.get_all_start_methods():
        return 0
    return wanted


class _Recorder(ScanReport):
    """A worker's report: what it says, in order, for the main process to repeat."""

    def __init__(self, events: list[tuple[Any, ...]]):
        super().__init__()
        self.events = events

    def error(self, file: str | os.PathLike[str], message: str) -> None:
        super().error(file, message)
        self.events.append(("error", file, message))

    def warn(self, file: str | os.PathLike[str], message: str, *, announce: bool = True) -> None:
        super().warn(file, message, announce=announce)
        self.events.append(("warn", file, message, announce))


class _WorkerContext(ScanContext):
    """The scan's context in a worker: everything read-only as inherited, every
    write recorded (module docstring)."""

    def __init__(self, base: ScanContext):  # noqa: D107 - a copy, not a new scan
        self.__dict__.update(base.__dict__)
        self.store = None
        self.events: list[tuple[Any, ...]] = []
        self.books = []
        self.fp_index = {}
        self.pending_books = []
        self.pending_memos = []

    def enqueue(self, queue: str, row: tuple[Any, ...]) -> None:
        norm = batchable(queue, row)
        if norm is None:
            raise NeedsMain  # the store's single method decides (and may refuse) it
        # the payload travels once, as its JSON (the store reads it back when it must)
        self.events.append(("row", queue, (norm[0], norm[1], None, norm[3], norm[4])))

    def add_book(self, book: BookUpsert) -> None:
        self.events.append(("book", book))

    def register(self, book: ScannedBook) -> None:
        self.events.append(("register", book))

    def get_memo(self, key: str) -> tuple[int, int, str] | None:
        if key in self.memos:
            return self.memos.pop(key)
        raise NeedsMain

    def put_memo(self, key: str, size: int, mtime_ns: int, digest: str) -> None:
        self.memos.pop(key, None)
        self.events.append(("memo", key, size, mtime_ns, digest))

    def flush(self) -> None:
        raise NeedsMain

    def flush_store(self) -> None:
        raise NeedsMain


def _work_to_file(indexes: list[int], memos: Memos, path: str) -> str:
    """:func:`_work`, its result written to ``path`` (pickled): the pipe back carries only
    the name, so a worker never waits for the main process to drain a big result."""
    blob = pickle.dumps(_work(indexes, memos), protocol=pickle.HIGHEST_PROTOCOL)
    with open(path, "wb") as fh:
        fh.write(blob)
    return path


def _read_result(path: str) -> Result:
    with open(path, "rb") as fh:
        blob = fh.read()
    os.unlink(path)
    out: Result = pickle.loads(blob)
    return out


def _work(indexes: list[int], memos: Memos) -> Result:
    """A worker's task: the groups at ``indexes``; per book its books count and events,
    or None when the main process must take it."""
    wctx = _STATE.get("wctx")
    if wctx is None:
        wctx = _STATE["wctx"] = _WorkerContext(_STATE["ctx"])
    process: Process = _STATE["process"]
    groups: list[SidecarGroup] = _STATE["groups"]
    wctx.memos = memos
    wctx.collect_young()  # (the worker inherits the scan's paused collector)
    out: Result = []
    for i in indexes:
        events: list[tuple[Any, ...]] = []
        wctx.events = events
        wctx.report = _Recorder(events)
        try:
            process(wctx, groups[i], {}, [])
        except NeedsMain:
            out.append(None)
            continue
        out.append((wctx.report.books, events))
    return out


def _apply(ctx: ScanContext, events: list[tuple[Any, ...]]) -> None:
    """What a worker recorded for one book, done here in the same order."""
    for ev in events:
        kind = ev[0]
        if kind == "row":
            ctx.sink.add(ev[1], ev[2])
        elif kind == "warn":
            ctx.report.warn(ev[1], ev[2], announce=ev[3])
        elif kind == "error":
            ctx.report.error(ev[1], ev[2])
        elif kind == "book":
            ctx.add_book(ev[1])
        elif kind == "memo":
            ctx.put_memo(ev[1], ev[2], ev[3], ev[4])
        elif kind == "register":
            ctx.register(ev[1])
        else:  # pragma: no cover - a recorder and its reader out of step
            raise AssertionError(f"unknown scan event {kind!r}")


def run_pooled(ctx: ScanContext, groups: list[SidecarGroup], total: int, workers: int,
               process: Process, local: Callable[[SidecarGroup], None],
               memo_keys: MemoKeys, quick: Quick) -> None:
    """Process ``groups`` (the first of the scan's ``total``) with ``workers`` worker
    processes; ``local`` processes one group in this process (the fallback), ``quick``
    recognises an unchanged book from its memo and stat alone (done here: a rescan
    starts no worker)."""
    from concurrent.futures import ProcessPoolExecutor

    chunks = deque((s, min(s + CHUNK, len(groups))) for s in range(0, len(groups), CHUNK))
    _STATE.clear()
    _STATE.update(ctx=ctx, groups=groups, process=process)
    executor: ProcessPoolExecutor | None = None
    spool: str | None = None  # the workers' results
    try:
        spool = tempfile.mkdtemp(prefix="booklore-sync-scan-")
        executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    except (OSError, ValueError, ImportError):  # no pool here: all in this process
        executor = None
    # per chunk: its range, the quick outcomes (None: needs work) and the worker's task
    Task = tuple[int, int, list["Callable[[], None] | None"], "Future[str] | None"]
    in_flight: deque[Task] = deque()
    try:
        while chunks or in_flight:
            while chunks and len(in_flight) < 2 * workers:
                s, e = chunks.popleft()
                keys = memo_keys(ctx, groups[s:e])
                ctx.flush_store()  # a memo written but not yet stored must not read as missing
                found = ctx.store.get_file_memos(keys)
                memos: Memos = {k: found.get(k) for k in keys}
                quicks = [quick(ctx, g, memos) for g in groups[s:e]]
                work = [j for j in range(s, e) if quicks[j - s] is None]
                fut: Future[str] | None = None
                if work and executor is not None and spool is not None:
                    try:
                        fut = executor.submit(_work_to_file, work, memos,
                                              os.path.join(spool, f"{s}.pickle"))
                    except Exception:  # noqa: BLE001 - a broken pool: this process takes over
                        executor = _close(executor)
                in_flight.append((s, e, quicks, fut))
            s, e, quicks, fut = in_flight.popleft()
            if s % (5 * CHUNK) == 0:
                ctx.collect_young()
            results: Result = []
            if fut is not None:
                try:
                    results = _read_result(fut.result())
                except Exception:  # noqa: BLE001 - a worker died or failed: redo it here
                    results = []
                    executor = _close(executor)
            if any(q is None for q in quicks) and not results:
                ctx.memos.clear()
                ctx.prefetch_memos(memo_keys(ctx, groups[s:e]))
            done = iter(results)
            for j in range(s, e):
                q = quicks[j - s]
                res = next(done, None) if q is None else None
                if q is not None:
                    q()
                elif res is None:
                    local(groups[j])
                else:
                    ctx.report.books += res[0]
                    _apply(ctx, res[1])
                if ctx.on_progress is not None:
                    ctx.on_progress(j + 1, total)
    finally:
        _close(executor)
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)
        _STATE.clear()
        ctx.memos.clear()


def _close(executor: Any) -> Any:
    if executor is not None:
        executor.shutdown(wait=True, cancel_futures=True)
    return None

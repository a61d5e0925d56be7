"""The ledger's store writes on a thread of their own while work units run.

Recording an outcome (a history move, a failed attempt, a reconciliation record) is
SQLite work that does not need the engine to wait for it: while it runs, the next
request can already be on its way.  The ledger therefore hands its writes, in order,
to one writer thread during a phase's execution (:meth:`Writer.overlap`); at the end
of the execution the engine waits for every one of them (:meth:`Writer.drain`) before
it reads or writes the store itself again.

Why this keeps every exactly-once rule (spec §4.1):

* the in-flight marks are not written here: the engine commits them itself before
  the phase's first request leaves;
* the writes run one at a time in the order the outcomes were recorded, each in its
  own transaction as before, so the store passes through the same states;
* a write that has not run yet when the process dies is a confirmation the store
  does not have: its items stay queued — in flight (sessions, v1 book notes, PDF
  bookmarks: checked against the server before any resend) or pending (uploads the
  server deduplicates, idempotent ones: resent harmlessly) — exactly as when the
  process dies a moment earlier, before the answer came;
* after the first failed write no later write runs (a later one could record
  something that depends on it) and the failure is raised on the engine's thread.

The SQLite module releases the interpreter lock while a statement runs, so the
writes overlap with the wait for the server's answers even with one request in
flight (``http.max_concurrency`` = 1).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any


class Writer:
    """One thread that runs submitted calls in order (started on first use)."""

    def __init__(self) -> None:
        self._jobs: deque[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = deque()
        self._cond = threading.Condition()
        self._busy = False
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._closing = False
        self.active = False  # between overlap()'s entry and its drain

    # ------------------------------------------------------------- engine side
    @contextmanager
    def overlap(self, enabled: bool = True) -> Iterator[None]:
        """Within the block, :meth:`submit` queues; on leaving (however), every queued
        write has run — or the first failure is raised.  Not ``enabled``: the writes
        run at once, on the caller's thread (a caller inside a store transaction: the
        writer thread could not get the store until it ends)."""
        if not enabled:
            yield
            return
        self.active = True
        try:
            yield
        finally:
            self.active = False
            self.drain()

    @property
    def idle(self) -> bool:
        """Nothing queued or running (a hint: the writer thread may start a job soon)."""
        return not self._jobs and not self._busy

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``fn(*args, **kwargs)`` on the writer thread, after the calls before it;
        outside :meth:`overlap` (or with an earlier failure pending) it runs here, now."""
        if not self.active:
            self.drain()
            fn(*args, **kwargs)
            return
        with self._cond:
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="sync-ledger",
                                                daemon=True)
                self._thread.start()
            self._jobs.append((fn, args, kwargs))
            self._cond.notify_all()

    def drain(self) -> None:
        """Wait until every submitted write has run; raise the first failure.  Ctrl-C
        while waiting is held back until the writes are done (they record what the
        server already confirmed), then raised."""
        interrupted = False
        with self._cond:
            while self._jobs or self._busy:
                try:
                    self._cond.wait()
                except KeyboardInterrupt:
                    interrupted = True
            error, self._error = self._error, None
        if error is not None:
            raise error
        if interrupted:
            raise KeyboardInterrupt

    def close(self) -> None:
        """Run what is queued, then end the thread."""
        try:
            self.drain()
        finally:
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            if self._thread is not None:
                self._thread.join()
                self._thread = None

    # ------------------------------------------------------------- writer side
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closing:
                    self._cond.wait()
                if not self._jobs:
                    return
                fn, args, kwargs = self._jobs.popleft()
                if self._error is not None:
                    # after a failure nothing more is written: the rest is dropped
                    self._jobs.clear()
                    self._cond.notify_all()
                    continue
                self._busy = True
            try:
                fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - raised on the engine's thread
                with self._cond:
                    self._error = exc
                    self._jobs.clear()
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

"""Running work units concurrently (spec §4.1 "Within a phase, uploads for different
books go concurrently", §7 ``http.max_concurrency``).

A work unit is one book's work in one phase (its requests go in order); units run on
a small thread pool that shares the client's one connection pool.  Workers never
touch the store: each returns its outcomes, and the engine's thread records them as
units complete.  What workers share is a :class:`RunState`: the accounts that were
refused during the run and a stop flag (server lost, Ctrl-C, a crash) that makes
every worker start no further request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

from booklore_sync.booklore import errors as E

U = TypeVar("U")
R = TypeVar("R")


class Stopped(Exception):
    """Raised inside a worker when the run stops starting requests."""


class RunState:
    """What the workers of one run share (thread-safe)."""

    def __init__(self, accounts: Iterable[str]) -> None:
        self.accounts = frozenset(accounts)
        self.stop = threading.Event()
        self._dead: dict[str, E.AuthError] = {}
        self._lock = threading.Lock()

    def kill(self, exc: E.AuthError) -> None:
        """An account was refused: no later request of this run uses it."""
        with self._lock:
            self._dead.setdefault(exc.account, exc)

    def dead_account(self, account: str) -> E.AuthError | None:
        with self._lock:
            return self._dead.get(account)

    def dead_snapshot(self) -> dict[str, E.AuthError]:
        with self._lock:
            return dict(self._dead)

    def alive(self, account: str) -> bool:
        return account in self.accounts and self.dead_account(account) is None

    def check(self) -> None:
        """Called by a worker before each request."""
        if self.stop.is_set():
            raise Stopped


class Pool:
    """At most ``size`` units in flight; ``size`` 1 runs them one by one on the caller's
    thread (no thread at all)."""

    def __init__(self, size: int, state: RunState) -> None:
        self.size = max(1, int(size))
        self.state = state
        self._executor: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def run(self, fn: Callable[[U], R], units: Sequence[U]) -> Iterator[R]:
        """Results of ``fn(unit)`` in completion order.

        A unit that raises an Exception (a bug) stops the others from starting
        requests; the results of the units already running are still yielded, then
        the first error is raised.  A BaseException from a unit (a simulated crash)
        is raised at once, after the running units have ended, without their results.
        Ctrl-C on the caller's thread stops the others from starting requests, yields
        what the running ones did, then goes on.
        """
        if self.size == 1 or len(units) <= 1:
            for unit in units:
                if self.state.stop.is_set():
                    return
                yield fn(unit)
            return
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.size, thread_name_prefix="sync")
        executor = self._executor
        pending: set[Future[R]] = set()
        first_error: Exception | None = None
        it = iter(units)

        def fill() -> None:
            # submit lazily: a stopped run starts no new unit
            while len(pending) < self.size * 2 and not self.state.stop.is_set():
                unit = next(it, None)
                if unit is None:
                    return
                pending.add(executor.submit(fn, unit))

        fill()
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    pending.discard(fut)
                    exc = fut.exception()
                    if exc is None:
                        yield fut.result()
                    elif isinstance(exc, Exception):
                        self.state.stop.set()
                        first_error = first_error or exc
                    else:
                        self.state.stop.set()
                        wait(pending)
                        raise exc
                fill()
        except KeyboardInterrupt:
            self.state.stop.set()
            wait(pending)
            for fut in pending:
                if fut.exception() is None:
                    yield fut.result()
            raise
        if first_error is not None:
            raise first_error

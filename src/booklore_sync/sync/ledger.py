"""Recording outcomes: the only part of a sync run that writes the store and the report.

It runs on the engine's thread alone (workers only talk HTTP and hand back outcomes),
so one SQLite connection serves the whole run.  While a phase's units run, its store
writes go, in order, to the writer thread (:mod:`~booklore_sync.sync.writer`): the
report and what the run knows are updated at once, the store a moment later, and the
engine waits for every write when the units are done.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from booklore_sync.booklore import errors as E
from booklore_sync.common.vocab import ReconcileKind
from booklore_sync.store.queries import QUEUES
from booklore_sync.sync.execute import RunState
from booklore_sync.sync.outcomes import (
    BOOK_GONE,
    UNCERTAIN_STATES,
    AccountDown,
    Cut,
    Failed,
    Gone,
    Lost,
    Missing,
    Outcome,
    PartDone,
    Sent,
    Skipped,
    Synced,
    account_name,
    account_trouble,
)
from booklore_sync.sync.reconcile import Reconciled
from booklore_sync.sync.report import SyncReport
from booklore_sync.sync.writer import Writer

if TYPE_CHECKING:
    from booklore_sync.store.db import QueueItem, Store

log = logging.getLogger(__name__)

DEFER_BATCH = 200  # history moves grouped per transaction (at most)
FLUSH_ROWS = 400  # while units run: the rows of deferred moves that start a transaction


class Ledger:
    def __init__(self, store: Store, report: SyncReport, state: RunState,
                 on_progress: Callable[[int, int], None] | None = None) -> None:
        self.store = store
        self.report = report
        self.state = state
        self.on_progress = on_progress
        self.settled: dict[str, set[int]] = {q: set() for q in QUEUES}
        self.attempted: set[int] = set()  # sessions this run put into a request
        self.lost: str | None = None  # why the server counts as lost
        self._deferred: dict[str, list[tuple[list[int], dict[str, Any]]]] = defaultdict(list)
        self._deferred_rows: dict[str, int] = defaultdict(int)
        self._reconciled: dict[str, list[tuple[int, ReconcileKind]]] = defaultdict(list)
        self.done = 0
        self.total = 0
        self.writer = Writer()
        self._write = self.writer.submit

    # ------------------------------------------------------------ dispatch
    def record_all(self, outcomes: Iterable[Outcome]) -> None:
        queues: set[str] = set()
        for outcome in outcomes:
            self.record(outcome)
            queues.add(outcome.queue)
        if self.writer.active:
            # the writer thread writes them while the next units' requests go; a
            # transaction costs about as much as a few hundred rows, so rows gather
            for queue in queues:
                if self._deferred_rows[queue] >= FLUSH_ROWS:
                    self.flush(queue)

    def record(self, o: Outcome) -> None:
        """Write one outcome to the store and the report."""
        if isinstance(o, Synced):
            self.synced(o.queue, o.items, defer=o.defer, **o.history)
        elif isinstance(o, Failed):
            self.fail(o.queue, o.items, o.reason, status=o.status, count=o.count, state=o.state)
        elif isinstance(o, Skipped):
            if o.missing_account is not None:
                self.report.missing_accounts.add(o.missing_account)
            if o.sync_off:
                self.report.note_sync_off()
            self.skip(o.queue, o.items, o.reason)
        elif isinstance(o, Missing):
            self.missing(o.queue, o.items, o.account)
        elif isinstance(o, AccountDown):
            assert o.error is not None
            self.state.kill(o.error)
            self.fail(o.queue, o.items, account_trouble(o.error), status=o.error.status,
                      count=False)
        elif isinstance(o, Gone):
            self.gone(o.queue, o.items, reset=o.reset)
        elif isinstance(o, PartDone):
            for item in o.items:
                self._write(self.store.mark_annotation_part, item.id, o.part,
                            book_id=o.book_id, remote_id=o.remote_id)
        elif isinstance(o, Cut):
            self.report.note_cut(o.queue, o.items)
        elif isinstance(o, Sent):
            self.attempted.update(i.id for i in o.items)
        elif isinstance(o, Reconciled):
            # written with the settlements of the found items (a unit adds it last),
            # in the transaction of the queue's next flush: a crash before it loses
            # the record, and the next run reads that book once more (harmless)
            self._reconciled[o.queue].append((o.book_id, o.kind))
            if len(self._reconciled[o.queue]) >= DEFER_BATCH:
                self.flush(o.queue)
        elif isinstance(o, Lost):
            self.lost = self.lost or o.message
            self.state.stop.set()
        else:  # pragma: no cover - a new outcome kind without a recorder
            raise TypeError(f"unknown outcome {o!r}")

    def overlap(self) -> AbstractContextManager[None]:
        """Within the block the store writes go to the writer thread (see the module)."""
        return self.writer.overlap(enabled=not self.store.in_transaction)

    def close(self) -> None:
        self.writer.close()

    # ------------------------------------------------------------ tallies
    def _tick(self, n: int) -> None:
        self.done += n
        if self.on_progress is not None:
            self.on_progress(self.done, self.total)

    def _settle(self, queue: str, items: list[QueueItem]) -> None:
        self.settled[queue].update(i.id for i in items)
        self._tick(len(items))

    def unsettled(self, queue: str, items: Iterable[QueueItem]) -> list[QueueItem]:
        done = self.settled[queue]
        return [i for i in items if i.id not in done]

    def synced(self, queue: str, items: list[QueueItem], *, defer: bool = False,
               **history: Any) -> None:
        """Confirmed: move to synced history.  ``defer`` groups the moves into fewer
        transactions; only for rows whose loss of that record is harmless: uploads the
        server deduplicates or that are idempotent (a crash means a resend), and
        sessions, which stay marked in flight until the move is written (a crash means
        a check of the server, then no resend)."""
        if not items:
            return
        self.report.queues[queue].synced += len(items)
        self._settle(queue, items)
        move = ([i.id for i in items], history)
        if defer:
            self._deferred[queue].append(move)
            self._deferred_rows[queue] += len(move[0])
            if len(self._deferred[queue]) >= DEFER_BATCH:
                self.flush(queue)
            return
        self._write(self._move, queue, move[0], history)

    def _move(self, queue: str, ids: list[int], history: dict[str, Any]) -> None:
        moved = self.store.move_to_history(queue, ids, **history)
        if moved < len(ids):  # a newer value was queued meanwhile (ratings/progress)
            log.info("%d %s rows got a newer value during the run and stay queued",
                     len(ids) - moved, queue)

    def flush(self, queue: str) -> None:
        """Write the queue's deferred history moves, then its reconciliation records
        (whose found items are among those moves), in one transaction."""
        moves, self._deferred[queue] = self._deferred[queue], []
        self._deferred_rows[queue] = 0
        done, self._reconciled[queue] = self._reconciled[queue], []
        if moves or done:
            self._write(self._flush, queue, moves, done)

    def _flush(self, queue: str, moves: list[tuple[list[int], dict[str, Any]]],
               done: list[tuple[int, ReconcileKind]]) -> None:
        with self.store.transaction():
            if moves:
                self.store.move_many_to_history(queue, moves)
            by_kind: dict[ReconcileKind, list[int]] = defaultdict(list)
            for book_id, kind in done:
                by_kind[kind].append(book_id)
            for kind, book_ids in by_kind.items():
                self.store.record_reconciled(book_ids, kind)

    def fail(self, queue: str, items: list[QueueItem], reason: str, *,
             status: int | None = None, count: bool = True, state: str = "pending") -> None:
        if not items:
            return
        # An item whose earlier upload has an unknown outcome (uncertain, or in flight
        # when a run died) may already be on the server: failing it again (server lost,
        # its check failed, an account refused…) must not make it 'pending', or a later
        # run would resend it unchecked (§4.1 "Exactly once").  It stays uncertain.
        doubtful = {i.id for i in items if i.state in UNCERTAIN_STATES} \
            if state == "pending" else set()
        for ids, new_state in (([i.id for i in items if i.id not in doubtful], state),
                               (sorted(doubtful), "uncertain")):
            if ids:
                self._write(self.store.record_attempt, queue, ids, error=reason,
                            status=status, count_attempt=count, state=new_state)
        tally = self.report.queues[queue]
        tally.failed += len(items)
        tally.fail_reasons[_reason_class(reason)] += len(items)
        self._settle(queue, items)

    def skip(self, queue: str, items: list[QueueItem], reason: str) -> None:
        if not items:
            return
        self._write(self.store.record_skip, queue, [i.id for i in items], reason)
        tally = self.report.queues[queue]
        tally.skipped += len(items)
        tally.skip_reasons[reason] += len(items)
        self._settle(queue, items)

    def missing(self, queue: str, items: list[QueueItem], account: str) -> None:
        self.report.missing_accounts.add(account)
        self.skip(queue, items, f"needs the {account_name(account)}, which is not configured")

    def gone(self, queue: str, items: list[QueueItem], *, reset: bool = False) -> None:
        """404 "Book not found": the stored ID is stale; the book becomes unmatched."""
        if reset:
            self._write(self.store.set_state, queue, [i.id for i in items], "pending")
        for cache_id in {i.cache_id for i in items if i.cache_id is not None}:
            self._write(self.store.set_book_id, cache_id, None, None)
        for book_id in {i.book_id for i in items if i.book_id is not None}:
            # and drop kept links to the dead ID
            self._write(self.store.book_not_found, book_id)
        self.skip(queue, items, BOOK_GONE)

    def usable(self, queue: str, items: list[QueueItem], account: str) -> bool:
        """Whether the account a queue needs is configured and alive; settles items if not."""
        if account not in self.state.accounts:
            self.missing(queue, items, account)
            return False
        dead = self.state.dead_account(account)
        if dead is not None:
            self.fail(queue, items, account_trouble(dead), status=dead.status, count=False)
            return False
        return True

    def dead_accounts(self) -> dict[str, E.AuthError]:
        return self.state.dead_snapshot()


def _reason_class(reason: str) -> str:
    return reason if len(reason) <= 120 else reason[:117] + "..."

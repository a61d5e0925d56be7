"""Sync Pending Now (spec §4.1): upload every queue exactly once.

Order: resolve book IDs → ratings → annotations → bookmarks → progress → sessions; a
phase ends before the next begins.  Each phase *plans* (pure functions of the queue
rows and what the run learnt, :mod:`~booklore_sync.sync.plan`), *executes* the
plan's work units — one book each, at most ``http.max_concurrency`` at once on the
client's one connection pool (:mod:`~booklore_sync.sync.execute`,
:mod:`~booklore_sync.sync.uploads`, :mod:`~booklore_sync.sync.reading`) — and
*records* every outcome in the ledger (:mod:`~booklore_sync.sync.ledger`), on this
thread alone (its store writes, in order, on the ledger's writer thread while the
units run: :mod:`~booklore_sync.sync.writer`).  Client errors become outcomes in one place
(:func:`~booklore_sync.sync.outcomes.classify`).  Server capabilities are the
client's: the engine only asks it (``client.capabilities``).

First contact: before the first upload of a book's sessions, v1 book notes or PDF
bookmarks to this server, the unit reads what the server holds of that kind and
settles what is already there (:mod:`~booklore_sync.sync.reconcile`); the store
remembers it per server identity, book and kind.

Exactly once: the server does not deduplicate sessions, v1 book notes or bookmarks
without a CFI.  Rows of those kinds are marked ``in_flight`` (durably, in one
transaction) before the phase's first request leaves; a run that finds rows
``in_flight`` (a killed process) or ``uncertain`` (an unknown outcome) first asks
BookLore what it already holds for the book and sends only what is missing — no
sooner than the settle wait after the request was abandoned (a server may apply a
request after the client gave up on it).  Every
confirmed upload moves its rows to synced history in the transaction that deletes
them from the queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from booklore_sync.booklore import errors as E
from booklore_sync.booklore.capabilities import Capabilities
from booklore_sync.common.vocab import ReconcileKind
from booklore_sync.store.queries import QUEUES
from booklore_sync.store.types import ServerIdentity
from booklore_sync.sync import plan as P
from booklore_sync.sync import reconcile as R
from booklore_sync.sync import server_state as S
from booklore_sync.sync.execute import Pool, RunState
from booklore_sync.sync.ledger import Ledger
from booklore_sync.sync.outcomes import (  # noqa: F401  (re-exported: the engine's vocabulary)
    NEEDS_CHECK,
    NO_BY_HASH,
    NOT_MATCHED,
    UNCERTAIN_STATES,
    UNKNOWN_TO_SERVER,
    account_trouble,
)
from booklore_sync.sync.plan import RATING_GROUP_MAX  # noqa: F401
from booklore_sync.sync.progress import progress_unit
from booklore_sync.sync.reading import sessions_unit
from booklore_sync.sync.report import SyncReport
from booklore_sync.sync.resolve import Known, Resolver, ServerLost, caps_of
from booklore_sync.sync.uploads import (
    Worker,
    annotations_unit,
    bookmarks_unit,
    ratings_unit,
    run_unit,
)

if TYPE_CHECKING:
    from booklore_sync.store.db import QueueItem, Store

log = logging.getLogger(__name__)

BATCH_SIZE = 100  # sessions per batch request (read at run time: tests shrink it)
DEFAULT_CONCURRENCY = 4
U = TypeVar("U")


class SyncEngine:
    """One run of Sync Pending Now against one client and one store.

    ``only_fingerprints`` restricts the run to the items of those books (the
    uploads that follow a new match, spec §4.3).  ``max_concurrency`` overrides the
    ``http.max_concurrency`` setting.
    """

    def __init__(
        self,
        store: Store,
        client: Any,
        settings: Mapping[str, Any],
        *,
        accounts: Iterable[str] = ("booklore", "koreader"),
        only_fingerprints: Iterable[str] | None = None,
        on_progress: Callable[[int, int], None] | None = None,
        on_resolve: Callable[[int, int], None] | None = None,  # books resolved, of all
        max_concurrency: int | None = None,
        identity: ServerIdentity | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.accounts = set(accounts)
        self.only = set(only_fingerprints) if only_fingerprints is not None else None
        self.report = SyncReport()
        self.state = RunState(self.accounts)
        self.ledger = Ledger(store, self.report, self.state, on_progress)
        self.on_resolve = on_resolve
        if max_concurrency is None:
            max_concurrency = int(settings.get("http.max_concurrency") or DEFAULT_CONCURRENCY)
        self.pool = Pool(max_concurrency, self.state)
        self.books: dict[str, Known] = {}
        self._lookup_failed: dict[str, E.BookLoreError] = {}
        self._items: dict[str, list[QueueItem]] = {}
        self.identity = identity or R.identity_of(client)

    @property
    def caps(self) -> Capabilities | None:
        """The client's view of the server (probe result and what calls learnt since);
        the client alone owns it."""
        return caps_of(self.client)

    @property
    def dead_accounts(self) -> dict[str, E.AuthError]:
        return self.state.dead_snapshot()

    # ================================================================ run
    def run(self) -> SyncReport:
        probe_failed: E.BookLoreError | None = None
        caps = None
        if self.identity is not None:
            # reconciliation records belong to one server URL and account (§4.1):
            # a change forgets them (before the probe, which refills the cache)
            self.store.bind_server(self.identity)
        try:
            caps = self.client.probe()  # starts with the health probe (api §6 probe 1)
        except E.OfflineError as exc:
            self.report.offline = True
            self.report.messages.append(f"offline — nothing sent ({exc.message})")
            return self.report
        except E.NotBookLoreError as exc:
            self.report.config_errors.append(f"{exc.message} — check server.url")
            return self.report
        except (E.OutcomeUnknownError, E.ServerError) as exc:
            # no answer (or a 5xx) to a probe: server trouble, not a configuration
            # error — the run stops as when the server is lost later (spec §4.1)
            probe_failed = exc
        except E.BookLoreError as exc:
            self.report.config_errors.append(str(exc))
            return self.report
        if caps is not None and "koreader" in self.accounts:
            if caps.koreader_auth_ok is False:
                self.state.kill(E.AuthError(
                    "the server rejected the KOReader user name or password",
                    account="koreader", kind="rejected", status=403))
            elif caps.koreader_linked is False:
                self.state.kill(E.AuthError(
                    "the KOReader account is not linked to a BookLore user",
                    account="koreader", kind="not_linked", status=409))

        self._load_items()
        self.ledger.total = sum(len(v) for v in self._items.values())
        self._hold_unsettled()
        try:
            if probe_failed is not None:
                raise ServerLost(str(probe_failed))
            self._resolve()
            self._phase("ratings", self._sync_ratings)
            self._phase("annotations", self._sync_annotations)
            self._phase("bookmarks", self._sync_bookmarks)
            self._phase("progress", self._sync_progress)
            self._phase("sessions", self._sync_sessions)
        except ServerLost as exc:
            self.report.server_lost = True
            self.report.messages.append(f"the server stopped answering during the run ({exc});"
                                        " what was confirmed stays synced, the rest stays queued")
            for queue, items in self._items.items():
                self.ledger.fail(queue, self.ledger.unsettled(queue, items),
                                 "server unreachable — not attempted", count=False)
        finally:
            self.pool.close()
            self.ledger.close()
        for account, dead in self.state.dead_snapshot().items():
            if dead.kind == "rate_limited":
                self.report.messages.append("login rate-limited — wait 15 minutes")
            else:
                self.report.rejected_accounts[account] = account_trouble(dead)
        return self.report

    def _load_items(self) -> None:
        for queue in QUEUES:
            items = self.store.pending(queue)
            if self.only is not None:
                items = [i for i in items if i.fingerprint in self.only]
            if not self.settings.get(f"sync.{queue}", True):
                self.ledger.skip(queue, items,
                                 f"the {queue} queue is switched off (sync.{queue} = false)")
                items = []
            self._items[queue] = items

    def _hold_unsettled(self) -> None:
        """Unknown outcomes wait for the server to settle (§4.1 "Exactly once")."""
        wait = R.settle_wait(self.settings)
        for queue in ("annotations", "bookmarks", "sessions"):
            ready, waiting = R.split_waiting(self._items[queue], wait)
            for reason, items in waiting.items():
                self.ledger.skip(queue, items, reason)
            self._items[queue] = ready

    def _first_contact(self, kind: ReconcileKind, units: Sequence[Any],
                       wanted: Callable[[Any], bool]) -> None:
        """Flag the wanted units whose book this server never saw reconciled for ``kind``."""
        if not units or not self.state.alive("booklore"):
            return
        done = self.store.reconciled_books(kind)
        for unit in units:
            unit.reconcile = unit.book_id not in done and wanted(unit)

    def _phase(self, queue: str, fn: Callable[[list[QueueItem]], None]) -> None:
        items = self.ledger.unsettled(queue, self._items[queue])
        if not items:
            return
        try:
            fn(items)
        except ServerLost:
            raise
        except Exception as exc:  # a bug or an unforeseen answer: isolate the phase
            log.exception("the %s phase failed", queue)
            self.state.stop.clear()  # the next phase starts requests again
            self.ledger.fail(queue, self.ledger.unsettled(queue, items),
                             f"internal error in the {queue} phase: {exc!r}")
        finally:
            self.ledger.flush(queue)

    # ============================================================ execute
    def _execute(self, units: Sequence[U], body: Callable[[Worker, U], None]) -> None:
        """Run the units on the pool, recording each one's outcomes as it completes."""
        def one(unit: U) -> list[Any]:
            return run_unit(lambda w: body(w, unit), self.client, self.state)

        with self.ledger.overlap():
            for outcomes in self.pool.run(one, units):
                self.ledger.record_all(outcomes)
        if self.ledger.lost is not None:
            raise ServerLost(self.ledger.lost)

    def _execute_guarded(self, queue: str, mark: list[int], units: Sequence[U],
                         body: Callable[[Worker, U], None], redo: Sequence[int] = ()) -> None:
        """Like _execute, for uploads the server does not deduplicate: their rows are
        durably in flight before any request leaves; those not sent after all go back
        to pending.  After a crash (any other BaseException) they stay in flight, and
        the next run asks the server before sending any of them again.

        ``redo``: doubtful rows this run checks (and resends if absent): marked too, so
        a resend's late answer gets its own settle wait; unsent, they stay uncertain."""
        self.store.set_state(queue, [*mark, *redo], "in_flight")
        try:
            self._execute(units, body)
        except (Exception, KeyboardInterrupt):
            self._unmark(queue, mark, redo)
            raise
        self._unmark(queue, mark, redo)

    def _unmark(self, queue: str, mark: list[int], redo: Sequence[int] = ()) -> None:
        self.ledger.flush(queue)
        attempted = self.ledger.attempted
        self.store.set_state(queue, [i for i in mark if i not in attempted], "pending")
        self.store.set_state(queue, [i for i in redo if i not in attempted], "uncertain")

    # ============================================================ resolve
    def _resolve(self) -> None:
        """Find the BookLore ID of every fingerprint with queued items (once each)."""
        resolver = Resolver(self.store, self.client, self.state, self.pool, self.report,
                            on_progress=self.on_resolve)
        try:
            resolver.resolve(self._items)
        finally:
            self.books, self._lookup_failed = resolver.books, resolver.failed

    def _matched(self, queue: str, items: list[QueueItem]) -> list[QueueItem]:
        caps = self.caps
        no_hash = caps is not None and not caps.by_hash_koreader and not caps.by_hash_bearer
        ready, outcomes = P.split_matched(queue, items, self._lookup_failed, no_hash)
        self.ledger.record_all(outcomes)
        return ready

    # ============================================================= phases
    def _sync_ratings(self, items: list[QueueItem]) -> None:
        items = self._matched("ratings", items)
        if not items or not self.ledger.usable("ratings", items, "booklore"):
            return
        self._execute(P.plan_ratings(items), ratings_unit)

    def _known_remote(self, queue: str, units: list[P.BookUnit]) -> None:
        """The server ids this store already holds for books whose doubtful items will
        be checked (an earlier upload is resolved only against the server's others)."""
        for unit in units:
            if unit.reconcile or unit.book_id in P.needs_remote_ids([unit]):
                unit.known_remote = frozenset(self.store.remote_ids(queue, unit.book_id))

    def _sync_annotations(self, items: list[QueueItem]) -> None:
        destination = self.settings.get("annotations.notes_destination", "in_book")
        units, outcomes = P.plan_annotations(self._matched("annotations", items), destination)
        self.ledger.record_all(outcomes)
        self._first_contact(ReconcileKind.BOOK_NOTES, units, lambda u: any(
            P.guarded(i, u.parts.get(i.id)) for i in u.items))
        self._known_remote("annotations", units)
        alive = self.state.alive("booklore")
        mark, redo = (P.to_mark_in_flight(units), P.to_recheck(units)) if alive else ([], [])
        self._execute_guarded("annotations", mark, units, annotations_unit, redo)

    def _sync_bookmarks(self, items: list[QueueItem]) -> None:
        units, outcomes = P.plan_bookmarks(self._matched("bookmarks", items))
        self.ledger.record_all(outcomes)
        self._first_contact(ReconcileKind.PDF_BOOKMARKS, units, lambda u: any(
            i.payload.get("paged") and not i.payload.get("cfi") for i in u.items))
        self._known_remote("bookmarks", units)
        alive = self.state.alive("booklore")
        mark, redo = (P.to_mark_in_flight(units), P.to_recheck(units)) if alive else ([], [])
        self._execute_guarded("bookmarks", mark, units, bookmarks_unit, redo)

    def _sync_progress(self, items: list[QueueItem]) -> None:
        if not self.ledger.usable("progress", items, "koreader"):
            return
        device = str(self.settings.get("device.name") or "booklore-sync")
        raws = self._server_books(items, lambda i: True)
        units = S.progress_units(self.store, items, self.books, raws)
        sync_off = threading.Event()
        self._execute(units, lambda w, u: progress_unit(w, u, device, sync_off))
        if sync_off.is_set():
            self.report.sync_disabled = True
            self.report.note_sync_off()

    def _sync_sessions(self, items: list[QueueItem]) -> None:
        items = self._matched("sessions", items)
        if not items:
            return
        caps = self.caps
        upstream = caps is not None and caps.flavour == "upstream"
        if upstream or not self.state.alive("koreader"):
            if not self.ledger.usable("sessions", items, "booklore"):
                return
        raws = self._server_books(items)

        units, outcomes = P.plan_sessions(
            items, lambda i: P.session_book_type(i, S.book_raw(self.books, raws, i)), BATCH_SIZE)
        self.ledger.record_all(outcomes)
        units = self._reconcile_sessions(units)
        every = [i for u in units for _, group in u.groups for i in group]
        mark = [i.id for i in every if not P.doubtful(i)]
        redo = [i.id for i in every if P.doubtful(i)] if self.state.alive("booklore") else []
        self._execute_guarded("sessions", mark, units,
                              lambda w, u: sessions_unit(w, u, self._batch_on), redo)

    def _reconcile_sessions(self, units: list[P.SessionUnit]) -> list[P.SessionUnit]:
        """First contact for sessions (§4.1) needs the BookLore account: without it they
        go unchecked (said once); with it refused, never-reconciled books wait."""
        self._first_contact(ReconcileKind.SESSIONS, units, lambda u: True)
        if self.state.alive("booklore"):
            return units
        done = self.store.reconciled_books(ReconcileKind.SESSIONS)
        fresh = [u for u in units if u.book_id not in done]
        dead = self.state.dead_account("booklore")
        if fresh and dead is None:
            self.report.messages.append(R.unchecked_message(len(fresh)))
        elif fresh and dead is not None:
            held = [i for u in fresh for _, group in u.groups for i in group]
            self.ledger.fail("sessions", held, account_trouble(dead), status=dead.status,
                             count=False)
            return [u for u in units if u.book_id in done]
        return units

    def _batch_on(self) -> bool:
        """Whether to try a session batch now: the client's verdict, which keeps a
        fork's transient 500 to this run and remembers only a route-missing answer
        (spec §4.1 "Sessions", api §6 probe 6)."""
        return bool(getattr(self.client, "batch_enabled", False))

    def _server_books(self, items: list[QueueItem],
                      wanted_for: Callable[[QueueItem], bool] = P.needs_server_type,
                      ) -> S.Raws:
        """The server's Book of the items' books this run does not hold yet."""
        return S.read_server_books(items, self.books, self.client, self.state, self.pool,
                                   wanted_for)

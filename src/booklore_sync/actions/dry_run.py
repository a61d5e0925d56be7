"""`sync --dry-run`: what a sync would send, per queue and book (spec §4.1 last
paragraph, §6.2, §6.4).

It goes through a sync's steps with read requests only — the health probe and the
capability probes (login included), the by-hash lookups, the first-contact
reconciliation reads and the server-state reads — sends nothing, takes no lock and
changes nothing in the store (no capability cache, no binding to the server, no
status observation, no book ID written).  Per queue it counts:

* ``would_send``: the items a sync would upload now;
* ``already_there``: the items a sync would settle without an upload — sessions that
  overlap a server session and v1 book notes / PDF bookmarks the server holds (the
  first-contact rules of :mod:`~booklore_sync.sync.reconcile`), reading positions not
  newer than the server's (the newest-wins verdict of
  :mod:`~booklore_sync.sync.progress`);
* ``skipped``: the items a sync would leave queued without trying (unmatched or
  unknown book, no CFI, unknown format, queue switched off, account missing or
  refused, waiting for the server to settle an earlier upload, a read that failed).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from booklore_sync.actions.base import (
    CONFIG,
    EXIT_FAILED,
    EXIT_OFFLINE,
    EXIT_USAGE,
    OFFLINE,
    ActionError,
    client_error,
    config_error,
    make_client,
    server_url,
    session,
)
from booklore_sync.actions.sync import configured_accounts
from booklore_sync.booklore import errors as E
from booklore_sync.common.vocab import ReconcileKind
from booklore_sync.config import Config, ConfigError
from booklore_sync.server_url import reason_only
from booklore_sync.store import QUEUES
from booklore_sync.sync import plan as P
from booklore_sync.sync import reconcile as R
from booklore_sync.sync.execute import Pool, RunState
from booklore_sync.sync.outcomes import Outcome
from booklore_sync.sync.progress import KO_TO_SERVER, PROTECTED, book_times, parse_time, verdict
from booklore_sync.sync.report import SyncReport
from booklore_sync.sync.resolve import Known, Resolver, ServerLost
from booklore_sync.sync.uploads import Worker

if TYPE_CHECKING:
    from booklore_sync.store import Store
    from booklore_sync.store.db import QueueItem

U = TypeVar("U")
V = TypeVar("V")
WOULD, THERE, SKIP = "would_send", "already_there", "skipped"


@dataclass
class DryRun:
    counts: dict[str, dict[str, int]] = field(default_factory=lambda: {
        q: {WOULD: 0, THERE: 0, SKIP: 0} for q in QUEUES})
    per_book: dict[str, dict[str, int]] = field(default_factory=dict)  # would_send per book
    offline: bool = False
    error: ActionError | None = None
    messages: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"dry_run": True}
        data.update({q: dict(self.counts[q]) for q in QUEUES})
        data["offline"] = self.offline
        return data

    @property
    def book_lines(self) -> list[str]:
        return [f"  {name}: " + ", ".join(f"{n} {q}" for q, n in per.items())
                for name, per in self.per_book.items()]

    def add(self, verdict: str, items: Iterable[QueueItem]) -> None:
        for item in items:
            self.counts[item.queue][verdict] += 1
            if verdict == WOULD:
                per = self.per_book.setdefault(item.display_name, {})
                per[item.queue] = per.get(item.queue, 0) + 1


def dry_run(cfg: Config) -> DryRun:
    """What ``sync`` would do now; never raises for a user error (``error`` says why)."""
    out = DryRun()
    try:
        with session(cfg, lock=False, client=False) as s:
            url = server_url(cfg)
            try:
                client = make_client(cfg)  # without the store's capability cache: no write
            except ConfigError as exc:
                raise config_error(exc) from None
            try:
                Preview(s.store, client, cfg.settings(), configured_accounts(cfg), out).run()
            except E.OfflineError as exc:
                out.offline = True
                out.error = ActionError(OFFLINE, f"offline — nothing sent (cannot connect to "
                                        f"{url}: {reason_only(exc.message, url)})", EXIT_OFFLINE)
            except E.NotBookLoreError as exc:
                out.error = ActionError(CONFIG, f"{exc.message} — check server.url", EXIT_USAGE)
            except ServerLost as exc:
                out.error = ActionError(OFFLINE, f"the server at {url} stopped answering during "
                                        f"the dry run ({exc}); nothing was sent", EXIT_FAILED)
            except E.BookLoreError as exc:
                out.error = client_error(exc, url, action="nothing was sent")
            finally:
                client.close()
    except ActionError as exc:
        out.error = exc
    return out


class Preview:
    """One dry run: a sync's plan and reads, settled into counts instead of uploads."""

    def __init__(self, store: Store, client: Any, settings: Any, accounts: Iterable[str],
                 out: DryRun) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.out = out
        self.state = RunState(accounts)
        self.pool = Pool(int(settings.get("http.max_concurrency") or 4), self.state)
        self.books: dict[str, Known] = {}
        self.failed: dict[str, E.BookLoreError] = {}
        self.raws: dict[int, dict[str, Any] | None] = {}
        self.unreadable = 0
        # the store's reconciliation records and status sightings count only when they
        # belong to this server and these accounts (a sync would forget them otherwise)
        identity = R.identity_of(client)
        self.same_server = identity is not None and store.server_identity() == identity

    # ------------------------------------------------------------------ the run
    def run(self) -> None:
        caps = self.client.probe()  # health probe first; offline and the like propagate
        if "koreader" in self.state.accounts:
            if caps.koreader_auth_ok is False:
                self.state.kill(E.AuthError("the server rejected the KOReader user name or "
                                            "password", account="koreader", kind="rejected",
                                            status=403))
            elif caps.koreader_linked is False:
                self.state.kill(E.AuthError("the KOReader account is not linked to a BookLore "
                                            "user", account="koreader", kind="not_linked",
                                            status=409))
        if "booklore" in self.state.accounts and caps.booklore_auth_ok is False:
            self.state.kill(E.AuthError("the server rejected the BookLore user name or password",
                                        account="booklore", kind="rejected", status=401))
        try:
            items = self._load()
            resolver = Resolver(self.store, self.client, self.state, self.pool, SyncReport(),
                                persist=False)
            try:
                resolver.resolve(items)
            finally:
                self.books, self.failed = resolver.books, resolver.failed
            no_hash = not caps.by_hash_koreader and not caps.by_hash_bearer
            for queue in QUEUES:
                ready, outcomes = P.split_matched(queue, items[queue], self.failed, no_hash)
                if queue == "progress":  # positions go by fingerprint: unmatched ones too
                    ready = items[queue]
                    outcomes = []
                self._settle(outcomes)
                if ready:
                    getattr(self, f"_{queue}")(ready)
        finally:
            self.pool.close()
        if self.unreadable:
            self.out.messages.append(f"{self.unreadable} items could not be checked (a read "
                                     "failed); they count as skipped")
        for dead in self.state.dead_snapshot().values():
            raise dead  # an account problem ends the dry run as it ends a sync (exit 2)

    def _load(self) -> dict[str, list[QueueItem]]:
        wait = R.settle_wait(self.settings)
        items: dict[str, list[QueueItem]] = {}
        for queue in QUEUES:
            rows = self.store.pending(queue)
            if not self.settings.get(f"sync.{queue}", True):
                self.out.add(SKIP, rows)
                rows = []
            if queue in ("annotations", "bookmarks", "sessions"):
                rows, waiting = R.split_waiting(rows, wait)
                for held in waiting.values():
                    self.out.add(SKIP, held)
            items[queue] = rows
        return items

    def _settle(self, outcomes: Iterable[Outcome]) -> None:
        for outcome in outcomes:  # unmatched, no CFI, unknown format, a failed lookup:
            self.out.add(SKIP, outcome.items)  # all left queued without an upload

    def _usable(self, items: list[QueueItem], account: str) -> bool:
        if self.state.alive(account):
            return True
        self.out.add(SKIP, items)
        return False

    def _reconciled(self, kind: ReconcileKind) -> set[int]:
        return self.store.reconciled_books(kind) if self.same_server else set()

    def _reads(self, fn: Callable[[U], V], units: Sequence[U]) -> list[tuple[U, V | None]]:
        """Run one read per unit on the pool: (unit, result or None when it failed)."""
        def one(unit: U) -> tuple[U, V | None, str | None]:
            if self.state.stop.is_set():
                return unit, None, None
            try:
                return unit, fn(unit), None
            except E.OfflineError as exc:
                self.state.stop.set()
                return unit, None, str(exc)
            except E.AuthError as exc:
                self.state.kill(exc)
                return unit, None, None
            except E.BookLoreError:
                return unit, None, None

        results: list[tuple[U, V | None]] = []
        lost = None
        for unit, value, offline in self.pool.run(one, list(units)):
            results.append((unit, value))
            lost = lost or offline
        if lost is not None:
            raise ServerLost(lost)
        return results

    def _unreadable(self, items: list[QueueItem]) -> None:
        self.unreadable += len(items)
        self.out.add(SKIP, items)

    # ------------------------------------------------------------------ queues
    def _ratings(self, items: list[QueueItem]) -> None:
        if self._usable(items, "booklore"):  # a rating is set, never duplicated
            self.out.add(WOULD, items)

    def _annotations(self, items: list[QueueItem]) -> None:
        if not self._usable(items, "booklore"):
            return
        destination = self.settings.get("annotations.notes_destination", "in_book")
        units, outcomes = P.plan_annotations(items, destination)
        self._settle(outcomes)
        done = self._reconciled(ReconcileKind.BOOK_NOTES)
        check = [k for k, u in enumerate(units) if any(
            P.guarded(i, u.parts.get(i.id)) and (u.book_id not in done or P.doubtful(i))
            for i in u.items)]
        read = dict(self._reads(lambda k: self.client.book_notes_v1(units[k].book_id), check))
        for k, unit in enumerate(units):
            if k in read and read[k] is None:
                self._unreadable(unit.items)
                continue
            guarded = [i for i in unit.items if P.guarded(i, unit.parts.get(i.id))]
            found = (R.match_notes(guarded, read[k] or [],
                                   exclude=self.store.remote_ids("annotations", unit.book_id))
                     if k in read else {})
            for item in unit.items:
                rest = set(unit.parts.get(item.id, [])) - set(item.done_parts)
                there = item.id in found and rest <= {"book_note"}
                self.out.add(THERE if there else WOULD, [item])

    def _bookmarks(self, items: list[QueueItem]) -> None:
        if not self._usable(items, "booklore"):
            return
        units, outcomes = P.plan_bookmarks(items)
        self._settle(outcomes)
        done = self._reconciled(ReconcileKind.PDF_BOOKMARKS)
        check = [k for k, u in enumerate(units) if any(
            P.guarded(i) and (u.book_id not in done or P.doubtful(i)) for i in u.items)]
        read = dict(self._reads(lambda k: self.client.bookmarks(units[k].book_id), check))
        for k, unit in enumerate(units):
            if k in read and read[k] is None:
                self._unreadable(unit.items)
                continue
            guarded = [i for i in unit.items if P.guarded(i) and not i.payload.get("cfi")]
            found = (R.match_bookmarks(guarded, read[k] or [],
                                       exclude=self.store.remote_ids("bookmarks", unit.book_id))
                     if k in read else {})
            for item in unit.items:
                self.out.add(THERE if item.id in found else WOULD, [item])

    def _sessions(self, items: list[QueueItem]) -> None:
        caps = getattr(self.client, "capabilities", None)
        upstream = caps is not None and getattr(caps, "flavour", None) == "upstream"
        if (upstream or not self.state.alive("koreader")) and not self._usable(items, "booklore"):
            return
        self._server_books([i for i in items if P.needs_server_type(i)])
        units, outcomes = P.plan_sessions(
            items, lambda i: P.session_book_type(i, self._raw(i)), 100)
        self._settle(outcomes)
        done = self._reconciled(ReconcileKind.SESSIONS)
        every = {u.book_id: [i for _, group in u.groups for i in group] for u in units}
        check = [b for b, group in every.items()
                 if b not in done or any(P.doubtful(i) for i in group)]
        if not self.state.alive("booklore"):
            # without the BookLore account a sync sends them unchecked; doubtful ones
            # await a check that cannot be made
            for group in every.values():
                self.out.add(SKIP, [i for i in group if P.doubtful(i)])
                self.out.add(WOULD, [i for i in group if not P.doubtful(i)])
            return

        def server_sessions(book_id: int) -> list[Any]:
            spans = [s for s in (R.session_range(i.payload) for i in every[book_id]) if s]
            earliest = (datetime.fromtimestamp(min(s[0] for s in spans), timezone.utc)
                        if spans else None)
            return list(self.client.iter_sessions(book_id, ending_after=earliest))

        read = dict(self._reads(server_sessions, check))
        for book_id, group in every.items():
            if book_id in read and read[book_id] is None:
                self._unreadable(group)
                continue
            found = {i.id for i in R.overlapping_sessions(group, read.get(book_id) or [])}
            for item in group:
                self.out.add(THERE if item.id in found else WOULD, [item])

    def _progress(self, items: list[QueueItem]) -> None:
        if not self._usable(items, "koreader"):
            return
        self._server_books(items)
        worker = Worker(self.client, self.state)
        for item in items:
            try:
                self.out.add(self._position(worker, item), [item])
            except E.OfflineError as exc:
                raise ServerLost(str(exc)) from None
            except E.AuthError as exc:
                self.state.kill(exc)
                self.out.add(SKIP, [item])
            except E.NotFoundError:
                # fingerprint unknown to the server: a sync sends by book ID if it can
                self.out.add(WOULD if item.book_id is not None else SKIP, [item])
            except E.BookLoreError:
                self._unreadable([item])

    # ------------------------------------------------------------------ progress
    def _position(self, worker: Worker, item: QueueItem) -> str:
        """The newest-wins verdict of a sync (reads only), then KOReader's status."""
        raw = self._raw(item)
        book_id = item.book_id if item.book_id is not None else (
            self.books[item.fingerprint].book_id if item.fingerprint in self.books else None)
        status_seen = None
        status = raw.get("readStatus") if raw is not None else None
        if isinstance(status, str) and book_id is not None:
            obs = self.store.status_observation(book_id) if self.same_server else None
            status_seen = (parse_time(obs.first_seen) if obs is not None and obs.status == status
                           else time.time())  # a sync would see it first now
        own = self.store.last_synced_progress(item.fingerprint, pushed_only=True)
        last = self.store.last_synced_progress(item.fingerprint)
        record = self.store.progress_record(item.fingerprint)
        fraction = float(item.key["percentage"])
        settled = last is not None and last == (str(item.key["progress"]), fraction)
        unit = P.ProgressUnit(item, raw, (str(own[0]), float(own[1])) if own else None,
                              pushed_at=record["pushed_at"], status_seen=status_seen,
                              position_settled=settled)
        if not settled and verdict(worker, unit, fraction).push:
            return WOULD
        return WOULD if _status_would_go(unit) else THERE

    def _raw(self, item: QueueItem) -> dict[str, Any] | None:
        known = self.books.get(item.fingerprint)
        if known is not None and known.book_raw is not None:
            return known.book_raw
        return self.raws.get(item.book_id) if item.book_id is not None else None

    def _server_books(self, items: list[QueueItem]) -> None:
        """BookLore's Book of the matched books not read yet (the server state reads)."""
        wanted: dict[int, str] = {}
        for item in items:
            known = self.books.get(item.fingerprint)
            if (item.book_id is not None and item.book_id not in self.raws
                    and (known is None or known.book_raw is None)):
                wanted.setdefault(item.book_id, item.fingerprint)
        caps = getattr(self.client, "capabilities", None)
        if self.state.alive("booklore"):
            def fetch(book_id: int) -> dict[str, Any] | None:
                return dict(self.client.get_book(book_id).raw)
        elif self.state.alive("koreader") and caps is not None and caps.by_hash_koreader:
            def fetch(book_id: int) -> dict[str, Any] | None:
                found = self.client.book_by_hash(wanted[book_id])
                raw = found.raw if found is not None else None
                return dict(raw) if raw is not None and raw.get("id") == book_id else None
        else:
            return
        for book_id, raw in self._reads(fetch, list(wanted)):
            self.raws[book_id] = raw


def _status_would_go(unit: P.ProgressUnit) -> bool:
    """Whether a sync would set the server's read status from KOReader's (the rule of
    :func:`~booklore_sync.sync.progress.status_part`, without its request)."""
    item, raw = unit.item, unit.book_raw
    target = KO_TO_SERVER.get(str(item.payload.get("status") or ""))
    if target is None or raw is None or item.book_id is None:
        return False
    current = raw.get("readStatus")
    if current == target:
        return False
    times = [book_times(raw, unit.pushed_at)]
    if current in PROTECTED:
        times.append(unit.status_seen)
    known = [t for t in times if t is not None]
    status_time = item.payload.get("status_time")
    return status_time is not None and (not known or float(status_time) > max(known))


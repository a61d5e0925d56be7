"""Sync Pending Now (spec §4.1): upload every queue exactly once.

Order: resolve book IDs → ratings → annotations → bookmarks → progress →
sessions.  Each phase is isolated: an error in one item or one phase is
recorded on the items it concerns and the run goes on.

Exactly once: the server does not deduplicate sessions, v1 book notes or
bookmarks without a CFI.  Rows of those kinds are marked ``in_flight``
(durably) before their request leaves; a run that finds rows ``in_flight``
(a killed process) or ``uncertain`` (an unknown outcome) first asks BookLore
what it already holds for the book and sends only what is missing.  Every
confirmed upload moves its rows to synced history in the transaction that
deletes them from the queue.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from booklore_sync.booklore import errors as E
from booklore_sync.booklore.models import SessionIn, parse_time, truncate_utf16
from booklore_sync.store import QUEUES, QueueItem, Store
from booklore_sync.sync.report import SyncReport

log = logging.getLogger(__name__)

BATCH_SIZE = 100
DEFER_BATCH = 200  # history moves grouped per transaction (repeatable uploads only)
RATING_GROUP_MAX = 500
UNCERTAIN_STATES = ("in_flight", "uncertain")

# reasons (last_error texts) for skipped items
NOT_MATCHED = "book not matched to BookLore yet (run `booklore-sync match`)"
NO_BY_HASH = ("book not matched: this server cannot look books up by fingerprint "
              "(run `booklore-sync match` to match it by ISBN, title or by hand)")
UNKNOWN_TO_SERVER = "BookLore does not know this book's fingerprint"
NEEDS_CHECK = ("an earlier upload's outcome is unknown; checking what BookLore holds needs "
               "the BookLore account, which is not configured")


class ServerLost(Exception):
    """The server stopped answering during the run: stop, count no further attempts."""


@dataclass
class _Book:
    """What this run learnt about one fingerprint."""

    book_id: int | None = None
    looked_up: bool = False
    book_raw: dict[str, Any] | None = None


def _account_name(account: str) -> str:
    return "BookLore account" if account == "booklore" else "KOReader account"


class SyncEngine:
    """One run of Sync Pending Now against one client and one store.

    ``only_fingerprints`` restricts the run to the items of those books (the
    uploads that follow a new match, spec §4.3).
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
    ) -> None:
        self.store = store
        self.client = client
        self.settings = settings
        self.accounts = set(accounts)
        self.only = set(only_fingerprints) if only_fingerprints is not None else None
        self.on_progress = on_progress
        self.report = SyncReport()
        self.dead_accounts: dict[str, E.AuthError] = {}
        self.books: dict[str, _Book] = {}
        self.caps: Any = None
        self._settled: dict[str, set[int]] = {q: set() for q in QUEUES}
        self._lookup_failed: dict[str, E.BookLoreError] = {}
        self._server_types: dict[int, str] = {}
        # server ids matched to local items this run, per kind (ids are per table)
        self._claimed: dict[str, set[int]] = defaultdict(set)
        self._deferred: dict[str, list[tuple[list[int], dict[str, Any]]]] = defaultdict(list)
        self._found: list[tuple[str, int]] = []  # lookups not yet written to the cache
        self._in_flight: set[int] = set()  # sessions marked in flight by this run
        self._attempted: set[int] = set()  # sessions this run put into a request
        self._items: dict[str, list[QueueItem]] = {}
        self._done = 0
        self._total = 0

    # ================================================================ run
    def run(self) -> SyncReport:
        probe_failed: E.BookLoreError | None = None
        try:
            self.caps = self.client.probe()  # starts with the health probe (api §6 probe 1)
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
        if self.caps is not None and "koreader" in self.accounts:
            if self.caps.koreader_auth_ok is False:
                self.dead_accounts["koreader"] = E.AuthError(
                    "the server rejected the KOReader user name or password",
                    account="koreader", kind="rejected", status=403)
            elif self.caps.koreader_linked is False:
                self.dead_accounts["koreader"] = E.AuthError(
                    "the KOReader account is not linked to a BookLore user",
                    account="koreader", kind="not_linked", status=409)

        self._load_items()
        self._total = sum(len(v) for v in self._items.values())
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
                rest = [i for i in items if i.id not in self._settled[queue]]
                self._fail(queue, rest, "server unreachable — not attempted", count=False)
        for account, exc in self.dead_accounts.items():
            if exc.kind == "rate_limited":
                self.report.messages.append("login rate-limited — wait 15 minutes")
            else:
                self.report.rejected_accounts[account] = (
                    f"{_account_name(account)} {exc.kind.replace('_', ' ')}: {exc.message}")
        return self.report

    def _load_items(self) -> None:
        for queue in QUEUES:
            items = self.store.pending(queue)
            if self.only is not None:
                items = [i for i in items if i.fingerprint in self.only]
            if not self.settings.get(f"sync.{queue}", True):
                self._skip(queue, items, f"the {queue} queue is switched off (sync.{queue} = false)")
                items = []
            self._items[queue] = items

    def _phase(self, queue: str, fn: Callable[[list[QueueItem]], None]) -> None:
        items = [i for i in self._items[queue] if i.id not in self._settled[queue]]
        if not items:
            return
        try:
            fn(items)
        except ServerLost:
            raise
        except Exception as exc:  # a bug or an unforeseen answer: isolate the phase
            log.exception("the %s phase failed", queue)
            rest = [i for i in items if i.id not in self._settled[queue]]
            self._fail(queue, rest, f"internal error in the {queue} phase: {exc!r}")
        finally:
            self._flush(queue)

    # ============================================================ tallies
    def _tick(self, n: int) -> None:
        self._done += n
        if self.on_progress is not None:
            self.on_progress(self._done, self._total)

    def _synced(self, queue: str, items: list[QueueItem], *, defer: bool = False,
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
            if len(self._deferred[queue]) >= DEFER_BATCH:
                self._flush(queue)
            return
        moved = self.store.move_to_history(queue, move[0], **history)
        if moved < len(items):  # a newer value was queued meanwhile (ratings/progress)
            log.info("%d %s rows got a newer value during the run and stay queued",
                     len(items) - moved, queue)

    def _flush(self, queue: str) -> None:
        moves, self._deferred[queue] = self._deferred[queue], []
        if moves:
            self.store.move_many_to_history(queue, moves)

    def _fail(self, queue: str, items: list[QueueItem], reason: str, *, status: int | None = None,
              count: bool = True, state: str = "pending") -> None:
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
            self.store.record_attempt(queue, ids, error=reason, status=status,
                                      count_attempt=count, state=new_state)
        tally = self.report.queues[queue]
        tally.failed += len(items)
        tally.fail_reasons[_reason_class(reason)] += len(items)
        self._settle(queue, items)

    def _skip(self, queue: str, items: list[QueueItem], reason: str) -> None:
        if not items:
            return
        self.store.record_skip(queue, [i.id for i in items], reason)
        tally = self.report.queues[queue]
        tally.skipped += len(items)
        tally.skip_reasons[reason] += len(items)
        self._settle(queue, items)

    def _settle(self, queue: str, items: list[QueueItem]) -> None:
        self._settled[queue].update(i.id for i in items)
        self._tick(len(items))

    def _error(self, queue: str, items: list[QueueItem], exc: E.BookLoreError, *,
               state: str = "pending") -> None:
        """Record a definite error answer (or an unknown outcome) on items."""
        if isinstance(exc, E.OfflineError):
            raise ServerLost(str(exc))
        if isinstance(exc, E.AuthError):
            self.dead_accounts.setdefault(exc.account, exc)
            self._fail(queue, items, f"{_account_name(exc.account)} {exc.kind.replace('_', ' ')}:"
                       f" {exc.message}", status=exc.status, count=False)
            return
        if isinstance(exc, E.NotConfiguredError):
            self._missing(queue, items, exc.account)
            return
        self._fail(queue, items, exc.last_error, status=exc.status, state=state)

    def _missing(self, queue: str, items: list[QueueItem], account: str) -> None:
        self.report.missing_accounts.add(account)
        self._skip(queue, items, f"needs the {_account_name(account)}, which is not configured")

    def _usable(self, queue: str, items: list[QueueItem], account: str) -> bool:
        """Whether the account a queue needs is configured and alive; settles items if not."""
        if account not in self.accounts:
            self._missing(queue, items, account)
            return False
        dead = self.dead_accounts.get(account)
        if dead is not None:
            self._fail(queue, items, f"{_account_name(account)} {dead.kind.replace('_', ' ')}:"
                       f" {dead.message}", status=dead.status, count=False)
            return False
        return True

    # ============================================================ resolve
    def _resolve(self) -> None:
        """Find the BookLore ID of every fingerprint with queued items (once each)."""
        fingerprints: dict[str, None] = {}
        for items in self._items.values():
            for item in items:
                fingerprints.setdefault(item.fingerprint)
        try:
            for fp in fingerprints:
                book = self.store.get_book_by_hash(fp)
                if book is not None and book.book_id is not None:
                    self.books[fp] = _Book(book_id=book.book_id)
                    continue
                self.books[fp] = self._lookup(fp)
                if len(self._found) >= DEFER_BATCH:
                    self._store_found()
        finally:
            self._store_found()  # what was found stays found, even if the server goes away
        self._refresh_items()

    def _store_found(self) -> None:
        """Record the IDs found by lookups, several per transaction."""
        found, self._found = self._found, []
        if not found:
            return
        with self.store.transaction():
            for fp, book_id in found:
                cache_id = self.store.ensure_book_for_hash(fp)
                self.store.set_book_id(cache_id, book_id, "hash", 1.0)

    def _lookup(self, fp: str) -> _Book:
        caps = self.caps
        can_koreader = bool(caps and caps.by_hash_koreader) and "koreader" in self.accounts \
            and "koreader" not in self.dead_accounts
        can_bearer = bool(caps and caps.by_hash_bearer) and "booklore" in self.accounts \
            and "booklore" not in self.dead_accounts
        if not (can_koreader or can_bearer):
            return _Book(looked_up=False)
        try:
            found = self.client.find_book_by_hash(fp)
        except E.OfflineError as exc:
            raise ServerLost(str(exc)) from exc
        except E.AuthError as exc:
            self.dead_accounts.setdefault(exc.account, exc)
            return _Book(looked_up=False)
        except (E.UnsupportedEndpointError, E.NotConfiguredError):
            return _Book(looked_up=False)
        except E.BookLoreError as exc:
            self._lookup_failed[fp] = exc
            return _Book(looked_up=False)
        if found is None:
            return _Book(looked_up=True)
        self._found.append((fp, found.id))
        self.report.newly_matched += 1
        return _Book(book_id=found.id, looked_up=True, book_raw=found.raw)

    def _refresh_items(self) -> None:
        """Give the loaded rows the book IDs (and cache rows) the lookups found."""
        cache_ids: dict[str, int | None] = {}
        for items in self._items.values():
            for item in items:
                if item.book_id is not None:
                    continue
                found = self.books.get(item.fingerprint)
                if found is None or found.book_id is None:
                    continue
                if item.fingerprint not in cache_ids:
                    book = self.store.get_book_by_hash(item.fingerprint)
                    cache_ids[item.fingerprint] = book.id if book is not None else None
                item.book_id = found.book_id
                item.cache_id = cache_ids[item.fingerprint]

    def _split_matched(self, queue: str, items: list[QueueItem]) -> list[QueueItem]:
        """Items whose book has an ID; the others are skipped (or failed, on a lookup error)."""
        ready = []
        unmatched: list[QueueItem] = []
        for item in items:
            if item.book_id is not None:
                ready.append(item)
                continue
            failure = self._lookup_failed.get(item.fingerprint)
            if failure is not None:
                self._fail(queue, [item], f"looking the book up failed: {failure.last_error}",
                           status=failure.status)
            else:
                unmatched.append(item)
        if unmatched:
            caps = self.caps
            no_hash = caps is not None and not caps.by_hash_koreader and not caps.by_hash_bearer
            self._skip(queue, unmatched, NO_BY_HASH if no_hash else NOT_MATCHED)
        return ready

    def _book_gone(self, queue: str, items: list[QueueItem], exc: E.BookLoreError) -> None:
        """404 "Book not found": the stored ID is stale; the book becomes unmatched."""
        for cache_id in {i.cache_id for i in items if i.cache_id is not None}:
            self.store.set_book_id(cache_id, None, None)
        self._skip(queue, items, "book not found on server (its BookLore ID was cleared; "
                   "run `booklore-sync match`)")

    # ============================================================ ratings
    def _sync_ratings(self, items: list[QueueItem]) -> None:
        items = self._split_matched("ratings", items)
        if not items or not self._usable("ratings", items, "booklore"):
            return
        by_value: dict[int, list[QueueItem]] = defaultdict(list)
        for item in items:
            by_value[int(item.key["rating"])].append(item)
        for rating, group in by_value.items():
            by_book: dict[int, list[QueueItem]] = defaultdict(list)
            for item in group:
                by_book[item.book_id].append(item)  # type: ignore[index]
            ids = list(by_book)
            for start in range(0, len(ids), RATING_GROUP_MAX):
                chunk = ids[start:start + RATING_GROUP_MAX]
                if not self._usable("ratings", [i for b in chunk for i in by_book[b]], "booklore"):
                    continue
                try:
                    self.client.set_personal_rating(chunk, rating)
                except E.BookLoreError as exc:
                    if isinstance(exc, (E.OfflineError, E.AuthError, E.NotConfiguredError)):
                        self._error("ratings", [i for b in chunk for i in by_book[b]], exc)
                        continue
                    # one bad id must not block the rest: one book at a time
                    for book_id in chunk:
                        self._rate_one(book_id, rating, by_book[book_id])
                    continue
                for book_id in chunk:
                    self._synced_rating(book_id, rating, by_book[book_id])

    def _rate_one(self, book_id: int, rating: int, items: list[QueueItem]) -> None:
        if not self._usable("ratings", items, "booklore"):
            return
        try:
            self.client.set_personal_rating([book_id], rating)
        except E.UnknownRatingIdError as exc:
            self._book_gone("ratings", items, exc)
        except E.BookLoreError as exc:
            self._error("ratings", items, exc)
        else:
            self._synced_rating(book_id, rating, items)

    def _synced_rating(self, book_id: int, rating: int, items: list[QueueItem]) -> None:
        self._synced("ratings", items, book_id=book_id,
                     expected={i.id: (rating,) for i in items})

    # ======================================================== annotations
    def _sync_annotations(self, items: list[QueueItem]) -> None:
        destination = self.settings.get("annotations.notes_destination", "in_book")
        items = self._split_matched("annotations", items)
        for item in items:
            parts = self._annotation_parts(item, destination)
            if parts is None:
                continue  # settled (skipped) inside
            self._deliver_annotation(item, parts)

    def _annotation_parts(self, item: QueueItem, destination: str) -> list[str] | None:
        p = item.payload
        if p.get("paged"):
            return ["book_note"]
        if item.key["kind"] == "highlight":
            parts = ["annotation"]
        elif destination == "in_booklore":
            parts = ["book_note"]
        elif destination == "both":
            parts = ["note_v2", "book_note"]
        else:
            parts = ["note_v2"]
        if not p.get("cfi") and any(x in ("annotation", "note_v2") for x in parts):
            self._skip("annotations", [item], item.last_error or
                       "no EPUB CFI for this position (it cannot be placed in the book)")
            return None
        return parts

    def _deliver_annotation(self, item: QueueItem, parts: list[str]) -> None:
        if not self._usable("annotations", [item], "booklore"):
            return
        remote_id = None
        for part in parts:
            if part in item.done_parts:
                continue
            try:
                if part == "annotation":
                    remote_id = self._post_dedup(self.client.create_annotation, item.book_id,
                                                 **_annotation_body(item.payload))
                elif part == "note_v2":
                    remote_id = self._post_dedup(self.client.create_book_note_v2, item.book_id,
                                                 **_note_v2_body(item.payload))
                else:
                    remote_id = self._post_guarded_note(item)
                    if remote_id is _UNSETTLED:
                        return
            except E.NotFoundError as exc:
                self._book_gone("annotations", [item], exc)
                return
            except E.ServerError as exc:
                if exc.status == 500 and self._book_missing(item.book_id):
                    self._book_gone("annotations", [item], exc)
                else:
                    self._error("annotations", [item], exc)
                return
            except E.OutcomeUnknownError as exc:
                state = "uncertain" if part == "book_note" else "pending"
                self._fail("annotations", [item], f"outcome unknown: {exc.last_error}",
                           state=state)
                return
            except E.BookLoreError as exc:
                self._error("annotations", [item], exc)
                return
            if len(parts) > 1:
                self.store.mark_annotation_part(item.id, part, book_id=item.book_id,
                                                remote_id=_int_or_none(remote_id))
        self._synced("annotations", [item], book_id=item.book_id,
                     destination=parts[-1] if len(parts) == 1 else "both",
                     remote_id=_int_or_none(remote_id), defer="book_note" not in parts)

    def _post_dedup(self, send: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A POST the server deduplicates: 409 / "already exists" is success."""
        try:
            answer = send(*args, **kwargs)
        except E.AlreadyExistsError:
            return None
        return answer.get("id") if isinstance(answer, dict) else None

    def _book_missing(self, book_id: int | None) -> bool:
        if book_id is None:
            return False
        try:
            self.client.get_book(book_id)
        except E.NotFoundError:
            return True
        except E.BookLoreError:
            return False
        return False

    def _post_guarded_note(self, item: QueueItem) -> Any:
        """A v1 book note (not deduplicated): verify an earlier unknown outcome first."""
        title, content = _book_note_fields(item)
        if item.state in UNCERTAIN_STATES:
            found = self._find_unclaimed(
                "annotations", item, self.client.list_book_notes_v1,
                lambda n: (n.get("title") or None) == (truncate_utf16(title, 255) or None)
                and n.get("content") == content)
            if found is _UNSETTLED:
                return _UNSETTLED
            if found is not None:
                return found
        self.store.set_state("annotations", [item.id], "in_flight")
        answer = self.client.create_book_note_v1(item.book_id, title=title, content=content)
        return answer.get("id") if isinstance(answer, dict) else None

    def _find_unclaimed(self, queue: str, item: QueueItem,
                        listing: Callable[[int], list[dict[str, Any]]],
                        same: Callable[[dict[str, Any]], bool]) -> Any:
        """The server id of a matching item that no other local item accounts for (an
        earlier upload of this one whose answer was lost); None when there is none;
        _UNSETTLED when the check cannot be made (no BookLore account).

        Matching by content alone could take a same-titled sibling (two bookmarks on
        one PDF page) for this item and lose it, so the server's items already
        recorded as delivered — or claimed earlier in this run — are left out.
        """
        if "booklore" not in self.accounts:
            self.report.missing_accounts.add("booklore")
            self._skip(queue, [item], NEEDS_CHECK)
            return _UNSETTLED
        known = self.store.remote_ids(queue, item.book_id) | self._claimed[queue]
        for entry in sorted(listing(item.book_id), key=lambda e: e.get("id") or 0):
            remote_id = _int_or_none(entry.get("id"))
            if remote_id is not None and remote_id not in known and same(entry):
                self._claimed[queue].add(remote_id)
                return remote_id
        return None

    # ========================================================== bookmarks
    def _sync_bookmarks(self, items: list[QueueItem]) -> None:
        items = self._split_matched("bookmarks", items)
        for item in items:
            p = item.payload
            paged = bool(p.get("paged"))
            if not paged and not p.get("cfi"):
                self._skip("bookmarks", [item], item.last_error or
                           "no EPUB CFI for this position (it cannot be placed in the book)")
                continue
            if not self._usable("bookmarks", [item], "booklore"):
                continue
            title = p.get("title") or "Bookmark"
            try:
                if paged:
                    remote_id = None
                    if item.state in UNCERTAIN_STATES:
                        sent_title = truncate_utf16(title, 255)
                        remote_id = self._find_unclaimed(
                            "bookmarks", item, self.client.list_bookmarks,
                            lambda b, t=sent_title: not b.get("cfi")
                            and b.get("positionMs") is None and b.get("title") == t)
                        if remote_id is _UNSETTLED:
                            continue
                    if remote_id is None:
                        self.store.set_state("bookmarks", [item.id], "in_flight")
                        remote = self.client.create_bookmark(item.book_id, cfi=None, title=title)
                        remote_id = remote.get("id") if isinstance(remote, dict) else None
                else:
                    remote_id = self._post_dedup(self.client.create_bookmark, item.book_id,
                                                 cfi=p["cfi"], title=title)
            except E.NotFoundError as exc:
                self._book_gone("bookmarks", [item], exc)
                continue
            except E.ServerError as exc:
                if exc.status == 500 and self._book_missing(item.book_id):
                    self._book_gone("bookmarks", [item], exc)
                else:
                    self._error("bookmarks", [item], exc)
                continue
            except E.OutcomeUnknownError as exc:
                self._fail("bookmarks", [item], f"outcome unknown: {exc.last_error}",
                           state="uncertain" if paged else "pending")
                continue
            except E.BookLoreError as exc:
                self._error("bookmarks", [item], exc)
                continue
            self._synced("bookmarks", [item], book_id=item.book_id,
                         remote_id=_int_or_none(remote_id), defer=not paged)

    # =========================================================== progress
    def _sync_progress(self, items: list[QueueItem]) -> None:
        if not self._usable("progress", items, "koreader"):
            return
        device_default = self.settings.get("device.name") or "booklore-sync"
        for item in items:
            if not self._usable("progress", [item], "koreader"):
                continue
            progress = item.key["progress"]
            fraction = float(item.key["percentage"])
            try:
                verdict = self._progress_verdict(item, progress, fraction)
                if verdict == "server_ahead":
                    self._synced("progress", [item], outcome="server_ahead", defer=True,
                                 expected={item.id: (progress, fraction)})
                    continue
                self.client.put_progress(
                    item.fingerprint, progress=progress, percentage=fraction,
                    device=item.payload.get("device") or device_default,
                    device_id=item.payload.get("device_id") or device_default)
            except E.NotFoundError as exc:
                self._skip("progress", [item], f"{UNKNOWN_TO_SERVER} ({exc.message})")
                continue
            except E.OutcomeUnknownError as exc:
                self._fail("progress", [item], f"outcome unknown: {exc.last_error}")
                continue
            except E.BookLoreError as exc:
                self._error("progress", [item], exc)
                continue
            self._synced("progress", [item], outcome="pushed", defer=True,
                         expected={item.id: (progress, fraction)})

    def _progress_verdict(self, item: QueueItem, progress: str, fraction: float) -> str:
        """'push' or 'server_ahead', by koreader-data.md §8.3."""
        known = self.books.get(item.fingerprint)
        if known is not None and known.book_raw is not None:
            kp = known.book_raw.get("koreaderProgress")
            server_pct = kp.get("percentage") if isinstance(kp, dict) else None
            if server_pct is None or float(server_pct) <= fraction * 100 - 0.05:
                return "push"  # settled by this run's lookup: no read needed
        server = self.client.get_progress(item.fingerprint)
        if server is None or server.timestamp is None or server.percentage is None:
            return "push"
        ours = self.store.last_synced_progress(item.fingerprint, pushed_only=True)
        if ours is not None and server.progress == ours[0] \
                and abs(float(server.percentage) - ours[1]) <= 0.00005:
            return "push"  # the server holds our own last push
        local_time = item.payload.get("position_time")
        newer = local_time is None or server.timestamp > int(local_time)
        if newer and float(server.percentage) > fraction:
            return "server_ahead"
        return "push"

    # =========================================================== sessions
    def _sync_sessions(self, items: list[QueueItem]) -> None:
        items = self._split_matched("sessions", items)
        if not items:
            return
        caps = self.caps
        upstream = caps is not None and caps.flavour == "upstream"
        if upstream or "koreader" not in self.accounts or "koreader" in self.dead_accounts:
            if not self._usable("sessions", items, "booklore"):
                return
        groups: dict[tuple[int, str], list[QueueItem]] = defaultdict(list)
        for item in items:
            book_type = self._session_book_type(item)
            if book_type is None:
                self._skip("sessions", [item], "the book's format is unknown (scan the device "
                           "with the book file, or match it, so BookLore's format can be used)")
                continue
            groups[(item.book_id, book_type)].append(item)  # type: ignore[index]
        # Every session this run may send is marked in flight first, in one transaction:
        # a run killed at any point leaves them marked, and the next run asks the server
        # before sending any of them again.  Those not sent after all go back to pending.
        self._in_flight = {i.id for g in groups.values() for i in g
                           if i.state not in UNCERTAIN_STATES}
        self._attempted = set()
        self.store.set_state("sessions", sorted(self._in_flight), "in_flight")
        try:
            for (book_id, book_type), group in groups.items():
                self._sync_book_sessions(book_id, book_type, group)
        finally:
            self._flush("sessions")
            self.store.set_state("sessions", sorted(self._in_flight - self._attempted),
                                 "pending")

    def _session_book_type(self, item: QueueItem) -> str | None:
        """bookType: the session's own, else the cached book's, else BookLore's."""
        from booklore_sync.booklore.models import BOOK_TYPES

        for candidate in (item.payload.get("bookType"), item.book_type):
            if candidate in BOOK_TYPES:
                return candidate
        known = self.books.get(item.fingerprint)
        raw = known.book_raw if known is not None else None
        if raw is None and item.book_id is not None:
            cached = self._server_types.get(item.book_id)
            if cached is not None:
                return cached or None
            try:
                raw = self.client.get_book(item.book_id).raw
            except E.OfflineError as exc:
                raise ServerLost(str(exc)) from exc
            except E.BookLoreError:
                raw = None
        primary = (raw or {}).get("primaryFile") or {}
        found = primary.get("bookType") if isinstance(primary, dict) else None
        if item.book_id is not None:
            self._server_types[item.book_id] = found if found in BOOK_TYPES else ""
        return found if found in BOOK_TYPES else None

    def _sync_book_sessions(self, book_id: int, book_type: str, items: list[QueueItem]) -> None:
        doubtful = [i for i in items if i.state in UNCERTAIN_STATES]
        if doubtful:
            if "booklore" not in self.accounts or "booklore" in self.dead_accounts:
                if "booklore" not in self.accounts:
                    self.report.missing_accounts.add("booklore")
                self._skip("sessions", doubtful, NEEDS_CHECK)
                items = [i for i in items if i.state not in UNCERTAIN_STATES]
            else:
                try:
                    present = self.client.verify_sessions(
                        book_id, [_session_in(i.payload) for i in doubtful])
                except E.NotFoundError as exc:
                    self._book_gone("sessions", items, exc)
                    return
                except E.BookLoreError as exc:
                    self._error("sessions", items, exc)
                    return
                there = [i for i, yes in zip(doubtful, present, strict=True) if yes]
                self._synced("sessions", there, book_id=book_id)
                sent = {i.id for i in there}
                items = [i for i in items if i.id not in sent]
        for start in range(0, len(items), BATCH_SIZE):
            chunk = items[start:start + BATCH_SIZE]
            if self.caps is not None and self.caps.batch:
                if self._send_batch(book_id, book_type, chunk):
                    continue
            for item in chunk:
                if item.id in self._settled["sessions"]:
                    continue
                if not self._send_single(book_id, book_type, item):
                    break

    def _mark_in_flight(self, ids: list[int]) -> None:
        """Sessions about to be sent: durably in flight (they were, at the start of the
        phase, unless they are being resent after an unknown outcome)."""
        if not set(ids) <= self._in_flight:
            self.store.set_state("sessions", ids, "in_flight")
        self._attempted.update(ids)

    def _send_batch(self, book_id: int, book_type: str, chunk: list[QueueItem]) -> bool:
        """True when the chunk is settled; False to fall back to single posts."""
        self._mark_in_flight([i.id for i in chunk])
        try:
            self.client.post_sessions_batch(book_id, book_type,
                                            [_session_in(i.payload) for i in chunk])
        except E.OutcomeUnknownError as exc:
            self._fail("sessions", chunk, f"outcome unknown: {exc.last_error}", state="uncertain")
            return True
        except E.BookLoreError as exc:
            if E.batch_refused(exc):
                # nothing was stored (all or nothing): the single posts are safe
                self.caps = self.caps.with_(batch=False)
                mark = getattr(self.client, "mark_no_batch", None)
                if mark is not None:
                    mark()
                return False
            if isinstance(exc, E.NotFoundError):
                self.store.set_state("sessions", [i.id for i in chunk], "pending")
                self._book_gone("sessions", chunk, exc)
                return True
            self._error("sessions", chunk, exc)
            return True
        self._synced("sessions", chunk, book_id=book_id, defer=True)
        return True

    def _send_single(self, book_id: int, book_type: str, item: QueueItem) -> bool:
        """Post one session; False when the rest of this book should wait."""
        self._mark_in_flight([item.id])
        try:
            self.client.post_session(book_id, book_type, _session_in(item.payload))
        except E.OutcomeUnknownError as exc:
            self._fail("sessions", [item], f"outcome unknown: {exc.last_error}", state="uncertain")
            return True
        except E.NotFoundError as exc:
            self.store.set_state("sessions", [item.id], "pending")
            self._book_gone("sessions", [item], exc)
            return False
        except E.BookLoreError as exc:
            self._error("sessions", [item], exc)
            return not isinstance(exc, E.AuthError)
        self._synced("sessions", [item], book_id=book_id, defer=True)
        return True


_UNSETTLED = object()


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _reason_class(reason: str) -> str:
    return reason if len(reason) <= 120 else reason[:117] + "..."


def _wire_form(text: Any) -> bool:
    return isinstance(text, str) and len(text) == 20 and text[-1] == "Z" and text[10] == "T"


def _instant(text: Any) -> datetime | None:
    """The importer's ``YYYY-MM-DDTHH:MM:SSZ`` quickly; anything else the careful way."""
    if isinstance(text, str) and len(text) == 20 and text[-1] == "Z":
        try:
            return datetime.fromisoformat(text[:-1]).replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return parse_time(text)


_WIRE_OK = {"startTime", "endTime", "durationSeconds", "durationFormatted", "startProgress",
            "endProgress", "progressDelta", "startLocation", "endLocation"}


def _session_in(p: Mapping[str, Any]) -> SessionIn:
    start = _instant(p["startTime"]) or datetime.now(timezone.utc)
    end = _instant(p["endTime"]) or start
    if (_wire_form(p["startTime"]) and _wire_form(p["endTime"])
            and all(len(str(p.get(k) or "")) <= 100 for k in ("startLocation", "endLocation"))):
        # the importer's payload is already the request item: send it as it is
        wire = {k: v for k, v in p.items() if k in _WIRE_OK and v is not None}
        return SessionIn(start_time=start, end_time=end,
                         duration_seconds=int(p["durationSeconds"]), wire=wire)
    return SessionIn(
        start_time=start, end_time=end, duration_seconds=int(p["durationSeconds"]),
        start_progress=p.get("startProgress"), end_progress=p.get("endProgress"),
        progress_delta=p.get("progressDelta"), start_location=p.get("startLocation"),
        end_location=p.get("endLocation"), duration_formatted=p.get("durationFormatted"))


def _annotation_body(p: Mapping[str, Any]) -> dict[str, Any]:
    return {"cfi": p["cfi"], "text": p.get("text") or "", "color": p.get("color"),
            "style": p.get("style"), "note": p.get("note") or None,
            "chapter_title": p.get("chapter") or None}


def _note_v2_body(p: Mapping[str, Any]) -> dict[str, Any]:
    return {"cfi": p["cfi"], "note_content": p.get("note") or p.get("text") or "",
            "selected_text": p.get("text") or None, "color": p.get("color"),
            "chapter_title": p.get("chapter") or None}


def _book_note_fields(item: QueueItem) -> tuple[str, str]:
    """Title and content of a v1 book note (koreader-data.md §6.7, §7.6)."""
    p = item.payload
    chapter = p.get("chapter") or ""
    if p.get("paged"):
        page = p.get("page")
        title = f"p. {page}" if page is not None else "Note"
        if chapter:
            title += f" — {chapter}"
        text = p.get("text") or ""
        note = p.get("note") or ""
        content = text + (f"\n\n{note}" if note else "")
        return title[:255], content or "(empty highlight)"
    title = chapter[:255] if chapter else "Note"
    return title, p.get("note") or p.get("text") or ""

"""Resolving book IDs, the run's first step (spec §4.1 "Resolve"): the local cache by
fingerprint, else the server (each distinct fingerprint asked once per run, the
lookups concurrently).  What is found is written to the cache on the engine's thread,
several per transaction; what the run learnt is kept for the later phases."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from booklore_sync.booklore import errors as E
from booklore_sync.booklore.capabilities import Capabilities
from booklore_sync.booklore.protocol import SyncClient
from booklore_sync.sync.execute import Pool, RunState
from booklore_sync.sync.ledger import DEFER_BATCH
from booklore_sync.sync.report import SyncReport

if TYPE_CHECKING:
    from booklore_sync.store.db import QueueItem, Store


class ServerLost(Exception):
    """The server stopped answering during the run: stop, count no further attempts."""


@dataclass
class Known:
    """What this run learnt about one fingerprint."""

    book_id: int | None = None
    looked_up: bool = False
    book_raw: dict[str, Any] | None = None


def caps_of(client: SyncClient | Any) -> Capabilities | None:
    """The client's view of the server's capabilities (the one place the engine asks;
    the client alone owns them, :class:`~booklore_sync.booklore.protocol.SyncClient`)."""
    caps = getattr(client, "capabilities", None)
    return caps if isinstance(caps, Capabilities) else None


ResolveProgress = Callable[[int, int], None]


class Resolver:
    """Resolves the run's fingerprints.  ``on_progress(done, total)`` counts the books
    (distinct fingerprints): first after the cache pass, then once per server lookup.
    ``persist=False`` (``sync --dry-run``) leaves the store as it is."""

    def __init__(self, store: Store, client: Any, state: RunState, pool: Pool,
                 report: SyncReport, *, on_progress: ResolveProgress | None = None,
                 persist: bool = True) -> None:
        self.store = store
        self.client = client
        self.state = state
        self.pool = pool
        self.report = report
        self.on_progress = on_progress
        self.persist = persist
        self.books: dict[str, Known] = {}
        self.failed: dict[str, E.BookLoreError] = {}

    def resolve(self, queues: Mapping[str, list[QueueItem]]) -> None:
        """Find the BookLore ID of every fingerprint with queued items (once each, the
        server lookups concurrently)."""
        fingerprints: dict[str, None] = {}
        for items in queues.values():
            for item in items:
                fingerprints.setdefault(item.fingerprint)
        ask = []
        for fp in fingerprints:
            book = self.store.get_book_by_hash(fp)
            if book is not None and book.book_id is not None:
                self.books[fp] = Known(book_id=book.book_id)
            else:
                ask.append(fp)
        total = len(fingerprints)
        done = total - len(ask)
        self._tell(done, total)
        found: list[tuple[str, int]] = []
        lost: str | None = None
        try:
            for fp, result, failure, offline in self.pool.run(self._lookup, ask):
                done += 1
                self._tell(done, total)
                self.books[fp] = result
                if failure is not None:
                    self.failed[fp] = failure
                if offline is not None:
                    lost = lost or offline
                    self.state.stop.set()
                if result.looked_up and result.book_id is not None:
                    found.append((fp, result.book_id))
                    self.report.newly_matched += 1
                    if len(found) >= DEFER_BATCH:
                        self._store_found(found)
                        found = []
        finally:
            self._store_found(found)  # what was found stays found, even if the server goes away
        if lost is not None:
            raise ServerLost(lost)
        self._refresh_items(queues)

    def _tell(self, done: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(done, total)

    def _store_found(self, found: list[tuple[str, int]]) -> None:
        """Record the IDs found by lookups, several per transaction."""
        if not found or not self.persist:
            return
        with self.store.transaction():
            for fp, book_id in found:
                cache_id = self.store.ensure_book_for_hash(fp)
                self.store.set_book_id(cache_id, book_id, "hash", 1.0)

    def _lookup(self, fp: str) -> tuple[str, Known, E.BookLoreError | None, str | None]:
        """One by-hash lookup (on a pool thread): (fp, what was learnt, a failure to
        report on the book's items, why the server counts as lost)."""
        caps = caps_of(self.client)
        can_koreader = bool(caps and caps.by_hash_koreader) and self.state.alive("koreader")
        can_bearer = bool(caps and caps.by_hash_bearer) and self.state.alive("booklore")
        if self.state.stop.is_set() or not (can_koreader or can_bearer):
            return fp, Known(), None, None
        try:
            found = self.client.find_book_by_hash(fp)
        except E.OfflineError as exc:
            self.state.stop.set()
            return fp, Known(), None, str(exc)
        except E.SkipError:
            return fp, Known(), None, None  # e.g. Sync off: by-hash is not affected
        except E.AuthError as exc:
            self.state.kill(exc)
            return fp, Known(), None, None
        except (E.UnsupportedEndpointError, E.NotConfiguredError):
            return fp, Known(), None, None
        except E.BookLoreError as exc:
            return fp, Known(), exc, None
        if found is None:
            return fp, Known(looked_up=True), None, None
        return fp, Known(book_id=found.id, looked_up=True, book_raw=found.raw), None, None

    def _refresh_items(self, queues: Mapping[str, list[QueueItem]]) -> None:
        """Give the loaded rows the book IDs (and cache rows) the lookups found."""
        cache_ids: dict[str, int | None] = {}
        for items in queues.values():
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


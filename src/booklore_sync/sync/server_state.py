"""What the server holds of the books a phase is about to touch, read before the
phase's units run: BookLore's ``Book`` of each matched book (its read status, file
type and reading positions) and, for the progress phase, the units that carry it
with what this store already knows (the last position it sent, when the server's
read status was first seen) for newest-wins progress (spec §4.1 "Progress")."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from booklore_sync.booklore import errors as E
from booklore_sync.sync import plan as P
from booklore_sync.sync.execute import Pool, RunState
from booklore_sync.sync.progress import parse_time
from booklore_sync.sync.resolve import Known, ServerLost, caps_of

if TYPE_CHECKING:
    from booklore_sync.store.db import QueueItem, Store

Raws = dict[int, dict[str, Any] | None]


def book_raw(books: Mapping[str, Known], raws: Raws, item: QueueItem) -> dict[str, Any] | None:
    """The server's Book of the item's book: as resolved this run, else as read."""
    known = books.get(item.fingerprint)
    raw = known.book_raw if known is not None else None
    if raw is None and item.book_id is not None:
        raw = raws.get(item.book_id)
    return raw


def read_server_books(items: list[QueueItem], books: Mapping[str, Known], client: Any,
                      state: RunState, pool: Pool,
                      wanted_for: Callable[[QueueItem], bool] = P.needs_server_type) -> Raws:
    """BookLore's Book of the matched books this run does not hold yet, for the
    items ``wanted_for`` names (read concurrently, once per book): ``GET
    /api/v1/books/{id}``, or without the BookLore account the by-hash lookup with
    the KOReader account."""
    wanted: dict[int, str] = {}
    for item in items:
        known = books.get(item.fingerprint)
        if (wanted_for(item) and item.book_id is not None
                and (known is None or known.book_raw is None)):
            wanted.setdefault(item.book_id, item.fingerprint)
    caps = caps_of(client)
    bearer = state.alive("booklore")
    by_hash = (not bearer and state.alive("koreader") and caps is not None
               and bool(caps.by_hash_koreader))
    if not bearer and not by_hash:
        return {}

    def fetch(book_id: int) -> tuple[int, dict[str, Any] | None, str | None]:
        if state.stop.is_set():
            return book_id, None, None
        try:
            if bearer:
                return book_id, client.get_book(book_id).raw, None
            found = client.book_by_hash(wanted[book_id])
            raw = found.raw if found is not None else None
            if raw is not None and raw.get("id") != book_id:
                raw = None  # the fingerprint names another book: not this one's state
            return book_id, raw, None
        except E.OfflineError as exc:
            state.stop.set()
            return book_id, None, str(exc)
        except E.BookLoreError:
            return book_id, None, None

    raws: Raws = {}
    lost = None
    for book_id, raw, offline in pool.run(fetch, list(wanted)):
        raws[book_id] = raw
        lost = lost or offline
    if lost is not None:
        raise ServerLost(lost)
    return raws


def progress_units(store: Store, items: list[QueueItem], books: Mapping[str, Known],
                   raws: Raws) -> list[P.ProgressUnit]:
    """One unit per progress row, with the server's Book and what the store knows:
    the position this program last pushed, when it pushed, whether the queued
    position is the one last synced, and since when the server's read status stands
    (recorded now when first seen)."""
    seen_at = datetime.now(timezone.utc).replace(microsecond=0)
    with store.transaction():  # the sightings of every book in one commit
        return [_progress_unit(store, item, books, raws, seen_at) for item in items]


def _progress_unit(store: Store, item: QueueItem, books: Mapping[str, Known], raws: Raws,
                   seen_at: datetime) -> P.ProgressUnit:
    known = books.get(item.fingerprint)
    raw = book_raw(books, raws, item)
    book_id = item.book_id if item.book_id is not None else (
        known.book_id if known is not None else None)
    status_seen = None
    status = raw.get("readStatus") if raw is not None else None
    if isinstance(status, str) and book_id is not None:
        obs = store.observe_status(
            book_id, status, seen_at=seen_at.isoformat().replace("+00:00", "Z"))
        status_seen = parse_time(obs.first_seen)
    own = store.last_synced_progress(item.fingerprint, pushed_only=True)
    last = store.last_synced_progress(item.fingerprint)
    record = store.progress_record(item.fingerprint)
    settled = last is not None and last == (str(item.key["progress"]),
                                            float(item.key["percentage"]))
    return P.ProgressUnit(item, raw, (str(own[0]), float(own[1])) if own else None,
                          pushed_at=record["pushed_at"], status_seen=status_seen,
                          position_settled=settled)

"""Planning a sync phase: from the queue rows and what the run learnt to work units
(pure functions: no store, no HTTP; tests/sync/test_plan.py).

A unit is one book's work in one phase — its requests go in order — except ratings,
where one unit is one grouped request (one value, at most 500 books).  Items that
need no request (unmatched, no CFI, unknown format) come back as outcomes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from booklore_sync.booklore import errors as E
from booklore_sync.booklore.models import BOOK_TYPES
from booklore_sync.sync.outcomes import (
    NO_BY_HASH,
    NO_CFI,
    NOT_MATCHED,
    UNCERTAIN_STATES,
    UNKNOWN_FORMAT,
    Failed,
    Outcome,
    Skipped,
)
from booklore_sync.sync.payloads import cbx_note_page

if TYPE_CHECKING:
    from booklore_sync.store.db import QueueItem

RATING_GROUP_MAX = 500


@dataclass
class BookUnit:
    """One book's items of one queue (annotations, bookmarks), in queue order."""

    queue: str
    book_id: int
    items: list[QueueItem]
    parts: dict[int, list[str]] = field(default_factory=dict)  # annotations: item id -> parts
    known_remote: frozenset[int] = frozenset()  # server ids this store already accounts for
    #: first contact (spec §4.1): read what the server holds of the guarded kind first
    reconcile: bool = False


@dataclass
class RatingUnit:
    rating: int
    by_book: dict[int, list[QueueItem]]  # at most RATING_GROUP_MAX books


@dataclass
class SessionUnit:
    book_id: int
    groups: list[tuple[str, list[QueueItem]]]  # (bookType, items in queue order)
    batch_size: int = 100
    #: first contact (spec §4.1): read the server's sessions of the book first
    reconcile: bool = False


@dataclass
class ProgressUnit:
    item: QueueItem
    book_raw: dict[str, Any] | None  # the Book this run holds, if any
    own_push: tuple[str, float] | None  # our last pushed (progress, fraction)
    pushed_at: float | None = None  # the server's time of our last recorded push
    status_seen: float | None = None  # when this client first saw the Book's readStatus
    position_settled: bool = False  # only the KOReader status is new (koreader-data §8.3)


def doubtful(item: QueueItem) -> bool:
    """An earlier upload's outcome is unknown: check the server before any resend."""
    return item.state in UNCERTAIN_STATES


def split_matched(queue: str, items: list[QueueItem],
                  lookup_failed: Mapping[str, E.BookLoreError],
                  no_by_hash: bool) -> tuple[list[QueueItem], list[Outcome]]:
    """Items whose book has an ID; the others skipped (or failed, on a lookup error)."""
    ready: list[QueueItem] = []
    out: list[Outcome] = []
    unmatched: list[QueueItem] = []
    for item in items:
        if item.book_id is not None:
            ready.append(item)
            continue
        failure = lookup_failed.get(item.fingerprint)
        if failure is not None:
            out.append(Failed(queue, [item], reason=f"looking the book up failed: "
                              f"{failure.last_error}", status=failure.status))
        else:
            unmatched.append(item)
    if unmatched:
        out.append(Skipped(queue, unmatched, reason=NO_BY_HASH if no_by_hash else NOT_MATCHED))
    return ready, out


def by_book(items: list[QueueItem]) -> dict[int, list[QueueItem]]:
    """Matched items per BookLore ID, in queue order."""
    books: dict[int, list[QueueItem]] = {}
    for item in items:
        assert item.book_id is not None
        books.setdefault(item.book_id, []).append(item)
    return books


def plan_ratings(items: list[QueueItem], group_max: int = RATING_GROUP_MAX) -> list[RatingUnit]:
    """One request per distinct value and up to ``group_max`` books (spec §4.1)."""
    by_value: dict[int, dict[int, list[QueueItem]]] = {}
    for item in items:
        assert item.book_id is not None
        by_value.setdefault(int(item.key["rating"]), {}).setdefault(item.book_id, []).append(item)
    units = []
    for rating, books in by_value.items():
        ids = list(books)
        for start in range(0, len(ids), group_max):
            units.append(RatingUnit(rating, {b: books[b] for b in ids[start:start + group_max]}))
    return units


def annotation_parts(item: QueueItem, destination: str) -> list[str]:
    """Where an annotation goes: 'annotation', 'note_v2' and/or 'book_note'."""
    if item.payload.get("paged"):
        if destination != "in_booklore" and cbx_note_page(item) is not None:
            return ["cbx_note"] if destination == "in_book" else ["cbx_note", "book_note"]
        return ["book_note"]
    if item.key["kind"] == "highlight":
        return ["annotation"]
    if destination == "in_booklore":
        return ["book_note"]
    if destination == "both":
        return ["note_v2", "book_note"]
    return ["note_v2"]


def plan_annotations(items: list[QueueItem], destination: str,
                     known_remote: Mapping[int, frozenset[int]] | None = None
                     ) -> tuple[list[BookUnit], list[Outcome]]:
    out: list[Outcome] = []
    units = []
    for book_id, group in by_book(items).items():
        unit = BookUnit("annotations", book_id, [],
                        known_remote=(known_remote or {}).get(book_id, frozenset()))
        for item in group:
            parts = annotation_parts(item, destination)
            if not item.payload.get("cfi") and any(p in ("annotation", "note_v2") for p in parts):
                out.append(Skipped("annotations", [item], reason=item.last_error or NO_CFI))
                continue
            unit.items.append(item)
            unit.parts[item.id] = parts
        if unit.items:
            units.append(unit)
    return units, out


def plan_bookmarks(items: list[QueueItem],
                   known_remote: Mapping[int, frozenset[int]] | None = None
                   ) -> tuple[list[BookUnit], list[Outcome]]:
    out: list[Outcome] = []
    units = []
    for book_id, group in by_book(items).items():
        unit = BookUnit("bookmarks", book_id, [],
                        known_remote=(known_remote or {}).get(book_id, frozenset()))
        for item in group:
            if not item.payload.get("paged") and not item.payload.get("cfi"):
                out.append(Skipped("bookmarks", [item], reason=item.last_error or NO_CFI))
                continue
            unit.items.append(item)
        if unit.items:
            units.append(unit)
    return units, out


def guarded(item: QueueItem, parts: list[str] | None = None) -> bool:
    """Whether the item's upload is one the server does not deduplicate (a v1 book
    note, a bookmark without a CFI): it is marked in flight before it leaves."""
    if item.queue == "annotations":
        return "book_note" in (parts or []) and "book_note" not in item.done_parts
    if item.queue == "bookmarks":
        return bool(item.payload.get("paged"))
    return item.queue == "sessions"


def to_mark_in_flight(units: list[BookUnit]) -> list[int]:
    """The guarded items of these units not already doubtful (those stay as they are)."""
    return [i.id for u in units for i in u.items
            if guarded(i, u.parts.get(i.id)) and not doubtful(i)]


def to_recheck(units: list[BookUnit]) -> list[int]:
    """The guarded items of these units whose earlier outcome is unknown: checked this
    run, and resent if absent."""
    return [i.id for u in units for i in u.items
            if guarded(i, u.parts.get(i.id)) and doubtful(i)]


def needs_remote_ids(units: list[BookUnit]) -> list[int]:
    """Books whose doubtful guarded items will be checked against the server's list."""
    return [u.book_id for u in units
            if any(doubtful(i) and guarded(i, u.parts.get(i.id)) for i in u.items)]


def session_book_type(item: QueueItem, book_raw: Mapping[str, Any] | None) -> str | None:
    """bookType: the session's own, else the cached book's, else BookLore's."""
    for candidate in (item.payload.get("bookType"), item.book_type):
        if candidate in BOOK_TYPES:
            return str(candidate)
    primary = (book_raw or {}).get("primaryFile") or {}
    found = primary.get("bookType") if isinstance(primary, dict) else None
    return str(found) if found in BOOK_TYPES else None


def needs_server_type(item: QueueItem) -> bool:
    return not any(c in BOOK_TYPES for c in (item.payload.get("bookType"), item.book_type))


def plan_sessions(items: list[QueueItem], type_of: Callable[[QueueItem], str | None],
                  batch_size: int) -> tuple[list[SessionUnit], list[Outcome]]:
    out: list[Outcome] = []
    groups: dict[int, dict[str, list[QueueItem]]] = {}
    for item in items:
        book_type = type_of(item)
        if book_type is None:
            out.append(Skipped("sessions", [item], reason=UNKNOWN_FORMAT))
            continue
        assert item.book_id is not None
        groups.setdefault(item.book_id, {}).setdefault(book_type, []).append(item)
    units = [SessionUnit(book_id, list(types.items()), batch_size)
             for book_id, types in groups.items()]
    return units, out


def chunks(items: list[QueueItem], size: int) -> list[list[QueueItem]]:
    return [items[i:i + size] for i in range(0, len(items), size)]

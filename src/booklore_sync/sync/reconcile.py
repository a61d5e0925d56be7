"""First-contact reconciliation and the settle wait (spec §4.1 "First contact is
reconciled", "Exactly once"; booklore-api.md §5.3–5.4).

*First contact.*  Before the first upload of a book's sessions, BookLore book notes
or PDF bookmarks from this store to this server, the unit reads what the server
holds of that kind for that book (one paged read) and settles every local item
already there — found by another uploader, another computer or a lost store.  The
matching rules are pure functions here; the reads run in the work units (HTTP only)
and hand back outcomes: ``Synced`` (settled "found on server") for what was found,
then :class:`Reconciled`, which the ledger turns into the store's record.

*Settle wait.*  An item whose upload outcome is unknown is checked no sooner than
``max(sync.settle_seconds, 2 × http.read_timeout_seconds)`` after its request was
abandoned (or, for a killed run, after its in-flight mark); until then it stays
queued, skipped with the reason ``waiting for the server to settle an earlier upload
(retry after HH:MM)``.  ``sync.settle_seconds = 0`` turns the wait off.
"""

from __future__ import annotations

import math
import re
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from booklore_sync.booklore import errors as E
from booklore_sync.booklore.items import Bookmark, NoteV1
from booklore_sync.booklore.models import parse_time, truncate_utf16
from booklore_sync.booklore.session_models import ServerSession
from booklore_sync.booklore.texts import fit_text_column
from booklore_sync.common.vocab import ReconcileKind, Settlement
from booklore_sync.store.types import ServerIdentity
from booklore_sync.sync.outcomes import UNCERTAIN_STATES, Outcome, Synced
from booklore_sync.sync.payloads import book_note_fields

if TYPE_CHECKING:
    from booklore_sync.store.db import QueueItem
    from booklore_sync.sync.uploads import Worker

T = TypeVar("T")

DEFAULT_SETTLE_SECONDS = 60
WAITING = "waiting for the server to settle an earlier upload (retry after {at})"
UNCHECKED = ("sessions of {n} {books} were sent without checking what the server already "
             "holds (first-contact reconciliation needs the BookLore account)")
FOUND = Settlement.FOUND_ON_SERVER
_PAGE_TITLE = re.compile(r"^p\. (\d+)(?:$| —)")


@dataclass
class Reconciled(Outcome):
    """First contact with this book was made for this kind: remember it (the items
    found on the server were settled by the ``Synced`` outcomes before it)."""

    book_id: int = 0
    kind: ReconcileKind = ReconcileKind.SESSIONS


def identity_of(client: Any) -> ServerIdentity | None:
    """The server URL and account names a client talks with: what the reconciliation
    records belong to (None for a stand-in without a URL)."""
    url = getattr(client, "base_url", None)
    if not isinstance(url, str):
        return None
    users = getattr(client, "account_names", None)
    if not isinstance(users, tuple):
        users = (None, None)
    return ServerIdentity(url, *(u if isinstance(u, str) else None for u in users))


def unchecked_message(books: int) -> str:
    """What a run without the BookLore account says once about its sessions."""
    return UNCHECKED.format(n=books, books="book" if books == 1 else "books")


# ------------------------------------------------------------------ settle wait
def settle_wait(settings: Mapping[str, Any]) -> float:
    """Seconds an unknown outcome must rest before it is checked (0: no wait)."""
    raw = settings.get("sync.settle_seconds", DEFAULT_SETTLE_SECONDS)
    settle = float(DEFAULT_SETTLE_SECONDS if raw is None else raw)
    if settle <= 0:
        return 0.0
    read = float(settings.get("http.read_timeout_seconds") or 30)
    return max(settle, 2 * read)


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None


def abandoned_epoch(item: QueueItem) -> float | None:
    """When the item's request was abandoned: its outcome became unknown, or (a run
    killed in flight) its in-flight mark was written."""
    return _epoch(item.abandoned_at) or _epoch(item.in_flight_at)


def retry_after(until: float) -> str:
    """The local time (HH:MM, rounded up to the minute) after which a check is due."""
    return datetime.fromtimestamp(math.ceil(until / 60) * 60).strftime("%H:%M")


def split_waiting(items: Sequence[QueueItem], wait: float, now: float | None = None
                  ) -> tuple[list[QueueItem], dict[str, list[QueueItem]]]:
    """(items that may go or be checked now, waiting items grouped by their reason)."""
    if wait <= 0:
        return list(items), {}
    now = time.time() if now is None else now
    ready: list[QueueItem] = []
    waiting: dict[str, list[QueueItem]] = {}
    for item in items:
        since = abandoned_epoch(item) if item.state in UNCERTAIN_STATES else None
        # the stored times are whole seconds (cut down): one more second to be sure
        until = since + wait + 1 if since is not None else None
        if until is not None and until > now:
            waiting.setdefault(WAITING.format(at=retry_after(until)), []).append(item)
        else:
            ready.append(item)
    return ready, waiting


# ------------------------------------------------------------------ matching (pure)
def _seconds(moment: datetime | None) -> int | None:
    return None if moment is None else math.floor(moment.timestamp())


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    if len(text) == 20 and text[-1] == "Z":  # the importer's form: the quick way
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    try:
        return parse_time(text)
    except ValueError:
        return None


def session_range(payload: Mapping[str, Any]) -> tuple[int, int] | None:
    """A queued session's (start, end) in whole epoch seconds."""
    s, e = _seconds(_time(payload.get("startTime"))), _seconds(_time(payload.get("endTime")))
    return None if s is None or e is None else (s, e)


def overlapping_sessions(items: Iterable[QueueItem],
                         server: Iterable[ServerSession]) -> list[QueueItem]:
    """The local sessions whose time range overlaps a server session of the book
    (``start < other.end and other.start < end``, whole seconds; touching is not
    overlapping).  Every overlapping local session is settled."""
    ranges = sorted(r for r in ((_seconds(s.start_time), _seconds(s.end_time)) for s in server)
                    if r[0] is not None and r[1] is not None)
    if not ranges:
        return []
    starts = [int(r[0]) for r in ranges]  # type: ignore[arg-type]
    max_end: list[int] = []
    for _, end in ranges:
        assert end is not None
        max_end.append(max(end, max_end[-1]) if max_end else end)
    found = []
    for item in items:
        span = session_range(item.payload)
        if span is None:
            continue
        start, end = span
        n = bisect_left(starts, end)  # server sessions starting before this one ends
        if n and max_end[n - 1] > start:
            found.append(item)
    return found


def _norm(text: str | None) -> str:
    return (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()


def _title_page(title: str | None) -> int | None:
    m = _PAGE_TITLE.match(title or "")
    return int(m.group(1)) if m else None


def _page(item: QueueItem) -> int | None:
    page = item.payload.get("page") if item.payload.get("paged") else None
    try:
        return int(page) if page is not None else None
    except (TypeError, ValueError):
        return None


def _oldest_first(items: Iterable[QueueItem]) -> list[QueueItem]:
    return sorted(items, key=lambda i: (str(i.key.get("datetime") or ""), i.id))


def note_texts(item: QueueItem) -> set[str]:
    """The contents a server note may carry for this local item: its content (also as
    cut to fit the column), and for a page-based item its highlighted text alone or
    its note alone (booklore-api §5.4)."""
    _, content = book_note_fields(item)
    texts = {_norm(content), _norm(fit_text_column(content).text)}
    if item.payload.get("paged"):
        texts.update((_norm(item.payload.get("text")), _norm(item.payload.get("note"))))
    texts.discard("")
    return texts


def _claim(items: Iterable[QueueItem], candidates: Sequence[T], key: Callable[[T], int],
           same: Callable[[QueueItem, T], bool]) -> dict[int, int]:
    """Each server entry settles at most one local item, the oldest first; the lowest
    server id first."""
    pool = sorted(candidates, key=key)
    used: set[int] = set()
    found: dict[int, int] = {}
    for item in _oldest_first(items):
        for entry in pool:
            remote = key(entry)
            if remote not in used and same(item, entry):
                used.add(remote)
                found[item.id] = remote
                break
    return found


def match_notes(items: Iterable[QueueItem], notes: Iterable[NoteV1],
                exclude: Iterable[int] = ()) -> dict[int, int]:
    """Local item id → the id of the server's BookLore book note it is: the same text
    (normalised) and, where both name one, the same page."""
    skip = set(exclude)
    candidates = [n for n in notes if n.id not in skip]
    texts = {i.id: note_texts(i) for i in items}

    def same(item: QueueItem, note: NoteV1) -> bool:
        if _norm(note.content) not in texts[item.id]:
            return False
        mine, theirs = _page(item), _title_page(note.title)
        return mine is None or theirs is None or mine == theirs

    return _claim(items, candidates, lambda n: n.id, same)


def bookmark_title(item: QueueItem) -> str:
    """The title a PDF bookmark is sent with."""
    return str(item.payload.get("title") or "Bookmark")


def match_bookmarks(items: Iterable[QueueItem], marks: Iterable[Bookmark],
                    exclude: Iterable[int] = ()) -> dict[int, int]:
    """Local item id → the id of a server bookmark without a CFI on the same page
    (``pageNumber``, or a title ``p. <page>`` followed by the end or `` —``).  An item
    whose own earlier upload is in doubt also matches the title it was sent with."""
    skip = set(exclude)
    candidates = [b for b in marks
                  if b.id not in skip and not b.cfi and b.position_ms is None]

    def same(item: QueueItem, mark: Bookmark) -> bool:
        page = _page(item)
        if page is not None and page in (mark.page_number, _title_page(mark.title)):
            return True
        return (item.state in UNCERTAIN_STATES
                and (mark.title or None) == truncate_utf16(bookmark_title(item), 255))

    return _claim(items, candidates, lambda b: b.id, same)


# ------------------------------------------------------------------ the reads (units)
def reconciled(queue: str, book_id: int, kind: ReconcileKind) -> Reconciled:
    return Reconciled(queue, [], book_id=book_id, kind=kind)


def _read(w: Worker, queue: str, items: list[QueueItem], fetch: Callable[[], T]) -> T | None:
    """The reconciliation read; on an error the items are settled (failed: unsent this
    run, the reconciliation still to do) and None comes back."""
    try:
        w.state.check()
        return fetch()
    except E.BookLoreError as exc:
        w.error(queue, items, exc)
        return None


def reconcile_sessions(w: Worker, book_id: int, items: list[QueueItem]) -> set[int] | None:
    """First contact for a book's sessions: the ids of the local sessions already on
    the server (settled "found on server"), or None when the read failed."""
    starts = [s for s in (_seconds(_time(i.payload.get("startTime"))) for i in items)
              if s is not None]
    earliest = datetime.fromtimestamp(min(starts), timezone.utc) if starts else None
    server = _read(w, "sessions", items,
                   lambda: list(w.client.iter_sessions(book_id, ending_after=earliest)))
    if server is None:
        return None
    found = overlapping_sessions(items, server)
    if found:
        w.add(Synced("sessions", found, history={"book_id": book_id, "settled": FOUND}))
    w.add(reconciled("sessions", book_id, ReconcileKind.SESSIONS))
    return {i.id for i in found}


def reconcile_notes(w: Worker, book_id: int, items: list[QueueItem],
                    exclude: Iterable[int]) -> dict[int, int] | None:
    """First contact for a book's BookLore book notes: local item id → the server
    note it is, or None when the read failed.  The caller settles the found items and
    then adds :func:`reconciled` (so the record never precedes the settlements)."""
    notes = _read(w, "annotations", items, lambda: w.client.book_notes_v1(book_id))
    if notes is None:
        return None
    return match_notes(items, notes, exclude)


def reconcile_bookmarks(w: Worker, book_id: int, items: list[QueueItem],
                        exclude: Iterable[int]) -> dict[int, int] | None:
    """First contact for a book's PDF bookmarks: local item id → the server bookmark
    it is, or None when the read failed (the caller settles, then :func:`reconciled`)."""
    marks = _read(w, "bookmarks", items, lambda: w.client.bookmarks(book_id))
    if marks is None:
        return None
    return match_bookmarks(items, marks, exclude)

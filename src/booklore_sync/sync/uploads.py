"""The work units' requests (HTTP only: workers never touch the store).

Each ``*_unit`` function runs one unit of :mod:`booklore_sync.sync.plan` on a pool
thread and returns the outcomes of its items, in order.  Before every request it
asks the run state whether to go on (:meth:`Worker.ready`): a stopped run starts no
request, and a refused account is used no more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from booklore_sync.booklore import errors as E
from booklore_sync.booklore.models import truncate_utf16
from booklore_sync.common.vocab import ReconcileKind
from booklore_sync.sync import edits
from booklore_sync.sync.execute import RunState, Stopped
from booklore_sync.sync.outcomes import (
    NEEDS_CHECK,
    AccountDown,
    Cut,
    Failed,
    Lost,
    Missing,
    Outcome,
    PartDone,
    Sent,
    Skipped,
    Synced,
    account_trouble,
    classify,
)
from booklore_sync.sync.payloads import (
    annotation_body,
    book_note_fields,
    bookmark_deduplicated,
    cut_to_fit,
    int_or_none,
    note_v2_body,
    send_bookmark,
    send_cbx_note,
)
from booklore_sync.sync.plan import BookUnit, RatingUnit, doubtful
from booklore_sync.sync.reconcile import (
    FOUND,
    reconcile_bookmarks,
    reconcile_notes,
    reconciled,
)

if TYPE_CHECKING:
    from booklore_sync.store.db import QueueItem


class Worker:
    """One unit's run: collects outcomes; stops early when the run stops."""

    def __init__(self, client: Any, state: RunState) -> None:
        self.client = client
        self.state = state
        self.out: list[Outcome] = []

    def add(self, outcome: Outcome) -> Outcome:
        if isinstance(outcome, Lost):
            self.state.stop.set()  # no new request anywhere, at once
        elif isinstance(outcome, AccountDown) and outcome.error is not None:
            self.state.kill(outcome.error)
        self.out.append(outcome)
        return outcome

    def ready(self, queue: str, items: list[QueueItem], account: str) -> bool:
        """Whether a request for these items may leave; settles them if the account
        is missing or was refused.  Raises Stopped when the run stops."""
        self.state.check()
        if account not in self.state.accounts:
            self.add(Missing(queue, items, account=account))
            return False
        dead = self.state.dead_account(account)
        if dead is not None:
            self.add(Failed(queue, items, reason=account_trouble(dead), status=dead.status,
                            count=False))
            return False
        return True

    def error(self, queue: str, items: list[QueueItem], exc: E.BookLoreError,
              **how: Any) -> Outcome:
        return self.add(classify(queue, items, exc, **how))

    def book_exists_not(self, book_id: int) -> Callable[[], bool]:
        """For a 500 on a per-book write: is the book gone (GET 404)?"""
        def check() -> bool:
            try:
                self.state.check()
                self.client.get_book(book_id)
            except E.NotFoundError:
                return True
            except (E.BookLoreError, Stopped):
                return False
            return False
        return check


def run_unit(body: Callable[[Worker], None], client: Any, state: RunState) -> list[Outcome]:
    worker = Worker(client, state)
    try:
        body(worker)
    except Stopped:
        pass  # the rest of the unit stays unsettled: the engine decides what it means
    return worker.out


def post_dedup(send: Callable[..., Any], *args: Any, **kwargs: Any) -> int | None:
    """A POST the server deduplicates: 409 / "already exists" is success."""
    try:
        answer = send(*args, **kwargs)
    except E.AlreadyExistsError:
        return None
    return int_or_none(answer.get("id")) if isinstance(answer, dict) else None


_UNSETTLED = -1  # the check could not be made: the item was settled as skipped


def find_unclaimed(w: Worker, unit: BookUnit, claimed: set[int], item: QueueItem,
                   listing: Callable[[int], list[dict[str, Any]]],
                   same: Callable[[dict[str, Any]], bool]) -> int | None:
    """The server id of a matching item that no other local item accounts for (an
    earlier upload of this one whose answer was lost); None when there is none;
    _UNSETTLED when the check cannot be made (no BookLore account).

    Matching by content alone could take a same-titled sibling (two bookmarks on one
    PDF page) for this item and lose it, so the server's items already recorded as
    delivered — or claimed or created earlier in this run — are left out.
    """
    if "booklore" not in w.state.accounts:
        w.add(Skipped(unit.queue, [item], reason=NEEDS_CHECK, missing_account="booklore"))
        return _UNSETTLED
    w.state.check()
    known = unit.known_remote | claimed
    for entry in sorted(listing(unit.book_id), key=lambda e: e.get("id") or 0):
        remote_id = int_or_none(entry.get("id"))
        if remote_id is not None and remote_id not in known and same(entry):
            claimed.add(remote_id)
            return remote_id
    return None


# ----------------------------------------------------------------- ratings
def ratings_unit(w: Worker, unit: RatingUnit) -> None:
    items = [i for group in unit.by_book.values() for i in group]
    if not w.ready("ratings", items, "booklore"):
        return
    try:
        w.client.set_personal_rating(list(unit.by_book), unit.rating)
    except (E.OfflineError, E.AuthError, E.NotConfiguredError) as exc:
        w.error("ratings", items, exc)
        return
    except E.BookLoreError:
        # one bad id must not block the rest: one book at a time
        for book_id, group in unit.by_book.items():
            if not w.ready("ratings", group, "booklore"):
                continue
            try:
                w.client.set_personal_rating([book_id], unit.rating)
            except E.BookLoreError as exc:
                w.error("ratings", group, exc, not_found="fail")
            else:
                w.add(_rated(book_id, unit.rating, group))
        return
    for book_id, group in unit.by_book.items():
        w.add(_rated(book_id, unit.rating, group))


def _rated(book_id: int, rating: int, items: list[QueueItem]) -> Synced:
    # deferred: a rating is an idempotent PUT (a lost record means one more PUT)
    return Synced("ratings", items, defer=True, history={
        "book_id": book_id, "expected": {i.id: (rating,) for i in items}})


# ------------------------------------------------------------- annotations
def annotations_unit(w: Worker, unit: BookUnit) -> None:
    claimed: set[int] = set()
    found = _first_contact_notes(w, unit)
    settled: set[int] = set()
    lists = edits.ServerLists(w.client, unit.book_id)
    for item in unit.items:
        if edits.is_update(item):  # edited on the device after it was synced
            edits.update_item(w, unit, item, lists)
            continue
        parts = unit.parts[item.id]
        remote_id: int | None = None
        for part in parts:
            if part in item.done_parts:
                continue
            if not w.ready("annotations", [item], "booklore"):
                break
            try:
                if part == "annotation":
                    remote_id = post_dedup(w.client.create_annotation, unit.book_id,
                                           **annotation_body(item.payload))
                elif part == "note_v2":
                    remote_id = post_dedup(w.client.create_book_note_v2, unit.book_id,
                                           **note_v2_body(item.payload))
                elif part == "cbx_note":
                    remote_id, taken = send_cbx_note(w.client, unit.book_id, item)
                    if taken and "book_note" not in parts:
                        # the page holds another note: this one goes as a book note
                        remote_id = _guarded_note(w, unit, claimed, item)
                        if remote_id == _UNSETTLED:
                            break
                else:
                    remote_id = _guarded_note(w, unit, claimed, item, found)
                    if remote_id == _UNSETTLED:
                        break
            except E.BookLoreError as exc:
                w.error("annotations", [item], exc, check_book=w.book_exists_not(unit.book_id),
                        unknown_state="uncertain" if part in ("book_note", "cbx_note")
                        else "pending")
                break
            if len(parts) > 1:
                w.add(PartDone("annotations", [item], part=part, book_id=unit.book_id,
                               remote_id=remote_id))
        else:
            settled.add(item.id)
            if cut_to_fit(item, parts):
                w.add(Cut("annotations", [item]))
            w.add(Synced("annotations", [item], defer="book_note" not in parts, history={
                "book_id": unit.book_id, "remote_id": remote_id,
                "destination": parts[-1] if len(parts) == 1 else "both",
                "settled": FOUND if item.id in found else None}))
    _record_first_contact(w, unit, found, settled, ReconcileKind.BOOK_NOTES)


def _first_contact_notes(w: Worker, unit: BookUnit) -> dict[int, int]:
    """On first contact, the book's v1 book notes already on the server: local item id →
    server id (every guarded item → _UNSETTLED when the read failed)."""
    if not unit.reconcile:
        return {}
    guarded = [i for i in unit.items
               if "book_note" in unit.parts[i.id] and "book_note" not in i.done_parts]
    if not guarded:
        return {}
    found = reconcile_notes(w, unit.book_id, guarded, unit.known_remote)
    return {i.id: _UNSETTLED for i in guarded} if found is None else found


def _record_first_contact(w: Worker, unit: BookUnit, found: dict[int, int],
                          settled: set[int], kind: ReconcileKind) -> None:
    """Remember the first contact — only when the read succeeded and every item it
    found was settled (else the next run reads again: never a found item resent)."""
    if unit.reconcile and _UNSETTLED not in found.values() and set(found) <= settled:
        w.add(reconciled(unit.queue, unit.book_id, kind))


def _guarded_note(w: Worker, unit: BookUnit, claimed: set[int], item: QueueItem,
                  first: dict[int, int] | None = None) -> int | None:
    """A v1 book note (not deduplicated): one found by first contact is not sent (nor
    one whose read failed: _UNSETTLED); else verify an earlier unknown outcome first
    (first contact already did, when it was made)."""
    if first and item.id in first:
        return first[item.id]
    title, content = book_note_fields(item)
    if doubtful(item) and not unit.reconcile:
        sent_title = truncate_utf16(title, 255) or None
        found = find_unclaimed(
            w, unit, claimed, item, w.client.list_book_notes_v1,
            lambda n: (n.get("title") or None) == sent_title and n.get("content") == content)
        if found is not None:
            return found
    w.state.check()
    w.add(Sent("annotations", [item]))
    answer = w.client.create_book_note_v1(unit.book_id, title=title, content=content)
    remote_id = int_or_none(answer.get("id")) if isinstance(answer, dict) else None
    if remote_id is not None:
        claimed.add(remote_id)
    return remote_id


# --------------------------------------------------------------- bookmarks
def _same_bookmark(title: str | None) -> Callable[[dict[str, Any]], bool]:
    def same(b: dict[str, Any]) -> bool:
        return not b.get("cfi") and b.get("positionMs") is None and b.get("title") == title
    return same


def bookmarks_unit(w: Worker, unit: BookUnit) -> None:
    claimed: set[int] = set()
    found = _first_contact_bookmarks(w, unit)
    settled: set[int] = set()
    for item in unit.items:
        p = item.payload
        paged = not bookmark_deduplicated(item)  # PDF: no CFI, not deduplicated
        if found.get(item.id) == _UNSETTLED:
            continue  # the first-contact read failed: unsent this run
        if item.id in found:
            settled.add(item.id)
            w.add(Synced("bookmarks", [item], history={
                "book_id": unit.book_id, "remote_id": found[item.id], "settled": FOUND}))
            continue
        if not w.ready("bookmarks", [item], "booklore"):
            continue
        title = p.get("title") or "Bookmark"
        try:
            if paged:
                remote_id = None
                if doubtful(item) and not unit.reconcile:
                    remote_id = find_unclaimed(w, unit, claimed, item, w.client.list_bookmarks,
                                               _same_bookmark(truncate_utf16(title, 255)))
                    if remote_id == _UNSETTLED:
                        continue
                if remote_id is None:
                    w.state.check()
                    w.add(Sent("bookmarks", [item]))
                    remote = send_bookmark(w.client, unit.book_id, item, title)
                    remote_id = int_or_none(remote.get("id")) if isinstance(remote, dict) \
                        else None
                    if remote_id is not None:
                        claimed.add(remote_id)
            else:
                remote_id = post_dedup(send_bookmark, w.client, unit.book_id, item, title)
        except E.BookLoreError as exc:
            w.error("bookmarks", [item], exc, check_book=w.book_exists_not(unit.book_id),
                    unknown_state="uncertain" if paged else "pending")
            continue
        w.add(Synced("bookmarks", [item], defer=not paged,
                     history={"book_id": unit.book_id, "remote_id": remote_id}))
    _record_first_contact(w, unit, found, settled, ReconcileKind.PDF_BOOKMARKS)


def _first_contact_bookmarks(w: Worker, unit: BookUnit) -> dict[int, int]:
    """On first contact, the book's PDF bookmarks already on the server: local item id
    → server id (every PDF bookmark → _UNSETTLED when the read failed)."""
    if not unit.reconcile:
        return {}
    paged = [i for i in unit.items if i.payload.get("paged") and not i.payload.get("cfi")]
    if not paged:
        return {}
    found = reconcile_bookmarks(w, unit.book_id, paged, unit.known_remote)
    return {i.id: _UNSETTLED for i in paged} if found is None else found

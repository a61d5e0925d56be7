"""Sending an edit made on the device as an update of the server's item (spec §4.1
"Edits", booklore-api.md §3.25; the scan queues it, :mod:`booklore_sync.store.edits`).

Per destination the item was sent to, the server's item is updated by its id —
never created again: a highlight by ``PUT /api/v1/annotations/{id}`` (colour,
style), an in-book note by ``PUT /api/v2/book-notes/{id}`` (note text, colour), a
BookLore book note by the update form of ``POST /api/v1/book-notes`` (title,
content).  An id the ledger does not hold (the item was found by a 409) is looked
up once in the book's list: by CFI, or by the title and content sent.  An item the
server no longer has is settled "deleted on server" and not recreated.  The
highlighted text itself cannot be changed on the server: such a change is
reported (the item is skipped with :data:`TEXT_NOT_SENT`), never resent.

Workers only talk HTTP: the outcome (a ``Synced`` carrying ``parts``, or a
``Skipped``) is recorded by the engine's ledger.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from booklore_sync.booklore import errors as E
from booklore_sync.booklore.models import truncate_utf16
from booklore_sync.booklore.texts import fit_text_column
from booklore_sync.common.vocab import Settlement
from booklore_sync.store.edits import PARTS, TEXT_NOT_SENT, UPDATE_KEY
from booklore_sync.sync.outcomes import Skipped, Synced
from booklore_sync.sync.payloads import book_note_fields, int_or_none

if TYPE_CHECKING:
    from booklore_sync.store.db import QueueItem
    from booklore_sync.sync.plan import BookUnit
    from booklore_sync.sync.uploads import Worker

__all__ = ["TEXT_NOT_SENT", "ServerLists", "is_update", "update_item"]

_DELETED = Settlement.DELETED_ON_SERVER.value
_UPLOADED = Settlement.UPLOADED.value
_TEXT_PARTS = ("annotation", "note_v2")  # where the highlighted text cannot be changed


def is_update(item: QueueItem) -> bool:
    return isinstance(item.payload.get(UPDATE_KEY), dict)


class ServerLists:
    """The book's lists on the server, each read at most once per unit."""

    def __init__(self, client: Any, book_id: int) -> None:
        self.client = client
        self.book_id = book_id
        self._lists: dict[str, list[dict[str, Any]]] = {}

    def get(self, part: str) -> list[dict[str, Any]]:
        if part not in self._lists:
            read: Callable[[int], list[dict[str, Any]]] = {
                "annotation": self.client.list_annotations,
                "note_v2": self.client.list_book_notes_v2,
                "book_note": self.client.list_book_notes_v1,
            }[part]
            self._lists[part] = read(self.book_id)
        return self._lists[part]

    def ids(self, part: str) -> set[int]:
        return {i for i in (int_or_none(e.get("id")) for e in self.get(part)) if i is not None}


class _Failed(Exception):
    """A request failed: its outcome was added; the item stays queued."""


def _same(a: Any, b: Any) -> bool:
    return (a or None) == (b or None)


def _request(item: QueueItem, part: str, p: dict[str, Any], prev: dict[str, Any],
             changed: list[str]) -> dict[str, Any] | None:
    """What the update of one destination sends (keyword arguments of the client's
    update call), or None when nothing it holds changed."""
    # KOReader says the item was edited, and no field we compare tells how: send the
    # fields as they are now (an update with equal values changes nothing)
    again = changed == ["datetime_updated"]
    if part == "annotation":
        if again or any(f in changed for f in ("color", "style")):
            return {"color": p.get("color"), "style": p.get("style")}
        return None
    if part == "note_v2":
        if again or any(f in changed for f in ("note", "color")):
            note = p.get("note") or p.get("text") or None
            return {"note_content": note, "color": p.get("color")}
        return None
    title, content = book_note_fields(item)
    old_title, old_content = book_note_fields(dataclasses.replace(item, payload=prev))
    if again or title != old_title or content != old_content:
        return {"title": title, "content": content}
    return None


def _lookup(lists: ServerLists, part: str, item: QueueItem, prev: dict[str, Any],
            taken: set[int]) -> int | None:
    """The server's id of an item the ledger holds no id for (found by a 409)."""
    if part == "book_note":
        title, content = book_note_fields(dataclasses.replace(item, payload=prev))
        want_title = truncate_utf16(title, 255) or None
        want_content = fit_text_column(content).text
        same: Callable[[dict[str, Any]], bool] = lambda e: (  # noqa: E731
            _same(e.get("title"), want_title) and e.get("content") == want_content)
    else:
        cfi = prev.get("cfi") or item.payload.get("cfi")
        if not cfi:
            return None
        same = lambda e: e.get("cfi") == cfi  # noqa: E731
    for entry in sorted(lists.get(part), key=lambda e: int_or_none(e.get("id")) or 0):
        remote_id = int_or_none(entry.get("id"))
        if remote_id is not None and remote_id not in taken and same(entry):
            return remote_id
    return None


def _send(w: Worker, unit: BookUnit, part: str, remote_id: int, body: dict[str, Any]) -> None:
    if part == "annotation":
        w.client.update_annotation(remote_id, **body)
    elif part == "note_v2":
        w.client.update_book_note_v2(remote_id, **body)
    else:
        w.client.update_book_note_v1(remote_id, unit.book_id, **body)


def _update_part(w: Worker, unit: BookUnit, item: QueueItem, lists: ServerLists, part: str,
                 remote_id: int | None, body: dict[str, Any], prev: dict[str, Any]
                 ) -> tuple[int | None, str]:
    """Update one destination: (the server's id, how it was settled)."""
    def ready() -> None:
        if not w.ready("annotations", [item], "booklore"):
            raise _Failed

    try:
        if remote_id is None:
            ready()
            remote_id = _lookup(lists, part, item, prev, set(unit.known_remote))
            if remote_id is None:
                return None, _DELETED
        ready()
        try:
            _send(w, unit, part, remote_id, body)
        except E.BlankTextError:
            return remote_id, _UPLOADED  # nothing that can be sent: the server's stays
        except E.ServerError as exc:
            # a missing id is a 500 (EntityNotFoundException): the list tells
            if exc.status != 500:
                raise
            ready()
            if remote_id not in lists.ids(part):
                return remote_id, _DELETED
            raise
    except E.BookLoreError as exc:
        w.error("annotations", [item], exc, check_book=w.book_exists_not(unit.book_id))
        raise _Failed from None
    return remote_id, _UPLOADED


def update_item(w: Worker, unit: BookUnit, item: QueueItem, lists: ServerLists) -> None:
    """Send one queued update; add its outcome."""
    p = {k: v for k, v in item.payload.items() if k != UPDATE_KEY}
    parts: dict[str, Any] = item.payload[UPDATE_KEY].get("parts") or {}
    settled: dict[str, dict[str, Any]] = {}
    sent_any = unsent_text = False
    for part in PARTS:
        info = parts.get(part)
        if not isinstance(info, dict):
            continue
        previous = info.get("previous")
        prev: dict[str, Any] = previous if isinstance(previous, dict) else {}
        changed = [str(c) for c in info.get("changed") or []]
        remote_id = int_or_none(info.get("remote_id"))
        sent = dict(p)
        if part in _TEXT_PARTS and not _same(p.get("text"), prev.get("text")):
            # the server keeps the text sent before: the ledger says so, and the change
            # stays queued alone, reported (store.ledger's _settle_update)
            sent["text"] = prev.get("text")
            unsent_text = True
        body = _request(item, part, p, prev, changed)
        how = None
        if body is not None:
            try:
                remote_id, how = _update_part(w, unit, item, lists, part, remote_id, body, prev)
            except _Failed:
                return
            sent_any = True
        settled[part] = {"sent": sent, "remote_id": remote_id, "settled": how}
    if unsent_text and not sent_any:
        w.add(Skipped("annotations", [item], reason=TEXT_NOT_SENT))
        return
    w.add(Synced("annotations", [item], history={"book_id": unit.book_id, "parts": settled}))

"""Typed items of the per-book lists (annotations, notes, bookmarks) and of the status
route; each keeps the server's JSON in ``raw``. :class:`ServerItem` is the answer of a
create or update call: the server's JSON object (a ``dict``, as before) that also says
whether a text was cut to fit."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .models import WireRecord, _opt_int

__all__ = ["ServerItem", "Annotation", "NoteV2", "NoteV1", "Bookmark", "StatusResult"]


class ServerItem(dict[str, Any]):
    """The JSON object the server answered (a plain ``dict`` to read); ``cut`` is True
    when a text of the request was cut to fit its column."""

    cut: bool = False

    @classmethod
    def of(cls, data: Any, *, cut: bool = False) -> ServerItem:
        item = cls(data if isinstance(data, dict) else {})
        item.cut = cut
        return item

    @property
    def id(self) -> int | None:
        return _opt_int(self.get("id"))


@dataclass(frozen=True)
class Annotation(WireRecord):
    id: int
    book_id: int | None
    cfi: str | None
    text: str | None
    color: str | None
    style: str | None
    note: str | None
    chapter_title: str | None
    updated_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class NoteV2(WireRecord):
    id: int
    book_id: int | None
    cfi: str | None
    selected_text: str | None
    note_content: str | None
    color: str | None
    chapter_title: str | None
    updated_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class NoteV1(WireRecord):
    id: int
    book_id: int | None
    title: str | None
    content: str | None
    updated_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class Bookmark(WireRecord):
    id: int
    book_id: int | None
    cfi: str | None
    title: str | None
    page_number: int | None
    position_ms: int | None
    priority: int | None
    created_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class StatusResult(WireRecord):
    """One entry of ``POST /api/v1/books/status``'s answer."""

    book_id: int
    read_status: str | None
    read_status_modified_time: datetime | None
    date_finished: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)


def parse_items(data: list[dict[str, Any]], kind: type[Any]) -> list[Any]:
    """The entries of a list answer that have an id, as ``kind``."""
    out = []
    for obj in data:
        if _opt_int(obj.get("id")) is None:
            continue
        try:
            out.append(kind.from_json(obj))
        except (KeyError, TypeError, ValueError):
            continue
    return out

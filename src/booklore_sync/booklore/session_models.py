"""Reading-session value types (booklore-api.md §3.10–§3.12)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .models import (
    WireRecord,
    _dict_or,
    _list_or_empty,
    _opt_int,
    _opt_str,
    _utc_whole,
    _whole_seconds,
    format_instant,
    parse_time,
    truncate_utf16,
)

__all__ = ["SessionIn", "ServerSession", "SessionPage", "BatchResult"]


def _strict_time(value: Any) -> datetime | None:
    """A session's time: absent is None, a malformed one is an error (``ValueError``)."""
    return parse_time(_opt_str(value))


@dataclass(frozen=True)
class SessionIn:
    """A reading session to upload (the fields of §3.10 except ``bookId``/``bookType``).

    Times must be timezone-aware; they are sent in whole seconds. Percentages are on
    the 0–100 scale. Over-long strings are cut by the client (§8 #22)."""

    start_time: datetime
    end_time: datetime
    duration_seconds: int
    start_progress: float | None = None
    end_progress: float | None = None
    progress_delta: float | None = None
    start_location: str | None = None
    end_location: str | None = None
    duration_formatted: str | None = None
    #: the request item exactly as stored by the importer (already in wire form:
    #: whole-second UTC times, short locations); ``to_json`` sends it as it is
    wire: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of_wire(cls, start_time: datetime, end_time: datetime, duration_seconds: int,
                wire: dict[str, Any]) -> SessionIn:
        """A session whose request item is ``wire`` as it is (the other fields unset):
        the same object as the constructor makes, without its per-field set-up (a sync
        makes one per queued session)."""
        self = object.__new__(cls)
        self.__dict__.update(
            start_time=start_time, end_time=end_time, duration_seconds=duration_seconds,
            start_progress=None, end_progress=None, progress_delta=None, start_location=None,
            end_location=None, duration_formatted=None, wire=wire)
        return self

    def key(self) -> tuple[datetime, datetime, int]:
        """(start, end, duration) truncated to whole seconds, in UTC: the identity used
        by verify-before-resend (§3.12)."""
        return (
            _utc_whole(self.start_time),
            _utc_whole(self.end_time),
            int(self.duration_seconds),
        )

    def to_json(self, *, book_id: int | None = None, book_type: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if book_id is not None:
            body["bookId"] = int(book_id)
        if book_type is not None:
            body["bookType"] = book_type
        if self.wire is not None:
            body.update(self.wire)
            return body
        body["startTime"] = format_instant(self.start_time)
        body["endTime"] = format_instant(self.end_time)
        body["durationSeconds"] = int(self.duration_seconds)
        if self.duration_formatted is not None:
            body["durationFormatted"] = truncate_utf16(self.duration_formatted, 50)
        for key, value in (
            ("startProgress", self.start_progress),
            ("endProgress", self.end_progress),
            ("progressDelta", self.progress_delta),
        ):
            if value is not None:
                if not math.isfinite(float(value)):
                    raise ValueError(f"{key} must be a finite number")
                body[key] = float(value)
        if self.start_location is not None:
            body["startLocation"] = truncate_utf16(self.start_location, 500)
        if self.end_location is not None:
            body["endLocation"] = truncate_utf16(self.end_location, 500)
        return body


@dataclass(frozen=True)
class ServerSession(WireRecord):
    """One item of ``GET /api/v1/reading-sessions/book/{id}`` (§3.12)."""

    id: int | None
    book_id: int | None
    book_type: str | None
    start_time: datetime | None = field(metadata={"read": _strict_time})
    end_time: datetime | None = field(metadata={"read": _strict_time})
    duration_seconds: int | None
    start_progress: float | None
    end_progress: float | None
    progress_delta: float | None
    start_location: str | None
    end_location: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    def key(self) -> tuple[datetime | None, datetime | None, int | None]:
        return (_whole_seconds(self.start_time), _whole_seconds(self.end_time), self.duration_seconds)


@dataclass(frozen=True)
class SessionPage:
    """One page of the session list (``startTime`` descending)."""

    items: tuple[ServerSession, ...]
    number: int
    size: int
    total_elements: int
    total_pages: int

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SessionPage:
        if not isinstance(obj, dict) or not isinstance(obj.get("content"), list):
            raise ValueError("not a session page")
        page = _dict_or(obj.get("page"), obj)
        return cls(
            items=tuple(ServerSession.from_json(x) for x in obj["content"]),
            number=_opt_int(page.get("number")) or 0,
            size=_opt_int(page.get("size")) or 0,
            total_elements=_opt_int(page.get("totalElements")) or 0,
            total_pages=_opt_int(page.get("totalPages")) or 0,
        )


@dataclass(frozen=True)
class BatchResult:
    """``POST /api/v1/reading-sessions/batch`` 200 answer. ``session_ids`` are in
    request order."""

    total_requested: int
    success_count: int
    session_ids: tuple[int | None, ...]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> BatchResult:
        if not isinstance(obj, dict) or "results" not in obj:
            raise ValueError("not a batch response")
        results = _list_or_empty(obj.get("results"))
        return cls(
            total_requested=_opt_int(obj.get("totalRequested")) or 0,
            success_count=_opt_int(obj.get("successCount")) or 0,
            session_ids=tuple(_opt_int(r.get("sessionId")) if isinstance(r, dict) else None for r in results),
            raw=obj,
        )

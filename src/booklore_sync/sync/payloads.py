"""Request bodies built from queue payloads (pure; no store, no HTTP)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from booklore_sync.booklore.models import parse_time
from booklore_sync.booklore.session_models import SessionIn

if TYPE_CHECKING:
    from booklore_sync.store.db import QueueItem


def int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


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


def session_in(p: Mapping[str, Any]) -> SessionIn:
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


def annotation_body(p: Mapping[str, Any]) -> dict[str, Any]:
    return {"cfi": p["cfi"], "text": p.get("text") or "", "color": p.get("color"),
            "style": p.get("style"), "note": p.get("note") or None,
            "chapter_title": p.get("chapter") or None}


def note_v2_body(p: Mapping[str, Any]) -> dict[str, Any]:
    return {"cfi": p["cfi"], "note_content": p.get("note") or p.get("text") or "",
            "selected_text": p.get("text") or None, "color": p.get("color"),
            "chapter_title": p.get("chapter") or None}


def book_note_fields(item: QueueItem) -> tuple[str, str]:
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

"""Request bodies built from queue payloads (pure; no store, no HTTP)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from booklore_sync.booklore import errors as E
from booklore_sync.booklore.models import parse_time
from booklore_sync.booklore.session_models import SessionIn
from booklore_sync.booklore.texts import fit_text_column

if TYPE_CHECKING:
    from booklore_sync.store.db import QueueItem


def int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _wire_form(text: Any) -> bool:
    return isinstance(text, str) and len(text) == 20 and text[-1] == "Z" and text[10] == "T"


_fromiso = datetime.fromisoformat


def _instant(text: Any) -> datetime | None:
    """The importer's ``YYYY-MM-DDTHH:MM:SSZ`` quickly; anything else the careful way."""
    if isinstance(text, str) and len(text) == 20 and text[-1] == "Z":
        try:
            return _fromiso(text)  # Python 3.11 reads the Z as UTC
        except ValueError:
            pass
    return parse_time(text)


_WIRE_OK = {"startTime", "endTime", "durationSeconds", "durationFormatted", "startProgress",
            "endProgress", "progressDelta", "startLocation", "endLocation"}


def _short(value: Any) -> bool:
    return not value or len(str(value)) <= 100


def session_in(p: Mapping[str, Any]) -> SessionIn:
    start_text, end_text = p["startTime"], p["endTime"]
    start = _instant(start_text) or datetime.now(timezone.utc)
    end = _instant(end_text) or start
    if (_wire_form(start_text) and _wire_form(end_text)
            and _short(p.get("startLocation")) and _short(p.get("endLocation"))):
        # the importer's payload is already the request item: send it as it is
        wire = {k: v for k, v in p.items() if k in _WIRE_OK and v is not None}
        return SessionIn.of_wire(start, end, int(p["durationSeconds"]), wire)
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
        # nothing to send is never sent: the client refuses a blank content
        # (BlankTextError → skipped "blank text: nothing to send", spec §4.1)
        return title[:255], content if content.strip() else ""
    title = chapter[:255] if chapter else "Note"
    return title, p.get("note") or p.get("text") or ""


# ------------------------------------------------------------------ long texts
def text_of_part(item: QueueItem, part: str) -> str | None:
    """The text an annotation part sends in a TEXT column (v1 ``content``, v2
    ``noteContent``), or None for a part without one."""
    if part == "book_note":
        return book_note_fields(item)[1]
    if part == "note_v2":
        return str(note_v2_body(item.payload)["note_content"])
    if part == "cbx_note":
        return str(item.payload.get("note") or "")
    return None


def cut_to_fit(item: QueueItem, parts: list[str]) -> bool:
    """Whether one of the item's texts is longer than the server's 65,535-byte TEXT
    column, so the client cuts it (with the marker) to fit (spec §4.1 "Long text")."""
    for part in parts:
        text = text_of_part(item, part)
        if text and fit_text_column(text).cut:
            return True
    return False


# ------------------------------------------------------------------ bookmarks
def bookmark_page(item: QueueItem) -> int | None:
    """The 1-based page of a page-based bookmark (None when unknown)."""
    page = int_or_none(item.payload.get("page"))
    return page if page is not None and page >= 1 else None


def is_cbx(item: QueueItem) -> bool:
    """A comic book: its bookmarks and notes are keyed by page (``cfi`` = page)."""
    kind = item.payload.get("book_type") or item.book_type
    return str(kind or "").upper() == "CBX"


def bookmark_deduplicated(item: QueueItem) -> bool:
    """Whether the server deduplicates this bookmark (it carries a CFI: an EPUB
    bookmark, or a CBX bookmark keyed by its page)."""
    if not item.payload.get("paged"):
        return True
    return is_cbx(item) and bookmark_page(item) is not None


def send_bookmark(client: Any, book_id: int, item: QueueItem, title: str) -> Any:
    """Create the bookmark with the call its format needs (spec §4.1 "Bookmarks",
    koreader-data.md §7.6): EPUB by CFI; CBX with ``cfi`` = the page; PDF and other
    page-based formats without a CFI and with ``pageNumber`` = the page (Grimmory
    stores and deduplicates it, BookLore ignores it)."""
    p = item.payload
    if not p.get("paged"):
        return client.create_bookmark(book_id, cfi=p["cfi"], title=title)
    page = bookmark_page(item)
    if page is None:
        return client.create_bookmark(book_id, cfi=None, title=title)
    if is_cbx(item):
        return client.create_cbx_bookmark(book_id, page, title=title)
    return client.create_pdf_bookmark(book_id, page, title=title)


# ------------------------------------------------------------------ comic notes
def cbx_note_page(item: QueueItem) -> int | None:
    """The page a comic's note is anchored at, when it goes as an in-book note."""
    if not item.payload.get("paged") or not is_cbx(item) or item.key.get("kind") != "note":
        return None
    return bookmark_page(item)


def send_cbx_note(client: Any, book_id: int, item: QueueItem) -> tuple[int | None, bool]:
    """A comic's note as an in-book note at its page (koreader-data.md §7.6):
    ``(remote id, page taken)``.  The server keeps one in-book note per page: on a 409
    the page's note counts as this one only when it carries the same text; otherwise
    the page is taken (the caller sends the note as a BookLore book note instead)."""
    p = item.payload
    page = cbx_note_page(item)
    assert page is not None
    note = str(p.get("note") or "")
    try:
        answer = client.create_cbx_note(book_id, page, note_content=note,
                                        selected_text=p.get("text") or None,
                                        color=p.get("color"), chapter_title=p.get("chapter") or None)
    except E.AlreadyExistsError:
        return None, not client.cbx_note_present(book_id, page, note_content=note)
    return (int_or_none(answer.get("id")) if isinstance(answer, dict) else None), False

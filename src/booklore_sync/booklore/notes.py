"""Highlights and notes: annotations (§3.14), in-book notes (v2, §3.15, CBX page notes
included), BookLore book notes (v1, §3.16), their lists, updates (§3.25) and the
presence checks of verify-before-resend (§5.3)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .items import Annotation, NoteV1, NoteV2, ServerItem, parse_items
from .models import truncate_utf16, utf16_len
from .texts import fit_text_column, require_not_blank, require_not_empty
from .writes import WritesMixin

__all__ = ["NotesMixin", "ANNOTATIONS", "NOTES_V2", "NOTES_V1", "checked_cfi"]

ANNOTATIONS = "/api/v1/annotations"
NOTES_V2 = "/api/v2/book-notes"
NOTES_V1 = "/api/v1/book-notes"


def checked_cfi(cfi: str) -> str:
    """A CFI (or a CBX page number) as the server takes it: non-empty, ≤ 1000."""
    if not isinstance(cfi, str) or not cfi:
        raise ValueError("a CFI is required")
    if utf16_len(cfi) > 1000:
        raise ValueError("CFI longer than 1000 characters (unconvertible)")
    return cfi


def _set(body: dict[str, Any], key: str, value: Any, limit: int | None = None) -> None:
    if value is not None:
        body[key] = truncate_utf16(value, limit) if limit is not None else value


def _norm(text: str | None) -> str:
    return (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()


class NotesMixin(WritesMixin):
    """Annotations, in-book notes and book notes."""

    # ------------------------------------------------------------------ annotations

    def create_annotation(
        self,
        book_id: int,
        *,
        cfi: str,
        text: str,
        color: str | None = None,
        style: str | None = None,
        note: str | None = None,
        chapter_title: str | None = None,
        check_book: bool = False,
    ) -> dict[str, Any]:
        """``POST /api/v1/annotations`` (bearer): returns the stored annotation (dict).
        An empty ``text`` raises :class:`BlankTextError` (nothing sent). 409 "already
        exists" → :class:`AlreadyExistsError` (success); another 409 →
        :class:`ConflictError`. A 500 is :class:`ServerError`; with ``check_book``
        it is read by :meth:`diagnose_500` (§8 #2): :class:`BookNotFoundError` for an
        unknown book, :class:`RouteMissingError` for a missing route."""
        body: dict[str, Any] = {"bookId": int(book_id), "cfi": checked_cfi(cfi),
                                "text": truncate_utf16(require_not_empty(text), 5000)}
        _set(body, "color", color)
        _set(body, "style", style)
        _set(body, "note", note, 5000)
        _set(body, "chapterTitle", chapter_title, 500)
        return self._create(ANNOTATIONS, body, idempotent=True, kind="annotations", book_id=book_id,
                            explain_500=check_book)

    def list_annotations(self, book_id: int) -> list[dict[str, Any]]:
        """``GET /api/v1/annotations/book/{id}`` (bearer), newest first."""
        return self._list(f"{ANNOTATIONS}/book/{int(book_id)}", kind="annotations")

    def annotations(self, book_id: int) -> list[Annotation]:
        """The book's annotations, typed."""
        return parse_items(self.list_annotations(book_id), Annotation)

    def update_annotation(
        self, annotation_id: int, *, color: str | None = None, style: str | None = None, note: str | None = None
    ) -> dict[str, Any]:
        """``PUT /api/v1/annotations/{id}`` (§3.25): only the fields given change. A
        missing id (deleted on the server) is a 500: check the book's list."""
        body: dict[str, Any] = {}
        _set(body, "color", color)
        _set(body, "style", style)
        _set(body, "note", note, 5000)
        return self._create(f"{ANNOTATIONS}/{int(annotation_id)}", body, idempotent=True, kind="annotations",
                            method="PUT")

    # ------------------------------------------------------------------ in-book notes (v2)

    def create_book_note_v2(
        self,
        book_id: int,
        *,
        cfi: str,
        note_content: str,
        selected_text: str | None = None,
        color: str | None = None,
        chapter_title: str | None = None,
        check_book: bool = False,
    ) -> ServerItem:
        """``POST /api/v2/book-notes`` (bearer; in-book note). An empty ``note_content``
        raises :class:`BlankTextError`; one over 65,535 UTF-8 bytes is cut (the answer's
        ``cut`` says so). 409 as :meth:`create_annotation`; 500 checked likewise."""
        fitted = fit_text_column(require_not_empty(note_content))
        body: dict[str, Any] = {"bookId": int(book_id), "cfi": checked_cfi(cfi), "noteContent": fitted.text}
        _set(body, "selectedText", selected_text, 5000)
        _set(body, "color", color)
        _set(body, "chapterTitle", chapter_title, 500)
        data = self._create(NOTES_V2, body, idempotent=True, kind="notes_v2", book_id=book_id, explain_500=check_book)
        return ServerItem.of(data, cut=fitted.cut)

    def create_cbx_note(
        self, book_id: int, page: int, *, note_content: str, selected_text: str | None = None,
        color: str | None = None, check_book: bool = False, chapter_title: str | None = None,
    ) -> ServerItem:
        """An in-book note of a comic (CBX), anchored at its 1-based page as BookLore's
        comic reader stores it: ``cfi`` = the page number, ``chapterTitle`` the chapter,
        else "Page N". A 409 only says that the page has a note: see
        :meth:`cbx_note_present`."""
        if int(page) < 1:
            raise ValueError("a CBX page number starts at 1")
        return self.create_book_note_v2(book_id, cfi=str(int(page)), note_content=note_content,
                                        selected_text=selected_text, color=color,
                                        chapter_title=chapter_title or f"Page {int(page)}", check_book=check_book)

    def list_book_notes_v2(self, book_id: int) -> list[dict[str, Any]]:
        """``GET /api/v2/book-notes/book/{id}`` (bearer)."""
        return self._list(f"{NOTES_V2}/book/{int(book_id)}", kind="notes_v2")

    def book_notes_v2(self, book_id: int) -> list[NoteV2]:
        """The book's in-book notes, typed."""
        return parse_items(self.list_book_notes_v2(book_id), NoteV2)

    def cbx_note_present(self, book_id: int, page: int, *, note_content: str) -> bool:
        """§3.15: after a 409 on a CBX page note, the note counts as already there only
        when the server's note on that page carries the same text (as sent)."""
        sent = fit_text_column(note_content).text
        return any(n.cfi == str(int(page)) and n.note_content == sent for n in self.book_notes_v2(book_id))

    def update_book_note_v2(
        self, note_id: int, *, note_content: str | None = None, color: str | None = None,
        chapter_title: str | None = None,
    ) -> ServerItem:
        """``PUT /api/v2/book-notes/{id}`` (§3.25): only the fields given change; a long
        ``note_content`` is cut to fit as on create."""
        body: dict[str, Any] = {}
        cut = False
        if note_content is not None:
            fitted = fit_text_column(note_content)
            body["noteContent"], cut = fitted.text, fitted.cut
        _set(body, "color", color)
        _set(body, "chapterTitle", chapter_title, 500)
        data = self._create(f"{NOTES_V2}/{int(note_id)}", body, idempotent=True, kind="notes_v2", method="PUT")
        return ServerItem.of(data, cut=cut)

    # ------------------------------------------------------------------ book notes (v1)

    def _v1_body(self, book_id: int, title: str | None, content: str) -> tuple[dict[str, Any], bool]:
        fitted = fit_text_column(require_not_blank(content))
        body: dict[str, Any] = {"bookId": int(book_id), "content": fitted.text}
        _set(body, "title", title, 255)
        return body, fitted.cut

    def create_book_note_v1(self, book_id: int, *, content: str, title: str | None = None) -> ServerItem:
        """``POST /api/v1/book-notes`` (bearer; standalone note; **no dedup** — on
        :class:`OutcomeUnknownError` check :meth:`book_note_v1_present` before resending).
        Never sends ``id`` (that would update). Blank ``content`` →
        :class:`BlankTextError`; over 65,535 bytes: cut (``cut`` on the answer). 404 →
        :class:`BookNotFoundError`."""
        body, cut = self._v1_body(book_id, title, content)
        return ServerItem.of(self._create(NOTES_V1, body, idempotent=False), cut=cut)

    def update_book_note_v1(self, note_id: int, book_id: int, *, content: str, title: str | None = None) -> ServerItem:
        """The update form of ``POST /api/v1/book-notes`` (with ``id``, §3.25): replaces
        the note's title and content. Safe to repeat."""
        body, cut = self._v1_body(book_id, title, content)
        body["id"] = int(note_id)
        return ServerItem.of(self._create(NOTES_V1, body, idempotent=True), cut=cut)

    def list_book_notes_v1(self, book_id: int) -> list[dict[str, Any]]:
        """``GET /api/v1/book-notes/book/{id}`` (bearer), newest first."""
        return self._list(f"{NOTES_V1}/book/{int(book_id)}")

    def book_notes_v1(self, book_id: int) -> list[NoteV1]:
        """The book's BookLore book notes, typed."""
        return parse_items(self.list_book_notes_v1(book_id), NoteV1)

    def find_book_note_v1(
        self, book_id: int, *, title: str | None, content: str, exclude: Iterable[int] = ()
    ) -> int | None:
        """§5.3: the id of a v1 note with the same title and content (as they were sent:
        title cut to 255, content fitted to its column), leaving out the ids in
        ``exclude`` (items already accounted for); the lowest id first. ``None``: none."""
        want_title = truncate_utf16(title, 255) if title is not None else None
        want_content = fit_text_column(content).text
        skip = set(exclude)
        for note in sorted(self.book_notes_v1(book_id), key=lambda n: n.id):
            if note.id in skip:
                continue
            if note.content == want_content and (note.title or None) == (want_title or None):
                return note.id
        return None

    def book_note_v1_present(self, book_id: int, *, title: str | None, content: str) -> bool:
        """§5.3: a v1 note with the same title (as sent: cut to 255) and content exists."""
        return self.find_book_note_v1(book_id, title=title, content=content) is not None

    def find_book_note_v1_by_text(self, book_id: int, *, texts: Iterable[str], exclude: Iterable[int] = ()) -> int | None:
        """§5.4 reconciliation: a v1 note whose content equals one of ``texts`` (line
        endings normalised, trimmed)."""
        wanted = {_norm(t) for t in texts if _norm(t)}
        skip = set(exclude)
        for note in sorted(self.book_notes_v1(book_id), key=lambda n: n.id):
            if note.id not in skip and _norm(note.content) in wanted:
                return note.id
        return None

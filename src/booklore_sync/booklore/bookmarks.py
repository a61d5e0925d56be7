"""Bookmarks (booklore-api.md §3.17, §3.25): EPUB bookmarks by CFI, CBX bookmarks by
page (``cfi`` = the page number), PDF bookmarks by ``pageNumber`` (grimmory stores and
deduplicates it; booklore ignores it), and the PDF presence check of §5.3."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .items import Bookmark, parse_items
from .models import truncate_utf16
from .notes import checked_cfi
from .writes import WritesMixin

__all__ = ["BookmarksMixin", "BOOKMARKS"]

BOOKMARKS = "/api/v1/bookmarks"
_PAGE_TITLE = re.compile(r"^p\. (\d+)(?:$| —)")


class BookmarksMixin(WritesMixin):
    """``/api/v1/bookmarks``."""

    def create_bookmark(
        self, book_id: int, *, cfi: str | None = None, title: str | None = None, page_number: int | None = None,
        check_book: bool = False,
    ) -> dict[str, Any]:
        """``POST /api/v1/bookmarks`` (bearer). With a CFI the server deduplicates
        (409 "already exists" → :class:`AlreadyExistsError`, success); without one (PDF,
        with ``page_number``) only grimmory does — elsewhere, on
        :class:`OutcomeUnknownError` check :meth:`bookmark_without_cfi_present`."""
        body: dict[str, Any] = {"bookId": int(book_id)}
        if cfi is not None:
            body["cfi"] = checked_cfi(cfi)
        if title is not None:
            body["title"] = truncate_utf16(title, 255)
        if page_number is not None:
            if int(page_number) < 1:
                raise ValueError("a page number starts at 1")
            body["pageNumber"] = int(page_number)
        caps = self._caps
        dedup = cfi is not None or (page_number is not None and caps is not None and caps.server == "grimmory")
        return self._create(BOOKMARKS, body, idempotent=dedup, kind="bookmarks", book_id=book_id,
                            explain_500=check_book)

    def create_cbx_bookmark(
        self, book_id: int, page: int, *, title: str | None = None, check_book: bool = False
    ) -> dict[str, Any]:
        """A comic (CBX) bookmark as BookLore's comic reader stores it: ``cfi`` = the
        1-based page number, ``title`` "Page N" unless given; deduplicated by the server."""
        if int(page) < 1:
            raise ValueError("a CBX page number starts at 1")
        return self.create_bookmark(book_id, cfi=str(int(page)), title=title or f"Page {int(page)}",
                                    check_book=check_book)

    def create_pdf_bookmark(
        self, book_id: int, page: int, *, title: str | None = None, check_book: bool = False
    ) -> dict[str, Any]:
        """A PDF (page-based, non-CBX) bookmark: no CFI, ``pageNumber`` = the page."""
        return self.create_bookmark(book_id, title=title, page_number=page, check_book=check_book)

    def list_bookmarks(self, book_id: int) -> list[dict[str, Any]]:
        """``GET /api/v1/bookmarks/book/{id}`` (bearer)."""
        return self._list(f"{BOOKMARKS}/book/{int(book_id)}", kind="bookmarks")

    def bookmarks(self, book_id: int) -> list[Bookmark]:
        """The book's bookmarks, typed."""
        return parse_items(self.list_bookmarks(book_id), Bookmark)

    def find_pdf_bookmark(
        self, book_id: int, *, title: str | None, page_number: int | None = None, exclude: Iterable[int] = ()
    ) -> int | None:
        """§5.3: the id of a bookmark without a CFI (nor an audio position) with the same
        title as sent — or, where the server keeps it (grimmory), the same
        ``pageNumber`` — leaving out the ids in ``exclude``; lowest id first."""
        want_title = truncate_utf16(title, 255) if title is not None else None
        skip = set(exclude)
        for bm in sorted(self.bookmarks(book_id), key=lambda b: b.id):
            if bm.id in skip or bm.cfi or bm.position_ms is not None:
                continue
            same_page = page_number is not None and bm.page_number == int(page_number)
            if same_page or (bm.title or None) == (want_title or None):
                return bm.id
        return None

    def bookmark_without_cfi_present(self, book_id: int, *, title: str | None, page_number: int | None = None) -> bool:
        """§5.3: a bookmark with no CFI and the same title (as sent) — or page — exists."""
        return self.find_pdf_bookmark(book_id, title=title, page_number=page_number) is not None

    def find_bookmark_on_page(self, book_id: int, page: int, *, exclude: Iterable[int] = ()) -> int | None:
        """§5.4 reconciliation: a bookmark without a CFI on ``page`` (``pageNumber``, or a
        title starting ``p. <page>`` followed by the end or `` —``)."""
        skip = set(exclude)
        for bm in sorted(self.bookmarks(book_id), key=lambda b: b.id):
            if bm.id in skip or bm.cfi or bm.position_ms is not None:
                continue
            m = _PAGE_TITLE.match(bm.title or "")
            if bm.page_number == int(page) or (m is not None and int(m.group(1)) == int(page)):
                return bm.id
        return None

    def update_bookmark(
        self,
        bookmark_id: int,
        *,
        title: str | None = None,
        cfi: str | None = None,
        color: str | None = None,
        notes: str | None = None,
        priority: int | None = None,
        page_number: int | None = None,
    ) -> dict[str, Any]:
        """``PUT /api/v1/bookmarks/{id}`` (§3.25; since v1.16.0): only the fields given
        change."""
        body: dict[str, Any] = {}
        if title is not None:
            body["title"] = truncate_utf16(title, 255)
        if cfi is not None:
            body["cfi"] = truncate_utf16(cfi, 500)
        if color is not None:
            body["color"] = color
        if notes is not None:
            body["notes"] = truncate_utf16(notes, 2000)
        if priority is not None:
            body["priority"] = int(priority)
        if page_number is not None:
            body["pageNumber"] = int(page_number)
        return self._create(f"{BOOKMARKS}/{int(bookmark_id)}", body, idempotent=True, kind="bookmark_update",
                            method="PUT")

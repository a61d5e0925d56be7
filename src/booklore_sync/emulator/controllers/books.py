"""Books: one, the list, the fork's bearer by-hash and search (§3.7–3.9)."""

from __future__ import annotations

from typing import Any

from booklore_sync.common.matchscore import clean_isbn_query, clean_stored_isbn, match_score

from .. import flavours
from ..core import path_long, query_bool
from ..routing import Router
from .base import ApiError, Controller, Ctx, Response, json_response


class BooksController(Controller):
    def register(self, router: Router) -> None:
        forks = self.api.only(*flavours.FORKS)
        router.add("GET", "/api/v1/books/by-hash/{hash}", self.bearer_by_hash, forks)
        router.add("GET", "/api/v1/books/search", self.search, forks)
        router.add("GET", "/api/v1/books", self.list_books)
        router.add("GET", "/api/v1/books/{bookId}", self.get_book)
    def bearer_by_hash(self, ctx: Ctx, hash: str) -> Response:  # noqa: A002
        with_desc = query_bool(ctx, "withDescription")
        book = self.lookup_hash(hash, ctx.user)
        return json_response(200, self.book_dto(book, ctx.user, with_description=with_desc))

    def _search_title(self, book: dict[str, Any]) -> str:
        title = book["metadata"].get("title")
        if title is not None:
            return title
        primary = next((f for f in book["files"] if f["primary"]), None)
        return primary["fileName"] if primary and primary.get("fileName") else ""

    def _search_result(self, book: dict[str, Any], score: float) -> dict[str, Any]:
        out: dict[str, Any] = {"id": book["id"], "title": self._search_title(book)}
        primary = next((f for f in book["files"] if f["primary"]), None)
        if primary is not None and primary.get("currentHash"):
            out["hash"] = primary["currentHash"]
        if book.get("coverHash"):
            out["coverHash"] = book["coverHash"]
        out["matchScore"] = score
        return out

    def search(self, ctx: Ctx) -> Response:
        title = ctx.req.param("title")
        isbn = ctx.req.param("isbn")
        if title is None and isbn is None:
            raise ApiError(400, "At least one search parameter (title or isbn) must be provided")
        books = self.visible_books(ctx.user)
        if self.state.mode == "fork-2675":
            return json_response(200, self._search_combined(books, title, isbn))
        if isbn is not None:
            cleaned = clean_isbn_query(isbn)
            hits = [b for b in books if cleaned and cleaned in (
                clean_stored_isbn(b["metadata"].get("isbn13")),
                clean_stored_isbn(b["metadata"].get("isbn10")))]
            if hits:
                return json_response(200, [self._search_result(b, 1.0) for b in hits])
            if title is None:
                return json_response(200, [])
        if not title:
            return json_response(200, [])
        scored = [(match_score(self._search_title(b), title), b) for b in books]
        scored = [(s, b) for s, b in scored if s != 0]
        scored.sort(key=lambda item: -item[0])  # stable: ties keep ascending id
        return json_response(200, [self._search_result(b, s) for s, b in scored[:50]])

    def _search_combined(self, books: list[dict[str, Any]], title: str | None,
                         isbn: str | None) -> list[dict[str, Any]]:
        scored = []
        cleaned = clean_isbn_query(isbn) if isbn is not None else None
        for b in books:
            score = 0.0
            if cleaned:
                for stored in (b["metadata"].get("isbn13"), b["metadata"].get("isbn10")):
                    s = clean_stored_isbn(stored)
                    if s is None:
                        continue
                    score = max(score, 1.0 if s == cleaned else match_score(s, cleaned))
            if title:
                score = max(score, match_score(self._search_title(b), title))
            if score != 0:
                scored.append((score, b))
        scored.sort(key=lambda item: -item[0])
        return [self._search_result(b, s) for s, b in scored[:50]]

    def list_books(self, ctx: Ctx) -> Response:
        with_desc = query_bool(ctx, "withDescription")
        return json_response(200, [self.book_dto(b, ctx.user, with_desc) for b in self.visible_books(ctx.user)])

    def get_book(self, ctx: Ctx, bookId: str) -> Response:  # noqa: N803
        book_id = path_long(bookId)
        with_desc = query_bool(ctx, "withDescription")
        book = self.state.live_book(book_id)
        if book is None:
            raise ApiError(404, f"Book not found with ID: {book_id}")
        if not self.state.can_access(ctx.user, book):
            raise ApiError(403, "You are not authorized to access this book.")
        return json_response(200, self.book_dto(book, ctx.user, with_desc))

    # ================================================================== sessions


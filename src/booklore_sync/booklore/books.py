"""Books: by-hash lookups (fork), ``GET /api/v1/books[/{id}]``, search (fork)
(booklore-api.md §3.6–§3.9.2)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from .core import ClientCore
from .errors import AuthError, BookNotFoundError, NotFoundError, UnsupportedEndpointError
from .http import extract_message, is_error_response_json, is_json_response
from .models import Book, SearchResult, normalize_hash, normalize_isbn
from .probe import BY_HASH, KO_BY_HASH, SEARCH

__all__ = ["BooksMixin", "BOOKS"]

log = logging.getLogger("booklore_sync.booklore")
T = TypeVar("T")

BOOKS = "/api/v1/books"



def _each(data: list[Any], read: Callable[[Any], T], what: str) -> list[T]:
    """The entries of a list answer ``read`` accepts; the others skipped (logged)."""
    out = []
    for item in data:
        try:
            out.append(read(item))
        except ValueError:
            log.debug("skipping %s", what)
    return out

class BooksMixin(ClientCore):
    """Finding books and reading their server state."""

    def _by_hash(
        self, route: str, fingerprint: str, auth: str, capability: str, params: dict[str, str] | None
    ) -> Book | None:
        path = route + normalize_hash(fingerprint)
        resp = self._request("GET", path, auth=auth, params=params)
        status = resp.status_code
        if 200 <= status < 300:
            if not is_json_response(resp):
                self._observe(capability, False)
                raise UnsupportedEndpointError(
                    "this server has no by-hash endpoint (it answered with a web page)",
                    capability=capability, not_json=True, method="GET", path=path, status=status,
                )
            data = self._json_ok(resp, "GET", path)
            try:
                book = Book.from_json(data)
            except ValueError:
                raise self._bad_shape("GET", path, status, "not a Book") from None
            self._observe(capability, True)
            return book
        if status == 404:
            message = extract_message(resp)
            if is_error_response_json(resp) and not message.startswith("Resource not found"):
                self._observe(capability, True)
                return None
            self._observe(capability, False)
            raise UnsupportedEndpointError(
                f"this server has no by-hash endpoint ({message})",
                capability=capability, method="GET", path=path, status=status,
            )
        raise self._fail(resp, "GET", path, auth)

    def book_by_hash(self, fingerprint: str) -> Book | None:
        """``GET /api/koreader/books/by-hash/{hash}`` (KOReader headers; fork only).

        ``None``: the server does not know the fingerprint (404 ErrorResponse).
        Raises :class:`UnsupportedEndpointError` (upstream: the 200 text/html trap, or a
        ``Resource not found`` 404), :class:`AuthError` (403 rejected, 409 not linked),
        :class:`ServerError` (500: e.g. two books share the hash — ambiguous)."""
        return self._by_hash(KO_BY_HASH, fingerprint, "koreader", "by_hash_koreader", None)

    def book_by_hash_bearer(self, fingerprint: str, *, with_description: bool = False) -> Book | None:
        """``GET /api/v1/books/by-hash/{hash}`` (bearer; fork only). As :meth:`book_by_hash`."""
        params = {"withDescription": "true"} if with_description else None
        return self._by_hash(BY_HASH, fingerprint, "bearer", "by_hash_bearer", params)

    def find_book_by_hash(self, fingerprint: str) -> Book | None:
        """By-hash through whichever route fits the accounts and capabilities: the
        KOReader route when a KOReader account is configured (and not known to be
        rejected or the route missing), else the bearer route. Raises
        :class:`UnsupportedEndpointError` when neither route exists."""
        caps = self._caps
        ko_usable = self.has_koreader_account and not (
            caps is not None
            and (caps.koreader_auth_ok is False or caps.koreader_linked is False or caps.by_hash_koreader is False)
        )
        if ko_usable:
            try:
                return self.book_by_hash(fingerprint)
            except UnsupportedEndpointError:
                if not self.has_booklore_account:
                    raise
            except AuthError as exc:
                if not (exc.kind in ("rejected", "not_linked") and self.has_booklore_account):
                    raise
                with self._caps_lock:
                    if self._caps is not None:
                        field = "koreader_auth_ok" if exc.kind == "rejected" else "koreader_linked"
                        self._caps = self._caps.with_(**{field: False})
        if self.has_booklore_account:
            if caps is not None and caps.by_hash_bearer is False:
                raise UnsupportedEndpointError(
                    "this server has no by-hash endpoint", capability="by_hash_bearer", method="GET", path=BY_HASH
                )
            return self.book_by_hash_bearer(fingerprint)
        self._require("koreader", KO_BY_HASH, "GET")
        raise UnsupportedEndpointError(
            "this server has no by-hash endpoint", capability="by_hash_koreader", method="GET", path=KO_BY_HASH
        )

    def get_book(self, book_id: int, *, with_description: bool = False) -> Book:
        """``GET /api/v1/books/{id}`` (bearer): the book with its server state
        (``last_read_time``, ``date_finished``, ``read_status``, ``primary_file_type``).
        404 ``Book not found…`` → :class:`BookNotFoundError`; 403 → :class:`AuthError`
        ``kind="refused"`` (no access to that book's library)."""
        path = f"{BOOKS}/{int(book_id)}"
        params = {"withDescription": "true"} if with_description else None
        data = self._call_json("GET", path, auth="bearer", params=params)
        try:
            return Book.from_json(data)
        except ValueError:
            raise self._bad_shape("GET", path, 200, "not a Book") from None

    def book_exists(self, book_id: int) -> bool:
        """§8 #2: does book N exist? False on 404 ``Book not found…``, True on 200;
        anything else raises (a route-missing 404 as :class:`NotFoundError`)."""
        try:
            self.get_book(book_id)
        except BookNotFoundError:
            return False
        except NotFoundError as exc:
            if exc.route_missing or not exc.message.startswith("Book not found"):
                raise
            return False
        return True

    def list_books(self, *, with_description: bool = False) -> list[Book]:
        """``GET /api/v1/books`` (bearer): every book the user can see, ascending id."""
        params = {"withDescription": "true"} if with_description else None
        data = self._call_json("GET", BOOKS, auth="bearer", params=params)
        if not isinstance(data, list):
            raise self._bad_shape("GET", BOOKS, 200, "not a list")
        return _each(data, Book.from_json, "a book list entry without an id")

    def search_books(self, *, title: str | None = None, isbn: str | None = None) -> list[SearchResult]:
        """``GET /api/v1/books/search`` (bearer; fork only). The ISBN is normalised and
        checked (ValueError when invalid); newlines in the title become spaces.

        Raises :class:`UnsupportedEndpointError` (``capability="search"``) on a server
        without search (500, HTML, ``Resource not found``)."""
        params: dict[str, str] = {}
        if isbn is not None:
            clean = normalize_isbn(isbn)
            if clean is None:
                raise ValueError("not a valid ISBN")
            params["isbn"] = clean
        if title is not None:
            params["title"] = title.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
        if not params:
            raise ValueError("give a title or an ISBN")
        resp = self._request("GET", SEARCH, auth="bearer", params=params)
        status = resp.status_code
        if 200 <= status < 300:
            if not is_json_response(resp):
                self._observe("search", False)
                raise UnsupportedEndpointError(
                    "this server has no search endpoint (it answered with a web page)",
                    capability="search", not_json=True, method="GET", path=SEARCH, status=status,
                )
            data = self._json_ok(resp, "GET", SEARCH)
            if not isinstance(data, list):
                raise self._bad_shape("GET", SEARCH, status, "not a list")
            self._observe("search", True)
            return _each(data, SearchResult.from_json, "a search result without an id")
        if status == 500 or (status == 404 and extract_message(resp).startswith("Resource not found")):
            self._observe("search", False)
            raise UnsupportedEndpointError(
                f"this server has no search endpoint ({extract_message(resp)})",
                capability="search", method="GET", path=SEARCH, status=status,
            )
        raise self._fail(resp, "GET", SEARCH, "bearer")

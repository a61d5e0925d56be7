"""Writes and their answers: create/update calls, per-book lists, and the reading of a
500 (booklore-api.md §8 #2) and of routes an older release lacks (§6 "route
missing")."""

from __future__ import annotations

from typing import Any

from .core import RATING_PATH, ClientCore
from .errors import BookLoreError, BookNotFoundError, RouteMissingError, ServerError
from .http import extract_message, is_json_response

__all__ = ["WritesMixin", "LIST_ROUTES"]

#: the list route of each kind, for route learning (§6 "route missing")
LIST_ROUTES = {
    "annotations": "/api/v1/annotations/book/",
    "notes_v2": "/api/v2/book-notes/book/",
    "bookmarks": "/api/v1/bookmarks/book/",
    "sessions": "/api/v1/reading-sessions/book/",
}


class WritesMixin(ClientCore):
    """Shared by the resource modules that write items."""

    def _create(
        self, path: str, body: dict[str, Any], *, idempotent: bool, kind: str | None = None,
        book_id: int | None = None, explain_500: bool = False, method: str = "POST",
    ) -> dict[str, Any]:
        """A create/update call answering the item's JSON (a dict). With
        ``explain_500``, a 500 is read as §8 #2 says (unknown book, or route missing)."""
        try:
            data = self._call_json(method, path, auth="bearer", json_body=body, idempotent=idempotent, kind=kind)
        except ServerError as exc:
            if explain_500 and kind is not None and exc.status == 500:
                raise self.diagnose_500(kind, book_id, exc) from None
            raise
        return data if isinstance(data, dict) else {}

    def _list(self, path: str, *, kind: str | None = None) -> list[dict[str, Any]]:
        data = self._call_json("GET", path, auth="bearer", kind=kind)
        if not isinstance(data, list):
            raise self._bad_shape("GET", path, 200, "not a list")
        return [x for x in data if isinstance(x, dict)]

    def learn_route(self, kind: str, book_id: int | None = None) -> bool:
        """Whether the route of ``kind`` exists, asking the server when neither the
        release nor an earlier answer tells (§6 "route missing"): a GET of the kind's
        list route for ``book_id`` (a book that exists), or for ratings the harmless
        ``PUT`` of an empty list. Remembered; at most one request per kind and run."""
        known = self.has_route(kind)
        if known is not None:
            return known
        if kind in self._routes_checked:
            return True
        if kind == "ratings":
            resp = self._request("PUT", RATING_PATH, auth="bearer", json_body={"ids": [], "rating": None},
                                 idempotent=True)
            exists = 200 <= resp.status_code < 300 and is_json_response(resp)
        else:
            route = LIST_ROUTES.get(kind)
            if route is None or book_id is None:
                return True
            params = {"size": 1} if kind == "sessions" else None
            resp = self._request("GET", route + str(int(book_id)), auth="bearer", params=params)
            if not (200 <= resp.status_code < 300 or self._route_missing_answer(resp)):
                return True  # an answer that says nothing about the route
            exists = not self._route_missing_answer(resp)
        self._routes_checked.add(kind)
        if not exists:
            self.mark_route_missing(kind)
        return exists

    def _book_known(self, book_id: int) -> bool | None:
        """§8 #2: ``GET /api/v1/books/{id}`` — True (exists), False (404 ``Book not
        found…``), None (no answer that tells; errors are swallowed)."""
        try:
            resp = self._request("GET", f"/api/v1/books/{int(book_id)}", auth="bearer")
        except BookLoreError:
            return None
        if 200 <= resp.status_code < 300 and is_json_response(resp):
            return True
        if resp.status_code == 404 and extract_message(resp).startswith("Book not found"):
            return False
        return None

    def diagnose_500(self, kind: str, book_id: int | None, err: BookLoreError) -> BookLoreError:
        """Read a 500 from a create route whose server gives 500 for an unknown book (§8
        #2, §5.2) — the one copy of the engine's "does the book exist" check: check the
        book once; an unknown book → :class:`BookNotFoundError`; a book
        that exists on a server of unknown release → check the route. Otherwise the
        original error."""
        if book_id is None or not self.has_booklore_account:
            return err
        known = self._book_known(book_id)
        if known is False:
            return BookNotFoundError(f"Book not found with ID: {int(book_id)}", method=err.method, path=err.path,
                                     status=404)
        if known and self.has_route(kind) is None:
            try:
                if not self.learn_route(kind, book_id):
                    return RouteMissingError(self.route_missing_reason(kind), capability=kind, method=err.method,
                                             path=err.path, status=err.status)
            except BookLoreError:
                return err
        return err

"""Read status: ``POST /api/v1/books/status`` (booklore-api.md §3.24, §8 #24)."""

from __future__ import annotations

from .core import ClientCore
from .errors import BookNotFoundError, RequestRejectedError
from .items import StatusResult

__all__ = ["StatusMixin", "BOOK_STATUS", "SENDABLE_STATUSES"]

BOOK_STATUS = "/api/v1/books/status"
#: the only statuses the client sends (KOReader's complete / abandoned)
SENDABLE_STATUSES = frozenset({"READ", "ABANDONED"})


class StatusMixin(ClientCore):
    """The server's read status of a book."""

    def set_read_status(self, book_id: int, status: str) -> StatusResult:
        """Set one book's read status (``READ`` or ``ABANDONED``; the server stores an
        unknown name as null, so nothing else is sent). Send it **after** the book's
        position push. Raises :class:`RouteMissingError` on a release before v1.16.1,
        :class:`BookNotFoundError` for the 400 ``"d != java.lang.String"`` of an unknown
        book (§8 #24)."""
        if status not in SENDABLE_STATUSES:
            raise ValueError(f"status must be one of {sorted(SENDABLE_STATUSES)}")
        body = {"bookIds": [int(book_id)], "status": status}
        try:
            data = self._call_json("POST", BOOK_STATUS, auth="bearer", json_body=body, idempotent=True, kind="status")
        except RequestRejectedError as exc:
            if "java.lang.String" in exc.message:
                raise BookNotFoundError(f"Book not found with ID: {int(book_id)}", method="POST", path=BOOK_STATUS,
                                        status=exc.status) from None
            raise
        if isinstance(data, list):
            for item in data:
                if isinstance(item, dict) and item.get("bookId") == int(book_id):
                    return StatusResult.from_json(item)
        raise self._bad_shape("POST", BOOK_STATUS, 200, "no entry for the book")

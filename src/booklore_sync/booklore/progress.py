"""Reading positions: KOReader's kosync routes (§3.18, §3.19; the "Sync" switch of
§2.2) and the position by book id (``POST /api/v1/books/progress``, §3.23)."""

from __future__ import annotations

import math
import threading
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from .core import ClientCore
from .errors import BookLoreError, SyncDisabledError
from .http import extract_message
from .models import KoreaderProgress, normalize_hash, truncate_utf16, utf16_len

__all__ = ["ProgressMixin", "KO_PROGRESS", "BOOK_PROGRESS"]

KO_PROGRESS = "/api/koreader/syncs/progress"
BOOK_PROGRESS = "/api/v1/books/progress"
#: which progress object counts for a primary file type (§3.23)
_PROGRESS_FIELD = {"EPUB": "epubProgress", "FB2": "epubProgress", "MOBI": "epubProgress",
                   "AZW3": "epubProgress", "PDF": "pdfProgress", "CBX": "cbxProgress"}


def _fraction(value: Any, name: str, high: float) -> float:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} is required")
    if not math.isfinite(value) or not 0.0 <= float(value) <= high:
        raise ValueError(f"{name} must be between 0 and {high:g}")
    return float(value)


_PUSH_TIMES = threading.local()


def _server_date(resp: httpx.Response) -> float | None:
    """The answer's ``Date`` header as epoch seconds (None when absent or unreadable)."""
    raw = resp.headers.get("date")
    if not raw:
        return None
    try:
        return parsedate_to_datetime(raw).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


class ProgressMixin(ClientCore):
    """Positions."""

    def last_push_server_time(self) -> float | None:
        """The server's time (its ``Date`` header) of this thread's last successful
        position push, or None when its answer carried none (koreader-data §8.3: the
        client then uses its own clock)."""
        return getattr(_PUSH_TIMES, "value", None)

    #: the kosync routes answered "Sync is disabled for this user": no further kosync
    #: request in this client's life (one run) — the answer is repeated instead
    _sync_disabled: SyncDisabledError | None = None

    def _kosync(self, method: str, path: str, **kw: Any) -> Any:
        """A kosync request; a 401 "Sync is disabled" is remembered (spec §4.1)."""
        known = self._sync_disabled
        if known is not None:
            raise SyncDisabledError(known.message, method=method, path=path, status=known.status)
        resp = self._request(method, path, auth="koreader", **kw)
        if resp.status_code == 401:
            err: BookLoreError = self._fail(resp, method, path, "koreader")
            if isinstance(err, SyncDisabledError):
                self._sync_disabled = err
            raise err
        return resp

    def put_progress(
        self,
        document: str,
        *,
        progress: str,
        percentage: float,
        device: str,
        device_id: str,
    ) -> dict[str, Any]:
        """``PUT /api/koreader/syncs/progress`` (KOReader headers; upsert). ``percentage``
        is a fraction 0–1 (required: §8 #3). ``progress`` longer than 1000 UTF-16 units
        is refused with ValueError (a cut position is a wrong one).

        404 → :class:`NotFoundError` (fingerprint unknown: skip, keep the book id);
        401 "Sync is disabled" → :class:`SyncDisabledError` (an :class:`AuthError`
        ``kind="sync_disabled"``; the KOReader account stays usable)."""
        doc = normalize_hash(document)
        _fraction(percentage, "percentage (a fraction 0–1)", 1.0)
        if not isinstance(progress, str):
            raise TypeError("progress must be a string")
        if utf16_len(progress) > 1000:
            raise ValueError("progress is longer than the server's 1000-character column")
        body = {
            "document": doc,
            "progress": progress,
            "percentage": float(percentage),
            "device": truncate_utf16(device, 100),
            "device_id": truncate_utf16(device_id, 100),
        }
        resp = self._kosync("PUT", KO_PROGRESS, json_body=body, idempotent=True)
        if 200 <= resp.status_code < 300:
            _PUSH_TIMES.value = _server_date(resp)
            data = self._json_ok(resp, "PUT", KO_PROGRESS)
            return data if isinstance(data, dict) else {}
        raise self._fail(resp, "PUT", KO_PROGRESS, "koreader")

    def get_progress(self, document: str) -> KoreaderProgress | None:
        """``GET /api/koreader/syncs/progress/{document}`` (KOReader headers).

        ``None``: the book is known but this user has no progress for it.
        404 "Book not found for hash" → :class:`NotFoundError`."""
        path = f"{KO_PROGRESS}/{normalize_hash(document)}"
        resp = self._kosync("GET", path)
        if 200 <= resp.status_code < 300:
            data = self._json_ok(resp, "GET", path)
            try:
                return KoreaderProgress.from_json(data)
            except ValueError:
                raise self._bad_shape("GET", path, resp.status_code, "not a progress object") from None
        if resp.status_code == 404 and extract_message(resp).startswith("No progress"):
            return None
        raise self._fail(resp, "GET", path, "koreader")

    def post_book_progress(
        self,
        book_id: int,
        *,
        book_type: str,
        percentage: float,
        cfi: str | None = None,
        page: int | None = None,
    ) -> None:
        """``POST /api/v1/books/progress`` (bearer; §3.23): the position by book id, for
        a book the server knows by id but not by fingerprint. ``book_type`` is the
        server's primary file type; ``percentage`` is **percent 0–100**. EPUB-like
        types send ``epubProgress {cfi, percentage}`` (``cfi`` required), PDF/CBX send
        ``{page, percentage}`` (``page`` required, 1-based). 404 ``Book not found…`` →
        :class:`BookNotFoundError`."""
        field = _PROGRESS_FIELD.get(book_type)
        if field is None:
            raise ValueError(f"no web-reader position for book type {book_type!r}")
        pct = _fraction(percentage, "percentage (percent 0–100)", 100.0)
        inner: dict[str, Any] = {"percentage": pct}
        if field == "epubProgress":
            if not cfi:
                raise ValueError("an EPUB position needs a CFI")
            inner["cfi"] = cfi
        else:
            if page is None or int(page) < 1:
                raise ValueError("a PDF/CBX position needs a page (1-based)")
            inner["page"] = int(page)
        body = {"bookId": int(book_id), field: inner}
        resp = self._request("POST", BOOK_PROGRESS, auth="bearer", json_body=body, idempotent=True)
        if 200 <= resp.status_code < 300:
            _PUSH_TIMES.value = _server_date(resp)
            return None
        raise self._fail(resp, "POST", BOOK_PROGRESS, "bearer")

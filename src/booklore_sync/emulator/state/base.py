"""Constants and small helpers of the emulator's state (booklore-api.md §7.2)."""

from __future__ import annotations

import hashlib
from typing import Any

from ..flavours import MODES  # noqa: F401 - re-exported

BOOK_TYPES = ("PDF", "EPUB", "CBX", "FB2", "MOBI", "AZW3", "AUDIOBOOK")
READ_STATUSES = (
    "UNREAD", "READING", "RE_READING", "READ", "PARTIALLY_READ", "PAUSED", "WONT_READ",
    "ABANDONED", "UNSET",
)
_EXT_BY_TYPE = {"PDF": "pdf", "EPUB": "epub", "CBX": "cbz", "FB2": "fb2", "MOBI": "mobi",
                "AZW3": "azw3", "AUDIOBOOK": "m4b"}
META_KEYS = (
    "title", "subtitle", "authors", "publisher", "publishedDate", "description", "language",
    "pageCount", "seriesName", "seriesNumber", "seriesTotal", "isbn13", "isbn10",
    "categories", "tags", "moods", "asin", "goodreadsId", "hardcoverId", "hardcoverBookId",
    "googleId",
)
# id-keyed tables, in dump order
TABLES = ("users", "koreaderAccounts", "libraries", "books", "sessions", "annotations",
          "notesV2", "bookNotes", "bookmarks", "shelves")
ACCESS_TTL = 36_000  # 10 hours
GRIMMORY_ACCESS_TTL = 7_200  # 2 hours
REFRESH_TTL = 30 * 24 * 3600
LIMIT_FAILURES = 5
LIMIT_WINDOW = 15 * 60
LOG_LIMIT = 200_000
_SECRET_KEYS = {"password", "refreshtoken", "accesstoken", "token", "key", "x-auth-key"}


class SeedError(ValueError):
    pass


def md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def _empty_data() -> dict[str, Any]:
    data: dict[str, Any] = {name: {} for name in TABLES}
    data["progress"] = {}
    data["bookFiles"] = 0
    data["nextIds"] = {name: 1 for name in TABLES}
    data["nextIds"]["bookFiles"] = 1
    data["oidcOnly"] = False
    data["hardcoverPushes"] = []
    return data


def _redact(value: Any, depth: int = 0) -> Any:
    if depth > 3:
        return value
    if isinstance(value, dict):
        if not any(str(k).lower() in _SECRET_KEYS for k in value) and depth > 0:
            return value
        return {
            k: ("***" if str(k).lower() in _SECRET_KEYS and v is not None else _redact(v, depth + 1))
            for k, v in value.items()
        }
    return value


"""Small value types of the BookLore client, and the wire-format helpers.

Reads return frozen dataclasses; each keeps the server's JSON object in ``raw``.
Creation calls whose answer the engine hardly needs (annotations, notes, bookmarks,
kosync PUT) return the server's JSON object as a plain ``dict``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

__all__ = [
    "BOOK_TYPES",
    "Health",
    "Book",
    "SearchResult",
    "RatingResult",
    "KoreaderProgress",
    "format_instant",
    "parse_time",
    "utf16_len",
    "truncate_utf16",
    "normalize_isbn",
    "normalize_hash",
]

#: the ``bookType`` enum of booklore-api.md §3.10 (case-sensitive).
BOOK_TYPES = frozenset({"PDF", "EPUB", "CBX", "FB2", "MOBI", "AZW3", "AUDIOBOOK"})

_HASH_RE = re.compile(r"^[0-9a-fA-F]{32}$")
_FRACTION_RE = re.compile(r"(\.\d{1,6})\d*")


# --------------------------------------------------------------------------- helpers


def format_instant(value: datetime) -> str:
    """An ``Instant`` as the client sends it: ``YYYY-MM-DDTHH:MM:SSZ``, UTC, whole
    seconds (fraction cut off). ``value`` must be timezone-aware."""
    if not isinstance(value, datetime):
        raise TypeError("expected a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: give a timezone-aware datetime (UTC)")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime | None:
    """Parse an ``Instant`` (``…Z`` / offset) or a ``LocalDateTime`` (no offset, read as
    UTC), with or without a fraction of any length. Returns an aware UTC datetime."""
    if value is None or value == "":
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = _FRACTION_RE.sub(lambda m: m.group(1), text, count=1)
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def _whole_seconds(dt: datetime | None) -> datetime | None:
    return None if dt is None else dt.replace(microsecond=0)


def _utc_whole(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("naive datetime: give a timezone-aware datetime (UTC)")
    return value.astimezone(timezone.utc).replace(microsecond=0)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units (Java's ``String.length()``): a code point above
    U+FFFF takes two (a lone surrogate, one)."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def truncate_utf16(text: str | None, limit: int) -> str | None:
    """Cut ``text`` to at most ``limit`` UTF-16 code units, on a code-point boundary."""
    if text is None:
        return None
    if len(text) * 2 <= limit or utf16_len(text) <= limit:
        return text
    out: list[str] = []
    used = 0
    for ch in text:
        units = 2 if ord(ch) > 0xFFFF else 1
        if used + units > limit:
            break
        out.append(ch)
        used += units
    return "".join(out)


def normalize_isbn(value: str | None) -> str | None:
    """Normalise an ISBN for search (§8 #9): drop spaces and hyphens, upper-case
    ``X``, and check the check digit. Returns the cleaned ISBN-10/13, or ``None``
    when it is not a valid ISBN."""
    if not value:
        return None
    s = re.sub(r"[\s\-]", "", value).upper()
    if s.startswith("ISBN"):
        s = s[4:].lstrip(":")
    if re.fullmatch(r"\d{9}[\dX]", s):
        total = sum((10 - i) * (10 if c == "X" else int(c)) for i, c in enumerate(s))
        return s if total % 11 == 0 else None
    if re.fullmatch(r"\d{13}", s):
        total = sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(s))
        return s if total % 10 == 0 else None
    return None


def normalize_hash(value: str) -> str:
    """A partial-MD5 fingerprint as sent: 32 lower-case hex digits (else ValueError)."""
    if not isinstance(value, str) or not _HASH_RE.match(value):
        raise ValueError("a book fingerprint must be 32 hex digits")
    return value.lower()


def _opt_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _opt_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _dict_or(value: Any, default: dict[str, Any]) -> dict[str, Any]:
    return value if isinstance(value, dict) else default


def _list_or_empty(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _opt_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def _opt_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


T = TypeVar("T")

_READERS: dict[str, Any] = {
    "int": int, "int | None": _opt_int, "float | None": _opt_float,
    "str | None": _opt_str, "datetime | None": _opt_time,
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def from_wire(cls: type[T], obj: dict[str, Any]) -> T:
    """A frozen record from the server's JSON object, read field by field: each field
    ``some_name`` comes from the key ``someName`` (or ``field(metadata={"key": …})``),
    converted by its annotation (``int`` is required; ``X | None`` is lenient) or by
    ``metadata={"read": …}``; ``raw`` keeps the whole object.  Not an object:
    ``ValueError``."""
    if not isinstance(obj, dict):
        raise ValueError(f"not a {cls.__name__} object")
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name == "raw":
            values["raw"] = obj
            continue
        read = f.metadata.get("read") or _READERS[str(f.type)]
        key = f.metadata.get("key", _camel(f.name))
        values[f.name] = read(obj[key]) if read is int else read(obj.get(key))
    return cls(**values)


W = TypeVar("W", bound="WireRecord")


class WireRecord:
    """A record read from the server's JSON by :func:`from_wire` (its ``from_json``)."""

    @classmethod
    def from_json(cls: type[W], obj: dict[str, Any]) -> W:
        return from_wire(cls, obj)


# --------------------------------------------------------------------------- reads


@dataclass(frozen=True)
class Health:
    """``GET /api/v1/healthcheck``: ``version`` is ``data.version``."""

    version: str | None
    status: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)
    #: the answer of a release before v1.16.2 (no healthcheck: the filter's 403/401)
    no_healthcheck: bool = False

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Health:
        data = _dict_or(obj.get("data"), {})
        return cls(version=_opt_str(data.get("version")), status=_opt_str(data.get("status")), raw=obj)


@dataclass(frozen=True)
class Book:
    """The fields of BookLore's ``Book`` DTO the client reads (§3.9.1). Title, authors
    and ISBNs come from ``metadata`` (there is no usable top-level title)."""

    id: int
    title: str | None
    authors: tuple[str, ...]
    isbn13: str | None
    isbn10: str | None
    library_id: int | None
    file_name: str | None
    book_type: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)
    #: the book's server state (§3.9.1): ``lastReadTime``, ``dateFinished``,
    #: ``readStatus``, ``koreaderProgress.percentage`` (percent 0–100)
    last_read_time: datetime | None = None
    date_finished: datetime | None = None
    read_status: str | None = None
    koreader_percentage: float | None = None

    @property
    def primary_file_type(self) -> str | None:
        """The ``bookType`` of the primary file (``EPUB``, ``PDF``, ``CBX`` …)."""
        return self.book_type

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Book:
        if not isinstance(obj, dict) or _opt_int(obj.get("id")) is None:
            raise ValueError("not a Book object")
        meta = _dict_or(obj.get("metadata"), {})
        primary = _dict_or(obj.get("primaryFile"), {})
        authors = meta.get("authors")
        return cls(
            id=int(obj["id"]),
            title=_opt_str(meta.get("title")),
            authors=tuple(a for a in authors if isinstance(a, str)) if isinstance(authors, list) else (),
            isbn13=_opt_str(meta.get("isbn13")),
            isbn10=_opt_str(meta.get("isbn10")),
            library_id=_opt_int(obj.get("libraryId")),
            file_name=_opt_str(primary.get("fileName")),
            book_type=_opt_str(primary.get("bookType")),
            raw=obj,
            last_read_time=_opt_time(obj.get("lastReadTime")),
            date_finished=_opt_time(obj.get("dateFinished")),
            read_status=_opt_str(obj.get("readStatus")),
            koreader_percentage=_opt_float(kp.get("percentage")) if isinstance(kp := obj.get("koreaderProgress"), dict) else None,
        )


@dataclass(frozen=True)
class SearchResult:
    """One ``BookSearchResult`` of ``GET /api/v1/books/search`` (§3.8)."""

    id: int
    title: str
    hash: str | None
    cover_hash: str | None
    match_score: float
    raw: dict[str, Any] = field(repr=False, compare=False)

    @property
    def percent(self) -> int:
        """``matchScore × 100`` rounded half-up to a whole percent (as the plugin shows it)."""
        return int(Decimal(repr(self.match_score * 100)).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> SearchResult:
        if not isinstance(obj, dict) or _opt_int(obj.get("id")) is None:
            raise ValueError("not a BookSearchResult object")
        return cls(
            id=int(obj["id"]),
            title=_opt_str(obj.get("title")) or "",
            hash=_opt_str(obj.get("hash")),
            cover_hash=_opt_str(obj.get("coverHash")),
            match_score=_opt_float(obj.get("matchScore")) or 0.0,
            raw=obj,
        )


@dataclass(frozen=True)
class RatingResult:
    """One entry of the personal-rating answer."""

    book_id: int
    personal_rating: int | None


@dataclass(frozen=True)
class KoreaderProgress(WireRecord):
    """``GET /api/koreader/syncs/progress/{document}``. ``percentage`` is a fraction
    0–1; ``timestamp`` is epoch seconds of the last KOReader push (server clock).
    ``device``/``device_id`` are always ``"BookLore"`` on BookLore."""

    document: str | None
    progress: str | None
    percentage: float | None
    timestamp: int | None
    device: str | None
    device_id: str | None = field(metadata={"key": "device_id"})
    raw: dict[str, Any] = field(repr=False, compare=False)



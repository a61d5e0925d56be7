"""Book metadata from sidecars, ``custom_metadata.lua`` and the EPUB OPF.

Book type (koreader-data §9.1), ISBN extraction and validation (§6.2), title /
authors with user overrides, and the fingerprint candidates of §1.4.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

__all__ = ["book_type_for", "isbn10_to_13", "isbn13_to_10", "valid_isbn10", "valid_isbn13",
           "extract_isbns", "BookMeta", "book_meta", "is_paging_type", "display_stem"]

_TYPES = [
    (".kepub.epub", "EPUB"), (".fb2.zip", "FB2"),
    (".epub", "EPUB"), (".pdf", "PDF"),
    (".cbz", "CBX"), (".cbr", "CBX"), (".cb7", "CBX"), (".cbt", "CBX"),
    (".fb2", "FB2"), (".mobi", "MOBI"), (".prc", "MOBI"), (".azw3", "AZW3"), (".azw", "AZW3"),
]
# formats KOReader opens with a paging engine (positions are pages, not XPointers)
_PAGING_EXT = (".pdf", ".djvu", ".djv", ".cbz", ".cbr", ".cb7", ".cbt", ".xps", ".oxps",
               ".png", ".jpg", ".jpeg", ".gif", ".tif", ".tiff", ".webp", ".svg")


def book_type_for(name: str | PurePath | None) -> str:
    """BookLore ``bookType`` for a file name (case-insensitive); fallback ``EPUB``."""
    if name is None:
        return "EPUB"
    lower = str(name).lower()
    for ext, kind in _TYPES:
        if lower.endswith(ext):
            return kind
    return "EPUB"


def is_paging_type(name: str | PurePath | None) -> bool:
    return name is not None and str(name).lower().endswith(_PAGING_EXT)


def display_stem(name: str) -> str:
    """KOReader's fallback title: the file name without its (last) extension."""
    base = name.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base[1:] else base


# ------------------------------------------------------------------- ISBN
def valid_isbn10(s: str) -> bool:
    if not re.fullmatch(r"[0-9]{9}[0-9X]", s):
        return False
    total = sum((10 - i) * (10 if c == "X" else int(c)) for i, c in enumerate(s))
    return total % 11 == 0


def valid_isbn13(s: str) -> bool:
    if not re.fullmatch(r"[0-9]{13}", s):
        return False
    total = sum((1 if i % 2 == 0 else 3) * int(c) for i, c in enumerate(s))
    return total % 10 == 0


def isbn10_to_13(s: str) -> str:
    core = "978" + s[:9]
    check = (10 - sum((1 if i % 2 == 0 else 3) * int(c) for i, c in enumerate(core)) % 10) % 10
    return core + str(check)


def isbn13_to_10(s: str) -> str | None:
    if not s.startswith("978"):
        return None
    core = s[3:12]
    check = (11 - sum((10 - i) * int(c) for i, c in enumerate(core)) % 11) % 11
    return core + ("X" if check == 10 else str(check))


_PREFIX = re.compile(r"^\s*(?:urn:isbn:|isbn:)\s*", re.I)


def extract_isbns(identifiers: Iterable[str]) -> tuple[str | None, str | None]:
    """(isbn10, isbn13) from identifier strings (``scheme:value`` or bare)."""
    isbn10 = isbn13 = None
    for entry in identifiers:
        if not isinstance(entry, str):
            continue
        entry = entry.strip()
        m = _PREFIX.match(entry)
        if m:
            value = entry[m.end():]
        elif ":" in entry:
            continue
        else:
            value = entry
        value = re.sub(r"[\s-]", "", value).upper()
        if len(value) == 13 and valid_isbn13(value):
            isbn13 = isbn13 or value
        elif len(value) == 10 and valid_isbn10(value):
            isbn10 = isbn10 or value
    if isbn13 and not isbn10:
        isbn10 = isbn13_to_10(isbn13)
    if isbn10 and not isbn13:
        isbn13 = isbn10_to_13(isbn10)
    return isbn10, isbn13


# --------------------------------------------------------------- metadata
@dataclass
class BookMeta:
    title: str | None = None
    authors: list[str] = field(default_factory=list)
    isbn10: str | None = None
    isbn13: str | None = None

    @property
    def author(self) -> str | None:
        return ", ".join(self.authors) if self.authors else None


def _split_authors(value: Any) -> list[str]:
    if not isinstance(value, str):
        return []
    return [a.strip().rstrip("\x00") for a in value.split("\n") if a.strip().rstrip("\x00")]


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip().rstrip("\x00").strip()
        return value or None
    return None


def book_meta(sidecar: Mapping[str, Any], custom: Mapping[str, Any] | None,
              file_name: str | None, opf: Any | None = None) -> BookMeta:
    """Title/authors/ISBN: ``custom_props`` over ``doc_props`` over the OPF; the
    file stem as the last title fallback (as KOReader displays it)."""
    props = sidecar.get("doc_props")
    doc_props: Mapping[str, Any] = props if isinstance(props, Mapping) else {}
    custom_props: Mapping[str, Any] = {}
    if custom and isinstance(custom.get("custom_props"), Mapping):
        custom_props = custom["custom_props"]
    meta = BookMeta()
    meta.title = _text(custom_props.get("title")) or _text(doc_props.get("title"))
    meta.authors = _split_authors(custom_props.get("authors")) or _split_authors(
        doc_props.get("authors"))
    idents: list[str] = []
    for source in (custom_props, doc_props):
        if isinstance(source.get("identifiers"), str):
            idents.extend(source["identifiers"].split("\n"))
    if opf is not None:
        if not meta.title and opf.titles:
            meta.title = opf.titles[0]
        if not meta.authors:
            meta.authors = list(opf.creators)
        if not idents:
            idents = opf.identifier_strings()
    meta.isbn10, meta.isbn13 = extract_isbns(idents)
    if not meta.title and file_name:
        meta.title = display_stem(file_name)
    return meta

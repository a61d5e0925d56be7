"""``--library DIR``: turn a folder of book files into seed books (booklore-api.md §7.3).

Each file becomes one book in library 1, ids in sorted relative-path order; the hash is
KOReader's partial MD5; metadata comes from the EPUB OPF or the PDF Info dictionary,
else the file name.
"""

from __future__ import annotations

import codecs
import os
import re
import zipfile
from pathlib import Path
from typing import Any

from booklore_sync.common.partial_md5 import partial_md5

BOOK_EXTENSIONS = {
    ".epub": "EPUB",
    ".pdf": "PDF",
    ".cbz": "CBX",
    ".cbr": "CBX",
    ".fb2": "FB2",
    ".mobi": "MOBI",
    ".azw3": "AZW3",
    # outside the server's enum: stored as EPUB to stay loadable (informational only)
    ".txt": "EPUB",
    ".djvu": "EPUB",
}

_DC = "http://purl.org/dc/elements/1.1/"
_OPF = "http://www.idpf.org/2007/opf"
_CONTAINER = "urn:oasis:names:tc:opendocument:xmlns:container"


def scan_library(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Seed entries (see ``state.normalise_book``) for every book file under ``directory``."""
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"library folder not found: {directory}")
    found: list[tuple[str, Path]] = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if path.suffix.lower() in BOOK_EXTENSIONS:
                found.append((path.relative_to(root).as_posix(), path))
    found.sort(key=lambda item: item[0])
    books = []
    for rel, path in found:
        ext = path.suffix.lower()
        meta = read_metadata(path)
        digest = partial_md5(path)
        sub = os.path.dirname(rel)
        books.append(
            {
                "libraryId": 1,
                "metadata": meta,
                "files": [
                    {
                        "fileName": path.name,
                        "filePath": str(path.resolve()),
                        "fileSubPath": sub,
                        "bookType": BOOK_EXTENSIONS[ext],
                        "isBook": True,
                        "primary": True,
                        "currentHash": digest,
                        "initialHash": digest,
                        "sizeKb": max(1, (path.stat().st_size + 1023) // 1024),
                    }
                ],
            }
        )
    return books


def read_metadata(path: Path) -> dict[str, Any]:
    ext = path.suffix.lower()
    meta: dict[str, Any] = {}
    try:
        if ext == ".epub":
            meta = epub_metadata(path)
        elif ext == ".pdf":
            meta = pdf_metadata(path)
    except Exception:  # unreadable metadata: fall back to the file name
        meta = {}
    if not meta.get("title"):
        meta["title"] = path.stem
    meta.setdefault("authors", [])
    return meta


# --------------------------------------------------------------------------- EPUB


def _isbn_from_identifier(value: str, scheme: str | None) -> str | None:
    text = value.strip()
    lowered = text.lower()
    is_isbn = scheme is not None and scheme.lower() == "isbn"
    for prefix in ("urn:isbn:", "isbn:", "isbn "):
        if lowered.startswith(prefix):
            text = text[len(prefix) :]
            is_isbn = True
            break
    digits = re.sub(r"[\s-]", "", text).upper()
    if not re.fullmatch(r"\d{9}[\dX]|\d{13}", digits):
        return None
    if is_isbn or _valid_isbn(digits):
        return digits
    return None


def _valid_isbn(digits: str) -> bool:
    if len(digits) == 10:
        total = sum((10 - i) * (10 if c == "X" else int(c)) for i, c in enumerate(digits))
        return total % 11 == 0
    if len(digits) == 13 and digits.startswith(("978", "979")):
        total = sum((1 if i % 2 == 0 else 3) * int(c) for i, c in enumerate(digits))
        return total % 10 == 0
    return False


def epub_metadata(path: Path) -> dict[str, Any]:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, recover=True)
    with zipfile.ZipFile(path) as zf:
        container = etree.fromstring(zf.read("META-INF/container.xml"), parser)
        rootfile = container.find(f".//{{{_CONTAINER}}}rootfile")
        if rootfile is None:
            return {}
        opf = etree.fromstring(zf.read(rootfile.get("full-path")), parser)
    md = opf.find(f"{{{_OPF}}}metadata")
    if md is None:
        md = opf

    def texts(tag: str) -> list[str]:
        return [
            " ".join(el.text.split())
            for el in md.iter(f"{{{_DC}}}{tag}")
            if el.text and el.text.strip()
        ]

    meta: dict[str, Any] = {}
    titles = texts("title")
    if titles:
        meta["title"] = titles[0]
    meta["authors"] = texts("creator")
    for tag, key in (("publisher", "publisher"), ("language", "language")):
        values = texts(tag)
        if values:
            meta[key] = values[0]
    desc = [el.text.strip() for el in md.iter(f"{{{_DC}}}description") if el.text]
    if desc:
        meta["description"] = desc[0]
    for el in md.iter(f"{{{_DC}}}identifier"):
        if not el.text:
            continue
        scheme = el.get(f"{{{_OPF}}}scheme") or el.get("scheme")
        isbn = _isbn_from_identifier(el.text, scheme)
        if isbn is None:
            continue
        key = "isbn13" if len(isbn) == 13 else "isbn10"
        meta.setdefault(key, isbn)
    return meta


# --------------------------------------------------------------------------- PDF

_INFO_REF = re.compile(rb"/Info\s+(\d+)\s+(\d+)\s+R")
_PDF_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _pdf_literal(data: bytes, start: int) -> bytes:
    """The PDF literal string starting after the ``(`` at ``start``."""
    out = bytearray()
    depth = 1
    i = start
    while i < len(data):
        c = data[i : i + 1]
        if c == b"\\":
            nxt = data[i + 1 : i + 2]
            if nxt in _PDF_ESCAPES:
                out += _PDF_ESCAPES[nxt]
                i += 2
            elif nxt.isdigit():
                m = re.match(rb"[0-7]{1,3}", data[i + 1 : i + 4])
                digits = m.group(0) if m else b"0"
                out.append(int(digits, 8) & 0xFF)
                i += 1 + len(digits)
            elif nxt in (b"\n", b"\r"):
                i += 2
            else:
                out += nxt
                i += 2
            continue
        if c == b"(":
            depth += 1
        elif c == b")":
            depth -= 1
            if depth == 0:
                break
        out += c
        i += 1
    return bytes(out)


def _pdf_text(raw: bytes) -> str:
    if raw.startswith(codecs.BOM_UTF16_BE):
        return raw[2:].decode("utf-16-be", errors="replace")
    if raw.startswith(codecs.BOM_UTF8):
        return raw[3:].decode("utf-8", errors="replace")
    return raw.decode("latin-1")


def _pdf_string_value(data: bytes, key: bytes) -> str | None:
    m = re.search(rb"/" + key + rb"\s*(\(|<(?!<))", data)
    if not m:
        return None
    if m.group(1) == b"(":
        raw = _pdf_literal(data, m.end())
    else:
        end = data.find(b">", m.end())
        hexdigits = re.sub(rb"\s", b"", data[m.end() : end])
        if len(hexdigits) % 2:
            hexdigits += b"0"
        try:
            raw = bytes.fromhex(hexdigits.decode("ascii"))
        except ValueError:
            return None
    text = " ".join(_pdf_text(raw).split())
    return text or None


def pdf_metadata(path: Path) -> dict[str, Any]:
    """Title and Author from the (uncompressed) Info dictionary, when there is one."""
    data = path.read_bytes()
    refs = _INFO_REF.findall(data)
    if not refs:
        return {}
    num, gen = refs[-1]
    obj = re.search(rb"(?<!\d)" + num + rb"\s+" + gen + rb"\s+obj(.*?)endobj", data, re.S)
    if not obj:
        return {}
    body = obj.group(1)
    meta: dict[str, Any] = {}
    title = _pdf_string_value(body, b"Title")
    if title:
        meta["title"] = title
    author = _pdf_string_value(body, b"Author")
    if author:
        meta["authors"] = [author]
    return meta

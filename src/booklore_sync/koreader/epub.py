"""Minimal EPUB package reader: container → OPF → metadata, manifest, spine.

Used for book metadata (title, authors, identifiers → ISBN) and by the
XPointer → CFI converter (``cfi.py``).  zipfile + lxml only; nothing is
fetched from the network and entities are never resolved from DTDs.
"""

from __future__ import annotations

import html.entities
import posixpath
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from lxml import etree

__all__ = ["EpubError", "EpubPackage", "ManifestItem", "SpineItem", "substitute_entities",
           "parse_xhtml", "localname"]

MAX_ENTRY_SIZE = 64 * 1024 * 1024
_KEEP_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
_ENTITY = re.compile(rb"&([A-Za-z][A-Za-z0-9]*);")
_HTML5 = html.entities.html5


class EpubError(Exception):
    """The EPUB (or one of its documents) cannot be read."""


#: what reading a damaged zip member can raise: a bad CRC (BadZipFile), a corrupt or
#: truncated deflate stream (zlib.error, EOFError), an encrypted member (RuntimeError),
#: an unknown compression method (NotImplementedError), a bad header (ValueError)
ZIP_ERRORS: tuple[type[BaseException], ...] = (
    OSError, zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError,
    ValueError, OverflowError, UnicodeDecodeError)


def _why(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def localname(tag: Any) -> str:
    if not isinstance(tag, str):
        return ""
    i = tag.rfind("}")
    return tag[i + 1:] if i >= 0 else tag


def _entity_repl(m: re.Match[bytes]) -> bytes:
    name = m.group(1).decode("ascii")
    if name in _KEEP_ENTITIES:
        return m.group(0)
    text = _HTML5.get(name + ";")
    if text is None:
        return m.group(0)
    return b"".join(b"&#x%X;" % ord(ch) for ch in text)


def substitute_entities(data: bytes) -> bytes:
    """Replace HTML named entities (other than the five XML ones) by character
    references, so a strict XML parser sees the characters (koreader-data §7.3)."""
    if b"&" not in data:
        return data
    return _ENTITY.sub(_entity_repl, data)


_STRICT = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                          huge_tree=True, remove_blank_text=False)
_RECOVER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           huge_tree=True, recover=True, remove_blank_text=False)


def parse_xhtml(data: bytes, name: str = "") -> etree._Element:
    """Parse an XHTML/XML document (entities substituted first; recovery mode
    only when the strict parse fails)."""
    data = substitute_entities(data)
    try:
        return etree.fromstring(data, _STRICT)
    except etree.XMLSyntaxError:
        try:
            root = etree.fromstring(data, _RECOVER)
        except etree.XMLSyntaxError as exc:
            raise EpubError(f"{name}: not well-formed XML ({exc})") from None
        if root is None:
            raise EpubError(f"{name}: not well-formed XML") from None
        return root


@dataclass(frozen=True)
class ManifestItem:
    id: str
    href: str          # decoded zip entry name (relative to the zip root)
    media_type: str


@dataclass(frozen=True)
class SpineItem:
    position: int      # 1-based among all <itemref> children of <spine>
    idref: str
    linear: bool
    item: ManifestItem | None


@dataclass
class EpubPackage:
    path: Path
    opf_path: str
    spine_step: int                      # 2 × position of <spine> among <package> children
    manifest: dict[str, ManifestItem]
    spine: list[SpineItem]
    titles: list[str] = field(default_factory=list)
    creators: list[str] = field(default_factory=list)
    identifiers: list[tuple[str | None, str]] = field(default_factory=list)
    language: str | None = None
    _zip: zipfile.ZipFile | None = None
    _docs: dict[str, etree._Element] = field(default_factory=dict)

    # ------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | Path) -> EpubPackage:
        path = Path(path)
        try:
            zf = zipfile.ZipFile(path)
        except ZIP_ERRORS as exc:
            raise EpubError(f"{path}: not a readable EPUB (zip) file: {_why(exc)}") from None
        try:
            return cls._from_zip(path, zf)
        except EpubError:
            zf.close()
            raise
        except (*ZIP_ERRORS, KeyError, etree.LxmlError) as exc:
            zf.close()
            raise EpubError(f"{path}: broken EPUB: {_why(exc)}") from None
        except RecursionError:
            zf.close()
            raise EpubError(f"{path}: broken EPUB: the package document is nested too "
                            "deeply") from None

    @staticmethod
    def _read(zf: zipfile.ZipFile, name: str) -> bytes:
        try:
            info = zf.getinfo(name)
        except KeyError:
            # tolerate case differences in entry names
            lower = name.lower()
            for info in zf.infolist():
                if info.filename.lower() == lower:
                    break
            else:
                raise EpubError(f"missing entry {name!r}") from None
        if info.file_size > MAX_ENTRY_SIZE:
            raise EpubError(f"entry {name!r} is too large")
        return zf.read(info)

    @classmethod
    def _from_zip(cls, path: Path, zf: zipfile.ZipFile) -> EpubPackage:
        container = parse_xhtml(cls._read(zf, "META-INF/container.xml"), "container.xml")
        opf_path = None
        for el in container.iter():
            if localname(el.tag) == "rootfile" and el.get("full-path"):
                opf_path = el.get("full-path")
                break
        if not opf_path:
            raise EpubError(f"{path}: container.xml names no rootfile")
        opf = parse_xhtml(cls._read(zf, opf_path), opf_path)
        base = posixpath.dirname(opf_path)
        spine_step = 0
        manifest: dict[str, ManifestItem] = {}
        spine_el = None
        metadata_el = None
        pos = 0
        for child in opf:
            if not isinstance(child.tag, str):
                continue
            pos += 1
            name = localname(child.tag)
            if name == "spine" and spine_el is None:
                spine_el = child
                spine_step = 2 * pos
            elif name == "manifest":
                for item in child:
                    if localname(item.tag) != "item":
                        continue
                    iid = item.get("id")
                    href = item.get("href")
                    if not iid or href is None:
                        continue
                    full = posixpath.normpath(posixpath.join(base, unquote(href.split("#")[0])))
                    manifest[iid] = ManifestItem(iid, full, (item.get("media-type") or "").strip())
            elif name == "metadata" and metadata_el is None:
                metadata_el = child
        if spine_el is None:
            raise EpubError(f"{path}: the OPF has no <spine>")
        spine: list[SpineItem] = []
        k = 0
        for ref in spine_el:
            if localname(ref.tag) != "itemref":
                continue
            k += 1
            idref = ref.get("idref") or ""
            spine.append(SpineItem(k, idref, (ref.get("linear") or "yes").strip().lower() != "no",
                                   manifest.get(idref)))
        pkg = cls(path, opf_path, spine_step, manifest, spine, _zip=zf)
        if metadata_el is not None:
            pkg._read_metadata(metadata_el)
        return pkg

    def _read_metadata(self, md: etree._Element) -> None:
        for el in md.iter():
            name = localname(el.tag)
            text = "".join(el.itertext()).strip() if isinstance(el.tag, str) else ""
            if not text:
                continue
            if name == "title":
                self.titles.append(text)
            elif name == "creator":
                role = None
                for k, v in el.attrib.items():
                    if localname(k) == "role":
                        role = v
                if role in (None, "aut"):
                    self.creators.append(text)
            elif name == "identifier":
                scheme = None
                for k, v in el.attrib.items():
                    if localname(k) == "scheme":
                        scheme = v
                self.identifiers.append((scheme, text))
            elif name == "language" and self.language is None:
                self.language = text

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        self._docs.clear()

    def __enter__(self) -> EpubPackage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ content
    def identifier_strings(self) -> list[str]:
        """Identifiers formatted as KOReader's ``doc_props.identifiers`` entries."""
        return [f"{s}:{v}" if s else v for s, v in self.identifiers]

    def fragments(self, dom_version: int | None) -> list[SpineItem]:
        """The spine items crengine turned into ``DocFragment``s (koreader-data §7.2)."""
        old = dom_version is None or dom_version < 20240114
        out = []
        for s in self.spine:
            if s.item is None:
                continue
            if old and s.item.media_type != "application/xhtml+xml":
                continue
            out.append(s)
        return out

    def document(self, item: ManifestItem) -> etree._Element:
        root = self._docs.get(item.href)
        if root is None:
            if self._zip is None:
                raise EpubError(f"{self.path}: closed")
            try:
                data = self._read(self._zip, item.href)
            except ZIP_ERRORS as exc:
                raise EpubError(f"member {item.href}: cannot read: {_why(exc)}") from None
            root = parse_xhtml(data, item.href)
            if len(self._docs) > 8:
                self._docs.pop(next(iter(self._docs)))
            self._docs[item.href] = root
        return root

"""The sample EPUBs, zipped by hand, and where each word sits in crengine's DOM."""

from __future__ import annotations

import uuid
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape

from booklore_sync.koreader.sample.content import (
    CHARS_PER_PAGE,
    ZIP_TIME,
    Segment,
    _Epub,
)


# ===================================================================== helpers
def _isbn13(first12: str) -> str:
    total = sum((1 if i % 2 == 0 else 3) * int(c) for i, c in enumerate(first12))
    return first12 + str((10 - total % 10) % 10)


def _plain(para: list[Segment]) -> str:
    return "".join(s if isinstance(s, str) else s[1] for s in para)


def _step(name: str, index: int, count: int) -> str:
    """crengine writes ``[N]`` unless the node is the only one of its name."""
    return f"{name}[{index}]" if count > 1 else name


def _local(epoch: int) -> str:
    """A device-local wall-clock string (the sample device runs on UTC)."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _date(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%d")


def _zip_add(zf: zipfile.ZipFile, name: str, data: str | bytes, stored: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data.encode("utf-8") if isinstance(data, str) else data)


# ======================================================================== EPUB
class _EpubLayout:
    """Where things are in the crengine DOM of one of our EPUBs, and its pages."""

    def __init__(self, spec: _Epub):
        self.spec = spec
        # DocFragment[1] is the title page; chapter n is DocFragment[n + 1]
        self.pages: list[tuple[int, int, int]] = [(0, 0, 0)]   # (chapter, block, offset)
        for c, ch in enumerate(spec.chapters, 1):
            blocks = [ch.title] + [_plain(p) for p in ch.paras]
            used = 0
            self.pages.append((c, 0, 0))
            for b, text in enumerate(blocks):
                off = 0
                while used + (len(text) - off) > CHARS_PER_PAGE:
                    cut = off + (CHARS_PER_PAGE - used)
                    space = text.find(" ", cut)
                    if space < 0 or space + 1 >= len(text):
                        break
                    off = space + 1
                    self.pages.append((c, b, off))
                    used = 0
                used += len(text) - off

    def xpointer(self, chapter: int, block: int, offset: int, end: bool = False) -> str:
        """XPointer of a character position (``end``: just after ``offset - 1``)."""
        frag = f"/body/DocFragment[{chapter + 1}]/body"
        if chapter == 0:
            return f"{frag}/div/h1/text().0"
        ch = self.spec.chapters[chapter - 1]
        if block == 0:
            return f"{frag}/h2/text().{offset}"
        para = ch.paras[block - 1]
        p = _step("p", block, len(ch.paras))
        n_text = sum(1 for s in para if isinstance(s, str))
        n_em = len(para) - n_text
        pos = 0
        t = e = 0
        for i, seg in enumerate(para):
            s = seg if isinstance(seg, str) else seg[1]
            if isinstance(seg, str):
                t += 1
            else:
                e += 1
            last = i == len(para) - 1
            inside = pos <= offset < pos + len(s) if not end else pos < offset <= pos + len(s)
            if inside or (last and offset == pos + len(s)):
                if isinstance(seg, str):
                    node = _step("text()", t, n_text)
                else:
                    node = _step("em", e, n_em) + "/text()"
                return f"{frag}/{p}/{node}.{offset - pos}"
            pos += len(s)
        raise ValueError(f"offset {offset} outside paragraph {block} of chapter {chapter}")

    def page_of(self, chapter: int, block: int, offset: int) -> int:
        page = 1
        for i, (c, b, o) in enumerate(self.pages, 1):
            if (c, b, o) <= (chapter, block, offset):
                page = i
        return page

    def page_top(self, page: int) -> str:
        c, b, o = self.pages[page - 1]
        return self.xpointer(c, b, o)

    def chapter_title(self, page: int) -> str | None:
        c = self.pages[page - 1][0]
        return self.spec.chapters[c - 1].title if c else None


def _xhtml(title: str, body: str, lang: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" '
        '"http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">\n'
        f'<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="{lang}">\n'
        "<head>\n"
        f"  <title>{escape(title)}</title>\n"
        '  <link rel="stylesheet" type="text/css" href="style.css"/>\n'
        "</head>\n"
        "<body>\n"
        f"{body}"
        "</body>\n"
        "</html>\n")


def _para_xml(para: list[Segment]) -> str:
    out = []
    for seg in para:
        if isinstance(seg, str):
            out.append(escape(seg))
        else:
            out.append(f"<{seg[0]}>{escape(seg[1])}</{seg[0]}>")
    return "".join(out)


_CSS = """body { margin: 0 5%; font-family: serif; }
h1, h2 { text-align: center; font-weight: normal; margin: 2em 0 1em; }
p { text-indent: 1.5em; margin: 0; text-align: justify; }
.titlepage { text-align: center; margin-top: 30%; }
.author { text-indent: 0; font-style: italic; text-align: center; }
"""


def _write_epub(path: Path, spec: _Epub) -> None:
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:booklore-sync:sample:{spec.file}"))
    isbn = _isbn13(spec.isbn12)
    docs: list[tuple[str, str, str]] = []   # (id, href, xhtml)
    authors = ", ".join(spec.authors)
    docs.append(("titlepage", "titlepage.xhtml", _xhtml(spec.title, (
        '  <div class="titlepage">\n'
        f"    <h1>{escape(spec.title)}</h1>\n"
        f'    <p class="author">{escape(authors)}</p>\n'
        "  </div>\n"), spec.language)))
    for n, ch in enumerate(spec.chapters, 1):
        body = [f'  <h2 id="{ch.ident}">{escape(ch.title)}</h2>\n']
        body += [f"  <p>{_para_xml(p)}</p>\n" for p in ch.paras]
        docs.append((f"chapter{n}", f"chapter{n}.xhtml",
                     _xhtml(ch.title, "".join(body), spec.language)))
    creators = "".join(
        f'    <dc:creator opf:role="aut">{escape(a)}</dc:creator>\n' for a in spec.authors)
    subjects = "".join(f"    <dc:subject>{escape(s)}</dc:subject>\n" for s in spec.subjects)
    manifest = "".join(
        f'    <item id="{i}" href="{h}" media-type="application/xhtml+xml"/>\n'
        for i, h, _x in docs)
    spine = "".join(f'    <itemref idref="{i}"/>\n' for i, _h, _x in docs)
    opf = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<package xmlns="http://www.idpf.org/2007/opf" version="2.0" unique-identifier="uid">\n'
        '  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:opf="http://www.idpf.org/2007/opf">\n'
        f"    <dc:title>{escape(spec.title)}</dc:title>\n"
        f"{creators}"
        f"    <dc:language>{spec.language}</dc:language>\n"
        f'    <dc:identifier id="uid" opf:scheme="UUID">{uid}</dc:identifier>\n'
        f'    <dc:identifier opf:scheme="ISBN">{isbn}</dc:identifier>\n'
        f"    <dc:description>{escape(spec.description)}</dc:description>\n"
        f"{subjects}"
        "    <dc:publisher>booklore-sync sample press</dc:publisher>\n"
        "    <dc:date>2025-01-01</dc:date>\n"
        "  </metadata>\n"
        "  <manifest>\n"
        '    <item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>\n'
        '    <item id="css" href="style.css" media-type="text/css"/>\n'
        f"{manifest}"
        "  </manifest>\n"
        '  <spine toc="ncx">\n'
        f"{spine}"
        "  </spine>\n"
        "</package>\n")
    points = "".join(
        f'    <navPoint id="nav{n}" playOrder="{n}">\n'
        f"      <navLabel><text>{escape(ch.title)}</text></navLabel>\n"
        f'      <content src="chapter{n}.xhtml"/>\n'
        "    </navPoint>\n"
        for n, ch in enumerate(spec.chapters, 1))
    ncx = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">\n'
        "  <head>\n"
        f'    <meta name="dtb:uid" content="{uid}"/>\n'
        '    <meta name="dtb:depth" content="1"/>\n'
        '    <meta name="dtb:totalPageCount" content="0"/>\n'
        '    <meta name="dtb:maxPageNumber" content="0"/>\n'
        "  </head>\n"
        f"  <docTitle><text>{escape(spec.title)}</text></docTitle>\n"
        "  <navMap>\n"
        f"{points}"
        "  </navMap>\n"
        "</ncx>\n")
    container = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">\n'
        "  <rootfiles>\n"
        '    <rootfile full-path="OEBPS/content.opf" '
        'media-type="application/oebps-package+xml"/>\n'
        "  </rootfiles>\n"
        "</container>\n")
    with zipfile.ZipFile(path, "w") as zf:
        _zip_add(zf, "mimetype", "application/epub+zip", stored=True)   # first, uncompressed
        _zip_add(zf, "META-INF/container.xml", container)
        _zip_add(zf, "OEBPS/content.opf", opf)
        _zip_add(zf, "OEBPS/toc.ncx", ncx)
        _zip_add(zf, "OEBPS/style.css", _CSS)
        for _i, href, xhtml in docs:
            _zip_add(zf, f"OEBPS/{href}", xhtml)



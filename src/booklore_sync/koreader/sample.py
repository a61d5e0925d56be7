"""A sample KOReader device, generated from scratch (for ``booklore-sync demo``).

:func:`build_sample_device` writes a Kobo-style folder::

    <root>/Books/<book>.epub|.pdf            the books (two EPUBs, one PDF)
    <root>/Books/<book>.sdr/metadata.*.lua   KOReader sidecars (current format)
    <root>/.adds/koreader/settings.reader.lua, history.lua
    <root>/.adds/koreader/settings/statistics.sqlite3

plus a separate library folder with byte-identical copies of the books, for the
emulator's ``--library``.  Everything is produced here at run time: the prose is
this project's own, the EPUBs are zipped by hand, the PDF is written object by
object, the sidecars go through :func:`booklore_sync.koreader.luatable.dump`
and the statistics database uses KOReader's schema (koreader-data.md §3.2).

The EPUB positions are real: every XPointer is computed from the XHTML this
module writes (paragraph index, text-node index, code-point offset), so the
XPointer → CFI conversion validates against the highlighted text.  The book
files are deterministic (fixed zip timestamps), so their fingerprints are the
same on every run; the reading dates are placed a couple of weeks before
``now``, far past the session cool-down.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import sqlite3
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from booklore_sync.koreader.fingerprint import partial_md5
from booklore_sync.koreader.luatable import dump
from booklore_sync.koreader.statistics import SCHEMA_DDL

__all__ = ["SampleDevice", "build_sample_device", "DEVICE_ID"]

DEVICE_PREFIX = "/mnt/onboard"
DATA_DIR = Path(".adds") / "koreader"
DEVICE_ID = hashlib.md5(b"booklore-sync sample device").hexdigest().upper()
CRE_DOM_VERSION = 20240114
STATISTICS_VERSION = 20221111
ZIP_TIME = (2025, 1, 1, 0, 0, 0)
CHARS_PER_PAGE = 250          # a small screen with a large font: a few pages per chapter
MIN_SEC, MAX_SEC = 5, 120     # KOReader's statistics defaults


@dataclass
class SampleDevice:
    root: Path                              # the device root (the mount point)
    books: list[Path]                       # the book files on the device
    library: Path                           # byte-identical copies, for --library
    data_dir: Path = Path()                 # <root>/.adds/koreader
    fingerprints: dict[str, str] = field(default_factory=dict)   # file name → partial MD5
    expected: dict[str, int] = field(default_factory=dict)       # queue → items a scan queues


# ====================================================================== content
# Paragraphs are lists of segments: plain text, or ("em", text) for an <em>.
Segment = str | tuple[str, str]


@dataclass
class _Chapter:
    ident: str
    title: str
    paras: list[list[Segment]]


@dataclass
class _Mark:
    """An annotation to place: ``start``/``end`` are (paragraph number, phrase).

    The highlight runs from the first character of the start phrase to the last
    character of the end phrase (the start phrase's own end when ``end`` is None).
    ``page`` (EPUB bookmarks) is a page number; its page-top XPointer is used."""
    kind: str                               # "highlight", "note", "bookmark"
    chapter: int = 1                        # 1-based chapter (EPUB) or page (PDF)
    start: tuple[int, str] | None = None
    end: tuple[int, str] | None = None
    color: str | None = None
    drawer: str | None = None
    note: str | None = None
    edited: bool = False
    page: int | None = None


@dataclass
class _Epub:
    file: str
    title: str
    authors: list[str]
    isbn12: str                              # ISBN-13 without its check digit
    language: str
    description: str
    subjects: list[str]
    chapters: list[_Chapter]
    marks: list[_Mark]
    rating: int
    status: str
    sessions: list[tuple[int, int, int | None]]   # (day, minute of day, page reached;
                                                  #  None: the end); the last one is
                                                  #  where the reader is now


ALMANAC = _Epub(
    file="lighthouse-almanac.epub",
    title="The Lighthouse Keeper's Almanac",
    authors=["Margaret Fenwick"],
    isbn12="978000000000",
    language="en",
    description="A winter at a lighthouse, told through the keeper's ledger.",
    subjects=["Fiction", "Sea stories"],
    chapters=[
        _Chapter("winter-light", "Winter Light", [
            ["The lamp was lit at a quarter past four, as it had been every evening since "
             "the first of November. Agnes climbed the hundred and twelve steps with the oil "
             "can in one hand and the ledger in the other, counting them aloud out of a habit "
             "her father had left her along with the keys. At the top the glass was cold "
             "enough to ache against her palm."],
            ["From the gallery she could see the whole of the bay, grey water folded into grey "
             "hills, and the single road that ran down to the village like a pencil line "
             "someone had meant to rub out. Nothing moved on it. In winter nothing ever did, "
             "except the post van on Thursdays and the doctor, once, the year the ice came."],
            ["She wrote the date, the wind and the state of the sea, and then, because the page "
             "still looked empty, she added a line of her own: ",
             ("em", "the light is the only thing here that never asks to be thanked."),
             " Her father would have crossed it out. The almanac, he used to say, was for "
             "facts."],
            ["But facts were thin company in January. So the ledger filled, a little at a "
             "time, with the other things: the heron that stood in the shallows every morning "
             "like a folded umbrella, the smell of paraffin in her hair, the way the beam swept "
             "the cliffs and made them briefly, astonishingly gold."],
        ]),
        _Chapter("supply-boat", "The Supply Boat", [
            ["The boat came on the second Tuesday of the month if the weather allowed, and the "
             "weather seldom allowed. When it did, it brought flour, lamp oil, a sack of "
             "potatoes that were always smaller than the sack, and whatever letters had been "
             "waiting in the harbour office."],
            ["Tom Garrow steered it. He was a broad, unhurried man who treated every wave as a "
             "personal acquaintance, and he never once asked Agnes whether she was lonely. ",
             ("em", "That"),
             " was the kindest thing anyone had done for her in years."],
            ["This time there was a parcel among the letters, wrapped in oilcloth and tied with "
             "green string. Inside was a second almanac, older than her own, its spine mended "
             "with thread. The name on the flyleaf was her grandmother\u2019s."],
            ["She read it that night by the light of the lamp room. Her grandmother had kept "
             "the same columns, wind and sea and weather, but in the margins she had written "
             "recipes, arguments with the Admiralty and, once, a single word underlined three "
             "times: Stay."],
        ]),
        _Chapter("ledger-of-storms", "A Ledger of Storms", [
            ["The great storm arrived in March, a week earlier than the barometer had promised. "
             "It came in sideways off the Atlantic and leaned on the tower for three days, and "
             "on the second night the glass in the north pane cracked from corner to corner "
             "with a sound like a dropped plate."],
            ["Agnes did not sleep. She kept the lamp turning by hand when the clockwork jammed, "
             "forty turns a minute, counting as she had counted the stairs. Somewhere past "
             "midnight she realised she was counting in her grandmother\u2019s rhythm, not her "
             "father\u2019s, and that it was easier."],
            ["In the morning the sea was flat and innocent, as though it had never heard of "
             "storms. A fishing boat that had sheltered in the lee of the island all night came "
             "close enough for its crew to wave. She waved back, and then she went inside and "
             "wrote it all down."],
            ["Under the date, in the column for remarks, she wrote: Light kept. All well. Then, "
             "after a moment, she added her own word beneath it, and underlined it three "
             "times."],
        ]),
    ],
    marks=[
        _Mark("highlight", 1, (2, "grey water folded into grey hills"),
              color="yellow", drawer="lighten"),
        _Mark("highlight", 1, (3, "she added a line of her own"),
              end=(3, "never asks to be thanked."), color="cyan", drawer="underscore"),
        _Mark("note", 1, (4, "the way the beam swept the cliffs"),
              end=(4, "astonishingly gold."), color="orange", drawer="lighten", edited=True,
              note="The almanac turns into a diary here.\nCompare the last line of the book."),
        _Mark("bookmark", 2, page=9),
        _Mark("highlight", 2, (3, "Inside was a second almanac"),
              end=(4, "She read it that night by the light of the lamp room."),
              color="purple", drawer="lighten"),
        _Mark("bookmark", 3, page=11),
    ],
    rating=4,
    status="reading",
    sessions=[(0, 20 * 60 + 10, 6), (2, 21 * 60, 10), (6, 22 * 60 + 5, 12)],
)

ORCHARD = _Epub(
    file="small-orchard.epub",
    title="Notes from a Small Orchard",
    authors=["Thomas Arden", "Elsie Marsh"],
    isbn12="978000000001",
    language="en",
    description="Eleven years with seven crowded apple trees.",
    subjects=["Gardening", "Essays"],
    chapters=[
        _Chapter("pruning", "Pruning", [
            ["Every orchard begins with a mistake. Ours began with seven apple trees planted "
             "too close together by a previous owner who, we suspect, loved apples more than "
             "he loved arithmetic. For the first two winters we did nothing but walk among "
             "them and apologise."],
            ["Pruning, we learned, is mostly a matter of nerve. The rule is simple enough: cut "
             "out what is dead, what is crossing and what is crowded, and leave the tree room "
             "to breathe. The difficulty is that every branch, once you are standing under it "
             "with a saw, looks like the one the tree cannot do without."],
            ["An old neighbour watched us from the lane one February afternoon and finally "
             "offered the only advice we have ever needed. ",
             ("em", "\u201cCut it as if you will be here in ten years,\u201d"),
             " she said, ",
             ("em", "\u201cand not as if you are frightened of next summer.\u201d")],
            ["We have been here for eleven years now. She was right about everything except "
             "the pears, which have never forgiven us."],
        ]),
        _Chapter("blossom", "Blossom", [
            ["For about nine days each April the orchard stops being a collection of trees and "
             "becomes a single held breath. The blossom comes first on the old Bramley by the "
             "gate, then moves down the row like a rumour, until even the sulking pears join "
             "in."],
            ["Bees arrive from somewhere we have never discovered. We have no hives, and the "
             "nearest keeper we know of is four miles off, yet on a warm morning the canopy "
             "hums like a switched-on wire. We have stopped trying to explain it and simply "
             "leave the grass long for them."],
            ["Blossom is also the season of worry. A single clear night with a frost in it can "
             "undo the whole year in a few hours, and there is very little a small grower can "
             "do except watch the forecast, light a few candles in jars and hope."],
        ]),
        _Chapter("late-frost", "The Late Frost", [
            ["It came on the fourteenth of May, long after we had stopped expecting it. We woke "
             "to a white lawn and a silence in the trees that we both understood at once. By "
             "noon the petals on the lower branches had turned the colour of weak tea."],
            ["We lost perhaps half the crop. The neighbour, now well into her nineties, came to "
             "look and said it could have been worse, which is what she says about everything, "
             "and which has so far always been true."],
            ["In September the surviving apples were fewer and larger and, we thought, sweeter, "
             "though that may have been sentiment. We pressed them into eleven bottles of "
             "cloudy juice and gave most of them away."],
            ["The lesson of an orchard, if it has one, is that you are never really finished. "
             "You prune, you wait, you lose some and keep some, and in the spring you walk out "
             "under the branches and begin again."],
        ]),
    ],
    marks=[
        _Mark("highlight", 1, (2, "Pruning, we learned, is mostly a matter of nerve."),
              color="yellow", drawer="lighten"),
        _Mark("highlight", 1, (3, "\u201cCut it as if"), end=(3, "next summer.\u201d"),
              color="green", drawer="lighten"),
        _Mark("highlight", 2, (2, "the canopy hums like a switched-on wire"),
              color="red", drawer="strikeout"),
        _Mark("note", 3, (4, "you are never really finished"), color="yellow",
              drawer="lighten",
              note="Read this one aloud at the \"spring\" dinner.\n\tThe neighbour: "
                   "\u201cit could have been worse\u201d."),
        _Mark("bookmark", 3, page=10),
    ],
    rating=5,
    status="complete",
    sessions=[(1, 7 * 60 + 30, 5), (4, 19 * 60 + 40, 8), (8, 20 * 60 + 30, None)],
)

# The PDF: one bird per page (the page's outline entry is its title).
BIRDS_FILE = "garden-birds.pdf"
BIRDS_TITLE = "Field Notes on Garden Birds"
BIRDS_AUTHOR = "E. Marlowe"
BIRDS_PAGES = [
    ("The Robin",
     "The robin is the gardener's shadow. Turn a spade of soil and one will appear within a "
     "minute, standing on the fork handle as if it had been invited. It sings in winter when "
     "almost nothing else does, a thin, wistful song that carries a long way on a cold "
     "morning. Both sexes look alike and both defend a territory, which is why two robins "
     "meeting at a feeder so rarely part as friends."),
    ("The Wren",
     "Small enough to hide in a coat pocket, the wren has a voice out of all proportion to its "
     "size. The song is a rapid, ringing rattle that seems to come from everywhere at once. "
     "Look for it low down in ivy and brushwood, tail cocked upright, moving more like a "
     "mouse than a bird. In hard winters wrens huddle together for warmth, and more than "
     "sixty have been found sharing a single nest box."),
    ("The Blackbird",
     "The blackbird sings from rooftops and aerials in the last hour of daylight, a slow, "
     "fluting phrase that always sounds slightly unfinished. The male is entirely black with "
     "an orange bill; the female is brown and easily mistaken for a thrush. Blackbirds feed "
     "on the lawn by running a few steps, stopping and tilting the head, listening, it is "
     "said, for worms."),
    ("The Song Thrush",
     "The song thrush repeats each phrase two or three times, as if to be sure it was heard. "
     "It has a favourite stone, an anvil, where it breaks open snail shells, and a ring of "
     "broken shells around a garden rock is a sure sign that one is nearby. Numbers fell "
     "sharply in the last century; a garden with long grass, leaf litter and no slug pellets "
     "is the best help anyone can offer."),
]
BIRDS_MARKS = [
    _Mark("highlight", 1, (1, "It sings in winter when"), color="yellow", drawer="lighten"),
    _Mark("bookmark", page=2),
    _Mark("note", 2, (1, "more than"), color="green", drawer="lighten",
          note="Sixty! Put up a second nest box before November."),
    _Mark("highlight", 3, (1, "a slow,"), color="blue", drawer="underscore"),
]
BIRDS_RATING = 3
BIRDS_SESSIONS: list[tuple[int, int, int | None]] = [(3, 12 * 60 + 15, 2), (9, 9 * 60, 3)]


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


# ========================================================================= PDF
PDF_W, PDF_H = 420, 595               # A5 in points
PDF_LEFT, PDF_TOP, PDF_SIZE, PDF_LEADING = 48, 520, 11, 16
PDF_CHAR_W = 0.5 * PDF_SIZE           # an average Helvetica advance, good enough for boxes
PDF_WRAP = 58


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def _pdf_str(s: str) -> bytes:
    return b"(" + s.encode("latin-1").replace(b"\\", b"\\\\").replace(
        b"(", b"\\(").replace(b")", b"\\)") + b")"


def _write_pdf(path: Path, title: str, author: str,
               pages: list[tuple[str, list[str]]]) -> None:
    """A small, valid PDF 1.4: Helvetica text, an outline (one entry per page), an
    /Info dictionary.  Objects: 1 catalog, 2 pages, 3 font, 4 info, 5 outlines,
    then per page: page, content stream, outline item."""
    n = len(pages)
    page_id = [6 + 3 * i for i in range(n)]
    objs: dict[int, bytes] = {}
    objs[1] = b"<< /Type /Catalog /Pages 2 0 R /Outlines 5 0 R /PageMode /UseOutlines >>"
    kids = b" ".join(b"%d 0 R" % p for p in page_id)
    objs[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, n)
    objs[3] = (b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
               b"/Encoding /WinAnsiEncoding >>")
    objs[4] = (b"<< /Title " + _pdf_str(title) + b" /Author " + _pdf_str(author)
               + b" /Creator (booklore-sync sample generator) /Producer (booklore-sync)"
               b" /CreationDate (D:20250101000000Z) >>")
    objs[5] = b"<< /Type /Outlines /First %d 0 R /Last %d 0 R /Count %d >>" % (
        page_id[0] + 2, page_id[-1] + 2, n)
    for i, (heading, lines) in enumerate(pages):
        pid = page_id[i]
        ops = [b"BT /F1 16 Tf %d %d Td " % (PDF_LEFT, PDF_TOP + 30) + _pdf_str(heading)
               + b" Tj ET",
               b"BT /F1 %d Tf %d TL %d %d Td" % (PDF_SIZE, PDF_LEADING, PDF_LEFT, PDF_TOP)]
        for j, line in enumerate(lines):
            ops.append((b"T* " if j else b"") + _pdf_str(line) + b" Tj")
        ops.append(b"ET")
        ops.append(b"BT /F1 9 Tf %d 40 Td (%d) Tj ET" % (PDF_W // 2 - 3, i + 1))
        stream = b"\n".join(ops) + b"\n"
        objs[pid] = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] "
                     b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>"
                     % (PDF_W, PDF_H, pid + 1))
        objs[pid + 1] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream"
        item = b"<< /Title " + _pdf_str(heading) + b" /Parent 5 0 R"
        if i > 0:
            item += b" /Prev %d 0 R" % (page_id[i - 1] + 2)
        if i < n - 1:
            item += b" /Next %d 0 R" % (page_id[i + 1] + 2)
        item += b" /Dest [%d 0 R /XYZ null null null] >>" % pid
        objs[pid + 2] = item
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for num in sorted(objs):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + objs[num] + b"\nendobj\n"
    xref = len(out)
    size = max(objs) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for num in range(1, size):
        out += b"%010d 00000 n \n" % offsets[num]
    out += (b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (size, xref))
    path.write_bytes(bytes(out))


def _pdf_position(lines: list[str], phrase: str, page: int) -> tuple[dict, dict, list[dict]]:
    """pos0, pos1 and pboxes of a phrase (unzoomed page coordinates, origin top left)."""
    zoom = 1.6190476190476
    boxes = []
    pos0 = pos1 = None
    text = " ".join(lines)
    start = text.index(phrase)
    end = start + len(phrase)
    base = 0
    for j, line in enumerate(lines):
        lo, hi = max(start, base), min(end, base + len(line))
        if lo < hi:
            top = PDF_H - (PDF_TOP - j * PDF_LEADING) - PDF_SIZE
            x0 = PDF_LEFT + (lo - base) * PDF_CHAR_W
            x1 = PDF_LEFT + (hi - base) * PDF_CHAR_W
            boxes.append({"x": round(x0, 3), "y": round(top - 2, 3),
                          "w": round(x1 - x0, 3), "h": round(PDF_SIZE + 4.0, 3)})
            mid = top + PDF_SIZE / 2
            if pos0 is None:
                pos0 = {"page": page, "rotation": 0, "x": x0 + 1.25, "y": mid, "zoom": zoom}
            pos1 = {"page": page, "rotation": 0, "x": x1 - 1.25, "y": mid, "zoom": zoom}
        base += len(line) + 1
    assert pos0 is not None and pos1 is not None
    return pos0, pos1, boxes


# ================================================================== statistics


@dataclass
class _Reading:
    """One book's reading history: page_stat_data rows (page, start, duration)."""
    rows: list[tuple[int, int, int]] = field(default_factory=list)
    sessions: int = 0
    stopped: int = 1                        # the page on screen at the end

    def when(self, page: int) -> int:
        """When the page was first on screen (else the last row's time)."""
        for p, start, _d in self.rows:
            if p == page:
                return start
        return self.rows[-1][1]

    @property
    def end(self) -> int:
        return max(s + d for _p, s, d in self.rows)


def _read(rng: random.Random, anchor: int, plan: list[tuple[int, int, int | None]],
          pages: int) -> _Reading:
    """Page views for a list of sessions (day, minute of day, page reached).  Each
    session starts on the page the previous one ended on; a page stays on screen
    25–230 s (KOReader records at most ``max_sec`` of it, and nothing under
    ``min_sec``), so the gaps inside a session stay well under five minutes."""
    reading = _Reading()
    page = 1
    for day, minute, reached in plan:
        t = anchor + day * 86400 + minute * 60
        target = pages if reached is None else min(pages, reached)
        while True:
            shown = rng.randint(25, 230)
            if shown >= MIN_SEC:
                reading.rows.append((page, t, min(shown, MAX_SEC)))
            t += shown
            if page >= target:
                break
            page += 1
        reading.sessions += 1
    reading.stopped = page
    return reading


def _write_statistics(path: Path, books: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)        # a rebuilt sample replaces the old one
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        for sql in SCHEMA_DDL:
            conn.execute(sql)
        conn.executemany("INSERT INTO numbers VALUES (?)", [(i,) for i in range(1, 1001)])
        for b in books:
            rows = b["reading"].rows
            cur = conn.execute(
                "INSERT INTO book (title, authors, notes, last_open, highlights, pages, series,"
                " language, md5, total_read_time, total_read_pages)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (b["title"], b["authors"], b["notes"], b["reading"].end, b["highlights"],
                 b["pages"], "N/A", b["language"], b["md5"], sum(r[2] for r in rows),
                 len({r[0] for r in rows})))
            conn.executemany(
                "INSERT OR IGNORE INTO page_stat_data VALUES (?, ?, ?, ?, ?)",
                [(cur.lastrowid, p, s, d, b["pages"]) for p, s, d in rows])
        conn.execute(f"PRAGMA user_version = {STATISTICS_VERSION}")
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


# ==================================================================== sidecars
def _write_sidecar(books_dir: Path, file_name: str, data: dict[str, Any], mtime: int) -> Path:
    stem, ext = file_name.rsplit(".", 1)
    sdr = books_dir / f"{stem}.sdr"
    sdr.mkdir(parents=True, exist_ok=True)
    path = sdr / f"metadata.{ext}.lua"
    path.write_bytes(dump(data, f"{DEVICE_PREFIX}/Books/{stem}.sdr/metadata.{ext}.lua"))
    os.utime(path, (mtime, mtime))
    return path


def _epub_annotations(spec: _Epub, layout: _EpubLayout, reading: _Reading
                      ) -> tuple[list[dict[str, Any]], int, int]:
    """The sidecar's ``annotations`` (reading order) and (notes, plain highlights)."""
    items: list[tuple[tuple[int, int, int], dict[str, Any]]] = []
    notes = highlights = 0
    for k, m in enumerate(spec.marks):
        ch = spec.chapters[m.chapter - 1]
        if m.kind == "bookmark":
            assert m.page is not None
            c, b, o = layout.pages[m.page - 1]
            title = layout.chapter_title(m.page)
            when = reading.when(m.page) + 20 + k
            items.append(((c, b, o), {
                "chapter": title, "datetime": _local(when), "page": layout.page_top(m.page),
                "pageno": m.page, "text": f"in {title}",
            }))
            continue
        assert m.start is not None
        sb, sphrase = m.start
        eb, ephrase = m.end or m.start
        stext, etext = _plain(ch.paras[sb - 1]), _plain(ch.paras[eb - 1])
        s0 = stext.index(sphrase)
        e1 = etext.index(ephrase, s0 if eb == sb else 0) + len(ephrase)
        if sb == eb:
            text = stext[s0:e1]
        else:
            text = "\n".join([stext[s0:]] + [_plain(ch.paras[i - 1]) for i in range(sb + 1, eb)]
                             + [etext[:e1]])
        pos0 = layout.xpointer(m.chapter, sb, s0)
        pos1 = layout.xpointer(m.chapter, eb, e1, end=True)
        page = layout.page_of(m.chapter, sb, s0)
        when = reading.when(page) + 45 + 7 * k
        entry: dict[str, Any] = {
            "chapter": ch.title, "color": m.color, "datetime": _local(when),
            "drawer": m.drawer, "page": pos0, "pageno": page, "pos0": pos0, "pos1": pos1,
            "text": text,
        }
        if m.note:
            entry["note"] = m.note
            notes += 1
        else:
            highlights += 1
        if m.edited:
            entry["datetime_updated"] = _local(reading.end - 60)
        items.append(((m.chapter, sb, s0), entry))
    items.sort(key=lambda it: it[0])
    return [e for _k, e in items], notes, highlights


def _epub_book(spec: _Epub, books_dir: Path, rng: random.Random, anchor: int
               ) -> tuple[Path, dict[str, Any], _Reading]:
    path = books_dir / spec.file
    _write_epub(path, spec)
    layout = _EpubLayout(spec)
    pages = len(layout.pages)
    reading = _read(rng, anchor, spec.sessions, pages)
    current = reading.stopped
    annotations, notes, highlights = _epub_annotations(spec, layout, reading)
    md5 = partial_md5(path)
    close = reading.end + 40
    first_day = _date(reading.rows[0][1])
    isbn = _isbn13(spec.isbn12)
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:booklore-sync:sample:{spec.file}"))
    sidecar = {
        "annotations": annotations,
        "cre_dom_version": CRE_DOM_VERSION,
        "copt_font_size": 22,
        "copt_line_spacing": 100,
        "copt_view_mode": 0,
        "doc_pages": pages,
        "doc_path": f"{DEVICE_PREFIX}/Books/{spec.file}",
        "doc_props": {
            "authors": "\n".join(spec.authors),
            "description": spec.description,
            "identifiers": f"UUID:{uid}\nISBN:{isbn}",
            "keywords": "\n".join(spec.subjects),
            "language": spec.language,
            "title": spec.title,
        },
        "font_face": "Noto Serif",
        "highlight_drawer": "lighten",
        "inverse_reading_order": False,
        "last_xpointer": layout.page_top(current),
        "partial_md5_checksum": md5,
        "percent_finished": current / pages,
        "summary": {
            "modified": _date(close) if spec.status == "complete" else first_day,
            "rating": spec.rating,
            "status": spec.status,
        },
    }
    _write_sidecar(books_dir, spec.file, sidecar, close)
    stats = {"title": spec.title, "authors": "\n".join(spec.authors), "notes": notes,
             "highlights": highlights, "pages": pages, "language": spec.language, "md5": md5,
             "reading": reading}
    return path, stats, reading


def _pdf_book(books_dir: Path, rng: random.Random, anchor: int
              ) -> tuple[Path, dict[str, Any], _Reading]:
    path = books_dir / BIRDS_FILE
    pages = [(heading, _wrap(text, PDF_WRAP)) for heading, text in BIRDS_PAGES]
    _write_pdf(path, BIRDS_TITLE, BIRDS_AUTHOR, pages)
    n = len(pages)
    reading = _read(rng, anchor, BIRDS_SESSIONS, n)
    current = reading.stopped
    annotations = []
    notes = highlights = 0
    for k, m in enumerate(BIRDS_MARKS):
        if m.kind == "bookmark":
            assert m.page is not None
            annotations.append((m.page, 0.0, {
                "chapter": pages[m.page - 1][0],
                "datetime": _local(reading.when(m.page) + 15 + k),
                "page": m.page, "pageno": m.page,
            }))
            continue
        assert m.start is not None
        page = m.chapter
        heading, lines = pages[page - 1]
        text = m.start[1]
        pos0, pos1, boxes = _pdf_position(lines, text, page)
        entry: dict[str, Any] = {
            "chapter": heading, "color": m.color,
            "datetime": _local(reading.when(page) + 50 + 9 * k), "drawer": m.drawer,
            "page": page, "pageno": page, "pboxes": boxes, "pos0": pos0, "pos1": pos1,
            "text": text,
        }
        if m.note:
            entry["note"] = m.note
            notes += 1
        else:
            highlights += 1
        annotations.append((page, pos0["y"], entry))
    annotations.sort(key=lambda a: (a[0], a[1]))
    md5 = partial_md5(path)
    close = reading.end + 30
    sidecar = {
        "annotations": [a[2] for a in annotations],
        "doc_pages": n,
        "doc_path": f"{DEVICE_PREFIX}/Books/{BIRDS_FILE}",
        "doc_props": {"authors": BIRDS_AUTHOR, "title": BIRDS_TITLE},
        "highlight_drawer": "lighten",
        "inverse_reading_order": False,
        "kopt_contrast": 1,
        "kopt_page_opt": 0,
        "kopt_text_wrap": 0,
        "kopt_trim_page": 1,
        "kopt_zoom_mode_genus": 4,
        "kopt_zoom_mode_type": 2,
        "last_page": current,
        "partial_md5_checksum": md5,
        "percent_finished": current / n,
        "render_mode": 0,
        "rotation_mode": 0,
        "summary": {"modified": _date(reading.rows[0][1]), "rating": BIRDS_RATING,
                    "status": "reading"},
    }
    _write_sidecar(books_dir, BIRDS_FILE, sidecar, close)
    stats = {"title": BIRDS_TITLE, "authors": BIRDS_AUTHOR, "notes": notes,
             "highlights": highlights, "pages": n, "language": "N/A", "md5": md5,
             "reading": reading}
    return path, stats, reading


# ======================================================================== main
def build_sample_device(root: Path, *, library: Path | None = None,
                        now: float | None = None) -> SampleDevice:
    """Write the sample device under ``root`` (created if needed) and the library
    copy under ``library`` (default: ``<root>-library`` next to it, outside the
    device).  The reading happened 14 to 5 days before ``now`` (default: the
    current time), on a device whose clock runs on UTC."""
    root = Path(root)
    library = Path(library) if library is not None else root.with_name(root.name + "-library")
    now = int(now if now is not None else datetime.now(timezone.utc).timestamp())
    anchor = (now // 86400 - 14) * 86400              # midnight UTC, two weeks ago
    books_dir = root / "Books"
    data_dir = root / DATA_DIR
    books_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "settings").mkdir(parents=True, exist_ok=True)
    library.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20250101)

    files: list[Path] = []
    stats: list[dict[str, Any]] = []
    expected = {"sessions": 0, "annotations": 0, "ratings": 0, "bookmarks": 0, "progress": 0}
    last_open: list[tuple[int, str]] = []
    for spec in (ALMANAC, ORCHARD):
        path, st, reading = _epub_book(spec, books_dir, rng, anchor)
        files.append(path)
        stats.append(st)
        last_open.append((reading.end + 40, spec.file))
        expected["sessions"] += reading.sessions
        expected["annotations"] += sum(m.kind != "bookmark" for m in spec.marks)
        expected["bookmarks"] += sum(m.kind == "bookmark" for m in spec.marks)
    path, st, reading = _pdf_book(books_dir, rng, anchor)
    files.append(path)
    stats.append(st)
    last_open.append((reading.end + 30, BIRDS_FILE))
    expected["sessions"] += reading.sessions
    expected["annotations"] += sum(m.kind != "bookmark" for m in BIRDS_MARKS)
    expected["bookmarks"] += sum(m.kind == "bookmark" for m in BIRDS_MARKS)
    expected["ratings"] = expected["progress"] = len(files)

    # KOReader's statistics table lists books in the order they were first opened
    stats.sort(key=lambda b: b["reading"].rows[0][1])
    _write_statistics(data_dir / "settings" / "statistics.sqlite3", stats)

    last_open.sort()
    settings = {
        "device_id": DEVICE_ID,
        "document_metadata_folder": "doc",
        "home_dir": DEVICE_PREFIX,
        "language": "en",
        "lastdir": f"{DEVICE_PREFIX}/Books",
        "lastfile": f"{DEVICE_PREFIX}/Books/{last_open[-1][1]}",
        "statistics": {"is_enabled": True, "max_sec": MAX_SEC, "min_sec": MIN_SEC,
                       "convert_to_db": True, "freeze_finished_books": False},
        "time_format": "24",
    }
    settings_path = data_dir / "settings.reader.lua"
    settings_path.write_bytes(dump(settings, f"{DEVICE_PREFIX}/{DATA_DIR.as_posix()}"
                                             "/settings.reader.lua"))
    history = [{"file": f"{DEVICE_PREFIX}/Books/{name}", "time": t}
               for t, name in sorted(last_open, reverse=True)]
    (data_dir / "history.lua").write_bytes(
        dump(history, f"{DEVICE_PREFIX}/{DATA_DIR.as_posix()}/history.lua"))

    # the books were copied onto the device before any reading; the library holds
    # the same bytes (and times) as the server's copy
    copied = anchor - 3 * 86400
    fingerprints = {}
    for f in files:
        os.utime(f, (copied, copied))
        shutil.copy2(f, library / f.name)
        fingerprints[f.name] = partial_md5(f)
    return SampleDevice(root=root, books=files, library=library, data_dir=data_dir,
                        fingerprints=fingerprints, expected=expected)

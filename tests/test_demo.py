"""The generated sample device (koreader/sample.py) and ``booklore-sync demo``."""

from __future__ import annotations

import re
import sqlite3
import zipfile

import pytest
from lxml import etree

from booklore_sync.koreader.cfi import CfiConverter
from booklore_sync.koreader.fingerprint import partial_md5
from booklore_sync.koreader.luatable import parse_file
from booklore_sync.koreader.sample import DEVICE_ID, build_sample_device
from booklore_sync.koreader.scan import scan_source
from booklore_sync.store import Store

from .conftest import run_cli

NOW = 1_800_000_000
UTC = {"device.timezone": "UTC"}
EXPECTED = {"sessions": 8, "annotations": 11, "ratings": 3, "bookmarks": 4, "progress": 3}


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    return build_sample_device(tmp_path_factory.mktemp("sample") / "device", now=NOW)


@pytest.fixture
def scan_store(tmp_path):
    s = Store.open(tmp_path / "store.sqlite3")
    yield s
    s.close()


def _sidecar(book):
    return parse_file(book.parent / f"{book.stem}.sdr" / f"metadata.{book.suffix[1:]}.lua")


def test_sample_device_layout(device):
    root = device.root
    data_dir = root / ".adds" / "koreader"
    assert (data_dir / "settings.reader.lua").is_file()
    assert parse_file(data_dir / "settings.reader.lua")["device_id"] == DEVICE_ID
    assert re.fullmatch(r"[0-9A-F]{32}", DEVICE_ID)
    assert sorted(b.suffix for b in device.books) == [".epub", ".epub", ".pdf"]
    assert all(b.parent == root / "Books" for b in device.books)
    # the library is elsewhere and holds the same bytes
    assert not device.library.is_relative_to(root)
    for book in device.books:
        copy = device.library / book.name
        assert copy.read_bytes() == book.read_bytes()
        fp = partial_md5(book)
        assert device.fingerprints[book.name] == fp
        side = _sidecar(book)
        assert side["partial_md5_checksum"] == fp
        assert side["doc_path"] == f"/mnt/onboard/Books/{book.name}"
        assert 1 <= side["summary"]["rating"] <= 5
    # statistics: KOReader's schema version, one book row per book with its md5
    conn = sqlite3.connect(f"{(data_dir / 'settings' / 'statistics.sqlite3').as_uri()}?mode=ro&immutable=1",
                           uri=True)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 20221111
        md5s = {r[0] for r in conn.execute("SELECT md5 FROM book")}
        assert md5s == set(device.fingerprints.values())
        assert conn.execute("SELECT count(*) FROM page_stat").fetchone()[0] > 0
    finally:
        conn.close()


def test_sample_books_are_valid_files(device):
    strict = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    for book in device.books:
        data = book.read_bytes()
        if book.suffix == ".epub":
            with zipfile.ZipFile(book) as zf:
                first = zf.infolist()[0]
                assert (first.filename, first.compress_type) == ("mimetype", zipfile.ZIP_STORED)
                assert data[30:38] == b"mimetype" and data[38:58] == b"application/epub+zip"
                assert zf.testzip() is None
                for name in zf.namelist():
                    if name.endswith((".xml", ".opf", ".ncx", ".xhtml")):
                        etree.fromstring(zf.read(name), strict)   # well-formed
                opf = zf.read("OEBPS/content.opf").decode()
                assert 'opf:scheme="ISBN"' in opf and "<dc:creator" in opf
        else:
            assert data.startswith(b"%PDF-1.4") and data.rstrip().endswith(b"%%EOF")
            start = int(re.search(rb"startxref\s+(\d+)", data).group(1))
            assert data[start:start + 4] == b"xref"
            size = int(re.search(rb"/Size (\d+)", data).group(1))
            entries = data[start:].split(b"\n")[3:2 + size]
            for num, entry in enumerate(entries, 1):
                offset = int(entry[:10])
                assert data[offset:].startswith(b"%d 0 obj" % num)
            assert b"/Title (Field Notes on Garden Birds)" in data
    # the books are the same bytes on every run (stable fingerprints)
    again = build_sample_device(device.root.parent / "again" / "device", now=NOW + 86400 * 30)
    assert again.fingerprints == device.fingerprints


def test_sample_device_scans_cleanly(device, scan_store):
    report = scan_source(scan_store, device.root, UTC, now=NOW)
    assert report.to_json() == {"books": 3, "queued": EXPECTED, "errors": [], "warnings": []}
    assert device.expected == EXPECTED

    annotations = scan_store.pending("annotations")
    bookmarks = scan_store.pending("bookmarks")
    epub = [a for a in annotations + bookmarks if a.book_type == "EPUB"]
    pdf = [a for a in annotations + bookmarks if a.book_type == "PDF"]
    assert len(epub) == 11 and len(pdf) == 4
    for item in epub:
        assert item.payload["cfi"].startswith("epubcfi(/6/"), item.payload
        assert item.last_error is None
    for item in pdf:
        assert item.payload["paged"] and item.payload["page"] >= 1
    kinds = [a.payload["kind"] for a in annotations]
    assert kinds.count("note") == 3 and kinds.count("highlight") == 8
    assert {a.payload["color"] for a in annotations} >= {"#FFC107", "#4ADE80", "#FB923C"}
    assert {a.payload["style"] for a in annotations} >= {"highlight", "underline",
                                                          "strikethrough"}
    assert sorted(r.key["rating"] for r in scan_store.pending("ratings")) == [6, 8, 10]
    books = {b.title: b for b in scan_store.books()}
    assert books["The Lighthouse Keeper's Almanac"].isbn13 == "9780000000002"
    assert books["Notes from a Small Orchard"].author == "Thomas Arden, Elsie Marsh"

    # a second scan of the unchanged folder queues nothing
    again = scan_source(scan_store, device.root, UTC, now=NOW)
    assert sum(again.to_json()["queued"].values()) == 0


def test_epub_xpointers_convert_directly(device):
    """The XPointers point at the highlighted text itself: no fallback search."""
    for book in device.books:
        if book.suffix != ".epub":
            continue
        side = _sidecar(book)
        conv = CfiConverter.open(book, side["cre_dom_version"])
        try:
            for a in side["annotations"]:
                if "drawer" in a:
                    res = conv.range(a["pos0"], a["pos1"], a["text"])
                else:
                    res = conv.point(a["page"])
                assert (res.method, res.reason) == ("direct", None), (a, res)
            assert conv.point(side["last_xpointer"]).cfi
        finally:
            conv.close()


def test_demo_command_end_to_end(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = run_cli("demo", env={"TMPDIR": str(tmp)}, timeout=60)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for letter, n in zip("SARBP", EXPECTED.values(), strict=True):
        assert re.search(rf"^{letter}: {n} synced$", out, re.M), out
    assert "error:" not in out and "warning:" not in out
    assert "Pending items\n  (none)" in out
    second = out.split("Second sync", 1)[1]
    assert "Nothing to sync" in second and "synced" not in second.split("Demo finished")[0]
    assert "Demo finished (exit 0)" in out
    work = re.search(r"device folder: (\S+)/device", out).group(1)
    assert work.startswith(str(tmp))
    assert list(tmp.iterdir()) == []          # the demo's temporary folder is gone

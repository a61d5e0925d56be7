"""Real readers' files scanned as devices (koreader-data §12; issue 13).

Each test copies what it needs from the corpus into a temporary device; the counts
asserted are those the files hold (counted from their tables, or from the README).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from booklore_sync.koreader.fingerprint import partial_md5
from booklore_sync.koreader.luatable import parse_file
from booklore_sync.koreader.paths import from_store
from booklore_sync.koreader.scan import scan_source
from booklore_sync.koreader.statistics import derive_sessions
from booklore_sync.store import Store
from tests.koreader.conftest import empty_kobo

from .realworld import corpus, expected_items

NOW = 1800000000
UTC = {"device.timezone": "UTC"}


kobo = empty_kobo


SIDECARS = [
    ("WorldTeacher__BookLoreSync-plugin@edb0c03/metadata.epub.lua", "epub"),
    ("johnbarraza__koreader-notion-sync@c25df24/metadata.epub.lua", "epub"),
    ("johnbarraza__koreader-notion-sync@4b380d5/metadata.epub.lua", "epub"),
    ("maks2001916__BGTI_schedule@7605ce0/metadata.pdf.lua", "pdf"),
    ("presidentunicorn8__kobosyncy@aed08a3/metadata.epub.lua", "epub"),
    ("presidentunicorn8__kobosyncy@048f607/metadata.epub.lua", "epub"),
    ("huynle__sync_koreader@f327a30/metadata.epub.lua", "epub"),
    ("simonpacis__kohico@f72ca61/metadata.pdf.lua", "pdf"),
    ("codito__noted@3eab795/test/assets/koreader/pg42324.sdr/metadata.epub.lua", "epub"),
    ("codito__noted@3eab795/test/assets/koreader/the_prophet.sdr/metadata.epub.lua", "epub"),
    ("codito__noted@3eab795/test/assets/koreader/dialogues_seneca.sdr/metadata.epub.lua", "epub"),
    ("codito__noted@f15115e/test/assets/koreader/pg42324.sdr/metadata.epub.lua", "epub"),
]


@pytest.mark.parametrize("rel,ext", SIDECARS, ids=[s[0].split("/")[0] for s in SIDECARS])
def test_real_sidecar_without_its_book(tmp_path, store, rel, ext):
    src = corpus() / "real" / rel
    root, _ = kobo(tmp_path)
    sdr = root / "Books" / "book.sdr"
    sdr.mkdir()
    shutil.copy2(src, sdr / f"metadata.{ext}.lua")
    if Path(str(src) + ".old").exists():
        shutil.copy2(str(src) + ".old", sdr / f"metadata.{ext}.lua.old")
    report = scan_source(store, root, UTC, now=NOW).to_json()
    want = expected_items(src)
    assert report["errors"] == []
    assert report["books"] == 1
    assert report["queued"]["annotations"] == want["annotations"]
    assert report["queued"]["bookmarks"] == want["bookmarks"]
    # the missing book file is a warning, never an error
    assert any("book file not found" in w["warning"] for w in report["warnings"])


def test_invalid_real_sidecar_is_an_error_and_the_scan_goes_on(tmp_path, store):
    real = corpus() / "real"
    root, _ = kobo(tmp_path)
    bad = root / "Books" / "bad.sdr"
    bad.mkdir()
    shutil.copy2(real / "harmtemolder__koreader-calibre-plugin@f77ee3f/dummy_device/Carroll, Lewis/"
                 "Alice's Adventures in Wonderland - Lewis Carroll.sdr/metadata.epub.lua",
                 bad / "metadata.epub.lua")
    good = root / "Books" / "good.sdr"
    good.mkdir()
    src = real / "WorldTeacher__BookLoreSync-plugin@edb0c03/metadata.epub.lua"
    shutil.copy2(src, good / "metadata.epub.lua")
    report = scan_source(store, root, UTC, now=NOW).to_json()
    assert [e["file"] for e in report["errors"]] == [str((bad / "metadata.epub.lua").resolve())]
    assert "not a valid KOReader Lua file" in report["errors"][0]["error"]
    assert report["books"] == 1
    assert report["queued"]["annotations"] == expected_items(src)["annotations"]


def test_alice_with_its_real_book(tmp_path, store):
    real = corpus() / "real" / "harmtemolder__koreader-calibre-plugin@4d0b58c/dummy_device"
    root, _ = kobo(tmp_path)
    shutil.copytree(real / "Carroll, Lewis", root / "Books" / "Carroll, Lewis")
    book = root / "Books/Carroll, Lewis/Alice's Adventures in Wonderland - Lewis Carroll.epub"
    sidecar = book.with_suffix(".sdr") / "metadata.epub.lua"
    data = parse_file(sidecar)
    assert partial_md5(book) == data["partial_md5_checksum"]
    report = scan_source(store, root, UTC, now=NOW).to_json()
    assert report["errors"] == []
    want = expected_items(sidecar)
    assert report["queued"]["annotations"] == want["annotations"] == 2
    assert report["queued"]["bookmarks"] == want["bookmarks"] == 1
    assert report["queued"]["ratings"] == 1
    queued = store.pending("annotations")
    assert all(item.payload["cfi"] for item in queued), "real XPointers convert to CFIs"


def test_kindle_folder_with_books_inside_the_data_dir(tmp_path, store):
    """DenisovichDev's Kindle folder: the quickstart guide (relative ``doc_path``)
    lives inside the data directory, SOURCE is the data directory itself."""
    src = corpus() / "real" / "DenisovichDev__koreader@c5c2cc1"
    data_dir = tmp_path / "koreader"
    shutil.copytree(src, data_dir)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in data_dir.rglob("*"))
    report = scan_source(store, data_dir, UTC, now=NOW).to_json()
    assert sorted((p.name, p.stat().st_mtime_ns) for p in data_dir.rglob("*")) == before
    assert report["errors"] == []
    assert report["books"] == 1
    [book] = store.books()
    assert from_store(book.file_path) == str(
        (data_dir / "help" / "quickstart-en-v2025.10.html").resolve())
    # sessions: every final one of the 28 books (the rows are countable in the file)
    conn = sqlite3.connect(data_dir / "settings" / "statistics.sqlite3")
    assert conn.execute("SELECT count(*) FROM book").fetchone()[0] == 28
    assert conn.execute("SELECT count(*) FROM page_stat_data").fetchone()[0] == 1539
    conn.close()
    assert report["queued"]["sessions"] > 0


def test_kindle_book_kept_in_koreader_epubs(tmp_path, store):
    """johnbarraza's Kindle sidecar names ``/mnt/us/koreader/epubs/…``: the book is
    found inside the local data directory (§2.1), by the sidecar's ``doc_path``."""
    real = corpus() / "real"
    root = tmp_path / "kindle"
    data_dir = root / "koreader"
    data_dir.mkdir(parents=True)
    shutil.copy2(real / "Hzj-jie__files@2c85679/koreader/settings.reader.lua",
                 data_dir / "settings.reader.lua")
    sidecar = real / "johnbarraza__koreader-notion-sync@c25df24/metadata.epub.lua"
    doc_path = parse_file(sidecar)["doc_path"]
    assert doc_path.startswith("/mnt/us/koreader/")
    local = data_dir / doc_path[len("/mnt/us/koreader/"):]
    local.parent.mkdir(parents=True)
    shutil.copy2(corpus() / "derived" / "pg42324.epub", local)
    sdr = local.with_suffix(".sdr")
    sdr.mkdir()
    shutil.copy2(sidecar, sdr / "metadata.epub.lua")
    for source in (root, data_dir):
        s = Store.open(tmp_path / f"store-{source.name}.sqlite3")
        try:
            report = scan_source(s, source, UTC, now=NOW).to_json()
            assert report["errors"] == []
            assert report["books"] == 1
            assert report["queued"]["annotations"] == expected_items(sidecar)["annotations"] == 5
            assert not any("book file not found" in w["warning"] for w in report["warnings"])
        finally:
            s.close()


def test_non_utf8_file_name(tmp_path, store):
    """A GBK-named book beside its ``.sdr`` (Hzj-jie's bug report, at the commit where
    the folder name was raw GBK bytes): kept losslessly, shown with U+FFFD."""
    real = corpus() / "real" / "Hzj-jie__files@2c85679/koreader/b4"
    root, _ = kobo(tmp_path)
    name = "日本".encode("gbk")                     # not UTF-8
    books = os.fsencode(root / "Books")
    book = books + b"/" + name + b".txt"
    shutil.copyfile(real / "bad.gbk.txt", book)
    os.mkdir(books + b"/" + name + b".sdr")
    shutil.copyfile(real / "bad.gbk.sdr" / "bad.gbk.txt.lua",
                    books + b"/" + name + b".sdr/" + name + b".txt.lua")
    report = scan_source(store, root, UTC, now=NOW).to_json()
    assert report["errors"] == []
    assert report["books"] == 1
    [cached] = store.books()
    assert os.fsencode(from_store(cached.file_path)) == os.fsencode(root.resolve()) + book[len(
        os.fsencode(root)):]
    assert cached.file_hash == partial_md5(book)
    for w in report["warnings"]:
        w["file"].encode("utf-8")                   # printable: U+FFFD, no surrogates
    again = scan_source(store, root, UTC, now=NOW).to_json()
    assert again["queued"] == dict.fromkeys(again["queued"], 0)


@pytest.mark.parametrize("db", ["iibarbari__inkstats@137765f/statistics.sqlite3",
                                "iibarbari__inkstats@816ffaf/statistics.sqlite3",
                                "totokatz__highlights-kobo@08d1d53/statistics.sqlite3"])
def test_real_statistics_databases(tmp_path, store, db):
    src = corpus() / "real" / db
    root, data = kobo(tmp_path)
    shutil.copy2(src, data / "settings" / "statistics.sqlite3")
    report = scan_source(store, root, UTC, now=NOW).to_json()
    assert report["errors"] == []
    _, sessions, _ = derive_sessions(src, UTC, NOW)
    conn = sqlite3.connect(src)
    books_with_md5 = conn.execute("SELECT count(*) FROM book WHERE md5 IS NOT NULL").fetchone()[0]
    conn.close()
    assert books_with_md5 > 0
    assert 0 < report["queued"]["sessions"] <= len(sessions)

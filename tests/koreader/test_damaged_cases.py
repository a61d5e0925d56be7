"""The reproduced cases of issue 13, one by one (koreader-data §12)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import struct
import zipfile
from pathlib import Path

import pytest

from booklore_sync.koreader import annotations as ann
from booklore_sync.koreader.luatable import dump
from booklore_sync.koreader.scan import scan_source
from booklore_sync.koreader.statistics import derive_sessions
from tests.koreader.conftest import empty_kobo

from .conftest import BOOKS
from .statsdb import make_db

NOW = 1800000000
UTC = {"device.timezone": "UTC"}
MD5 = "0123456789abcdef0123456789abcdef"
T0 = 1700000000


device = empty_kobo


def reading_rows(book: int = 1, n: int = 40, start: int = T0) -> list[tuple]:
    return [(book, p, start + 60 * p, 50, 100) for p in range(1, n + 1)]


def test_text_blob_null_in_numeric_columns_are_dropped_and_counted(tmp_path):
    db = make_db(tmp_path / "s.sqlite3", [(1, "A", "B", MD5)], reading_rows())
    conn = sqlite3.connect(db)
    conn.execute("UPDATE page_stat_data SET page = 'xii' WHERE page = 3")
    conn.execute("UPDATE page_stat_data SET duration = x'00' WHERE page = 4")
    conn.execute("UPDATE page_stat_data SET total_pages = 'n/a' WHERE page = 5")
    conn.execute("UPDATE page_stat_data SET start_time = start_time + 0.5 WHERE page = 6")
    conn.execute("UPDATE page_stat_data SET duration = 50.0 WHERE page = 7")  # whole: fine
    conn.commit()
    conn.close()
    problems: list[tuple[str, str]] = []
    _, sessions, _ = derive_sessions(db, UTC, NOW, problems=problems)
    assert ("warning", "4 rows with non-numeric values skipped") in problems
    assert sum(s.rows for s in sessions) == 36


def test_invalid_utf8_in_schema_and_values(tmp_path):
    db = make_db(tmp_path / "s.sqlite3", [(1, "A", "B", MD5)], reading_rows())
    conn = sqlite3.connect(db)
    conn.execute("UPDATE book SET title = CAST(x'41ff42' AS TEXT)")
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_master SET name = CAST(x'6e756d62ff' AS TEXT) "
                 "WHERE name = 'numbers'")
    conn.commit()
    conn.close()
    problems: list[tuple[str, str]] = []
    books, sessions, _ = derive_sessions(db, UTC, NOW, problems=problems)
    assert books[1].title == "A\ufffdB"
    assert any("schema" in m and "damaged" in m or "not valid UTF-8" in m for _, m in problems)
    assert sessions


def test_newer_schema_is_read_with_a_warning(tmp_path, store):
    root, data = device(tmp_path)
    make_db(data / "settings" / "statistics.sqlite3", [(1, "A", "B", MD5)], reading_rows(),
            version=20260101)
    report = scan_source(store, root, UTC, now=NOW).to_json()
    assert report["errors"] == []
    assert any("schema 20260101 is newer than this program knows; read as 20221111"
               in w["warning"] for w in report["warnings"])
    assert report["queued"]["sessions"] == 1


def test_hot_rollback_journal_is_rolled_back_on_a_copy(tmp_path, store):
    root, data = device(tmp_path)
    db = make_db(data / "settings" / "statistics.sqlite3", [(1, "A", "B", MD5)], reading_rows())
    # a write cut off half way: copy DB and journal while the transaction is open
    work = tmp_path / "work.sqlite3"
    shutil.copyfile(db, work)
    conn = sqlite3.connect(work, isolation_level=None)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("PRAGMA cache_size = 1")
    conn.execute("BEGIN")
    conn.execute("DELETE FROM page_stat_data")
    for i in range(300):
        conn.execute("INSERT INTO numbers(number) VALUES (?)", (5000 + i,))
    shutil.copyfile(work, db)
    shutil.copyfile(str(work) + "-journal", str(db) + "-journal")
    conn.execute("ROLLBACK")
    conn.close()
    before = {p.name: p.read_bytes() for p in (data / "settings").iterdir()}
    # read as is, the uncommitted state has no rows at all
    raw = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
    assert raw.execute("SELECT count(*) FROM page_stat_data").fetchone()[0] == 0
    raw.close()
    report = scan_source(store, root, UTC, now=NOW).to_json()
    assert {p.name: p.read_bytes() for p in (data / "settings").iterdir()} == before
    assert report["errors"] == []
    assert report["queued"]["sessions"] == 1
    assert any("rolled back on a copy" in w["warning"] for w in report["warnings"])


def test_pre_2014_highlight_only_sidecar():
    data = {
        "bookmarks": {1: {"page": 5, "datetime": "2013-05-01 10:00:00", "notes": "p5"}},
        "highlight": {
            12: {1: {"datetime": "2013-05-02 11:00:00", "text": "a phrase",
                     "pos0": {"x": 1, "y": 2, "zoom": 1}, "pos1": {"x": 9, "y": 2, "zoom": 1}}},
            "3": [{"datetime": "2013-05-03 12:00:00", "text": "no position"}],
        },
    }
    items, problems = ann.extract_items(data)
    assert [(i.kind, i.datetime) for i in items] == [("bookmark", "2013-05-01 10:00:00"),
                                                     ("highlight", "2013-05-02 11:00:00")]
    hl = items[1]
    assert hl.text == "a phrase" and hl.page == 12 and hl.pos0["page"] == 12
    assert ann.style_for(hl.drawer) == "highlight" and hl.note is None
    assert any("no position" in p for p in problems)
    data["highlights_imported"] = True  # KOReader imported them already
    assert [i.kind for i in ann.extract_items(data)[0]] == ["bookmark"]


def _epub_with_bad_deflate(src: Path, dst: Path) -> None:
    """Corrupt the deflate stream of the first XHTML member (CRC left as is)."""
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith((".xhtml", ".html"))
                    and i.compress_type == zipfile.ZIP_DEFLATED and i.compress_size > 200)
    off = info.header_offset
    name_len, extra_len = struct.unpack("<HH", data[off + 26:off + 30])
    start = off + 30 + name_len + extra_len
    for k in range(start, start + 64):
        data[k] = 0xFF
    dst.write_bytes(bytes(data))


def test_corrupt_deflate_member_makes_only_positions_unconvertible(tmp_path, store):
    root, _ = device(tmp_path)
    book = root / "Books" / "leaves.epub"
    _epub_with_bad_deflate(BOOKS / "leaves.epub", book)
    sdr = root / "Books" / "leaves.sdr"
    sdr.mkdir()
    with zipfile.ZipFile(BOOKS / "leaves.epub") as zf:
        spine_docs = [i.filename for i in zf.infolist() if i.filename.endswith(".xhtml")]
    assert spine_docs
    anns = [{"datetime": f"2024-03-01 21:14:0{i}", "drawer": "lighten", "text": "x",
             "pos0": f"/body/DocFragment[{i}]/body/p[1]/text().0",
             "pos1": f"/body/DocFragment[{i}]/body/p[1]/text().1", "page": "x"}
            for i in range(1, 6)]
    (sdr / "metadata.epub.lua").write_bytes(dump(
        {"partial_md5_checksum": MD5, "annotations": anns, "cre_dom_version": 20240114,
         "doc_props": {"title": "Leaves"}}, "/mnt/onboard/Books/leaves.sdr/metadata.epub.lua"))
    report = scan_source(store, root, UTC, now=NOW).to_json()
    assert report["errors"] == []
    assert report["books"] == 1
    assert report["queued"]["annotations"] == 5          # queued, none dropped
    assert len(store.books()) == 1
    waiting = [i for i in store.pending("annotations") if not i.payload["cfi"]]
    assert waiting and all(i.last_error for i in waiting)
    assert any("no CFI" in w["warning"] for w in report["warnings"])


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_links_and_special_files_are_warned_never_followed_forever(tmp_path, store):
    root, data = device(tmp_path)
    good = root / "Books" / "good.sdr"
    good.mkdir()
    (good / "metadata.epub.lua").write_bytes(dump(
        {"partial_md5_checksum": MD5, "summary": {"rating": 4}}, "x"))
    dangling = root / "Books" / "dangling.sdr"
    dangling.mkdir()
    (dangling / "metadata.epub.lua").symlink_to(tmp_path / "nowhere.lua")
    loop = root / "Books" / "loop.sdr"
    loop.mkdir()
    (loop / "metadata.epub.lua").symlink_to(loop / "metadata.epub.lua")
    fifo = root / "Books" / "fifo.sdr"
    fifo.mkdir()
    os.mkfifo(fifo / "metadata.epub.lua")
    (root / "Books" / "up").symlink_to(root)                     # a directory loop
    os.symlink(tmp_path / "nowhere", data / "settings" / "statistics.sqlite3")
    report = scan_source(store, root, UTC, now=NOW).to_json()
    assert report["books"] == 1 and report["queued"]["ratings"] == 1
    warned = {Path(w["file"]).parent.name: w["warning"] for w in report["warnings"]}
    assert "dangling" in warned["dangling.sdr"]
    assert "loops" in warned["loop.sdr"]
    assert "special file" in warned["fifo.sdr"]
    assert any("statistics.sqlite3" in e["file"] for e in report["errors"])

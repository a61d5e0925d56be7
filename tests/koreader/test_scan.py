import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from booklore_sync.koreader.luatable import dump, parse_file
from booklore_sync.koreader.scan import SourceError, scan_source

from .conftest import KOBO
from .statsdb import make_db

NOW = 1800000000
UTC = {"device.timezone": "UTC"}
LEAVES = "59d481d168cca6267322f150c5f6a2a3"
JULIET = "cf7ce9b8d4e135c8ac340f18d1e58c85"
TALL = "41cce710f34e5ec21315e19c99821415"
TWOCOL = "e7105714c0e372d7815d9651ed726b28"


def tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirnames, files in os.walk(root):
        for name in dirnames + files:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_file():
                st = p.stat()
                out[rel] = hashlib.md5(p.read_bytes()).hexdigest() + f":{st.st_mtime_ns}"
            else:
                out[rel] = "dir"
    return out


def pending(store, queue):
    return store.pending(queue)


def test_fixture_scan_pins_everything(store):
    before = tree_digest(KOBO)
    report = scan_source(store, KOBO, UTC, now=NOW)
    assert tree_digest(KOBO) == before  # the source is never modified
    data = report.to_json()
    assert data == {"books": 4, "queued": {"sessions": 8, "annotations": 8, "ratings": 3,
                                           "bookmarks": 4, "progress": 4},
                    "errors": [], "warnings": []}
    json.dumps(data)

    # ---- book cache
    books = {b.file_hash: b for b in store.books()}
    assert set(books) == {LEAVES, JULIET, TALL, TWOCOL}
    assert (books[LEAVES].title, books[LEAVES].author, books[LEAVES].book_type) == (
        "Leaves of Grass", "Walt Whitman", "EPUB")
    assert (books[JULIET].title, books[JULIET].author) == ("Romeo and Juliet", "William Shakespeare")
    assert books[JULIET].file_path.endswith("Books/juliet.epub")
    assert (books[TALL].title, books[TALL].book_type) == ("tall", "PDF")
    assert (books[TWOCOL].title, books[TWOCOL].book_type) == ("2col", "PDF")
    assert all(b.isbn10 is None and b.isbn13 is None for b in books.values())

    # ---- annotations
    anns = {(a.fingerprint, a.key["datetime"]): a for a in pending(store, "annotations")}
    assert len(anns) == 8
    expect = {
        (LEAVES, "2024-03-01 20:09:49"): ("highlight", "epubcfi(/6/12[item524]!/4/4,/5:2,/5:51)",
                                          "#FFC107", "highlight"),
        (LEAVES, "2024-03-01 20:12:53"): ("highlight", "epubcfi(/6/14[item523]!/4/4,/41:2,/43:43)",
                                          "#4ADE80", "highlight"),
        (LEAVES, "2024-03-02 21:23:36"): ("highlight", "epubcfi(/6/188[item112]!/4/6,/45:2,/45:69)",
                                          "#38BDF8", "underline"),
        (LEAVES, "2024-03-04 22:56:36"): ("note", "epubcfi(/6/656[item2347]!/4/4,/13:2,/15:48)",
                                          "#FB923C", "highlight"),
        (JULIET, "2024-03-03 15:05:49"): (
            "highlight", "epubcfi(/6/10[main1]!/4/2/2[section_77306]/4/6/2,/1:21,/1:42)",
            "#FB923C", "highlight"),
        (TALL, "2024-03-07 12:00:48"): ("highlight", None, "#FFC107", "highlight"),
        (TWOCOL, "2023-11-02 20:13:07"): ("highlight", None, "#FFC107", "highlight"),
        (TWOCOL, "2023-11-02 20:15:58"): ("note", None, "#FFC107", "underline"),
    }
    for key, (kind, cfi, color, style) in expect.items():
        a = anns[key]
        p = a.payload
        assert (a.key["kind"], p["kind"], p["cfi"], p["color"], p["style"]) == (
            kind, kind, cfi, color, style), key
        assert a.last_error is None
        assert p["paged"] is (cfi is None)
        assert p["book_type"] == ("PDF" if cfi is None else "EPUB")
    a = anns[(LEAVES, "2024-03-01 20:12:53")].payload
    assert a["text"] == ("Then falter not O book, fulfil your destiny,\n"
                         "\u00a0 You not a reminiscence of the land alone,")
    assert a["chapter"] == "In Cabin'd Ships at Sea" and a["note"] is None
    n = anns[(LEAVES, "2024-03-04 22:56:36")]
    assert n.payload["note"] == ("Whitman's \"onward\" optimism — compare:\n\tSong of Myself, §6 "
                                 "(\"the smallest sprout shows there is really no death\")\n"
                                 "Re-read aloud!")
    assert n.key["position"] == "/body/DocFragment[328]/body/div[1]/text()[7].2"
    assert n.payload["pos1"] == "/body/DocFragment[328]/body/div[1]/text()[8].48"
    assert anns[(JULIET, "2024-03-03 15:05:49")].payload["text"] == "we'll not carry coals"
    t = anns[(TALL, "2024-03-07 12:00:48")]
    assert (t.payload["text"], t.payload["page"], t.key["position"]) == (
        "Text highlight in DjVu", 1, "1@52.356323342351,432.07188051213")
    h34 = anns[(TWOCOL, "2023-11-02 20:13:07")].payload
    assert (h34["text"], h34["note"]) == ("34", None)  # auto text is no note
    cd = anns[(TWOCOL, "2023-11-02 20:15:58")].payload
    assert (cd["text"], cd["note"], cd["page"]) == (
        "cd", "right column = letters,\nleft column = digits", 1)

    # ---- bookmarks
    bms = {(b.fingerprint, b.key["datetime"]): b.payload for b in pending(store, "bookmarks")}
    assert bms == {
        (LEAVES, "2024-03-02 21:23:16"): {
            "paged": False, "cfi": "epubcfi(/6/188[item112]!/4/6/39:0)", "title": "BOOK XIII",
            "page": None, "chapter": "BOOK XIII", "text": "in BOOK XIII",
            "datetime": "2024-03-02 21:23:16", "cfi_converter": 1,
            "xpointer": "/body/DocFragment[94]/body/div[1]/text()[17].0"},
        (LEAVES, "2024-03-04 22:56:21"): {
            "paged": False, "cfi": "epubcfi(/6/656[item2347]!/4/4/3:34)",
            "title": '"Going Somewhere"', "page": None, "chapter": '"Going Somewhere"',
            "text": 'in "Going Somewhere"', "datetime": "2024-03-04 22:56:21", "cfi_converter": 1,
            "xpointer": "/body/DocFragment[328]/body/div[1]/text()[2].34"},
        (TALL, "2024-03-07 12:01:48"): {
            "paged": True, "cfi": None, "title": "p. 1", "page": 1, "chapter": None, "text": None,
            "datetime": "2024-03-07 12:01:48"},
        (TWOCOL, "2023-11-02 20:17:30"): {
            "paged": True, "cfi": None, "title": "p. 2", "page": 2, "chapter": None, "text": None,
            "datetime": "2023-11-02 20:17:30"},
    }

    # ---- ratings, progress
    assert {r.fingerprint: r.key["rating"] for r in pending(store, "ratings")} == {
        LEAVES: 8, JULIET: 6, TALL: 10}
    prog = {p.fingerprint: (p.key["progress"], p.key["percentage"], p.payload)
            for p in pending(store, "progress")}
    assert {k: v[:2] for k, v in prog.items()} == {
        LEAVES: ("/body/DocFragment[335]/body/div[1]/text()[1].0", 0.8728),
        JULIET: ("/body/DocFragment[14]/body/div/div/div/blockquote[5]/p/text()[1].0", 0.4339),
        TALL: ("1", 1.0), TWOCOL: ("2", 1.0)}
    for _progress, _pct, payload in prog.values():
        assert payload["device"] == "booklore-sync"
        assert payload["device_id"] == "3F2A9C41D07B4E88A1C56E0B9D2F7A13"

    # ---- sessions
    sessions = pending(store, "sessions")
    per_book: dict[str, list] = {}
    for s in sessions:
        per_book.setdefault(s.fingerprint, []).append(s)
    assert {k: len(v) for k, v in per_book.items()} == {LEAVES: 5, JULIET: 2, TWOCOL: 1}
    assert {k: sum(s.payload["durationSeconds"] for s in v) for k, v in per_book.items()} == {
        LEAVES: 10993, JULIET: 4690, TWOCOL: 373}
    last = max(per_book[LEAVES], key=lambda s: s.key["start_epoch"]).payload
    assert last == {"bookType": "EPUB", "startTime": "2024-03-05T21:00:00Z",
                    "endTime": "2024-03-05T21:12:44Z", "durationSeconds": 759,
                    "durationFormatted": "12m 39s", "startProgress": 88.82, "endProgress": 87.29,
                    "progressDelta": -1.53, "startLocation": "985", "endLocation": "968"}
    assert per_book[TWOCOL][0].payload["bookType"] == "PDF"

    # ---- rescan: nothing new, source untouched
    again = scan_source(store, KOBO, UTC, now=NOW)
    assert again.to_json()["queued"] == {q: 0 for q in data["queued"]}
    assert again.books == 4 and again.errors == []
    assert tree_digest(KOBO) == before


def test_rescan_of_copy_without_memo_queues_nothing(store, kobo_copy):
    scan_source(store, kobo_copy, UTC, now=NOW)
    # touch every file: the memo no longer matches, the full path runs again
    for p in kobo_copy.rglob("*"):
        if p.is_file():
            os.utime(p, (1_700_000_000, 1_700_000_000))
    report = scan_source(store, kobo_copy, UTC, now=NOW)
    assert sum(report.queued.values()) == 0 and report.books == 4 and report.errors == []


def test_position_time_uses_statistics_and_file_times(store, kobo_copy):
    side = kobo_copy / "Books/tall.sdr/metadata.pdf.lua"
    os.utime(side, (1709813065, 1709813065))
    scan_source(store, kobo_copy, UTC, now=NOW)
    prog = {p.fingerprint: p.payload for p in store.pending("progress")}
    assert prog[TALL]["position_time"] == 1709813065  # sidecar mtime > last row end 1709812920


def test_position_time_without_file_times(store):
    scan_source(store, KOBO, dict(UTC, **{"device.file_times": False}), now=NOW)
    prog = {p.fingerprint: p.payload for p in store.pending("progress")}
    assert prog[TALL]["position_time"] == 1709812920
    assert prog[LEAVES]["position_time"] == 1709673164
    assert prog[JULIET]["position_time"] == 1709757145


def test_dry_run_changes_nothing(store):
    report = scan_source(store, KOBO, UTC, now=NOW, dry_run=True)
    assert report.queued == {"sessions": 8, "annotations": 8, "ratings": 3, "bookmarks": 4,
                             "progress": 4}
    assert store.counts() == {q: 0 for q in report.queued}
    assert store.books() == []
    assert scan_source(store, KOBO, UTC, now=NOW).queued == report.queued


def test_switched_off_queues(store):
    off = dict(UTC, **{f"sync.{q}": False for q in
                       ("sessions", "annotations", "ratings", "bookmarks", "progress")})
    report = scan_source(store, KOBO, off, now=NOW)
    assert sum(report.queued.values()) == 0 and report.books == 4
    assert len(store.books()) == 4
    on = scan_source(store, KOBO, dict(UTC, **{"sync.ratings": True}), now=NOW)
    assert on.queued["ratings"] == 3


def test_source_errors(store, tmp_path):
    with pytest.raises(SourceError):
        scan_source(store, tmp_path / "missing", UTC, now=NOW)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError):
        scan_source(store, tmp_path / "empty", UTC, now=NOW)


def test_data_dir_as_source(store, kobo_copy):
    report = scan_source(store, kobo_copy / ".adds" / "koreader", UTC, now=NOW)
    assert report.books == 4 and report.errors == []
    assert report.queued["annotations"] == 8


def test_broken_inputs_are_reported_and_skipped(store, kobo_copy):
    leaves = kobo_copy / "Books/leaves.sdr/metadata.epub.lua"
    leaves.write_bytes(leaves.read_bytes()[:1500])                     # truncated
    tall = kobo_copy / "Books/tall.sdr/metadata.pdf.lua"
    tall.write_text('return { ["a"] = 1 + 2 }')                        # syntax error
    twocol = kobo_copy / "Books/2col.sdr/metadata.pdf.lua"
    twocol.write_bytes(bytes(range(256)) * 8)                          # binary junk
    db = kobo_copy / ".adds/koreader/settings/statistics.sqlite3"
    db.write_bytes(b"\x00junk" * 999)                                  # corrupt database
    (kobo_copy / "Books/juliet.epub").unlink()                         # missing book file
    report = scan_source(store, kobo_copy, UTC, now=NOW)
    files = sorted(Path(e["file"]).name for e in report.errors)
    assert files == ["metadata.epub.lua", "metadata.pdf.lua", "metadata.pdf.lua",
                     "statistics.sqlite3"]
    msgs = {Path(e["file"]).parent.name + "/" + Path(e["file"]).name: e["error"]
            for e in report.errors}
    assert "line" in msgs["leaves.sdr/metadata.epub.lua"]
    assert "statistics" in msgs["settings/statistics.sqlite3"] or "database" in \
        msgs["settings/statistics.sqlite3"]
    # juliet still imported, from its hash sidecar, without a CFI
    assert report.books == 1
    assert report.queued == {"sessions": 0, "annotations": 1, "ratings": 1, "bookmarks": 0,
                             "progress": 1}
    a = store.pending("annotations")[0]
    assert a.fingerprint == JULIET and a.payload["cfi"] is None
    assert "book file not found" in a.last_error
    assert any("book file not found" in w["error"] for w in report.warnings)
    json.dumps(report.to_json())


def test_old_backup_used_and_reported(store, kobo_copy):
    side = kobo_copy / "Books/leaves.sdr/metadata.epub.lua"
    backup = side.with_name("metadata.epub.lua.old")
    shutil.copyfile(side, backup)
    side.write_text("return { broken")
    report = scan_source(store, kobo_copy, UTC, now=NOW)
    assert len(report.errors) == 1
    err = report.errors[0]
    assert err["file"] == str(side) and "used the backup metadata.epub.lua.old" in err["error"]
    assert report.books == 4 and report.queued["annotations"] == 8


def test_dir_mode_sidecar_and_isbn(store, kobo_copy):
    # move leaves' sidecar into <datadir>/docsettings/mnt/onboard/Books/leaves.sdr/
    src = kobo_copy / "Books/leaves.sdr"
    data = parse_file(src / "metadata.epub.lua")
    data["doc_props"]["identifiers"] = "uuid:x\nISBN:978-0-306-40615-7"
    dst = kobo_copy / ".adds/koreader/docsettings/mnt/onboard/Books/leaves.sdr"
    dst.mkdir(parents=True)
    (dst / "metadata.epub.lua").write_bytes(dump(data, "/x"))
    shutil.rmtree(src)
    (dst / "custom_metadata.lua").write_bytes(dump({"custom_props": {"title": "My Leaves"}}))
    report = scan_source(store, kobo_copy, UTC, now=NOW)
    assert report.errors == [] and report.books == 4
    b = store.get_book_by_hash(LEAVES)
    assert (b.title, b.isbn13, b.isbn10) == ("My Leaves", "9780306406157", "0306406152")
    assert b.file_path.endswith("Books/leaves.epub")
    assert report.queued["annotations"] == 8


def test_hash_sidecar_found_by_fingerprint(store, kobo_copy):
    # juliet renamed: doc_path no longer maps, the file is found by its digest
    (kobo_copy / "Books/juliet.epub").rename(kobo_copy / "Books/renamed.epub")
    report = scan_source(store, kobo_copy, UTC, now=NOW)
    assert report.errors == []
    assert store.get_book_by_hash(JULIET).file_path.endswith("Books/renamed.epub")
    juliet = [a for a in store.pending("annotations") if a.fingerprint == JULIET]
    assert juliet[0].payload["cfi"].startswith("epubcfi(/6/10[main1]")


def test_session_cooldown_and_overlap(store, kobo_copy):
    db = kobo_copy / ".adds/koreader/settings/statistics.sqlite3"
    db.unlink()
    make_db(db, [(1, "Leaves of Grass", "Walt Whitman", LEAVES)], [
        (1, 10, 1709900000, 60, 1109), (1, 11, 1709900060, 60, 1109),
    ])
    # scan 100 s after the last row: held back
    r1 = scan_source(store, kobo_copy, UTC, now=1709900220)
    assert r1.queued["sessions"] == 0
    r2 = scan_source(store, kobo_copy, UTC, now=1709900500)
    assert r2.queued["sessions"] == 1
    # late rows re-shape the session with an earlier start: overlap → not queued
    db.unlink()
    make_db(db, [(1, "Leaves of Grass", "Walt Whitman", LEAVES)], [
        (1, 9, 1709899950, 50, 1109), (1, 10, 1709900000, 60, 1109), (1, 11, 1709900060, 60, 1109),
    ])
    r3 = scan_source(store, kobo_copy, UTC, now=1709990000)
    assert r3.queued["sessions"] == 0
    assert any("overlaps an existing session" in w["error"] for w in r3.warnings)


def test_kindle_layout_and_path_map(store, tmp_path):
    root = tmp_path / "kindle"
    shutil.copytree(KOBO / ".adds/koreader", root / "koreader")
    shutil.copytree(KOBO / "Books", root / "documents" / "Books")
    # sidecars say /mnt/onboard/Books/…: the user maps it
    report = scan_source(store, root, dict(UTC, **{"scan.path_map": {
        "/mnt/onboard/Books/": str(root / "documents" / "Books")}}), now=NOW)
    assert report.books == 4 and report.errors == []
    assert store.get_book_by_hash(JULIET).file_path == str(root / "documents/Books/juliet.epub")

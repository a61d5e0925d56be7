"""The server in step with the reader (booklore-api.md §3.18, §3.23–3.25, §7.5): kosync's
side effects, progress and status by book id, updates of items, text limits, CBX pages."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import httpx
import pytest

from booklore_sync.emulator import start_emulator

from .conftest import DATA_CONFLICT, H1, UNEXPECTED, Api, assert_error, book


def kosync(api: Api, percentage: float, digest: str = H1) -> httpx.Response:
    return api.put("/api/koreader/syncs/progress", auth="ko",
                   json={"document": digest, "progress": "/body/p[1]", "percentage": percentage,
                         "device": "Kobo", "device_id": "K1"})


def test_kosync_push_rewrites_status_times_and_web_position(api: Api, emu):
    bid = book(emu)
    assert api.post("/api/v1/books/status", json={"bookIds": [bid], "status": "READ"}).status_code == 200
    emu.state.advance_clock(60)
    assert kosync(api, 0.5).status_code == 200
    b = api.get(f"/api/v1/books/{bid}").json()
    assert b["readStatus"] == "READING"  # a status the reader set is overwritten
    assert b["koreaderProgress"] == {"percentage": 50.0}
    row = emu.state.progress(book_id=bid)[0]
    assert b["lastReadTime"] == row["koreaderLastSyncTime"]
    assert "epubProgress" not in b  # sync with the web reader is off
    emu.state.set_koreader_account("demo", syncWithBookloreReader=True)
    assert kosync(api, 0.996).status_code == 200
    b = api.get(f"/api/v1/books/{bid}").json()
    assert b["readStatus"] == "READ" and b["dateFinished"] == b["lastReadTime"]
    assert b["epubProgress"]["percentage"] == 99.6 and b["epubProgress"]["cfi"]
    listed = next(x for x in api.get("/api/v1/books").json() if x["id"] == bid)
    assert listed["readStatus"] == "READ" and listed["dateFinished"] == b["dateFinished"]
    assert kosync(api, 0.0025).status_code == 200  # float32 0.0025 × 100 < 0.25
    assert api.get(f"/api/v1/books/{bid}").json()["readStatus"] == "UNREAD"
    pushes = emu.state.hardcover_pushes()
    assert [p["readStatus"] for p in pushes] == ["READING", "READ", "UNREAD"]
    assert kosync(api, 0.0025).status_code == 200  # nothing changed: no forward
    assert len(emu.state.hardcover_pushes()) == 3


def test_progress_by_book_id(api: Api, emu):
    bid = book(emu)
    pdf = book(emu, title="Tall", file_hash="c" * 32, book_type="PDF")
    assert_error(api.post("/api/v1/books/progress", json={"bookId": bid}), 400, "Validation error",
                 ["progressFieldPresent: At least one progress field must be provided"])
    assert_error(api.post("/api/v1/books/progress", json={"bookId": 999, "epubProgress": {"percentage": 1}}),
                 404, "Book not found with ID: 999")
    r = api.post("/api/v1/books/progress", json={"bookId": bid, "epubProgress": {"cfi": "epubcfi(/6/2!/4)", "percentage": 42.46}})
    assert r.status_code == 204 and r.content == b""
    b = api.get(f"/api/v1/books/{bid}").json()
    assert b["readStatus"] == "READING" and b["epubProgress"]["percentage"] == 42.5 and "lastReadTime" in b
    assert "dateFinished" not in b
    # an UNREAD result never replaces READING
    api.post("/api/v1/books/progress", json={"bookId": bid, "epubProgress": {"cfi": "x", "percentage": 0.05}})
    assert api.get(f"/api/v1/books/{bid}").json()["readStatus"] == "READING"
    # booklore: READ without dateFinished
    api.post("/api/v1/books/progress", json={"bookId": bid, "epubProgress": {"cfi": "x", "percentage": 100}})
    b = api.get(f"/api/v1/books/{bid}").json()
    assert b["readStatus"] == "READ" and "dateFinished" not in b
    # an object for another type: only the time changes
    api.post("/api/v1/books/progress", json={"bookId": pdf, "epubProgress": {"cfi": "x", "percentage": 50}})
    b = api.get(f"/api/v1/books/{pdf}").json()
    assert b["readStatus"] == "UNSET" or b["readStatus"] is None or "lastReadTime" in b
    api.post("/api/v1/books/progress", json={"bookId": pdf, "pdfProgress": {"page": 12, "percentage": 30}})
    assert api.get(f"/api/v1/books/{pdf}").json()["pdfProgress"] == {"page": 12, "percentage": 30.0}
    nofile = emu.state.add_book(title="Nothing", files=[])["id"]
    assert_error(api.post("/api/v1/books/progress", json={"bookId": nofile, "epubProgress": {"percentage": 1}}),
                 400, "Unsupported book type for viewer settings")


def test_read_status_route(api: Api, emu):
    bid = book(emu)
    r = api.post("/api/v1/books/status", json={"bookIds": [bid], "status": "read"})
    (entry,) = r.json()
    assert entry["readStatus"] == "READ" and entry["dateFinished"] == entry["readStatusModifiedTime"]
    r = api.post("/api/v1/books/status", json={"bookIds": [bid], "status": "ABANDONED"})
    assert r.json()[0]["dateFinished"] is None
    b = api.get(f"/api/v1/books/{bid}").json()
    assert b["readStatus"] == "ABANDONED" and "lastReadTime" not in b
    assert api.post("/api/v1/books/status", json={"bookIds": [bid], "status": "SIDEWAYS"}).json()[0]["readStatus"] is None
    assert_error(api.post("/api/v1/books/status", json={"bookIds": [bid, 999], "status": "READ"}, auth="admin"),
                 400, "d != java.lang.String")
    assert_error(api.post("/api/v1/books/status", json={"bookIds": [], "status": None}), 400, "Validation error",
                 ["bookIds: Book IDs cannot be empty", "status: Status cannot be null"])


def test_updates_of_items(api: Api, emu):
    bid = book(emu)
    ann = api.post("/api/v1/annotations", json={"bookId": bid, "cfi": "epubcfi(/6/2!/4/2:0)", "text": "t",
                                                "note": "n"}).json()
    r = api.put(f"/api/v1/annotations/{ann['id']}", json={"color": "#00FF00", "note": None, "text": "changed"})
    assert r.status_code == 200
    assert (r.json()["color"], r.json()["note"], r.json()["text"]) == ("#00FF00", "n", "t")
    assert_error(api.put("/api/v1/annotations/999", json={"color": "#00FF00"}), 500, UNEXPECTED)
    assert_error(api.put(f"/api/v1/annotations/{ann['id']}", json={"color": "green"}), 400, "Validation error",
                 ["color: Color must be a valid hex color (e.g., #FFFF00)"])
    note = api.post("/api/v2/book-notes", json={"bookId": bid, "cfi": "c1", "noteContent": "a",
                                                "selectedText": "s"}).json()
    r = api.put(f"/api/v2/book-notes/{note['id']}", json={"noteContent": "", "selectedText": "other"})
    assert (r.json()["noteContent"], r.json()["selectedText"]) == ("", "s")
    assert_error(api.put(f"/api/v2/book-notes/{note['id']}", json={"noteContent": "é" * 40000}), 400, DATA_CONFLICT)
    bm1 = api.post("/api/v1/bookmarks", json={"bookId": bid, "cfi": "b1"}).json()
    api.post("/api/v1/bookmarks", json={"bookId": bid, "cfi": "b2"})
    assert_error(api.put(f"/api/v1/bookmarks/{bm1['id']}", json={"cfi": "B2"}), 409,
                 "Bookmark already exists at this location")
    assert api.put(f"/api/v1/bookmarks/{bm1['id']}", json={"title": "T"}).json()["title"] == "T"
    v1 = api.post("/api/v1/book-notes", json={"bookId": bid, "title": "p. 1", "content": "x"}).json()
    r = api.post("/api/v1/book-notes", json={"id": v1["id"], "bookId": bid, "title": "p. 1", "content": "y"})
    assert r.json()["id"] == v1["id"] and len(emu.state.book_notes(book_id=bid)) == 1
    assert_error(api.post("/api/v1/book-notes", json={"id": 999, "bookId": bid, "content": "y"}), 500, UNEXPECTED)


def test_text_rules_and_limits(api: Api, emu):
    bid = book(emu)
    assert_error(api.post("/api/v1/annotations", json={"bookId": bid, "cfi": "c", "text": ""}), 400,
                 "Validation error", ["text: Text is required"])
    assert api.post("/api/v1/annotations", json={"bookId": bid, "cfi": "c", "text": " "}).status_code == 200
    assert_error(api.post("/api/v2/book-notes", json={"bookId": bid, "cfi": "c", "noteContent": ""}), 400,
                 "Validation error", ["noteContent: Note content is required"])
    assert api.post("/api/v2/book-notes", json={"bookId": bid, "cfi": "c", "noteContent": " "}).status_code == 200
    assert_error(api.post("/api/v1/book-notes", json={"bookId": bid, "content": " \n"}), 400,
                 "Validation error", ["content: Content is required"])
    limit = "a" * 65535
    assert api.post("/api/v1/book-notes", json={"bookId": bid, "content": limit}).status_code == 200
    assert_error(api.post("/api/v1/book-notes", json={"bookId": bid, "content": limit + "é"}), 400, DATA_CONFLICT)
    assert_error(api.post("/api/v2/book-notes", json={"bookId": bid, "cfi": "d", "noteContent": "€" * 21846}),
                 400, DATA_CONFLICT)  # 65,538 bytes
    assert api.post("/api/v2/book-notes", json={"bookId": bid, "cfi": "d", "noteContent": "€" * 21845}).status_code == 200


def test_cbx_items_keyed_by_page(api: Api, emu):
    bid = book(emu, title="Comic", book_type="CBX")
    r = api.post("/api/v1/bookmarks", json={"bookId": bid, "cfi": "12", "title": "Page 12"})
    assert r.status_code == 200 and r.json()["cfi"] == "12"
    assert_error(api.post("/api/v1/bookmarks", json={"bookId": bid, "cfi": "12", "title": "Page 12"}), 409,
                 "Bookmark already exists at this location")
    assert api.post("/api/v2/book-notes", json={"bookId": bid, "cfi": "12", "noteContent": "one",
                                                "chapterTitle": "Page 12"}).status_code == 200
    assert_error(api.post("/api/v2/book-notes", json={"bookId": bid, "cfi": "12", "noteContent": "two"}), 409,
                 "Note already exists at this location")
    api.post("/api/v1/books/progress", json={"bookId": bid, "cbxProgress": {"page": 12, "percentage": 40}})
    assert api.get(f"/api/v1/books/{bid}").json()["cbxProgress"] == {"page": 12, "percentage": 40.0}


@pytest.mark.parametrize("mode", ["grimmory", "booklore"])
def test_cli_json_first_line_and_sync_off(mode):
    proc = subprocess.Popen([sys.executable, "-m", "booklore_sync.emulator", "--port", "0", "--json",
                             "--mode", mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stdout.readline())
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", first["url"])
        assert first["mode"] == mode and first["server_version"] == ("3.2.4" if mode == "grimmory" else "2.3.0")
        assert first["accounts"]["koreader"] == {"username": "demo", "password": "demo"}
        assert first["accounts"]["admin"] == {"username": "admin", "password": "admin"}
        ko = {"x-auth-user": "demo", "x-auth-key": "fe01ce2a7fbac8fafaed7c982a04e229"}
        r = httpx.get(first["url"] + "/api/koreader/syncs/progress/" + H1, headers=ko, timeout=5)
        assert r.status_code == 401 and r.json()["message"] == "Sync is disabled for this user"
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()


def test_cli_bad_version_combination_exits_2():
    proc = subprocess.run([sys.executable, "-m", "booklore_sync.emulator", "--port", "0", "--mode", "fork",
                           "--server-version", "1.17.0"], capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2 and "booklore" in proc.stderr and "Traceback" not in proc.stderr


def test_start_emulator_defaults_keep_sync_on():
    with start_emulator() as emu:
        assert emu.state.koreader_accounts()[0]["syncEnabled"] is True

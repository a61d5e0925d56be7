"""§7.2 persistence, §7.3 seeding (library, seed JSON, defaults), §7.6 clock, §7.7 control API."""

from __future__ import annotations

import json

import httpx
import pytest

from booklore_sync.emulator import start_emulator
from booklore_sync.emulator.library import scan_library

from .conftest import FIXTURE_BOOKS, H1, H2, KO, LEAVES_HASH, TALL_HASH, Api, assert_html, book

needs_fixtures = pytest.mark.skipif(not FIXTURE_BOOKS.is_dir(), reason="fixture books not available")


# ---------------------------------------------------------------- persistence


def test_state_file_round_trip(tmp_path):
    path = tmp_path / "state.json"
    with start_emulator(state_file=path) as emu:
        api = Api(emu)
        bid = book(emu, "Dune", H1)
        api.post("/api/v1/reading-sessions", json={"bookId": bid, "bookType": "EPUB", "durationSeconds": 5,
                                                   "startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T00:00:05Z"})
        api.post("/api/v1/annotations", json={"bookId": bid, "cfi": "c", "text": "t"})
        api.post("/api/v2/book-notes", json={"bookId": bid, "cfi": "c", "noteContent": "n"})
        api.post("/api/v1/book-notes", json={"bookId": bid, "content": "n"})
        api.post("/api/v1/bookmarks", json={"bookId": bid, "cfi": "c"})
        api.put("/api/v1/books/personal-rating", json={"ids": [bid], "rating": 8})
        api.put("/api/koreader/syncs/progress", auth="ko", json={"document": H1, "progress": "p", "percentage": 0.5})
        refresh = api.login("admin", "admin").json()["refreshToken"]
        before = emu.state.dump()
    assert json.loads(path.read_text())["format"] == "booklore-emulator-state"
    with start_emulator(state_file=path) as emu2:
        after = emu2.state.dump()
        for key in ("books", "sessions", "annotations", "notesV2", "bookNotes", "bookmarks", "progress", "ratings",
                    "users", "koreaderAccounts"):
            assert after[key] == before[key], key
        api2 = Api(emu2)
        # the signing secret and refresh tokens survive the restart
        emu2.state.advance_clock(2)
        assert api2.http.post("/api/v1/auth/refresh", json={"refreshToken": refresh}).status_code == 200
        assert api2.get(f"/api/v1/books/{bid}").json()["personalRating"] == 8
        assert book(emu2, "Next", H2) == bid + 1  # ids keep counting


def test_state_file_written_while_running(tmp_path):
    import time

    path = tmp_path / "s.json"
    with start_emulator(state_file=path) as emu:
        book(emu, "Dune", H1)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if any(b["metadata"]["title"] == "Dune" for b in json.loads(path.read_text())["books"]):
                break
            time.sleep(0.1)
        else:
            pytest.fail("state file not written while running")


# ---------------------------------------------------------------- seeding


def test_default_accounts(emu):
    users = {u["username"]: u for u in emu.state.users()}
    assert users["demo"]["isAdmin"] is False and users["demo"]["libraryIds"] == [1]
    assert users["demo"]["canSyncKoReader"] is True and users["admin"]["isAdmin"] is True
    [acc] = emu.state.koreader_accounts()
    assert acc["username"] == "demo" and acc["userId"] == users["demo"]["id"] and acc["syncEnabled"] is True
    assert emu.state.books() == []


def test_custom_accounts():
    with start_emulator(user=("alice", "pw1"), koreader_user=("kobo", "pw2"), admin=("root", "pw3")) as emu:
        api = Api(emu)
        assert api.login("alice", "pw1").status_code == 200
        assert api.login("root", "pw3").status_code == 200
        import hashlib

        r = api.http.get("/api/koreader/users/auth",
                         headers={"x-auth-user": "kobo", "x-auth-key": hashlib.md5(b"pw2").hexdigest()})
        assert r.json() == {"username": "kobo"}


def test_seed_json_and_hash_drift(tmp_path):
    seed = {
        "users": [{"username": "u", "password": "p", "libraryIds": [1, 2]}],
        "koreaderAccounts": [{"username": "k", "password": "p", "user": "u"},
                             {"username": "loose", "password": "p", "userId": None}],
        "libraries": [{"id": 1, "name": "Main"}, {"id": 2, "name": "Other"}],
        "books": [{"id": 10, "title": "Drifted", "authors": ["A"], "isbn13": "9780306406157",
                   "hash": "f" * 32, "initialHash": H1, "libraryId": 2}],
        "sessions": [{"user": "u", "bookId": 10, "startTime": "2026-01-01T00:00:00.9Z",
                      "endTime": "2026-01-01T00:10:00Z", "durationSeconds": 600}],
        "annotations": [{"user": "u", "bookId": 10, "cfi": "c", "text": "t"}],
        "progress": [{"user": "u", "bookId": 10, "readStatus": "READING", "koreaderPercent": 0.3}],
        "shelves": [{"user": "u", "name": "S", "bookIds": [10]}],
    }
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    with start_emulator(seed=path) as emu:
        api = Api(emu)
        import hashlib

        ko = {"x-auth-user": "k", "x-auth-key": hashlib.md5(b"p").hexdigest()}
        # drift: the client's old hash (the initial one) is not found; ISBN search finds the book
        assert api.http.get(f"/api/koreader/books/by-hash/{H1}", headers=ko).status_code == 404
        token = api.login("u", "p").json()["accessToken"]
        bearer = {"Authorization": f"Bearer {token}"}
        r = api.http.get("/api/v1/books/search", params={"isbn": "9780306406157"}, headers=bearer)
        assert [b["id"] for b in r.json()] == [10]
        assert emu.state.sessions()[0]["startTime"] == "2026-01-01T00:00:00Z"
        b = api.http.get("/api/v1/books/10", headers=bearer).json()
        assert b["readStatus"] == "READING" and b["libraryName"] == "Other" and b["shelves"][0]["name"] == "S"
        loose = {"x-auth-user": "loose", "x-auth-key": hashlib.md5(b"p").hexdigest()}
        assert api.http.get(f"/api/koreader/books/by-hash/{H1}", headers=loose).status_code == 409


@needs_fixtures
def test_library_scan_of_fixture_books():
    books = scan_library(FIXTURE_BOOKS)
    names = [b["files"][0]["fileName"] for b in books]
    assert names == ["2col.pdf", "12_1_1-BF-03.epub", "13_6_1-BF-02.epub", "5_3_1-BF-01.epub", "juliet.epub",
                     "leaves.epub", "sample.txt", "tall.pdf"]  # sorted relative paths (edge/… after 2col.pdf)
    by_name = dict(zip(names, books, strict=True))
    assert by_name["leaves.epub"]["files"][0]["currentHash"] == LEAVES_HASH
    assert by_name["tall.pdf"]["files"][0]["currentHash"] == TALL_HASH
    assert by_name["leaves.epub"]["metadata"]["title"] == "Leaves of Grass"
    assert by_name["leaves.epub"]["metadata"]["authors"] == ["Walt Whitman"]
    assert by_name["juliet.epub"]["metadata"]["title"] == "Romeo and Juliet"
    assert by_name["tall.pdf"]["metadata"] == {"title": "tall", "authors": []}  # no Info title
    assert by_name["sample.txt"]["files"][0]["bookType"] == "EPUB"
    assert by_name["2col.pdf"]["files"][0]["bookType"] == "PDF"
    assert all("isbn13" not in b["metadata"] for b in books)


@needs_fixtures
def test_library_by_hash_done_when():
    with start_emulator(library=FIXTURE_BOOKS) as emu:
        r = httpx.get(f"{emu.base_url}/api/koreader/books/by-hash/{LEAVES_HASH}", headers=KO)
        assert r.status_code == 200
        assert r.json()["id"] == 6 and r.json()["metadata"]["title"] == "Leaves of Grass"
        assert r.json()["primaryFile"]["fileName"] == "leaves.epub"


def test_library_metadata_from_synthetic_files(tmp_path):
    import zipfile

    epub = tmp_path / "b" / "book.epub"
    epub.parent.mkdir()
    with zipfile.ZipFile(epub, "w") as zf:
        zf.writestr("mimetype", "application/epub+zip")
        zf.writestr("META-INF/container.xml",
                    '<container xmlns="urn:oasis:names:tc:opendocument:xmlns:container" version="1.0"><rootfiles>'
                    '<rootfile full-path="OPS/p.opf" media-type="application/oebps-package+xml"/></rootfiles></container>')
        zf.writestr("OPS/p.opf",
                    '<package xmlns="http://www.idpf.org/2007/opf" xmlns:dc="http://purl.org/dc/elements/1.1/" '
                    'xmlns:opf="http://www.idpf.org/2007/opf"><metadata><dc:title>T</dc:title>'
                    '<dc:creator>A1</dc:creator><dc:creator>A2</dc:creator>'
                    '<dc:identifier opf:scheme="ISBN">978-0-306-40615-7</dc:identifier>'
                    '<dc:identifier>urn:isbn:0306406152</dc:identifier></metadata></package>')
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Title (A \\(PDF\\) title) /Author <FEFF0042006F0062> >>\nendobj\n"
                    b"trailer\n<< /Info 1 0 R >>\n%%EOF\n" + b"x" * 3000)
    (tmp_path / "c.cbz").write_bytes(b"PK" + b"0" * 2000)
    (tmp_path / "notes.doc").write_bytes(b"ignored")
    books = scan_library(tmp_path)
    assert [b["files"][0]["fileName"] for b in books] == ["a.pdf", "book.epub", "c.cbz"]
    assert books[0]["metadata"] == {"title": "A (PDF) title", "authors": ["Bob"]}
    assert books[1]["metadata"]["authors"] == ["A1", "A2"]
    assert (books[1]["metadata"]["isbn13"], books[1]["metadata"]["isbn10"]) == ("9780306406157", "0306406152")
    assert books[1]["files"][0]["fileSubPath"] == "b"
    assert books[2]["files"][0]["bookType"] == "CBX"


# ---------------------------------------------------------------- control API


_CTL = httpx.Client(timeout=5)


def ctl(emu, method, path, **kw):
    return _CTL.request(method, f"{emu.base_url}/__emulator{path}", **kw)


def test_control_books_state_renumber_reset(emu):
    api = Api(emu)
    r = ctl(emu, "POST", "/books", json={"title": "Dune", "authors": ["F"], "hash": H1, "isbn13": "9780441013593"})
    assert r.status_code == 201 and r.json()["id"] == 1
    bid = r.json()["id"]
    api.post("/api/v1/annotations", json={"bookId": bid, "cfi": "c", "text": "t"})
    api.put("/api/v1/books/personal-rating", json={"ids": [bid], "rating": 4})
    api.post("/api/v1/reading-sessions", json={"bookId": bid, "bookType": "EPUB", "durationSeconds": 5,
                                               "startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T00:00:05Z"})
    state = ctl(emu, "GET", "/state").json()
    assert {"books", "sessions", "annotations", "notesV2", "bookNotes", "bookmarks", "progress", "ratings",
            "shelves", "users", "koreaderAccounts", "mode", "config", "clock"} <= set(state)
    assert "secret" not in state and "refreshTokens" not in state
    assert ctl(emu, "GET", "/state/sessions").json() == state["sessions"]
    r = ctl(emu, "POST", "/renumber", json={"offset": 100})
    assert r.status_code == 200
    state = ctl(emu, "GET", "/state").json()
    assert [b["id"] for b in state["books"]] == [101]
    assert state["annotations"][0]["bookId"] == 101 and state["sessions"][0]["bookId"] == 101
    assert state["ratings"][0]["bookId"] == 101
    assert api.get(f"/api/v1/books/{bid}").status_code == 404
    assert api.get("/api/v1/books/101").json()["personalRating"] == 4
    assert book(emu, "New", H2) == 102
    emu.state.inject_fault("/x", "status")
    assert ctl(emu, "POST", "/reset").status_code == 200
    state = ctl(emu, "GET", "/state").json()
    assert state["books"] == [] and state["sessions"] == [] and emu.state.fault_rules() == []
    assert emu.state.request_log() == []


def test_control_seed_route(emu):
    r = ctl(emu, "POST", "/seed", json={"books": [{"title": "Seeded", "hash": H1}]})
    assert r.status_code == 200
    assert [b["metadata"]["title"] for b in emu.state.books()] == ["Seeded"]
    emu.state.add_book(title="Extra")
    ctl(emu, "POST", "/reset")
    assert [b["metadata"]["title"] for b in emu.state.books()] == ["Seeded"]  # the seed is the reset point
    assert ctl(emu, "POST", "/seed", json={"books": [{"title": "x", "bookType": "CBZ"}]}).status_code == 400


def test_control_config_mode_clock_tokens(emu):
    api = Api(emu)
    r = ctl(emu, "PATCH", "/config", json={"bug_compat": False, "spa_fallback": False, "oidc_only": True})
    assert r.json()["bug_compat"] is False and r.json()["oidc_only"] is True
    assert api.login().status_code == 403
    ctl(emu, "PATCH", "/config", json={"oidc_only": False})
    assert ctl(emu, "POST", "/mode", json={"mode": "upstream"}).json() == {"mode": "upstream"}
    assert ctl(emu, "POST", "/mode", json={"mode": "bogus"}).status_code == 400
    r = ctl(emu, "POST", "/clock", json={"set": "2026-01-01T00:00:00Z"})
    assert r.json()["now"].startswith("2026-01-01T00:00:0")
    r = ctl(emu, "POST", "/clock", json={"advance_seconds": 36001})
    assert r.json()["now"].startswith("2026-01-01T10:00:0")
    token = api.token()
    assert ctl(emu, "POST", "/tokens", json={"expire_access": True}).status_code == 200
    assert api.get("/api/v1/books").status_code == 401
    assert ctl(emu, "POST", "/clock", json={"real": True}).json()["offset_seconds"] == 0
    assert token


def test_control_disabled_off_loopback():
    with start_emulator(host="0.0.0.0") as emu:
        url = f"http://127.0.0.1:{emu.port}"
        assert_html(httpx.get(url + "/__emulator/state"))
    with start_emulator(host="0.0.0.0", control=True) as emu:
        assert httpx.get(f"http://127.0.0.1:{emu.port}/__emulator/state").json()["mode"] == "fork"


def test_concurrent_requests_are_atomic(api: Api, emu):
    import concurrent.futures

    bid = book(emu)
    token = api.token()

    def post(i):
        body = {"bookId": bid, "bookType": "EPUB", "durationSeconds": 1,
                "startTime": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
                "endTime": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z"}
        return api.http.post("/api/v1/reading-sessions", json=body,
                             headers={"Authorization": f"Bearer {token}"}).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(post, range(200))) == {202}
    ids = [s["id"] for s in emu.state.sessions()]
    assert sorted(ids) == list(range(1, 201))

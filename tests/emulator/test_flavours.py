"""Server flavours over real HTTP (booklore-api.md §0.1, §7.4): grimmory's differences,
old BookLore releases and the route table, the Sync switch's default."""

from __future__ import annotations

import time

import pytest

from booklore_sync.emulator import start_emulator
from booklore_sync.emulator.jwt import decode_unverified

from .conftest import (
    H1,
    KO,
    SPRING_TS,
    UNEXPECTED,
    Api,
    assert_error,
    assert_forbidden,
    assert_html,
    book,
)

SESSION = {"bookType": "EPUB", "startTime": "2026-02-22T14:00:00Z", "endTime": "2026-02-22T14:10:00Z",
           "durationSeconds": 600}


def assert_spring_401(r, path: str) -> None:
    assert r.status_code == 401, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"timestamp", "status", "error", "path"}
    assert (body["status"], body["error"], body["path"]) == (401, "Unauthorized", path)
    assert SPRING_TS.match(body["timestamp"])


@pytest.fixture
def gapi():
    with start_emulator(mode="grimmory", port=0) as emu:
        a = Api(emu)
        yield a
        a.close()


# ---------------------------------------------------------------- grimmory


def test_grimmory_401_on_every_missing_or_bad_credential(gapi: Api):
    path = "/api/koreader/users/auth"
    assert_spring_401(gapi.http.get(path), path)
    assert_spring_401(gapi.http.get(path, headers={"x-auth-user": "demo", "x-auth-key": "0" * 32}), path)
    assert_spring_401(gapi.http.get("/api/v1/books"), "/api/v1/books")
    assert_spring_401(gapi.http.get("/api/v1/books", headers={"Authorization": "Bearer nope"}), "/api/v1/books")
    # a bearer on /api/koreader/** is ignored
    r = gapi.http.get(path, headers=dict(KO, Authorization="Bearer nope"))
    assert r.status_code == 200 and r.json() == {"username": "demo"}
    # sessions: bearer only, KOReader headers give 401
    bid = book(gapi.emu)
    assert_spring_401(gapi.post("/api/v1/reading-sessions", auth="ko", json=dict(SESSION, bookId=bid)),
                      "/api/v1/reading-sessions")
    assert gapi.post("/api/v1/reading-sessions", json=dict(SESSION, bookId=bid)).status_code == 202
    assert_spring_401(gapi.post("/api/v1/reading-sessions/batch", auth="ko", json={}),
                      "/api/v1/reading-sessions/batch")


def test_grimmory_tokens_login_and_refresh(gapi: Api):
    r = gapi.login()
    body = r.json()
    assert set(body) == {"accessToken", "refreshToken", "expires", "isDefaultPassword"}
    assert body["expires"] == 7200 and body["isDefaultPassword"] is False
    claims = decode_unverified(body["accessToken"])
    assert claims["exp"] - claims["iat"] == 7200 and claims["iss"] == "booklore"
    gapi.emu.state.advance_clock(2)  # not the same second as the login
    r = gapi.http.post("/api/v1/auth/refresh", json={"refreshToken": body["refreshToken"]})
    assert r.status_code == 200
    assert set(r.json()) == {"accessToken", "refreshToken", "expires"} and r.json()["expires"] == 7200
    # access tokens of 2 hours: after that, 401
    token = r.json()["accessToken"]
    auth = {"Authorization": f"Bearer {token}"}
    assert gapi.http.get("/api/v1/books", headers=auth).status_code == 200
    gapi.emu.state.advance_clock(7201)
    assert_spring_401(gapi.http.get("/api/v1/books", headers=auth), "/api/v1/books")


def test_token_from_before_a_migration_is_refused():
    with start_emulator(mode="booklore") as emu:
        api = Api(emu)
        body = api.login().json()
        assert body["isDefaultPassword"] == "false" and "expires" not in body
        claims = decode_unverified(body["accessToken"])
        assert "iss" not in claims and claims["exp"] - claims["iat"] == 36000
        auth = {"Authorization": f"Bearer {body['accessToken']}"}
        assert api.http.get("/api/v1/books", headers=auth).status_code == 200
        emu.set_mode("grimmory")  # the server is migrated: the old token lacks the issuer
        assert_spring_401(api.http.get("/api/v1/books", headers=auth), "/api/v1/books")


def test_grimmory_version_healthcheck_and_generic_texts(gapi: Api):
    assert gapi.get("/api/v1/healthcheck", auth=None).json()["data"]["version"] == "v3.2.4"
    r = gapi.get("/api/v1/version", auth=None)
    assert r.status_code == 200 and r.json()["current"] == "v3.2.4"
    gapi.emu.state.set_user("demo", canSyncKoReader=False)
    assert_error(gapi.get("/api/v1/koreader-users/me"), 403, "Access denied.")
    gapi.emu.state.set_user("demo", canSyncKoReader=True)
    me = gapi.get("/api/v1/koreader-users/me").json()
    assert "syncWithWebReader" in me and "syncWithBookloreReader" not in me
    assert gapi.patch("/api/v1/koreader-users/me/sync-progress-with-grimmory?enabled=true").status_code == 204
    assert gapi.emu.state.koreader_accounts()[0]["syncWithBookloreReader"] is True
    # grimmory has no fork routes
    assert_html(gapi.get(f"/api/koreader/books/by-hash/{H1}", auth="ko"))
    assert_error(gapi.get("/api/v1/books/search?title=x"), 500, UNEXPECTED)


def test_booklore_has_no_version_route_and_texts_are_its_own():
    with start_emulator(mode="booklore") as emu:
        api = Api(emu)
        assert_html(api.get("/api/v1/version"))
        emu.state.set_user("demo", canSyncKoReader=False)
        assert_error(api.get("/api/v1/koreader-users/me"), 403, "Access Denied")


def test_grimmory_pdf_bookmarks_by_page(gapi: Api):
    bid = book(gapi.emu, book_type="PDF")
    r = gapi.post("/api/v1/bookmarks", json={"bookId": bid, "pageNumber": 7, "title": "p. 7"})
    assert r.status_code == 200 and r.json()["pageNumber"] == 7 and r.json()["cfi"] is None
    assert_error(gapi.post("/api/v1/bookmarks", json={"bookId": bid, "pageNumber": 7, "title": "again"}),
                 409, "A bookmark already exists on this page")
    assert_error(gapi.post("/api/v1/bookmarks", json={"bookId": bid, "pageNumber": 0}), 400,
                 "Validation error", ["pageNumber: Page number must be at least 1"])
    other = gapi.post("/api/v1/bookmarks", json={"bookId": bid, "pageNumber": 8}).json()
    assert_error(gapi.put(f"/api/v1/bookmarks/{other['id']}", json={"pageNumber": 7}), 409,
                 "A bookmark already exists on this page")
    assert gapi.put(f"/api/v1/bookmarks/{other['id']}", json={"pageNumber": 9}).json()["pageNumber"] == 9
    assert [b["pageNumber"] for b in gapi.get(f"/api/v1/bookmarks/book/{bid}").json()] == [9, 7]


def test_booklore_ignores_page_number():
    with start_emulator(mode="booklore") as emu:
        api = Api(emu)
        bid = book(emu, book_type="PDF")
        first = api.post("/api/v1/bookmarks", json={"bookId": bid, "pageNumber": 7, "title": "p. 7"})
        assert first.status_code == 200 and "pageNumber" not in first.json()
        # no CFI: never deduplicated
        assert api.post("/api/v1/bookmarks", json={"bookId": bid, "pageNumber": 7, "title": "p. 7"}).status_code == 200
        assert len(emu.state.bookmarks(book_id=bid)) == 2


def test_grimmory_null_percentage_is_stored_without_status(gapi: Api):
    bid = book(gapi.emu)
    r = gapi.put("/api/koreader/syncs/progress", auth="ko",
                 json={"document": H1, "progress": "/body/p[3]", "percentage": None, "device": "K", "device_id": "1"})
    assert r.status_code == 200
    row = gapi.emu.state.progress(book_id=bid)[0]
    assert row["koreaderProgress"] == "/body/p[3]" and row["readStatus"] is None
    assert row["lastReadTime"] is not None and gapi.emu.state.hardcover_pushes() == []


def test_grimmory_web_progress_reaching_read_finishes_and_writes_kosync(gapi: Api):
    bid = book(gapi.emu)
    gapi.emu.state.set_koreader_account("demo", syncWithBookloreReader=True)
    r = gapi.post("/api/v1/books/progress", json={"bookId": bid, "epubProgress": {"cfi": "epubcfi(/6/4!/2)", "percentage": 99.7}})
    assert r.status_code == 204
    b = gapi.get(f"/api/v1/books/{bid}").json()
    assert b["readStatus"] == "READ" and "dateFinished" in b and b["epubProgress"]["percentage"] == 99.7
    k = gapi.get(f"/api/koreader/syncs/progress/{H1}", auth="ko").json()
    assert k["progress"] is None and k["timestamp"] is not None and abs(k["percentage"] - 0.997) < 1e-9


# ---------------------------------------------------------------- old releases


def test_old_release_1_15_lacks_routes():
    with start_emulator(mode="booklore", server_version="1.15.0") as emu:
        api = Api(emu)
        bid = book(emu)
        # no healthcheck: not public (403), with a bearer the nginx-era 404
        assert_forbidden(api.get("/api/v1/healthcheck", auth=None), "/api/v1/healthcheck")
        assert_error(api.get("/api/v1/healthcheck"), 404,
                     "Resource not found: No static resource api/v1/healthcheck.")
        assert_error(api.get(f"/api/v1/annotations/book/{bid}"), 404,
                     f"Resource not found: No static resource api/v1/annotations/book/{bid}.")
        assert_error(api.post("/api/v1/annotations", json={"bookId": bid, "cfi": "c", "text": "t"}), 500, UNEXPECTED)
        assert_error(api.post("/api/v2/book-notes", json={"bookId": bid, "cfi": "c", "noteContent": "n"}), 500, UNEXPECTED)
        assert_error(api.post("/api/v1/reading-sessions", json=dict(SESSION, bookId=bid)), 500, UNEXPECTED)
        assert_error(api.get(f"/api/v1/reading-sessions/book/{bid}"), 404,
                     f"Resource not found: No static resource api/v1/reading-sessions/book/{bid}.")
        assert_error(api.post("/api/v1/books/status", json={"bookIds": [bid], "status": "READ"}), 500, UNEXPECTED)
        # what 1.15.0 had
        assert api.put("/api/v1/books/personal-rating", json={"ids": [], "rating": None}).json() == []
        bm = api.post("/api/v1/bookmarks", json={"bookId": bid, "cfi": "epubcfi(/6/2)"})
        assert bm.status_code == 200
        assert_error(api.put(f"/api/v1/bookmarks/{bm.json()['id']}", json={"title": "x"}), 500, UNEXPECTED)
        assert api.post("/api/v1/book-notes", json={"bookId": bid, "content": "c"}).status_code == 200
        assert api.post("/api/v1/books/progress", json={"bookId": bid, "epubProgress": {"percentage": 10}}).status_code == 204
        # unknown /api GETs: the 404, never the web page
        assert_error(api.get("/api/v1/nothing"), 404, "Resource not found: No static resource api/v1/nothing.")


def test_release_table_edges():
    with start_emulator(mode="booklore", server_version="1.14.0") as emu:
        api = Api(emu)
        bid = book(emu)
        assert api.put("/api/v1/books/personal-rating", json={"ids": [], "rating": None}).status_code == 200
        assert api.get(f"/api/v1/bookmarks/book/{bid}").status_code == 404
        emu.set_mode("booklore", "1.13.0")
        assert api.put("/api/v1/books/personal-rating", json={"ids": [], "rating": None}).status_code == 500
    with start_emulator(mode="upstream", server_version="1.17.0") as emu:
        api = Api(emu)
        bid = book(emu)
        assert api.get("/api/v1/healthcheck", auth=None).json()["data"]["version"] == "v1.17.0"
        assert api.post("/api/v1/reading-sessions", json=dict(SESSION, bookId=bid)).status_code == 202
        assert api.get(f"/api/v1/reading-sessions/book/{bid}").json()["page"]["totalElements"] == 1
        assert api.post("/api/v1/books/status", json={"bookIds": [bid], "status": "READ"}).status_code == 200
        assert api.get(f"/api/v1/annotations/book/{bid}").status_code == 404
        emu.set_mode("booklore", "1.18.0")
        assert api.get(f"/api/v1/annotations/book/{bid}").json() == []
        assert_error(api.get("/api/v1/nothing"), 404, "Resource not found: No static resource api/v1/nothing.")
    with start_emulator(mode="booklore", server_version="2.0.0") as emu:
        assert_html(Api(emu).get("/api/v1/nothing"))


def test_old_release_only_as_booklore():
    with pytest.raises(ValueError):
        start_emulator(mode="fork", server_version="1.17.0")
    with pytest.raises(ValueError):
        start_emulator(mode="grimmory", server_version="1.17.0")
    with start_emulator(mode="booklore") as emu:
        r = emu.state.configure(mode="grimmory")
        assert (r["flavour"], r["server_version"]) == ("grimmory", "3.2.4")
        ctl = Api(emu).http.post("/__emulator/mode", json={"mode": "booklore", "server_version": "1.16.3"})
        assert ctl.json() == {"mode": "booklore", "server_version": "1.16.3"}


# ---------------------------------------------------------------- the Sync switch


@pytest.mark.parametrize("mode", ["fork", "booklore", "grimmory"])
def test_sync_off_gates_only_the_two_kosync_routes(mode):
    with start_emulator(mode=mode, koreader_sync=False) as emu:
        api = Api(emu)
        bid = book(emu)
        assert emu.state.koreader_accounts()[0]["syncEnabled"] is False
        assert api.get("/api/koreader/users/auth", auth="ko").status_code == 200
        put = api.put("/api/koreader/syncs/progress", auth="ko", json={"document": H1, "progress": "1", "percentage": 0.5})
        assert_error(put, 401, "Sync is disabled for this user")
        assert_error(api.get(f"/api/koreader/syncs/progress/{H1}", auth="ko"), 401, "Sync is disabled for this user")
        if mode == "fork":  # by-hash and sessions with KOReader headers ignore the switch
            assert api.get(f"/api/koreader/books/by-hash/{H1}", auth="ko").status_code == 200
            assert api.post("/api/v1/reading-sessions", auth="ko", json=dict(SESSION, bookId=bid)).status_code == 202
        assert api.patch("/api/v1/koreader-users/me/sync?enabled=true").status_code == 204
        assert api.put("/api/koreader/syncs/progress", auth="ko",
                       json={"document": H1, "progress": "1", "percentage": 0.5}).status_code == 200
        # a new account follows the default: off
        assert api.put("/api/v1/koreader-users/me", auth="admin",
                       json={"username": "root", "password": "r"}).json()["syncEnabled"] is False


# ---------------------------------------------------------------- latency


def test_latency_applies_to_every_request():
    with start_emulator(latency_ms=150) as emu:
        api = Api(emu)
        start = time.monotonic()
        assert api.get("/api/v1/healthcheck", auth=None).status_code == 200
        assert time.monotonic() - start >= 0.15
        assert api.http.post("/__emulator/latency", json={"ms": 0}).json() == {"latency_ms": 0}
        assert emu.state.config()["latency_ms"] == 0

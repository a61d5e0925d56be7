"""§3.18–§3.21 (kosync progress, shelves, KOReader account management) and §4 (error
bodies, the web-UI fallback, the catch-all)."""

from __future__ import annotations

import pytest

from booklore_sync.emulator import start_emulator

from .conftest import (
    BAD_KO,
    DATA_CONFLICT,
    H1,
    H2,
    MALFORMED,
    UNEXPECTED,
    Api,
    assert_error,
    assert_forbidden,
    assert_html,
    book,
    md5,
)

P = {"document": H1, "progress": "/body/DocFragment[3]/body/p[4]/text().5", "percentage": 0.5,
     "device": "Kobo", "device_id": "ABC", "timestamp": 1}


# ---------------------------------------------------------------- §3.18 PUT


def test_put_progress_upsert_and_server_time(mapi: Api):
    emu = mapi.emu
    bid = book(emu)
    emu.state.set_clock("2026-03-01T12:00:00Z", frozen=True)
    r = mapi.put("/api/koreader/syncs/progress", auth="ko", json=P)
    assert r.status_code == 200 and r.json() == {"status": "progress updated"}
    [row] = emu.state.progress()
    assert row["bookId"] == bid and row["koreaderPercent"] == 0.5 and row["koreaderDevice"] == "Kobo"
    assert row["koreaderLastSyncTime"] == "2026-03-01T12:00:00Z"  # the sent timestamp is ignored
    emu.state.advance_clock(60)
    mapi.put("/api/koreader/syncs/progress", auth="ko", json=dict(P, percentage=0.25, progress="x"))
    [row] = emu.state.progress()
    assert (row["koreaderPercent"], row["koreaderProgress"]) == (0.25, "x")  # last write wins


@pytest.mark.parametrize("fraction,status", [
    # booklore-api.md §7.5: the float32 percentage widened to double, so 0.0025 gives UNREAD
    (0.995, "READ"), (1.0, "READ"), (0.994, "READING"), (0.0026, "READING"), (0.0025, "UNREAD"),
    (0.0024, "UNREAD"), (0.0, "UNREAD"),
])
def test_put_progress_read_status(api: Api, emu, fraction, status):
    bid = book(emu)
    api.put("/api/koreader/syncs/progress", auth="ko", json=dict(P, percentage=fraction))
    [row] = emu.state.progress()
    assert row["readStatus"] == status
    assert (row["dateFinished"] is not None) == (status == "READ")
    assert api.get(f"/api/v1/books/{bid}").json()["readStatus"] == status


def test_put_progress_stale_push_moves_read_back_to_reading(api: Api, emu):
    book(emu)
    api.put("/api/koreader/syncs/progress", auth="ko", json=dict(P, percentage=1.0))
    api.put("/api/koreader/syncs/progress", auth="ko", json=dict(P, percentage=0.4))
    assert emu.state.progress()[0]["readStatus"] == "READING"


def test_put_progress_errors(mapi: Api):
    emu = mapi.emu
    assert_error(mapi.put("/api/koreader/syncs/progress", auth="ko", json=P), 404, f"Book not found for hash {H1}")
    no_doc = {k: v for k, v in P.items() if k != "document"}
    assert_error(mapi.put("/api/koreader/syncs/progress", auth="ko", json=no_doc), 404, "Book not found for hash null")
    book(emu)
    assert_error(mapi.put("/api/koreader/syncs/progress", auth="ko", json=dict(P, percentage=None)), 500, UNEXPECTED)
    no_pct = {k: v for k, v in P.items() if k != "percentage"}
    assert_error(mapi.put("/api/koreader/syncs/progress", auth="ko", json=no_pct), 500, UNEXPECTED)
    assert emu.state.progress() == []  # nothing saved
    for field, n in (("progress", 1001), ("device", 101), ("device_id", 101)):
        assert_error(mapi.put("/api/koreader/syncs/progress", auth="ko", json=dict(P, **{field: "x" * n})),
                     400, DATA_CONFLICT)
    assert_forbidden(mapi.put("/api/koreader/syncs/progress", auth=None, json=P, headers=BAD_KO),
                     "/api/koreader/syncs/progress")
    assert_error(mapi.put("/api/koreader/syncs/progress", auth="ko", json=dict(P, percentage="half")), 400, MALFORMED)


def test_put_progress_fixed_bugs_null_percentage():
    with start_emulator(fixed_bugs=True) as emu:
        book(emu)
        r = Api(emu).put("/api/koreader/syncs/progress", auth="ko", json=dict(P, percentage=None))
        assert_error(r, 400, "Validation error", ["percentage: must not be null"])


def test_put_progress_duplicate_hash_and_no_access_check(api: Api, emu):
    book(emu, "Elsewhere", H2, library_id=2)
    assert api.put("/api/koreader/syncs/progress", auth="ko", json=dict(P, document=H2)).status_code == 200
    book(emu, "One", H1)
    book(emu, "Two", H1)
    assert_error(api.put("/api/koreader/syncs/progress", auth="ko", json=P), 500, UNEXPECTED)


# ---------------------------------------------------------------- §3.19 GET


def test_get_progress(mapi: Api):
    emu = mapi.emu
    book(emu)
    assert_error(mapi.get(f"/api/koreader/syncs/progress/{H2}", auth="ko"), 404, f"Book not found for hash {H2}")
    assert_error(mapi.get(f"/api/koreader/syncs/progress/{H1}", auth="ko"), 404, "No progress found for user and book")
    emu.state.set_clock("2026-03-01T12:00:00Z", frozen=True)
    mapi.put("/api/koreader/syncs/progress", auth="ko", json=dict(P, percentage=0.123456789))
    r = mapi.get(f"/api/koreader/syncs/progress/{H1.upper()}", auth="ko")
    assert r.status_code == 200
    assert r.json() == {"timestamp": 1772366400, "document": H1.upper(), "progress": P["progress"],
                        "percentage": 0.12345679, "device": "BookLore", "device_id": "BookLore"}


def test_get_progress_row_without_kosync_fields(api: Api, emu):
    bid = book(emu)
    api.put("/api/v1/books/personal-rating", json={"ids": [bid], "rating": 6})
    r = api.get(f"/api/koreader/syncs/progress/{H1}", auth="ko")
    assert r.json() == {"timestamp": None, "document": H1, "progress": None, "percentage": None,
                        "device": "BookLore", "device_id": "BookLore"}


# ---------------------------------------------------------------- §3.20 shelves


def test_shelves(api: Api, emu):
    bid = book(emu)
    r = api.post("/api/v1/shelves", json={"name": "Fav", "icon": "pi pi-star", "iconType": "PRIME_NG",
                                          "publicShelf": False})
    assert r.status_code == 201
    shelf = r.json()
    assert set(shelf) == {"id", "name", "icon", "iconType", "sort", "userId", "publicShelf", "bookCount"}
    body = {"bookIds": [bid, 999], "shelvesToAssign": [shelf["id"]], "shelvesToUnassign": []}
    r = api.post("/api/v1/books/shelves", json=body)
    assert r.status_code == 200 and [b["id"] for b in r.json()] == [bid]  # unknown ids skipped
    assert r.json()[0]["shelves"][0]["bookCount"] == 1
    assert api.post("/api/v1/books/shelves", json=body).status_code == 200  # set semantics
    assert [b["id"] for b in api.get(f"/api/v1/shelves/{shelf['id']}/books").json()] == [bid]
    assert api.get("/api/v1/shelves").json()[0]["bookCount"] == 1
    foreign = api.post("/api/v1/shelves", auth="admin", json={"name": "Admin's"}).json()
    assert_error(api.post("/api/v1/books/shelves", json=dict(body, shelvesToAssign=[foreign["id"]])), 401,
                 "Cannot assign shelves that do not belong to the user.")
    assert_error(api.post("/api/v1/books/shelves", json=dict(body, shelvesToAssign=[], shelvesToUnassign=[foreign["id"]])),
                 401, "Cannot unassign shelves that do not belong to the user.")
    assert_error(api.post("/api/v1/books/shelves", json={"bookIds": [bid], "shelvesToAssign": [shelf["id"]]}),
                 500, UNEXPECTED)
    assert_error(api.post("/api/v1/shelves", json={"name": " "}), 400, "Validation error", ["name: must not be blank"])


# ---------------------------------------------------------------- §3.21 koreader-users


def test_koreader_users_me(api: Api, emu):
    r = api.get("/api/v1/koreader-users/me")
    assert r.status_code == 200
    assert r.json() == {"id": 1, "username": "demo", "password": "demo", "passwordMD5": md5("demo"),
                        "syncEnabled": True, "syncWithBookloreReader": False}
    r = api.put("/api/v1/koreader-users/me", json={"username": "kobo", "password": "s3cret"})
    assert r.json()["username"] == "kobo" and r.json()["passwordMD5"] == md5("s3cret")
    ok = api.http.get("/api/koreader/users/auth", headers={"x-auth-user": "kobo", "x-auth-key": md5("s3cret")})
    assert ok.status_code == 200
    assert api.patch("/api/v1/koreader-users/me/sync?enabled=false").status_code == 204
    assert emu.state.koreader_accounts()[0]["syncEnabled"] is False
    assert api.patch("/api/v1/koreader-users/me/sync-progress-with-booklore?enabled=true").status_code == 204
    assert emu.state.koreader_accounts()[0]["syncWithBookloreReader"] is True
    # the admin has no account yet
    admin_id = next(u["id"] for u in emu.state.users() if u["username"] == "admin")
    assert_error(api.get("/api/v1/koreader-users/me", auth="admin"), 404,
                 f"Koreader user not found for BookLore user ID: {admin_id}")
    # username unique across accounts
    assert_error(api.put("/api/v1/koreader-users/me", auth="admin", json={"username": "KOBO", "password": "x"}),
                 400, DATA_CONFLICT)
    emu.state.set_user("demo", canSyncKoReader=False)
    assert_error(api.get("/api/v1/koreader-users/me"), 403, "Access Denied")


# ---------------------------------------------------------------- §4


def test_unknown_paths(mapi: Api):
    assert_html(mapi.get("/api/v1/nothing-here"))
    assert_html(mapi.get("/api/koreader/nothing", auth="ko"))
    assert_html(mapi.get("/", auth=None))
    assert_forbidden(mapi.get("/api/v1/nothing-here", auth=None), "/api/v1/nothing-here")
    assert_error(mapi.post("/api/v1/nothing-here", json={}), 500, UNEXPECTED)
    assert_error(mapi.get("/api/v1/auth/login", auth=None), 500, UNEXPECTED)  # wrong method
    mapi.emu.state.configure(spa_fallback=False)
    assert_error(mapi.get("/api/v1/nothing-here"), 404, "Resource not found: /api/v1/nothing-here")


def test_no_spa_fallback_option():
    with start_emulator(spa_fallback=False, mode="upstream") as emu:
        api = Api(emu)
        assert_error(api.get(f"/api/koreader/books/by-hash/{H1}", auth="ko"), 404,
                     f"Resource not found: /api/koreader/books/by-hash/{H1}")


def test_accept_headers(api: Api):
    for accept in ("application/json", "application/vnd.koreader.v1+json", None):
        headers = dict(api.headers("ko"))
        if accept:
            headers["Accept"] = accept
        assert api.http.get("/api/koreader/users/auth", headers=headers).status_code == 200


def test_missing_body_is_malformed(api: Api):
    r = api.post("/api/v1/annotations", content=b"", headers={"Content-Type": "application/json"})
    assert_error(r, 400, MALFORMED)
    assert_error(api.post("/api/v1/annotations", json=[1, 2]), 400, MALFORMED)


def test_fixed_bugs_shelf_and_unknown_book_routes():
    with start_emulator(fixed_bugs=True) as emu:
        api = Api(emu)
        foreign = api.post("/api/v1/shelves", auth="admin", json={"name": "A"}).json()
        assert_error(api.post("/api/v1/books/shelves", json={"bookIds": [], "shelvesToAssign": [foreign["id"]],
                                                             "shelvesToUnassign": []}),
                     403, "Cannot assign shelves that do not belong to the user.")
        assert_error(api.post("/api/v2/book-notes", json={"bookId": 8, "cfi": "c", "noteContent": "n"}), 404,
                     "Book not found with ID: 8")
        assert_error(api.post("/api/v1/bookmarks", json={"bookId": 8, "cfi": "c"}), 404, "Book not found with ID: 8")

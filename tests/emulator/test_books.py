"""§3.1, §3.6–§3.9.2: healthcheck, by-hash (both), search, book by id, book list."""

from __future__ import annotations

import pytest

from booklore_sync.emulator import start_emulator

from .conftest import (
    H1,
    H2,
    LOCAL_DT,
    UNEXPECTED,
    Api,
    assert_empty_401,
    assert_error,
    assert_forbidden,
    assert_html,
    book,
)


def test_healthcheck(mapi: Api):
    r = mapi.get("/api/v1/healthcheck", auth=None)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == 200 and body["message"] == "Pong"
    assert body["data"]["status"] == "UP"
    assert body["data"]["message"] == "Application is running smoothly."
    assert isinstance(body["data"]["version"], str)
    assert LOCAL_DT.match(body["timestamp"]) and LOCAL_DT.match(body["data"]["timestamp"])


# ---------------------------------------------------------------- §3.6 KOReader by-hash


def test_koreader_by_hash_returns_full_book_with_description(api: Api, emu):
    bid = book(emu, "Dune", H1, isbn13="9780441013593", description="Spice.")
    r = api.get(f"/api/koreader/books/by-hash/{H1}", auth="ko")
    assert r.status_code == 200
    b = r.json()
    assert b["id"] == bid and "title" not in b and "authors" not in b
    assert b["metadata"]["title"] == "Dune" and b["metadata"]["authors"] == ["Frank Herbert"]
    assert b["metadata"]["isbn13"] == "9780441013593"
    assert b["metadata"]["description"] == "Spice."
    assert b["primaryFile"]["bookType"] == "EPUB" and "currentHash" not in b["primaryFile"]
    assert b["readStatus"] == "UNSET"
    assert "isbn10" not in b["metadata"]  # NON_NULL


def test_koreader_by_hash_404_and_case(api: Api, emu):
    book(emu, "Dune", H1)
    assert api.get(f"/api/koreader/books/by-hash/{H1.upper()}", auth="ko").status_code == 200
    assert_error(api.get(f"/api/koreader/books/by-hash/{H2}", auth="ko"), 404, f"Book with hash {H2} not found")
    assert_forbidden(api.get(f"/api/koreader/books/by-hash/{H1}", auth=None), f"/api/koreader/books/by-hash/{H1}")


def test_by_hash_lookup_rule(api: Api, emu):
    files = [
        {"fileName": "a.epub", "bookType": "EPUB", "currentHash": H1, "initialHash": "c" * 32, "primary": True},
        {"fileName": "a.pdf", "bookType": "PDF", "currentHash": H2},  # alternative format
        {"fileName": "cover.jpg", "bookType": "EPUB", "currentHash": "d" * 32, "isBook": False},
    ]
    bid = emu.state.add_book(title="Multi", files=files)["id"]
    emu.state.add_book(title="Gone", file_hash="e" * 32, deleted=True)
    assert api.get(f"/api/koreader/books/by-hash/{H2}", auth="ko").json()["id"] == bid
    for h in ("c" * 32, "d" * 32, "e" * 32):  # initial hash, non-book file, deleted book
        assert api.get(f"/api/koreader/books/by-hash/{h}", auth="ko").status_code == 404
    b = api.get(f"/api/koreader/books/by-hash/{H1}", auth="ko").json()
    assert [f["fileName"] for f in b["alternativeFormats"]] == ["a.pdf"]
    assert [f["fileName"] for f in b["supplementaryFiles"]] == ["cover.jpg"]


def test_by_hash_library_access(api: Api, emu):
    book(emu, "Elsewhere", H1, library_id=2)
    assert_error(api.get(f"/api/koreader/books/by-hash/{H1}", auth="ko"), 404, f"Book with hash {H1} not found")
    assert_error(api.get(f"/api/v1/books/by-hash/{H1}"), 404, f"Book with hash {H1} not found")
    # admins see all
    assert api.get(f"/api/v1/books/by-hash/{H1}", auth="admin").status_code == 200
    admin_id = next(u["id"] for u in emu.state.users() if u["username"] == "admin")
    emu.state.set_koreader_account("demo", userId=admin_id)
    assert api.get(f"/api/koreader/books/by-hash/{H1}", auth="ko").status_code == 200


def test_two_live_books_with_one_hash_is_500(api: Api, emu):
    book(emu, "One", H1)
    book(emu, "Two", H1)
    assert_error(api.get(f"/api/koreader/books/by-hash/{H1}", auth="ko"), 500, UNEXPECTED)
    assert_error(api.get(f"/api/v1/books/by-hash/{H1}"), 500, UNEXPECTED)


def test_upstream_has_no_koreader_by_hash():
    with start_emulator(mode="upstream") as emu:
        api = Api(emu)
        book(emu, "Dune", H1)
        assert_html(api.get(f"/api/koreader/books/by-hash/{H1}", auth="ko"))
        assert_forbidden(api.get(f"/api/koreader/books/by-hash/{H1}", auth=None),
                         f"/api/koreader/books/by-hash/{H1}")
        emu.state.configure(spa_fallback=False)
        assert_error(api.get(f"/api/koreader/books/by-hash/{H1}", auth="ko"), 404,
                     f"Resource not found: /api/koreader/books/by-hash/{H1}")


# ---------------------------------------------------------------- §3.7 bearer by-hash


def test_bearer_by_hash(api: Api, emu):
    bid = book(emu, "Dune", H1, description="Spice.")
    r = api.get(f"/api/v1/books/by-hash/{H1}")
    assert r.status_code == 200 and r.json()["id"] == bid
    assert "description" not in r.json()["metadata"]
    r = api.get(f"/api/v1/books/by-hash/{H1}", params={"withDescription": "true"})
    assert r.json()["metadata"]["description"] == "Spice."
    assert_error(api.get(f"/api/v1/books/by-hash/{H2}"), 404, f"Book with hash {H2} not found")
    assert_forbidden(api.get(f"/api/v1/books/by-hash/{H1}", auth="ko"), f"/api/v1/books/by-hash/{H1}")
    assert_forbidden(api.get(f"/api/v1/books/by-hash/{H1}", auth=None), f"/api/v1/books/by-hash/{H1}")
    assert_empty_401(api.get(f"/api/v1/books/by-hash/{H1}", auth=None, headers={"Authorization": "Bearer x"}))


def test_upstream_bearer_by_hash_is_html():
    with start_emulator(mode="upstream") as emu:
        api = Api(emu)
        book(emu, "Dune", H1)
        assert_html(api.get(f"/api/v1/books/by-hash/{H1}"))
        assert_forbidden(api.get(f"/api/v1/books/by-hash/{H1}", auth=None), f"/api/v1/books/by-hash/{H1}")


# ---------------------------------------------------------------- §3.8 search


def test_search_needs_a_parameter(api: Api):
    assert_error(api.get("/api/v1/books/search"), 400,
                 "At least one search parameter (title or isbn) must be provided")
    assert_error(api.get("/api/v1/books/search", params={"limit": 1}), 400,
                 "At least one search parameter (title or isbn) must be provided")


def test_search_isbn_branch(api: Api, emu):
    a = book(emu, "A", H1, isbn13="978-0-306-40615-7")
    b = book(emu, "B", H2, isbn10="0 306 40615 2", isbn13="9780306406157")
    book(emu, "C", None, isbn13="9781111111111")
    r = api.get("/api/v1/books/search", params={"isbn": "978-0306406157", "title": "zzz"})
    assert r.status_code == 200
    assert [(x["id"], x["matchScore"]) for x in r.json()] == [(a, 1.0), (b, 1.0)]
    assert [x["id"] for x in api.get("/api/v1/books/search", params={"isbn": "0306406152"}).json()] == [b]


def test_search_isbn_lower_case_x_is_dropped(api: Api, emu):
    bid = book(emu, "X", H1, isbn10="080442957X")
    assert [x["id"] for x in api.get("/api/v1/books/search", params={"isbn": "080442957X"}).json()] == [bid]
    assert api.get("/api/v1/books/search", params={"isbn": "080442957x"}).json() == []


def test_search_isbn_miss_falls_through_to_title(api: Api, emu):
    bid = book(emu, "Dune", H1, isbn13="9780441013593")
    assert api.get("/api/v1/books/search", params={"isbn": "9999999999999"}).json() == []
    r = api.get("/api/v1/books/search", params={"isbn": "9999999999999", "title": "dune"}).json()
    assert [(x["id"], x["matchScore"]) for x in r] == [(bid, 1.0)]


def test_search_empty_title_is_empty(api: Api, emu):
    book(emu, "Dune", H1)
    assert api.get("/api/v1/books/search?title=").json() == []


def test_search_order_ties_limit_and_fields(api: Api, emu):
    ids = [book(emu, "Dune", None) for _ in range(3)]
    best = book(emu, "dune", H1)  # equal score: ties keep ascending id
    for i in range(60):
        book(emu, f"Dune part {i}", None)
    r = api.get("/api/v1/books/search", params={"title": "Dune", "limit": 1}).json()
    assert len(r) == 50
    assert [x["id"] for x in r[:4]] == ids + [best]
    assert all(x["matchScore"] == 1.0 for x in r[:4]) and r[4]["matchScore"] < 1.0
    assert "hash" not in r[0] and r[3]["hash"] == H1
    assert set(r[3]) == {"id", "title", "hash", "coverHash", "matchScore"}


def test_search_title_falls_back_to_file_name(api: Api, emu):
    bid = emu.state.add_book(title=None, file_hash=H1, file_name="dune.epub")["id"]
    emu.state.update_book(bid, title=None)
    r = api.get("/api/v1/books/search", params={"title": "dune.epub"}).json()
    assert r[0]["title"] == "dune.epub" and r[0]["matchScore"] == 1.0


def test_search_hash_is_the_primary_files(api: Api, emu):
    files = [{"fileName": "a.epub", "bookType": "EPUB", "currentHash": H1, "primary": True},
             {"fileName": "a.pdf", "bookType": "PDF", "currentHash": H2}]
    emu.state.add_book(title="Multi", files=files)
    assert api.get("/api/v1/books/search", params={"title": "Multi"}).json()[0]["hash"] == H1


def test_search_respects_libraries(api: Api, emu):
    book(emu, "Dune", H1, library_id=2)
    assert api.get("/api/v1/books/search", params={"title": "Dune"}).json() == []
    assert len(api.get("/api/v1/books/search", params={"title": "Dune"}, auth="admin").json()) == 1


def test_search_upstream_is_500():
    with start_emulator(mode="upstream") as emu:
        api = Api(emu)
        assert_error(api.get("/api/v1/books/search", params={"title": "x"}), 500, UNEXPECTED)
        assert_forbidden(api.get("/api/v1/books/search", params={"title": "x"}, auth=None),
                         "/api/v1/books/search")


def test_search_fork_2675_combined_score():
    with start_emulator(mode="fork-2675") as emu:
        api = Api(emu)
        a = book(emu, "Dune", H1, isbn13="9780441013593")
        b = book(emu, "Something else", H2, isbn13="9780441013590")
        r = api.get("/api/v1/books/search", params={"isbn": "9780441013593", "title": "Dune"}).json()
        assert r[0] == {**r[0], "id": a, "matchScore": 1.0}
        assert r[1]["id"] == b and 0 < r[1]["matchScore"] < 1


# ---------------------------------------------------------------- §3.9 book by id, list


def test_get_book(mapi: Api):
    emu = mapi.emu
    bid = book(emu, "Dune", H1, description="Spice.")
    r = mapi.get(f"/api/v1/books/{bid}")
    assert r.status_code == 200 and r.json()["id"] == bid and "description" not in r.json()["metadata"]
    assert mapi.get(f"/api/v1/books/{bid}?withDescription=true").json()["metadata"]["description"] == "Spice."
    assert_error(mapi.get("/api/v1/books/4242"), 404, "Book not found with ID: 4242")
    assert_error(mapi.get("/api/v1/books/abc"), 500, UNEXPECTED)
    other = book(emu, "Elsewhere", H2, library_id=2)
    assert_error(mapi.get(f"/api/v1/books/{other}"), 403, "You are not authorized to access this book.")
    assert mapi.get(f"/api/v1/books/{other}", auth="admin").status_code == 200


def test_list_books(mapi: Api):
    emu = mapi.emu
    a = book(emu, "A", H1, description="d")
    book(emu, "Hidden", None, library_id=2)
    b = book(emu, "B", H2)
    book(emu, "Deleted", None, deleted=True)
    r = mapi.get("/api/v1/books")
    assert r.status_code == 200
    assert [x["id"] for x in r.json()] == [a, b]
    assert all("description" not in x["metadata"] for x in r.json())
    assert mapi.get("/api/v1/books?withDescription=true").json()[0]["metadata"]["description"] == "d"
    assert len(mapi.get("/api/v1/books", auth="admin").json()) == 3
    assert_forbidden(mapi.get("/api/v1/books", auth=None), "/api/v1/books")
    assert_empty_401(mapi.get("/api/v1/books", auth=None, headers={"Authorization": "Bearer bad"}))


@pytest.mark.parametrize("percent,shown", [(0.5, 50.0), (0.12345, 12.3), (0.99951, 100.0)])
def test_book_koreader_progress_is_percent_rounded(api: Api, emu, percent, shown):
    bid = book(emu, "Dune", H1)
    api.put("/api/koreader/syncs/progress", auth="ko",
            json={"document": H1, "progress": "x", "percentage": percent, "device": "d", "device_id": "i"})
    assert api.get(f"/api/v1/books/{bid}").json()["koreaderProgress"] == {"percentage": shown}

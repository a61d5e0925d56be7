"""§3.13–§3.17: ratings, annotations, v2 book notes, v1 book notes, bookmarks."""

from __future__ import annotations

import pytest

from booklore_sync.emulator import start_emulator

from .conftest import (
    DATA_CONFLICT,
    LOCAL_DT,
    MALFORMED,
    UNEXPECTED,
    Api,
    assert_error,
    assert_forbidden,
    book,
)

# ---------------------------------------------------------------- §3.13 ratings


def test_rating_200_in_request_order_and_upsert(mapi: Api):
    emu = mapi.emu
    a, b = book(emu, "A"), book(emu, "B", None)
    r = mapi.put("/api/v1/books/personal-rating", json={"ids": [b, a], "rating": 8})
    assert r.status_code == 200
    assert r.json() == [{"bookId": b, "personalRating": 8}, {"bookId": a, "personalRating": 8}]
    assert mapi.put("/api/v1/books/personal-rating", json={"ids": [b, a], "rating": 8}).json() == r.json()
    assert sorted((x["bookId"], x["personalRating"]) for x in emu.state.ratings()) == [(a, 8), (b, 8)]
    assert mapi.get(f"/api/v1/books/{a}").json()["personalRating"] == 8


def test_rating_value_not_validated_and_null_clears(api: Api, emu):
    a = book(emu)
    assert api.put("/api/v1/books/personal-rating", json={"ids": [a], "rating": 99}).json()[0]["personalRating"] == 99
    assert api.put("/api/v1/books/personal-rating", json={"ids": [a], "rating": None}).json() == [
        {"bookId": a, "personalRating": None}]
    assert emu.state.ratings() == []


def test_rating_empty_list(mapi: Api):
    assert mapi.put("/api/v1/books/personal-rating", json={"ids": [], "rating": 4}).json() == []


def test_rating_bug_unknown_or_repeated_id(mapi: Api):
    emu = mapi.emu
    ids = [book(emu, f"B{i}", None) for i in range(4)]
    for bad in (ids + [999], ids[:1] * 2):
        assert_error(mapi.put("/api/v1/books/personal-rating", json={"ids": bad, "rating": 6}), 400,
                     "d != java.lang.String")
    assert emu.state.ratings() == []


def test_rating_fixed_bugs():
    with start_emulator(fixed_bugs=True) as emu:
        api = Api(emu)
        a = book(emu)
        assert_error(api.put("/api/v1/books/personal-rating", json={"ids": [a, 999], "rating": 6}), 404,
                     "Book not found with ID: 999")
        assert len(api.put("/api/v1/books/personal-rating", json={"ids": [a, a], "rating": 6}).json()) == 1


def test_rating_limits_and_missing_ids(mapi: Api):
    assert_error(mapi.put("/api/v1/books/personal-rating", json={"ids": list(range(501)), "rating": 2}), 400,
                 "Validation error", ["ids: size must be between 0 and 500"])
    assert_error(mapi.put("/api/v1/books/personal-rating", json={"rating": 2}), 500, UNEXPECTED)
    assert_error(mapi.put("/api/v1/books/personal-rating", json={"ids": None, "rating": 2}), 500, UNEXPECTED)
    assert_error(mapi.put("/api/v1/books/personal-rating", json={"ids": "1", "rating": 2}), 400, MALFORMED)


def test_rating_no_library_check(api: Api, emu):
    other = book(emu, "Elsewhere", None, library_id=2)
    assert api.put("/api/v1/books/personal-rating", json={"ids": [other], "rating": 4}).status_code == 200


# ---------------------------------------------------------------- §3.14 annotations

ANN = {"cfi": "epubcfi(/6/4!/4/2/1:0)", "text": "Call me Ishmael."}


def test_annotation_create_shape_and_defaults(mapi: Api):
    emu = mapi.emu
    bid = book(emu)
    r = mapi.post("/api/v1/annotations", json=dict(ANN, bookId=bid))
    assert r.status_code == 200  # not 201
    body = r.json()
    assert set(body) == {"id", "userId", "bookId", "cfi", "text", "color", "style", "note", "chapterTitle",
                         "createdAt", "updatedAt"}
    assert (body["color"], body["style"], body["note"], body["chapterTitle"]) == ("#FFFF00", "highlight", None, None)
    assert LOCAL_DT.match(body["createdAt"])
    assert emu.state.annotations()[0]["id"] == body["id"]


def test_annotation_duplicate_409(mapi: Api):
    bid = book(mapi.emu)
    assert mapi.post("/api/v1/annotations", json=dict(ANN, bookId=bid)).status_code == 200
    assert_error(mapi.post("/api/v1/annotations", json=dict(ANN, bookId=bid, text="other")), 409,
                 "Annotation already exists at this location")
    # other users are separate
    assert mapi.post("/api/v1/annotations", auth="admin", json=dict(ANN, bookId=bid)).status_code == 200


@pytest.mark.parametrize("patch,details", [
    ({"bookId": None}, ["bookId: Book ID is required"]),
    ({"cfi": ""}, ["cfi: CFI is required"]),
    ({"cfi": "c" * 1001}, ["cfi: size must be between 0 and 1000"]),
    ({"text": None}, ["text: Text is required"]),
    ({"text": "t" * 5001}, ["text: size must be between 0 and 5000"]),
    ({"color": "yellow"}, ["color: Color must be a valid hex color (e.g., #FFFF00)"]),
    ({"style": "bold"}, ['style: must match "^(highlight|underline|strikethrough|squiggly)$"']),
    ({"note": "n" * 5001}, ["note: size must be between 0 and 5000"]),
    ({"chapterTitle": "c" * 501}, ["chapterTitle: size must be between 0 and 500"]),
])
def test_annotation_validation(api: Api, emu, patch, details):
    bid = book(emu)
    assert_error(api.post("/api/v1/annotations", json={**ANN, "bookId": bid, **patch}), 400, "Validation error", details)


def test_annotation_unknown_book_500_and_order_of_checks(api: Api, emu):
    assert_error(api.post("/api/v1/annotations", json=dict(ANN, bookId=777)), 500, UNEXPECTED)
    # a stored (user, book, cfi) row gives 409 even when the book no longer exists
    bid = book(emu)
    api.post("/api/v1/annotations", json=dict(ANN, bookId=bid))
    emu.state.update_book(bid, deleted=True)
    assert_error(api.post("/api/v1/annotations", json=dict(ANN, bookId=bid)), 409,
                 "Annotation already exists at this location")


def test_annotation_fixed_bugs_unknown_book_404():
    with start_emulator(fixed_bugs=True) as emu:
        assert_error(Api(emu).post("/api/v1/annotations", json=dict(ANN, bookId=5)), 404, "Book not found with ID: 5")


def test_annotation_other_routes(api: Api, emu):
    bid = book(emu)
    first = api.post("/api/v1/annotations", json=dict(ANN, bookId=bid)).json()
    emu.state.advance_clock(5)
    second = api.post("/api/v1/annotations", json=dict(ANN, bookId=bid, cfi="epubcfi(/6/6!/4/2/1:0)")).json()
    assert [a["id"] for a in api.get(f"/api/v1/annotations/book/{bid}").json()] == [second["id"], first["id"]]
    assert api.get(f"/api/v1/annotations/{first['id']}").json() == first
    upd = api.put(f"/api/v1/annotations/{first['id']}", json={"color": "#00FF00", "style": "underline", "note": "n"})
    assert upd.status_code == 200 and (upd.json()["color"], upd.json()["note"]) == ("#00FF00", "n")
    assert api.delete(f"/api/v1/annotations/{first['id']}").status_code == 204
    assert_error(api.get(f"/api/v1/annotations/{first['id']}"), 500, UNEXPECTED)
    assert_error(api.get(f"/api/v1/annotations/{second['id']}", auth="admin"), 500, UNEXPECTED)  # not the owner
    assert_forbidden(api.post("/api/v1/annotations", auth="ko", json=dict(ANN, bookId=bid)), "/api/v1/annotations")


# ---------------------------------------------------------------- §3.15 v2 notes

NOTE = {"cfi": "epubcfi(/6/4!/4/2/1:0)", "noteContent": "A thought.", "selectedText": "Ishmael"}


def test_note_v2_create_and_409(mapi: Api):
    emu = mapi.emu
    bid = book(emu)
    r = mapi.post("/api/v2/book-notes", json=dict(NOTE, bookId=bid))
    assert r.status_code == 200
    assert set(r.json()) == {"id", "userId", "bookId", "cfi", "selectedText", "noteContent", "color",
                             "chapterTitle", "createdAt", "updatedAt"}
    assert r.json()["color"] == "#FFC107"
    assert_error(mapi.post("/api/v2/book-notes", json=dict(NOTE, bookId=bid)), 409, "Note already exists at this location")
    # a highlight at the same CFI is a separate row
    assert mapi.post("/api/v1/annotations", json=dict(ANN, bookId=bid)).status_code == 200
    assert len(emu.state.notes_v2()) == 1 and len(emu.state.annotations()) == 1


@pytest.mark.parametrize("patch,details", [
    ({"bookId": None}, ["bookId: Book ID is required"]),
    ({"cfi": None}, ["cfi: CFI is required"]),
    ({"noteContent": ""}, ["noteContent: Note content is required"]),
    ({"selectedText": "s" * 5001}, ["selectedText: size must be between 0 and 5000"]),
])
def test_note_v2_validation(api: Api, emu, patch, details):
    bid = book(emu)
    assert_error(api.post("/api/v2/book-notes", json={**NOTE, "bookId": bid, **patch}), 400, "Validation error", details)


def test_note_v2_unknown_book_and_routes(api: Api, emu):
    assert_error(api.post("/api/v2/book-notes", json=dict(NOTE, bookId=404)), 500, UNEXPECTED)
    bid = book(emu)
    n = api.post("/api/v2/book-notes", json=dict(NOTE, bookId=bid)).json()
    assert api.get(f"/api/v2/book-notes/book/{bid}").json() == [n]
    assert api.get(f"/api/v2/book-notes/{n['id']}").json() == n
    assert api.put(f"/api/v2/book-notes/{n['id']}", json={"noteContent": "B"}).json()["noteContent"] == "B"
    assert api.delete(f"/api/v2/book-notes/{n['id']}").status_code == 204
    assert emu.state.notes_v2() == []


# ---------------------------------------------------------------- §3.16 v1 notes


def test_book_note_create_no_dedup_update_list(mapi: Api):
    emu = mapi.emu
    bid = book(emu)
    body = {"bookId": bid, "title": "T", "content": "C"}
    first = mapi.post("/api/v1/book-notes", json=body)
    assert first.status_code == 200
    assert set(first.json()) == {"id", "userId", "bookId", "title", "content", "createdAt", "updatedAt"}
    emu.state.advance_clock(2)
    second = mapi.post("/api/v1/book-notes", json=body).json()
    assert len(emu.state.book_notes()) == 2 and second["id"] != first.json()["id"]
    emu.state.advance_clock(2)
    upd = mapi.post("/api/v1/book-notes", json=dict(body, id=first.json()["id"], content="C2")).json()
    assert upd["id"] == first.json()["id"] and upd["content"] == "C2"
    assert [n["id"] for n in mapi.get(f"/api/v1/book-notes/book/{bid}").json()] == [upd["id"], second["id"]]
    assert mapi.delete(f"/api/v1/book-notes/{second['id']}").status_code == 204
    assert len(emu.state.book_notes()) == 1


def test_book_note_errors(mapi: Api):
    emu = mapi.emu
    assert_error(mapi.post("/api/v1/book-notes", json={"bookId": 55, "content": "x"}), 404, "Book not found with ID: 55")
    assert_error(mapi.post("/api/v1/book-notes", json={"title": "t", "content": " "}), 400, "Validation error",
                 ["bookId: Book ID is required", "content: Content is required"])
    bid = book(emu)
    assert_error(mapi.post("/api/v1/book-notes", json={"bookId": bid, "title": "t" * 256, "content": "x"}),
                 400, DATA_CONFLICT)
    other = mapi.post("/api/v1/book-notes", auth="admin", json={"bookId": bid, "content": "x"}).json()
    assert_error(mapi.post("/api/v1/book-notes", json={"id": other["id"], "bookId": bid, "content": "y"}), 500, UNEXPECTED)


# ---------------------------------------------------------------- §3.17 bookmarks


def test_bookmark_create_shape_and_409(mapi: Api):
    bid = book(mapi.emu)
    r = mapi.post("/api/v1/bookmarks", json={"bookId": bid, "cfi": "epubcfi(/6/2!/4)", "title": "Here"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"id", "userId", "bookId", "cfi", "positionMs", "trackIndex", "title", "color", "notes",
                         "priority", "createdAt", "updatedAt"}
    assert (body["priority"], body["color"], body["notes"], body["positionMs"]) == (3, None, None, None)
    assert_error(mapi.post("/api/v1/bookmarks", json={"bookId": bid, "cfi": "epubcfi(/6/2!/4)"}), 409,
                 "Bookmark already exists at this location")


def test_bookmark_without_cfi_never_deduplicated(api: Api, emu):
    bid = book(emu)
    for _ in range(2):
        assert api.post("/api/v1/bookmarks", json={"bookId": bid, "title": "Page 12"}).status_code == 200
    assert len(emu.state.bookmarks()) == 2


def test_bookmark_audiobook_near_position(api: Api, emu):
    bid = book(emu)
    assert api.post("/api/v1/bookmarks", json={"bookId": bid, "positionMs": 10_000, "trackIndex": 0}).status_code == 200
    assert_error(api.post("/api/v1/bookmarks", json={"bookId": bid, "positionMs": 10_500, "trackIndex": 0}), 409,
                 "A bookmark already exists near this position")


def test_bookmark_errors_and_routes(api: Api, emu):
    assert_error(api.post("/api/v1/bookmarks", json={"cfi": "x"}), 400, "Validation error", ["bookId: must not be null"])
    assert_error(api.post("/api/v1/bookmarks", json={"bookId": 31, "cfi": "x"}), 500, UNEXPECTED)
    bid = book(emu)
    assert_error(api.post("/api/v1/bookmarks", json={"bookId": bid, "title": "t" * 256}), 400, DATA_CONFLICT)
    bm = api.post("/api/v1/bookmarks", json={"bookId": bid, "cfi": "c"}).json()
    assert api.get(f"/api/v1/bookmarks/book/{bid}").json() == [bm]
    assert api.get(f"/api/v1/bookmarks/{bm['id']}").json() == bm
    assert_error(api.put(f"/api/v1/bookmarks/{bm['id']}", json={"priority": 9}), 400, "Validation error",
                 ["priority: must be less than or equal to 5"])
    assert api.put(f"/api/v1/bookmarks/{bm['id']}", json={"priority": 1, "notes": "n"}).json()["priority"] == 1
    assert api.delete(f"/api/v1/bookmarks/{bm['id']}").status_code == 204
    assert emu.state.bookmarks() == []

"""§3.10–§3.12: single session, batch (all or nothing), the paged list."""

from __future__ import annotations

import pytest

from booklore_sync.emulator import start_emulator

from .conftest import (
    DATA_CONFLICT,
    MALFORMED,
    UNEXPECTED,
    Api,
    assert_error,
    assert_forbidden,
    book,
)

S = {"bookType": "EPUB", "startTime": "2026-02-22T14:00:00Z", "endTime": "2026-02-22T14:10:00Z",
     "durationSeconds": 600}
ITEM = {"startTime": "2026-02-22T14:00:00Z", "endTime": "2026-02-22T14:10:00Z", "durationSeconds": 600}


def item(i: int, **kw) -> dict:
    out = {"startTime": f"2026-02-22T{10 + i // 60:02d}:{i % 60:02d}:00Z",
           "endTime": f"2026-02-22T{10 + i // 60:02d}:{i % 60:02d}:30Z", "durationSeconds": 30}
    out.update(kw)
    return out


# ---------------------------------------------------------------- §3.10 single


def test_single_session_202_empty_and_stored(mapi: Api):
    emu = mapi.emu
    bid = book(emu)
    body = dict(S, bookId=bid, startTime="2026-02-22T14:00:00.7Z", durationFormatted="10m",
                startProgress=10.5, endProgress=12.25, progressDelta=1.75, startLocation="a", endLocation="b",
                bookHash="ignored", koreaderBookId=3)
    r = mapi.post("/api/v1/reading-sessions", json=body)
    assert r.status_code == 202 and r.content == b""
    [s] = emu.state.sessions()
    assert s["startTime"] == "2026-02-22T14:00:00Z"  # whole seconds
    assert (s["bookId"], s["bookType"], s["durationSeconds"], s["startProgress"]) == (bid, "EPUB", 600, 10.5)


def test_single_session_no_dedup(api: Api, emu):
    bid = book(emu)
    for _ in range(2):
        assert api.post("/api/v1/reading-sessions", json=dict(S, bookId=bid)).status_code == 202
    assert len(emu.state.sessions()) == 2


def test_single_session_validation(mapi: Api):
    r = mapi.post("/api/v1/reading-sessions", json={"bookType": "EPUB"})
    assert_error(r, 400, "Validation error", ["bookId: must not be null", "startTime: must not be null",
                                              "endTime: must not be null", "durationSeconds: must not be null"])


@pytest.mark.parametrize("patch", [
    {"bookType": "epub"}, {"bookType": "CBZ"}, {"startTime": "yesterday"}, {"durationSeconds": "abc"},
    {"startTime": "2026-02-22T14:00:00"},  # no offset
    {"durationSeconds": 2**31},
])
def test_single_session_malformed(mapi: Api, patch):
    bid = book(mapi.emu)
    assert_error(mapi.post("/api/v1/reading-sessions", json=dict(S, bookId=bid, **patch)), 400, MALFORMED)


def test_single_session_data_conflicts(mapi: Api):
    bid = book(mapi.emu)
    no_type = {k: v for k, v in S.items() if k != "bookType"}
    assert_error(mapi.post("/api/v1/reading-sessions", json=dict(no_type, bookId=bid)), 400, DATA_CONFLICT)
    assert_error(mapi.post("/api/v1/reading-sessions", json=dict(S, bookId=bid, durationFormatted="x" * 51)),
                 400, DATA_CONFLICT)
    assert_error(mapi.post("/api/v1/reading-sessions", json=dict(S, bookId=bid, endLocation="x" * 501)),
                 400, DATA_CONFLICT)
    assert mapi.emu.state.sessions() == []


def test_single_session_accepts_negative_duration_and_end_before_start(api: Api, emu):
    bid = book(emu)
    body = dict(S, bookId=bid, durationSeconds=-5, endTime="2026-02-22T13:00:00Z")
    assert api.post("/api/v1/reading-sessions", json=body).status_code == 202


def test_single_session_unknown_book(mapi: Api):
    assert_error(mapi.post("/api/v1/reading-sessions", json=dict(S, bookId=42)), 404, "Book not found with ID: 42")


def test_single_session_library_access(mapi: Api, mode):
    bid = book(mapi.emu, library_id=2)
    r = mapi.post("/api/v1/reading-sessions", json=dict(S, bookId=bid))
    if mode == "fork":
        assert_error(r, 404, f"Book not found with ID: {bid}")
    else:
        assert r.status_code == 202  # upstream: no access check


def test_single_session_wrong_content_type_is_500(api: Api, emu):
    bid = book(emu)
    import json

    r = api.post("/api/v1/reading-sessions", content=json.dumps(dict(S, bookId=bid)),
                 headers={"Content-Type": "text/plain"})
    assert_error(r, 500, UNEXPECTED)


def test_fork_2675_single_session_koreader_only():
    with start_emulator(mode="fork-2675") as emu:
        api = Api(emu)
        bid = book(emu)
        assert api.post("/api/v1/reading-sessions", auth="ko", json=dict(S, bookId=bid)).status_code == 202
        assert_forbidden(api.post("/api/v1/reading-sessions", json=dict(S, bookId=bid)),
                         "/api/v1/reading-sessions")


# ---------------------------------------------------------------- §3.11 batch


@pytest.mark.parametrize("auth", ["demo", "ko"])
def test_batch_200_shape_echo_and_whole_second_storage(api: Api, emu, auth):
    bid = book(emu)
    items = [item(0), dict(item(1), startTime="2026-02-22T10:01:00.250Z", durationFormatted="30s",
                           startLocation="s", endLocation="e", startProgress=1, endProgress=2, progressDelta=1)]
    r = api.post("/api/v1/reading-sessions/batch", auth=auth, json={"bookId": bid, "bookType": "PDF", "sessions": items})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["totalRequested"] == 2 and body["successCount"] == 2
    stored = emu.state.sessions()
    assert [x["sessionId"] for x in body["results"]] == [s["id"] for s in stored]
    assert body["results"][1] == {"sessionId": stored[1]["id"], "startTime": "2026-02-22T10:01:00.25Z",
                                  "endTime": "2026-02-22T10:01:30Z"}
    assert stored[1]["startTime"] == "2026-02-22T10:01:00Z" and stored[1]["bookType"] == "PDF"


def test_batch_validation_messages(api: Api, emu):
    assert_error(api.post("/api/v1/reading-sessions/batch", json={}), 400, "Validation error",
                 ["bookId: Book ID is required", "bookType: Book type is required",
                  "sessions: Sessions list cannot be empty"])
    bid = book(emu)
    bad = [{"durationSeconds": 1, "startLocation": "x" * 501},
           {"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T00:00:01Z", "endLocation": "é" * 501}]
    assert_error(api.post("/api/v1/reading-sessions/batch", json={"bookId": bid, "bookType": "EPUB", "sessions": bad}),
                 400, "Validation error",
                 ["sessions[0].startTime: Start time is required", "sessions[0].endTime: End time is required",
                  "sessions[0].startLocation: Start location must not exceed 500 characters",
                  "sessions[1].durationSeconds: Duration is required",
                  "sessions[1].endLocation: End location must not exceed 500 characters"])


def test_batch_size_limit(api: Api, emu):
    bid = book(emu)
    many = [item(i % 600) for i in range(1001)]
    assert_error(api.post("/api/v1/reading-sessions/batch", json={"bookId": bid, "bookType": "EPUB", "sessions": many}),
                 400, "Validation error", ["sessions: Sessions list cannot exceed 1000 items"])
    r = api.post("/api/v1/reading-sessions/batch", json={"bookId": bid, "bookType": "EPUB", "sessions": many[:1000]})
    assert r.status_code == 200 and r.json()["successCount"] == 1000


def test_batch_end_before_start_stores_nothing(api: Api, emu):
    bid = book(emu)
    items = [item(0), item(1, endTime="2026-02-22T09:00:00Z"), dict(item(2), endTime=item(2)["startTime"])]
    assert_error(api.post("/api/v1/reading-sessions/batch", json={"bookId": bid, "bookType": "EPUB", "sessions": items}),
                 400, "End time must be after start time")
    assert emu.state.sessions() == []
    equal = dict(item(2), endTime=item(2)["startTime"])
    assert api.post("/api/v1/reading-sessions/batch",
                    json={"bookId": bid, "bookType": "EPUB", "sessions": [equal]}).status_code == 200


def test_batch_data_conflict_is_all_or_nothing(api: Api, emu):
    bid = book(emu)
    items = [item(0), item(1, durationFormatted="x" * 51)]
    assert_error(api.post("/api/v1/reading-sessions/batch", json={"bookId": bid, "bookType": "EPUB", "sessions": items}),
                 400, DATA_CONFLICT)
    assert emu.state.sessions() == []


def test_batch_unknown_book_and_access(api: Api, emu):
    body = {"bookId": 99, "bookType": "EPUB", "sessions": [ITEM]}
    assert_error(api.post("/api/v1/reading-sessions/batch", json=body), 404, "Book not found with ID: 99")
    bid = book(emu, library_id=2)
    assert_error(api.post("/api/v1/reading-sessions/batch", json=dict(body, bookId=bid)), 404,
                 f"Book not found with ID: {bid}")


def test_batch_malformed(api: Api, emu):
    bid = book(emu)
    for body in ({"bookId": bid, "bookType": "EPUB", "sessions": "x"},
                 {"bookId": bid, "bookType": "Epub", "sessions": [ITEM]},
                 {"bookId": bid, "bookType": "EPUB", "sessions": [dict(ITEM, startTime="nope")]}):
        assert_error(api.post("/api/v1/reading-sessions/batch", json=body), 400, MALFORMED)


def test_batch_upstream_absent():
    with start_emulator(mode="upstream") as emu:
        api = Api(emu)
        bid = book(emu)
        body = {"bookId": bid, "bookType": "EPUB", "sessions": [ITEM]}
        assert_forbidden(api.post("/api/v1/reading-sessions/batch", auth="ko", json=body),
                         "/api/v1/reading-sessions/batch")
        assert_forbidden(api.post("/api/v1/reading-sessions/batch", auth=None, json=body),
                         "/api/v1/reading-sessions/batch")
        assert_error(api.post("/api/v1/reading-sessions/batch", json=body), 500, UNEXPECTED)
        assert emu.state.sessions() == []


def test_batch_fork_2675_bearer_only_no_maximum():
    with start_emulator(mode="fork-2675") as emu:
        api = Api(emu)
        bid = book(emu)
        body = {"bookId": bid, "bookType": "EPUB", "sessions": [item(i % 600) for i in range(1001)]}
        assert_forbidden(api.post("/api/v1/reading-sessions/batch", auth="ko", json=body),
                         "/api/v1/reading-sessions/batch")
        assert api.post("/api/v1/reading-sessions/batch", json=body).json()["successCount"] == 1001


# ---------------------------------------------------------------- §3.12 list


def test_list_sessions_shape_order_paging(mapi: Api):
    emu = mapi.emu
    bid = book(emu)
    for i in (3, 1, 7, 5, 2, 6, 4):
        mapi.post("/api/v1/reading-sessions", json=dict(S, bookId=bid, startTime=item(i)["startTime"],
                                                        endTime=item(i)["endTime"], durationFormatted="x"))
    r = mapi.get(f"/api/v1/reading-sessions/book/{bid}")
    assert r.status_code == 200
    body = r.json()
    assert body["page"] == {"size": 5, "number": 0, "totalElements": 7, "totalPages": 2}  # default size 5
    starts = [c["startTime"] for c in body["content"]]
    assert starts == sorted(starts, reverse=True) and len(starts) == 5
    c = body["content"][0]
    assert set(c) == {"id", "bookId", "bookTitle", "bookType", "startTime", "endTime", "durationSeconds",
                      "startProgress", "endProgress", "progressDelta", "startLocation", "endLocation", "createdAt"}
    assert c["bookTitle"] == "Dune" and c["startProgress"] is None
    page1 = mapi.get(f"/api/v1/reading-sessions/book/{bid}?page=1&size=5").json()
    assert len(page1["content"]) == 2 and page1["page"]["number"] == 1
    full = mapi.get(f"/api/v1/reading-sessions/book/{bid}?page=0&size=100").json()
    assert full["page"] == {"size": 100, "number": 0, "totalElements": 7, "totalPages": 1}


def test_list_follows_sessions_added_between_reads_and_renumbered_books(api: Api, emu):
    """The list is read through an index by book: sessions added after a read (single
    and batch), of two books, show at once; renumbered books and a reset are followed."""
    a, b = book(emu), book(emu, title="Emma", file_hash="e" * 32)

    def total(bid: int) -> int:
        return api.get(f"/api/v1/reading-sessions/book/{bid}").json()["page"]["totalElements"]

    assert total(a) == total(b) == 0
    api.post("/api/v1/reading-sessions", json=dict(S, bookId=a))
    assert (total(a), total(b)) == (1, 0)
    r = api.post("/api/v1/reading-sessions/batch",
                  json={"bookId": b, "bookType": "EPUB", "sessions": [item(i) for i in range(3)]})
    assert r.status_code in (200, 201, 202)
    assert (total(a), total(b)) == (1, 3)
    emu.state.renumber(100)
    assert (total(a + 100), total(b + 100)) == (1, 3)
    emu.state.reset()
    assert emu.state.sessions() == []


def test_list_sessions_only_own(api: Api, emu):
    bid = book(emu)
    api.post("/api/v1/reading-sessions", auth="admin", json=dict(S, bookId=bid))
    assert api.get(f"/api/v1/reading-sessions/book/{bid}").json()["page"]["totalElements"] == 0
    assert api.get(f"/api/v1/reading-sessions/book/{bid}", auth="admin").json()["page"]["totalElements"] == 1


@pytest.mark.parametrize("query,detail", [
    ("size=0", "size: must be greater than or equal to 1"),
    ("size=101", "size: must be less than or equal to 100"),
    ("page=-1", "page: must be greater than or equal to 0"),
])
def test_list_sessions_limits(mapi: Api, query, detail):
    bid = book(mapi.emu)
    assert_error(mapi.get(f"/api/v1/reading-sessions/book/{bid}?{query}"), 400, "Validation error", [detail])


def test_list_sessions_errors(mapi: Api):
    assert_error(mapi.get("/api/v1/reading-sessions/book/77"), 404, "Book not found with ID: 77")
    bid = book(mapi.emu)
    assert_forbidden(mapi.get(f"/api/v1/reading-sessions/book/{bid}", auth="ko"),
                     f"/api/v1/reading-sessions/book/{bid}")
    assert_error(mapi.get(f"/api/v1/reading-sessions/book/{bid}?size=x"), 500, UNEXPECTED)
    assert_error(mapi.get("/api/v1/reading-sessions/book/x"), 500, UNEXPECTED)

"""Unit tests (httpx.MockTransport) of the wire rules of issue 10 and issue 14 on the
client side: Sync switched off, old releases (route missing), 409/404 reading, blank and
oversized texts, CBX/PDF bookmarks, short-lived tokens, Grimmory, connection causes, the
URL check for ``login``, the request hook, and the new routes."""

from __future__ import annotations

import itertools
import json
import logging
import ssl
import time

import httpx
import pytest

from booklore_sync.booklore import (
    CUT_MARKER,
    AlreadyExistsError,
    AuthError,
    BlankTextError,
    BookLoreClient,
    BookNotFoundError,
    Capabilities,
    ConflictError,
    NotFoundError,
    OfflineError,
    RequestEvent,
    RouteMissingError,
    ServerError,
    SkipError,
    SyncClient,
    SyncDisabledError,
    check_server,
    fit_text_column,
    normalize_server_url,
)
from booklore_sync.booklore import auth as auth_mod
from booklore_sync.booklore.auth import Tokens

from .fakes import (
    BL_PASSWORD,
    KO_PASSWORD,
    FakeServer,
    MemoryCapabilityCache,
    bearer_route,
    err,
    html,
    json_resp,
    make_client,
    make_jwt,
)

_counter = itertools.count()
HASH = "59d481d168cca6267322f150c5f6a2a3"


@pytest.fixture(autouse=True)
def fast_token_spacing(monkeypatch):
    monkeypatch.setattr(auth_mod, "TOKEN_SPACING_SECONDS", 0.0)


@pytest.fixture
def url() -> str:
    return f"http://fl-{next(_counter)}.test:6060"


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


def make(url: str, fake: FakeServer, *, bl: bool = True, ko: bool = True, **kw) -> BookLoreClient:
    return make_client(url, fake, bl=bl, ko=ko, **kw)


def health(version: str) -> httpx.Response:
    return json_resp(200, {"status": 200, "message": "Pong", "data": {"status": "UP", "version": version}})


def spring(status: int, path: str) -> httpx.Response:
    error = "Unauthorized" if status == 401 else "Forbidden"
    return json_resp(status, {"timestamp": "2026-01-01T00:00:00.000+00:00", "status": status, "error": error,
                              "path": path})


def upstream_routes(fake: FakeServer, version: str) -> None:
    """A stock BookLore of the given release, as far as the probe sees it."""
    fake.routes[("GET", "/api/v1/healthcheck")] = health(version)
    fake.routes[("GET", "/api/koreader/users/auth")] = json_resp(200, {"username": "kodemo"})

    fake.routes[("GET", "/api/v1/books/search")] = bearer_route(fake, lambda r: err(500, "An unexpected error occurred."))


def probe_upstream(c: BookLoreClient, fake: FakeServer) -> Capabilities:
    # by-hash with random hashes: answered like an nginx-era release
    fake.prefix.append(("GET", "/api/koreader/books/by-hash/",
                        lambda r: err(404, f"Resource not found: No static resource {r.url.path[1:]}.")))
    return c.probe()


# ------------------------------------------------------------------ (a) Sync switched off


def test_sync_disabled_is_its_own_skip_and_the_account_stays_usable(url, fake):
    fake.routes[("PUT", "/api/koreader/syncs/progress")] = err(401, "Sync is disabled for this user")
    fake.routes[("GET", "/api/koreader/users/auth")] = json_resp(200, {"username": "kodemo"})
    with make(url, fake, bl=False) as c:
        with pytest.raises(SyncDisabledError) as info:
            c.put_progress(HASH, progress="/body/p[1]", percentage=0.5, device="d", device_id="i")
        exc = info.value
        assert isinstance(exc, SkipError) and isinstance(exc, AuthError) and exc.kind == "sync_disabled"
        assert "enable Sync for this KOReader user" in exc.reason and exc.last_error == exc.reason
        assert c.check_koreader_auth() == "kodemo"  # nothing blocked the KOReader account


def test_grimmory_bad_koreader_credentials_are_not_sync_disabled(url, fake):
    fake.routes[("PUT", "/api/koreader/syncs/progress")] = spring(401, "/api/koreader/syncs/progress")
    with make(url, fake, bl=False) as c, pytest.raises(AuthError) as info:
        c.put_progress(HASH, progress="1", percentage=0.5, device="d", device_id="i")
    assert not isinstance(info.value, SyncDisabledError) and info.value.kind == "rejected"


def test_login_check_reads_the_sync_switch(url, fake):
    fake.routes[("GET", "/api/koreader/users/auth")] = json_resp(200, {"username": "kodemo"})
    sync = {"on": False}

    def progress(req):
        return err(404, "Book not found for hash x") if sync["on"] else err(401, "Sync is disabled for this user")

    fake.prefix.append(("GET", "/api/koreader/syncs/progress/", progress))
    result = check_server(url, koreader_user="kodemo", koreader_password=KO_PASSWORD,
                          booklore_user="demo", booklore_password=BL_PASSWORD, transport=fake.transport())
    assert result.ok and result.koreader_sync is False and result.version == "v1.2.3"
    sync["on"] = True
    assert check_server(url, koreader_user="kodemo", koreader_password=KO_PASSWORD,
                        transport=fake.transport()).koreader_sync is True


# ------------------------------------------------------------------ (b) old servers


def test_route_missing_by_release_sends_nothing(url, fake):
    cache = MemoryCapabilityCache()
    upstream_routes(fake, "v1.16.3")
    with make(url, fake, capability_cache=cache) as c:
        caps = probe_upstream(c, fake)
        assert caps.server == "booklore" and caps.describe() == "BookLore 1.16.3"
        before = len(fake.requests)
        with pytest.raises(RouteMissingError) as info:
            c.create_annotation(7, cfi="epubcfi(/6/4)", text="hi")
        assert str(info.value.message) == (
            "this server (BookLore 1.16.3) has no annotation route; BookLore ≥ 1.18 or Grimmory needed")
        assert isinstance(info.value, SkipError) and info.value.reason == info.value.message
        with pytest.raises(RouteMissingError):
            c.create_book_note_v2(7, cfi="epubcfi(/6/4)", note_content="n")
        assert len(fake.requests) == before  # nothing was sent
        assert c.has_route("sessions") is True and c.has_route("bookmarks") is True


def test_old_release_without_healthcheck(url, fake):
    fake.routes[("GET", "/api/v1/healthcheck")] = spring(403, "/api/v1/healthcheck")
    fake.routes[("POST", "/api/v1/bookmarks")] = err(404, "Resource not found: No static resource api/v1/bookmarks.")
    with make(url, fake) as c:
        h = c.healthcheck()
        assert h.no_healthcheck and h.version is None
        c._caps = Capabilities(flavour="upstream", server="booklore", no_healthcheck=True)
        assert c.describe_server() == "BookLore older than 1.16.2"
        assert c.has_route("annotations") is False and c.has_route("ratings") is None
        with pytest.raises(RouteMissingError) as info:
            c.create_bookmark(7, cfi="epubcfi(/6/4)", title="b")  # 1.14.1 < 1.16.2: unknown, so it is sent
    assert fake.count("POST", "/api/v1/bookmarks") == 1
    assert "bookmark route" in info.value.message


def test_route_learnt_from_first_answer_and_cached(url, fake):
    cache = MemoryCapabilityCache()
    fake.routes[("POST", "/api/v1/annotations")] = err(404, "Resource not found: No static resource api/v1/annotations.")
    with make(url, fake, capability_cache=cache) as c:
        c._caps = Capabilities(version="development", flavour="upstream", server="booklore", probed_at=time.time())
        assert c.has_route("annotations") is None
        with pytest.raises(RouteMissingError) as info:
            c.create_annotation(7, cfi="epubcfi(/6/4)", text="x")
        assert not isinstance(info.value, NotFoundError)  # never unlinks a book
        with pytest.raises(RouteMissingError):
            c.create_annotation(8, cfi="epubcfi(/6/4)", text="y")
    assert fake.count("POST", "/api/v1/annotations") == 1  # remembered: not asked again
    assert tuple(cache.data[url]["missing_routes"]) == ("annotations",)


def test_500_then_list_check_finds_missing_route(url, fake):
    fake.routes[("POST", "/api/v2/book-notes")] = err(500, "Request method 'POST' is not supported")
    fake.routes[("GET", "/api/v1/books/7")] = bearer_route(fake, lambda r: json_resp(200, {"id": 7}))
    fake.routes[("GET", "/api/v2/book-notes/book/7")] = html()
    fake.routes[("GET", "/api/v1/books/9")] = bearer_route(fake, lambda r: err(404, "Book not found with ID: 9"))
    with make(url, fake) as c:
        c._caps = Capabilities(version=None, flavour="upstream", server="booklore", no_healthcheck=False)
        with pytest.raises(BookNotFoundError):
            c.create_book_note_v2(9, cfi="epubcfi(/6/4)", note_content="x", check_book=True)
        with pytest.raises(RouteMissingError) as info:
            c.create_book_note_v2(7, cfi="epubcfi(/6/4)", note_content="x", check_book=True)
        assert "in-book note route" in info.value.message
        # without check_book a 500 stays a plain ServerError (the old behaviour)
        c._caps = Capabilities(version="v2.3.0", flavour="upstream", server="booklore")
        with pytest.raises(ServerError):
            c.create_book_note_v2(7, cfi="epubcfi(/6/4)", note_content="x")


def test_ratings_route_learnt_with_the_empty_put(url, fake):
    fake.routes[("PUT", "/api/v1/books/personal-rating")] = err(500, "An unexpected error occurred.")
    with make(url, fake) as c:
        c._caps = Capabilities(flavour="upstream", server="booklore", no_healthcheck=True)
        with pytest.raises(RouteMissingError) as info:
            c.set_personal_rating([1, 2], 8)
        assert "rating route; BookLore ≥ 1.14 or Grimmory needed" in info.value.message
        with pytest.raises(RouteMissingError):
            c.set_personal_rating([3], 8)
    bodies = [json.loads(r.content) for r in fake.requests if r.url.path.endswith("personal-rating")]
    assert bodies == [{"ids": [1, 2], "rating": 8}, {"ids": [], "rating": None}]


def test_grimmory_has_every_route(url, fake):
    c = make(url, fake)
    c._caps = Capabilities(version="v3.2.4", server="grimmory", flavour="upstream")
    assert c.describe_server() == "Grimmory 3.2.4"
    assert all(c.has_route(k) for k in ("annotations", "notes_v2", "sessions", "status", "ratings"))
    c.close()


# ------------------------------------------------------------------ (c) 409 and 404


@pytest.mark.parametrize(
    "response,error",
    [
        (lambda: err(404, "Book not found with ID: 7"), BookNotFoundError),
        (lambda: err(404, "Book file not found"), NotFoundError),
        (lambda: err(409, "A conflict occurred."), ConflictError),
        (lambda: err(409, "Bookmark already exists at this location"), AlreadyExistsError),
    ],
)
def test_404_and_409_are_read(url, fake, response, error):
    fake.routes[("POST", "/api/v1/bookmarks")] = response()
    with make(url, fake) as c, pytest.raises(error) as info:
        c.create_bookmark(7, cfi="epubcfi(/6/4)")
    if error is NotFoundError:
        assert not isinstance(info.value, BookNotFoundError)


def test_route_missing_404_never_is_book_not_found(url, fake):
    fake.routes[("POST", "/api/v1/bookmarks")] = httpx.Response(404, text="<html>nginx</html>",
                                                                headers={"content-type": "text/html"})
    with make(url, fake) as c, pytest.raises(RouteMissingError):
        c.create_bookmark(7, cfi="epubcfi(/6/4)")


# ------------------------------------------------------------------ (d) blank / oversized text


def test_blank_texts_are_never_sent(url, fake):
    with make(url, fake) as c:
        for call in (
            lambda: c.create_annotation(7, cfi="epubcfi(/6/4)", text=""),
            lambda: c.create_book_note_v2(7, cfi="epubcfi(/6/4)", note_content=""),
            lambda: c.create_book_note_v1(7, content=" \n\t "),
        ):
            with pytest.raises(BlankTextError) as info:
                call()
            assert info.value.reason == "blank text: nothing to send"
    assert fake.requests == []


def test_white_space_passes_where_the_server_allows_it(url, fake):
    fake.routes[("POST", "/api/v1/annotations")] = bearer_route(fake, lambda r: json_resp(200, {"id": 1}))
    with make(url, fake) as c:
        assert c.create_annotation(7, cfi="epubcfi(/6/4)", text="  ")["id"] == 1


def test_oversized_text_is_cut_on_a_character_boundary(url, fake):
    seen = []

    def ok(req):
        seen.append(json.loads(req.content))
        return json_resp(200, {"id": 5})

    fake.routes[("POST", "/api/v1/book-notes")] = bearer_route(fake, ok)
    fake.routes[("POST", "/api/v2/book-notes")] = bearer_route(fake, ok)
    long_text = "é" * 40_000  # 80,000 bytes
    with make(url, fake) as c:
        a = c.create_book_note_v1(7, content=long_text, title="t")
        b = c.create_book_note_v2(7, cfi="epubcfi(/6/4)", note_content=long_text)
        small = c.create_book_note_v1(7, content="short")
    assert a.cut and b.cut and not small.cut and a["id"] == 5 and a.id == 5
    for body, key in ((seen[0], "content"), (seen[1], "noteContent")):
        text = body[key]
        assert text.endswith(CUT_MARKER) and len(text.encode("utf-8")) <= 65_535
        assert text[: -len(CUT_MARKER)] == "é" * len(text[: -len(CUT_MARKER)])
    assert seen[2]["content"] == "short"


def test_fit_text_column_edges():
    assert fit_text_column("x" * 65_535).cut is False
    fitted = fit_text_column("😀" * 20_000)  # 4 bytes each
    assert fitted.cut and len(fitted.text.encode()) <= 65_535 and "\ufffd" not in fitted.text


# ------------------------------------------------------------------ (e) CBX and PDF


def test_cbx_and_pdf_bookmarks_and_cbx_notes(url, fake):
    seen = []

    def ok(req):
        seen.append(json.loads(req.content))
        return json_resp(200, {"id": len(seen)})

    fake.routes[("POST", "/api/v1/bookmarks")] = bearer_route(fake, ok)
    fake.routes[("POST", "/api/v2/book-notes")] = bearer_route(fake, ok)
    fake.routes[("GET", "/api/v2/book-notes/book/7")] = bearer_route(fake, lambda r: json_resp(200, [
        {"id": 3, "bookId": 7, "cfi": "12", "noteContent": "mine"}]))
    with make(url, fake) as c:
        c.create_cbx_bookmark(7, 12)
        c.create_pdf_bookmark(7, 4, title="p. 4")
        c.create_cbx_note(7, 12, note_content="mine")
        assert c.cbx_note_present(7, 12, note_content="mine")
        assert not c.cbx_note_present(7, 12, note_content="other")
        with pytest.raises(ValueError):
            c.create_cbx_bookmark(7, 0)
    assert seen[0] == {"bookId": 7, "cfi": "12", "title": "Page 12"}
    assert seen[1] == {"bookId": 7, "title": "p. 4", "pageNumber": 4}
    assert seen[2] == {"bookId": 7, "cfi": "12", "noteContent": "mine", "chapterTitle": "Page 12"}


def test_pdf_bookmark_presence_by_title_or_page(url, fake):
    fake.routes[("GET", "/api/v1/bookmarks/book/7")] = bearer_route(fake, lambda r: json_resp(200, [
        {"id": 9, "cfi": None, "title": "p. 4", "pageNumber": None},
        {"id": 11, "cfi": None, "title": "renamed", "pageNumber": 6},
        {"id": 12, "cfi": "epubcfi(/6/2)", "title": "p. 4"},
    ]))
    with make(url, fake) as c:
        assert c.find_pdf_bookmark(7, title="p. 4") == 9
        assert c.find_pdf_bookmark(7, title="p. 4", exclude={9}) is None
        assert c.find_pdf_bookmark(7, title="p. 6", page_number=6) == 11
        assert c.find_bookmark_on_page(7, 4) == 9 and c.find_bookmark_on_page(7, 6) == 11
        assert [b.id for b in c.bookmarks(7)] == [9, 11, 12]


# ------------------------------------------------------------------ (g) tokens by lifetime


def test_short_tokens_are_not_refreshed_before_every_request(url):
    fake = FakeServer(lifetime=30)  # 30-second access tokens
    now = [1_000_000.0]
    fake.routes[("GET", "/api/v1/books/7")] = bearer_route(fake, lambda r: json_resp(200, {"id": 7}))
    with make(url, fake, clock=lambda: now[0]) as c:
        for _ in range(20):
            c.get_book(7)
            now[0] += 1  # 20 requests within 20 s of a 30-s token
        assert fake.refreshes == 0 and fake.logins == 1
        now[0] += 8  # 28 s: within a tenth of the lifetime (3 s) of expiry
        c.get_book(7)
        assert fake.refreshes == 1


def test_a_fresh_token_is_used_once_before_any_renewal():
    t = Tokens()
    now = 100.0
    t.set_access(make_jwt(lifetime=2, iat=0), now)  # already within any margin
    assert t.access_usable(now + 1)  # fresh: used first
    t.mark_used()
    assert not t.access_usable(now + 1.9)


def test_grimmory_expires_when_the_token_has_no_exp():
    t = Tokens()
    t.set_access("opaque-token", 0.0, expires_in=7200)
    assert t.lifetime == 7200 and t.expires_at == 7200
    t.mark_used()
    assert t.access_usable(7200 - 61) and not t.access_usable(7200 - 59)


# ------------------------------------------------------------------ (h) grimmory


def test_grimmory_login_answer_and_401s(url, fake):
    def login(req):
        tokens = fake.issue()
        return json_resp(200, {**tokens, "expires": 7200, "isDefaultPassword": False})

    fake.routes[("POST", "/api/v1/auth/login")] = login
    fake.routes[("GET", "/api/koreader/users/auth")] = spring(401, "/api/koreader/users/auth")
    fake.routes[("GET", "/api/v1/books/search")] = bearer_route(fake, lambda r: err(500, "An unexpected error occurred."))
    fake.prefix.append(("GET", "/api/koreader/books/by-hash/", lambda r: html()))
    fake.prefix.append(("GET", "/api/v1/books/by-hash/", lambda r: html()))
    with make(url, fake) as c:
        caps = c.probe()
        assert caps.server == "grimmory" and caps.flavour == "upstream" and caps.koreader_auth_ok is False
        assert c.default_password is False
        assert c._tokens.lifetime is not None


# ------------------------------------------------------------------ 3. new routes


def test_book_state_and_status_and_progress_by_id(url, fake):
    seen = []
    book = {"id": 7, "lastReadTime": "2026-02-01T10:00:00Z", "dateFinished": "2026-02-02T10:00:00.5Z",
            "readStatus": "READ", "koreaderProgress": {"percentage": 99.6},
            "primaryFile": {"bookType": "PDF"}, "metadata": {"title": "T"}}
    fake.routes[("GET", "/api/v1/books/7")] = bearer_route(fake, lambda r: json_resp(200, book))

    def status(req):
        seen.append(json.loads(req.content))
        body = seen[-1]
        if body["bookIds"] == [404]:
            return err(400, "d != java.lang.String")
        return json_resp(200, [{"bookId": 7, "readStatus": "ABANDONED", "readStatusModifiedTime": "2026-03-01T00:00:00Z",
                                "dateFinished": None}])

    def progress(req):
        seen.append(json.loads(req.content))
        return httpx.Response(204)

    fake.routes[("POST", "/api/v1/books/status")] = bearer_route(fake, status)
    fake.routes[("POST", "/api/v1/books/progress")] = bearer_route(fake, progress)
    with make(url, fake) as c:
        b = c.get_book(7)
        assert b.read_status == "READ" and b.primary_file_type == "PDF" and b.koreader_percentage == 99.6
        assert b.last_read_time.isoformat() == "2026-02-01T10:00:00+00:00" and b.date_finished.microsecond == 500000
        r = c.set_read_status(7, "ABANDONED")
        assert r.read_status == "ABANDONED" and r.date_finished is None
        with pytest.raises(BookNotFoundError):
            c.set_read_status(404, "READ")
        with pytest.raises(ValueError):
            c.set_read_status(7, "READING")
        c.post_book_progress(7, book_type="PDF", percentage=42.5, page=12)
        c.post_book_progress(7, book_type="EPUB", percentage=10, cfi="epubcfi(/6/4!/4/2/1:0)")
        with pytest.raises(ValueError):
            c.post_book_progress(7, book_type="EPUB", percentage=10)
    assert seen[-2] == {"bookId": 7, "pdfProgress": {"page": 12, "percentage": 42.5}}
    assert seen[-1] == {"bookId": 7, "epubProgress": {"cfi": "epubcfi(/6/4!/4/2/1:0)", "percentage": 10.0}}


def test_updates_use_the_update_routes(url, fake):
    seen = []

    def ok(req):
        seen.append((req.method, req.url.path, json.loads(req.content)))
        return json_resp(200, {"id": 3})

    for key in (("PUT", "/api/v1/annotations/3"), ("PUT", "/api/v2/book-notes/3"), ("POST", "/api/v1/book-notes"),
                ("PUT", "/api/v1/bookmarks/3")):
        fake.routes[key] = bearer_route(fake, ok)
    with make(url, fake) as c:
        c.update_annotation(3, color="#FF0000")
        c.update_book_note_v2(3, note_content="new")
        c.update_book_note_v1(3, 7, content="c", title="t")
        c.update_bookmark(3, title="x", page_number=2)
    assert seen == [
        ("PUT", "/api/v1/annotations/3", {"color": "#FF0000"}),
        ("PUT", "/api/v2/book-notes/3", {"noteContent": "new"}),
        ("POST", "/api/v1/book-notes", {"bookId": 7, "content": "c", "title": "t", "id": 3}),
        ("PUT", "/api/v1/bookmarks/3", {"title": "x", "pageNumber": 2}),
    ]


def test_typed_lists_and_session_pages(url, fake):
    page0 = {"content": [{"id": 2, "startTime": "2026-01-02T10:00:00Z", "endTime": "2026-01-02T11:00:00Z",
                          "durationSeconds": 3600}], "page": {"size": 1, "number": 0, "totalElements": 2, "totalPages": 2}}
    page1 = {"content": [{"id": 1, "startTime": "2026-01-01T10:00:00Z", "endTime": "2026-01-01T11:00:00Z",
                          "durationSeconds": 3600}], "page": {"size": 1, "number": 1, "totalElements": 2, "totalPages": 2}}
    fake.routes[("GET", "/api/v1/reading-sessions/book/7")] = [
        bearer_route(fake, lambda r: json_resp(200, page0)), bearer_route(fake, lambda r: json_resp(200, page1))]
    fake.routes[("GET", "/api/v1/annotations/book/7")] = bearer_route(fake, lambda r: json_resp(200, [
        {"id": 4, "cfi": "c", "text": "t", "color": "#FFFF00", "style": "highlight", "updatedAt": "2026-01-01T00:00:00"}]))
    fake.routes[("GET", "/api/v1/book-notes/book/7")] = bearer_route(fake, lambda r: json_resp(200, [
        {"id": 6, "title": "p. 3", "content": "a\r\nb "}, {"id": 5, "title": "x", "content": "y"}]))
    with make(url, fake) as c:
        assert [s.id for s in c.iter_sessions(7)] == [2, 1]
        a = c.annotations(7)[0]
        assert a.id == 4 and a.style == "highlight" and a.updated_at is not None
        assert [n.id for n in c.book_notes_v1(7)] == [6, 5]
        assert c.find_book_note_v1(7, title="x", content="y") == 5
        assert c.find_book_note_v1_by_text(7, texts=["a\nb"]) == 6


def test_client_satisfies_the_engine_protocol(url, fake):
    with make(url, fake) as c:
        assert isinstance(c, SyncClient)


# ------------------------------------------------------------------ 4. connection causes, login check, -v


def _raise(exc):
    def handler(request):
        raise exc

    return handler


@pytest.mark.parametrize(
    "exc,cause,words",
    [
        (httpx.ConnectError("[Errno -2] Name or service not known"), "dns", "was not found (DNS)"),
        (httpx.ConnectError("[Errno 111] Connection refused"), "refused", "refused"),
        (httpx.ConnectTimeout("timed out"), "timeout", "timed out"),
    ],
)
def test_connection_errors_name_the_url_and_the_cause(exc, cause, words):
    c = BookLoreClient("http://nowhere.test:6060", koreader_user="k", koreader_password="p",
                       transport=httpx.MockTransport(_raise(exc)))
    with c, pytest.raises(OfflineError) as info:
        c.check_koreader_auth()
    assert info.value.cause == cause and words in info.value.message
    assert info.value.url == "http://nowhere.test:6060" and "http://nowhere.test:6060" in info.value.message


def test_tls_against_plain_http_suggests_http():
    inner = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1000)")
    exc = httpx.ConnectError(str(inner))
    exc.__cause__ = inner
    result = check_server("https://books.test:6060", transport=httpx.MockTransport(_raise(exc)))
    assert not result.ok and result.cause == "tls" and result.hint == "did you mean http://books.test:6060?"
    assert "https://books.test:6060" in result.message


def test_plain_http_against_tls_suggests_https():
    exc = httpx.RemoteProtocolError("illegal status line: bytearray(b'\\x15\\x03\\x01\\x00\\x02\\x02')")
    result = check_server("http://books.test:6443", transport=httpx.MockTransport(_raise(exc)))
    assert result.cause == "tls" and result.hint == "did you mean https://books.test:6443?"


def test_redirect_and_wrong_base_path(url, fake):
    fake.routes[("GET", "/api/v1/healthcheck")] = httpx.Response(
        301, headers={"location": "https://fl.test/api/v1/healthcheck"})
    result = check_server(url, transport=fake.transport())
    assert result.cause == "redirect" and result.location == "https://fl.test"
    assert "redirects to https://fl.test; use that URL" in result.message
    fake.routes[("GET", "/api/v1/healthcheck")] = html()
    result = check_server(url, transport=fake.transport())
    assert result.cause == "not_booklore" and "wrong port or base path?" in result.message


def test_check_server_rejected_accounts(url, fake):
    fake.routes[("GET", "/api/koreader/users/auth")] = spring(403, "/api/koreader/users/auth")
    result = check_server(url, booklore_user="demo", booklore_password="wrong", koreader_user="k",
                          koreader_password="p", transport=fake.transport())
    assert result.reachable and not result.ok
    assert result.booklore.kind == "rejected" and result.koreader.kind == "rejected"
    assert result.booklore.message.startswith("BookLore account")


def test_request_hook_and_logger_never_show_secrets(url, fake, caplog):
    events: list[RequestEvent] = []
    fake.routes[("GET", "/api/v1/books/7")] = bearer_route(fake, lambda r: json_resp(200, {"id": 7}))
    fake.routes[("GET", "/api/koreader/users/auth")] = json_resp(200, {"username": "kodemo"})
    with caplog.at_level(logging.DEBUG, logger="booklore_sync.http"), make(url, fake, on_request=events.append) as c:
        c.get_book(7)
        c.check_koreader_auth()
        token = c._tokens.access
    assert [(e.method, e.path, e.status) for e in events] == [
        ("POST", "/api/v1/auth/login", 200), ("GET", "/api/v1/books/7", 200), ("GET", "/api/koreader/users/auth", 200)]
    assert all(e.milliseconds >= 0 for e in events)
    text = caplog.text + repr(events)
    assert "GET /api/v1/books/7 → 200" in caplog.text
    for secret in (BL_PASSWORD, KO_PASSWORD, token):
        assert secret not in text


def test_normalize_server_url():
    assert normalize_server_url("booklore.local:6060").url == "http://booklore.local:6060"
    assert normalize_server_url("booklore.local:6060").notices == ("no scheme given; using http://booklore.local:6060",)
    assert normalize_server_url(":6060").url == "http://localhost:6060"
    n = normalize_server_url("https://h/booklore/api/v1/")
    assert n.url == "https://h/booklore" and n.notices and "/api/v1" in n.notices[0]
    with pytest.raises(ValueError):
        normalize_server_url("ftp://h")


def test_every_server_error_is_typed(url, fake):
    fake.routes[("GET", "/api/v1/books/7")] = _raise(httpx.DecodingError("bad gzip"))
    with make(url, fake) as c, pytest.raises(Exception) as info:
        c.get_book(7)
    assert not isinstance(info.value, httpx.HTTPError)

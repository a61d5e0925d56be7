"""Unit tests of the BookLore client with httpx.MockTransport: classification edge
cases, auth rules, capability cache logic."""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from booklore_sync.booklore import (
    AlreadyExistsError,
    AuthError,
    BookLoreClient,
    Capabilities,
    ConflictError,
    NotBookLoreError,
    NotConfiguredError,
    NotFoundError,
    NotJSONError,
    OfflineError,
    OutcomeUnknownError,
    RequestRejectedError,
    ServerError,
    SessionIn,
    UnknownRatingIdError,
    UnsupportedEndpointError,
    batch_refused,
    format_instant,
    koreader_key,
    normalize_base_url,
    normalize_isbn,
    parse_time,
    truncate_utf16,
    utf16_len,
)
from booklore_sync.booklore import auth as auth_mod
from booklore_sync.booklore.http import extract_message

from .fakes import (
    BL_PASSWORD,
    KO_PASSWORD,
    FakeServer,
    MemoryCapabilityCache,
    MemoryTokenStore,
    bearer_route,
    err,
    html,
    json_resp,
    make_client,
)

_counter = itertools.count()
HASH = "59d481d168cca6267322f150c5f6a2a3"
T0 = datetime(2026, 2, 22, 14, 0, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def fast_token_spacing(request, monkeypatch):
    """Token-request spacing off, except for the tests that check it."""
    if "spacing" not in request.keywords:
        monkeypatch.setattr(auth_mod, "TOKEN_SPACING_SECONDS", 0.0)


@pytest.fixture
def url() -> str:
    # a distinct server per test: the process-wide token spacing is per (server, user)
    return f"http://bl-{next(_counter)}.test:6060"


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


def make(url: str, fake: FakeServer, *, bl: bool = True, ko: bool = True, **kw) -> BookLoreClient:
    return make_client(url, fake, bl=bl, ko=ko, **kw)


def book_json(book_id: int = 7, title: str = "Leaves of Grass") -> dict:
    return {"id": book_id, "libraryId": 1, "metadata": {"title": title, "authors": ["Walt Whitman"], "isbn13": "9780000000002"},
            "primaryFile": {"fileName": "leaves.epub", "bookType": "EPUB"}}


def session(i: int = 0, **kw) -> SessionIn:
    start = T0 + timedelta(hours=i)
    return SessionIn(start_time=start, end_time=start + timedelta(minutes=30), duration_seconds=1800, **kw)


# ------------------------------------------------------------------ URL + helpers


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("http://h:6060", "http://h:6060"),
        ("http://h:6060/", "http://h:6060"),
        ("http://h:6060//", "http://h:6060"),
        ("http://h:6060/api/koreader", "http://h:6060"),
        ("http://h:6060/api/koreader/", "http://h:6060"),
        (" https://h/booklore/api/koreader/ ", "https://h/booklore"),
        ("https://h/booklore/", "https://h/booklore"),
    ],
)
def test_normalize_base_url(raw, expected):
    assert normalize_base_url(raw) == expected


@pytest.mark.parametrize("raw", ["", "h:6060", "ftp://h", "http://user:pw@h:6060"])
def test_normalize_base_url_rejects(raw):
    with pytest.raises(ValueError) as info:
        normalize_base_url(raw)
    assert "pw" not in str(info.value)


def test_paths_joined_with_one_slash(fake):
    fake.routes[("GET", "/booklore/api/koreader/users/auth")] = json_resp(200, {"username": "kodemo"})
    with BookLoreClient("https://h.test/booklore/api/koreader/", koreader_user="kodemo",
                        koreader_password=KO_PASSWORD, transport=fake.transport()) as c:
        assert c.check_koreader_auth() == "kodemo"
    assert str(fake.requests[0].url) == "https://h.test/booklore/api/koreader/users/auth"


def test_time_helpers():
    assert format_instant(T0.replace(microsecond=900000)) == "2026-02-22T14:00:00Z"
    berlin = timezone(timedelta(hours=1))
    assert format_instant(datetime(2026, 2, 22, 15, 0, tzinfo=berlin)) == "2026-02-22T14:00:00Z"
    with pytest.raises(ValueError):
        format_instant(datetime(2026, 1, 1))
    assert parse_time("2026-02-22T14:00:00Z") == T0
    assert parse_time("2026-02-22T14:00:00.5Z") == T0.replace(microsecond=500000)
    assert parse_time("2026-03-11T18:42:58.123456789") == datetime(2026, 3, 11, 18, 42, 58, 123456, tzinfo=timezone.utc)
    assert parse_time(None) is None


def test_utf16_truncation():
    s = "ab\U0001F600cd"
    assert utf16_len(s) == 6
    assert truncate_utf16(s, 3) == "ab"  # never inside the surrogate pair
    assert truncate_utf16(s, 4) == "ab\U0001F600"
    assert truncate_utf16("x" * 10, 10) == "x" * 10


def test_isbn_normalisation():
    assert normalize_isbn("0-306-40615-2") == "0306406152"
    assert normalize_isbn("978-0-306-40615-7") == "9780306406157"
    assert normalize_isbn("080442957x") == "080442957X"
    assert normalize_isbn("978-0-306-40615-8") is None
    assert normalize_isbn("hello") is None


def test_message_extraction_order():
    def m(status, **kw):
        return extract_message(httpx.Response(status, **kw))

    assert m(404, json={"message": "Book not found with ID: 42", "error": "x"}) == "Book not found with ID: 42"
    assert m(403, json={"status": 403, "error": "Forbidden", "path": "/x"}) == "Forbidden"
    assert m(400, json={"error": {"message": "nested"}}) == "nested"
    assert m(400, json={"detail": "problem detail"}) == "problem detail"
    assert m(418, text="short plain text") == "short plain text"
    assert m(502, text="<html><body>Bad gateway</body></html>", headers={"content-type": "text/html"}) == "Bad Gateway"
    assert m(401) == "Unauthorized"
    assert m(418, text="x" * 600) == "HTTP 418"


# ------------------------------------------------------------------ KOReader auth


def test_koreader_headers(url, fake):
    fake.routes[("GET", "/api/koreader/users/auth")] = json_resp(200, {"authorized": "OK"})
    with make(url, fake, bl=False) as c:
        assert c.check_koreader_auth() is None
    req = fake.requests[0]
    assert req.headers["x-auth-user"] == "kodemo"
    assert req.headers["x-auth-key"] == koreader_key(KO_PASSWORD)
    assert req.headers["x-auth-key"] == req.headers["x-auth-key"].lower() and len(req.headers["x-auth-key"]) == 32
    assert "authorization" not in req.headers


def test_koreader_403_is_auth_error(url, fake):
    fake.routes[("GET", "/api/koreader/users/auth")] = json_resp(403, {"timestamp": "t", "status": 403, "error": "Forbidden", "path": "/api/koreader/users/auth"})
    with make(url, fake) as c, pytest.raises(AuthError) as info:
        c.check_koreader_auth()
    assert (info.value.account, info.value.kind, info.value.status) == ("koreader", "rejected", 403)


def test_not_configured(url, fake):
    with make(url, fake, bl=False, ko=False) as c:
        with pytest.raises(NotConfiguredError) as info:
            c.get_book(1)
        assert info.value.account == "booklore"
        with pytest.raises(NotConfiguredError) as info:
            c.book_by_hash(HASH)
        assert info.value.account == "koreader"
        with pytest.raises(NotConfiguredError):
            c.post_session(1, "EPUB", session())
    assert fake.requests == []


def test_never_bearer_on_koreader_routes(url, fake):
    fake.routes[("GET", "/api/v1/books/7")] = bearer_route(fake, lambda r: json_resp(200, book_json()))
    fake.routes[("GET", f"/api/koreader/syncs/progress/{HASH}")] = err(404, "No progress found for user and book")
    with make(url, fake) as c:
        c.get_book(7)
        assert c.get_progress(HASH) is None
    ko = [r for r in fake.requests if r.url.path.startswith("/api/koreader")]
    assert ko and all("authorization" not in r.headers for r in ko)


# ------------------------------------------------------------------ JWT


def test_lazy_login_no_bearer_on_login(url, fake):
    fake.routes[("GET", "/api/v1/books/7")] = bearer_route(fake, lambda r: json_resp(200, book_json()))
    with make(url, fake) as c:
        assert fake.requests == []  # lazy
        book = c.get_book(7)
        c.get_book(7)
    assert book.title == "Leaves of Grass" and book.authors == ("Walt Whitman",)
    assert fake.logins == 1
    login = [r for r in fake.requests if r.url.path == "/api/v1/auth/login"][0]
    assert "authorization" not in login.headers
    assert json.loads(login.content) == {"username": "demo", "password": BL_PASSWORD}


def test_refresh_before_expiry_and_rotation(url, fake):
    now = [1_000_000.0]
    store = MemoryTokenStore()
    fake.routes[("GET", "/api/v1/books/7")] = bearer_route(fake, lambda r: json_resp(200, book_json()))
    with make(url, fake, clock=lambda: now[0], token_store=store) as c:
        c.get_book(7)
        first_refresh = store.history[-1]
        now[0] += 36000 - 61  # still > 60 s left: no refresh
        c.get_book(7)
        assert fake.refreshes == 0
        now[0] += 2  # within 60 s of expiry: refresh first
        c.get_book(7)
        assert fake.refreshes == 1
        assert store.history[-1] != first_refresh  # rotated and stored
        now[0] += 36000
        c.get_book(7)
        assert fake.refreshes == 2
    assert fake.logins == 1
    assert fake.count("GET", "/api/v1/books/7") == 4  # no 401 round trips


def test_401_refresh_and_retry_once(url, fake):
    calls = []

    def ok(req):
        calls.append(req.headers["authorization"])
        return json_resp(200, book_json())

    fake.routes[("GET", "/api/v1/books/7")] = bearer_route(fake, ok)
    with make(url, fake) as c:
        c.get_book(7)
        fake.expire_all_access()
        c.get_book(7)
    assert fake.refreshes == 1 and fake.logins == 1
    assert calls[0] != calls[1]


def test_second_401_is_final(url, fake):
    fake.routes[("POST", "/api/v1/reading-sessions")] = httpx.Response(401)
    with make(url, fake) as c, pytest.raises(AuthError) as info:
        c.post_session(7, "EPUB", session())
    assert info.value.account == "booklore" and info.value.kind == "rejected" and info.value.status == 401
    assert fake.count("POST", "/api/v1/reading-sessions") == 2


def test_refresh_400_falls_back_to_login_and_stored_token_used(url, fake):
    store = MemoryTokenStore(initial="stale-refresh-token")
    fake.routes[("GET", "/api/v1/books/7")] = bearer_route(fake, lambda r: json_resp(200, book_json()))
    with make(url, fake, token_store=store) as c:
        c.get_book(7)
    assert fake.paths("POST") == ["/api/v1/auth/refresh", "/api/v1/auth/login"]
    assert store.history[0] is None  # the bad one was deleted
    assert store.history[-1] in fake.valid_refresh


def test_stored_refresh_token_avoids_login(url, fake):
    tokens = fake.issue()
    store = MemoryTokenStore(initial=tokens["refreshToken"])
    fake.routes[("GET", "/api/v1/books/7")] = bearer_route(fake, lambda r: json_resp(200, book_json()))
    with make(url, fake, token_store=store) as c:
        c.get_book(7)
    assert fake.logins == 0 and fake.refreshes == 1


def test_invalid_credentials_no_retry(url, fake):
    fake.routes[("GET", "/api/v1/books/7")] = bearer_route(fake, lambda r: json_resp(200, book_json()))
    with BookLoreClient(url, booklore_user="demo", booklore_password="wrong-password",
                        transport=fake.transport()) as c:
        for _ in range(3):
            with pytest.raises(AuthError) as info:
                c.get_book(7)
            assert info.value.kind == "rejected" and info.value.account == "booklore"
    assert fake.count("POST", "/api/v1/auth/login") == 1


def test_login_429_stops_bearer_work(url, fake):
    fake.routes[("POST", "/api/v1/auth/login")] = err(429, "Too many failed login attempts. Please try again later.")
    with make(url, fake) as c:
        for _ in range(2):
            with pytest.raises(AuthError) as info:
                c.list_books()
            assert info.value.kind == "rate_limited"
            assert "wait 15 minutes" in str(info.value)
    assert fake.count("POST", "/api/v1/auth/login") == 1


def test_login_oidc_only(url, fake):
    fake.routes[("POST", "/api/v1/auth/login")] = err(403, "Local login is disabled. Use OIDC to sign in.")
    with make(url, fake) as c, pytest.raises(AuthError) as info:
        c.check_booklore_auth()
    assert info.value.kind == "login_disabled"


@pytest.mark.spacing
def test_login_same_second_collision_retried_once(url, fake):
    fake.routes[("POST", "/api/v1/auth/login")] = [
        err(400, "A data conflict occurred. The operation could not be completed."),
        fake.login,
    ]
    fake.routes[("GET", "/api/v1/books/7")] = bearer_route(fake, lambda r: json_resp(200, book_json()))
    with make(url, fake) as c:
        t = time.monotonic()
        c.get_book(7)
        assert time.monotonic() - t >= 1.0  # spaced
    assert fake.count("POST", "/api/v1/auth/login") == 2


def test_403_with_bearer_is_not_expiry(url, fake):
    fake.routes[("GET", "/api/v1/books/9")] = err(403, "You are not authorized to access this book.")
    with make(url, fake) as c, pytest.raises(AuthError) as info:
        c.get_book(9)
    assert info.value.kind == "refused"
    assert fake.count("GET", "/api/v1/books/9") == 1 and fake.refreshes == 0


def test_concurrent_threads_one_login(url, fake):
    fake.login_delay = 0.2
    fake.routes[("GET", "/api/v1/books/7")] = bearer_route(fake, lambda r: json_resp(200, book_json()))
    errors = []
    with make(url, fake) as c:
        def work():
            try:
                c.get_book(7)
            except Exception as exc:  # pragma: no cover
                errors.append(exc)
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert fake.count("POST", "/api/v1/auth/login") == 1


@pytest.mark.spacing
def test_two_clients_same_user_spaced(url, fake):
    fake2 = FakeServer()
    a = BookLoreClient(url, booklore_user="demo", booklore_password=BL_PASSWORD, transport=fake.transport())
    b = BookLoreClient(url, booklore_user="demo", booklore_password=BL_PASSWORD, transport=fake2.transport())
    with a, b:
        t = time.monotonic()
        a.check_booklore_auth()
        b.check_booklore_auth()
        assert time.monotonic() - t >= 1.05


# ------------------------------------------------------------------ transport classification


def test_connect_errors_are_offline(url, fake):
    fake.routes[("GET", "/api/koreader/users/auth")] = httpx.ConnectError("refused")
    fake.routes[("PUT", "/api/koreader/syncs/progress")] = httpx.ConnectTimeout("slow connect")
    with make(url, fake) as c:
        with pytest.raises(OfflineError):
            c.check_koreader_auth()
        with pytest.raises(OfflineError):
            c.put_progress(HASH, progress="/body/p[1]", percentage=0.5, device="d", device_id="id")
    assert fake.count("GET", "/api/koreader/users/auth") == 1  # no retry on connect errors


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ReadTimeout("read"),
        httpx.WriteTimeout("write"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("reset"),
        httpx.WriteError("broken pipe"),
    ],
)
def test_sent_but_no_answer_is_outcome_unknown_and_not_retried_for_writes(url, fake, exc):
    fake.routes[("POST", "/api/v1/reading-sessions")] = exc
    with make(url, fake) as c, pytest.raises(OutcomeUnknownError):
        c.post_session(7, "EPUB", session())
    assert fake.count("POST", "/api/v1/reading-sessions") == 1


def test_dropped_pooled_connection_get_is_retried(url, fake):
    fake.routes[("GET", "/api/koreader/users/auth")] = [
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        json_resp(200, {"username": "kodemo"}),
    ]
    with make(url, fake) as c:
        assert c.check_koreader_auth() == "kodemo"
    assert fake.count("GET", "/api/koreader/users/auth") == 2


def test_read_timeout_on_get_is_not_retried(url, fake):
    fake.routes[("GET", "/api/koreader/users/auth")] = httpx.ReadTimeout("slow")
    with make(url, fake) as c, pytest.raises(OutcomeUnknownError):
        c.check_koreader_auth()
    assert fake.count("GET", "/api/koreader/users/auth") == 1


def test_gateway_statuses(url, fake):
    fake.routes[("GET", "/api/koreader/users/auth")] = httpx.Response(502, text="<html>bad gateway</html>", headers={"content-type": "text/html"})
    fake.routes[("POST", "/api/v1/reading-sessions")] = httpx.Response(504)
    fake.routes[("POST", "/api/v1/reading-sessions/batch")] = err(503, "Injected")
    with make(url, fake) as c:
        with pytest.raises(OfflineError) as info:
            c.check_koreader_auth()
        assert info.value.status == 502
        assert fake.count("GET", "/api/koreader/users/auth") == 3  # 2 quick retries for a GET
        with pytest.raises(OutcomeUnknownError) as info:
            c.post_session(7, "EPUB", session())
        assert info.value.status == 504
        assert fake.count("POST", "/api/v1/reading-sessions") == 1
        with pytest.raises(OfflineError) as info:
            c.post_sessions_batch(7, "EPUB", [session()])
        assert not batch_refused(info.value)


def test_gateway_then_success_retried_for_idempotent(url, fake):
    fake.routes[("PUT", "/api/v1/books/personal-rating")] = [err(503, "x"), json_resp(200, [{"bookId": 1, "personalRating": 8}])]
    with make(url, fake) as c:
        assert c.set_personal_rating([1], 8)[0].personal_rating == 8


# ------------------------------------------------------------------ status classification


def test_html_200_is_not_json(url, fake):
    fake.routes[("GET", "/api/v1/books/7")] = html()
    with make(url, fake) as c, pytest.raises(NotJSONError) as info:
        c.get_book(7)
    assert info.value.content_type == "text/html"


def test_by_hash_html_trap(url, fake):
    fake.routes[("GET", f"/api/koreader/books/by-hash/{HASH}")] = html()
    fake.routes[("GET", f"/api/v1/books/by-hash/{HASH}")] = html()
    with make(url, fake) as c:
        with pytest.raises(UnsupportedEndpointError) as info:
            c.book_by_hash(HASH.upper())
        assert info.value.capability == "by_hash_koreader" and info.value.not_json
        with pytest.raises(UnsupportedEndpointError):
            c.book_by_hash_bearer(HASH)
    assert f"/api/koreader/books/by-hash/{HASH}" in fake.paths()  # lower-cased


def test_by_hash_results(url, fake):
    other = "0" * 32
    fake.routes[("GET", f"/api/koreader/books/by-hash/{HASH}")] = json_resp(200, book_json())
    fake.routes[("GET", f"/api/koreader/books/by-hash/{other}")] = err(404, f"Book with hash {other} not found")
    with make(url, fake) as c:
        assert c.book_by_hash(HASH).id == 7
        assert c.book_by_hash(other) is None
        with pytest.raises(ValueError):
            c.book_by_hash("../../etc")


def test_by_hash_route_missing_and_not_linked(url, fake):
    fake.routes[("GET", f"/api/koreader/books/by-hash/{HASH}")] = [
        err(404, f"Resource not found: api/koreader/books/by-hash/{HASH}"),
        err(409, "KOReader user is not linked to a BookLore user"),
    ]
    with make(url, fake) as c:
        with pytest.raises(UnsupportedEndpointError):
            c.book_by_hash(HASH)
        with pytest.raises(AuthError) as info:
            c.book_by_hash(HASH)
        assert info.value.kind == "not_linked" and info.value.account == "koreader"


@pytest.mark.parametrize(
    "response",
    [
        lambda: err(409, "Annotation already exists at this location"),
        lambda: err(409, "A bookmark already exists on this page"),
        lambda: err(400, "Bookmark already exists near here"),
    ],
)
def test_already_exists(url, fake, response):
    fake.routes[("POST", "/api/v1/annotations")] = response()
    with make(url, fake) as c, pytest.raises(AlreadyExistsError):
        c.create_annotation(7, cfi="epubcfi(/6/4!/4/2/1:0)", text="hi")


@pytest.mark.parametrize("message", ["Conflict without the words", "A conflict occurred."])
def test_409_without_already_exists_is_a_conflict_failure(url, fake, message):
    # issue 10: a 409 is "already there" only when it says so (grimmory answers 409
    # "A conflict occurred." for unrelated errors)
    fake.routes[("POST", "/api/v1/annotations")] = err(409, message)
    with make(url, fake) as c, pytest.raises(ConflictError) as info:
        c.create_annotation(7, cfi="epubcfi(/6/4!/4/2/1:0)", text="hi")
    assert not isinstance(info.value, AlreadyExistsError)
    assert info.value.last_error == f"HTTP 409: {message}"


def test_409_on_other_route_is_server_error(url, fake):
    fake.routes[("POST", "/api/v1/book-notes")] = err(409, "Some illegal state")
    with make(url, fake) as c, pytest.raises(ServerError):
        c.create_book_note_v1(7, content="x")


def test_validation_400(url, fake):
    fake.routes[("POST", "/api/v1/reading-sessions/batch")] = err(
        400, "Validation error", details=["sessions[0].startTime: Start time is required"])
    with make(url, fake) as c, pytest.raises(RequestRejectedError) as info:
        c.post_sessions_batch(7, "EPUB", [session()])
    assert info.value.details == ["sessions[0].startTime: Start time is required"]
    assert "Start time is required" in info.value.last_error
    assert not batch_refused(info.value)


def test_404_and_500(url, fake):
    fake.routes[("POST", "/api/v1/book-notes")] = err(404, "Book not found with ID: 7")
    fake.routes[("POST", "/api/v2/book-notes")] = err(500, "An unexpected error occurred.")
    with make(url, fake) as c:
        with pytest.raises(NotFoundError) as info:
            c.create_book_note_v1(7, content="x")
        assert not info.value.route_missing
        assert info.value.last_error == "HTTP 404: Book not found with ID: 7"
        with pytest.raises(ServerError) as info:
            c.create_book_note_v2(7, cfi="epubcfi(/6/4)", note_content="x")
        assert info.value.status == 500
    assert fake.count("POST", "/api/v2/book-notes") == 1  # 500 is not retried


def test_session_202_empty(url, fake):
    seen = []

    def ok(req):
        seen.append(json.loads(req.content))
        return httpx.Response(202)

    fake.routes[("POST", "/api/v1/reading-sessions")] = bearer_route(fake, ok)
    s = SessionIn(start_time=T0.replace(microsecond=700000), end_time=T0 + timedelta(seconds=90),
                  duration_seconds=90, start_progress=1.5, end_progress=2.5, progress_delta=1.0,
                  start_location="x" * 600, duration_formatted="1m 30s")
    with make(url, fake) as c:
        assert c.post_session(7, "EPUB", s) is None
        with pytest.raises(ValueError):
            c.post_session(7, "epub", s)
    body = seen[0]
    assert body["startTime"] == "2026-02-22T14:00:00Z" and body["endTime"] == "2026-02-22T14:01:30Z"
    assert body["bookId"] == 7 and body["bookType"] == "EPUB" and len(body["startLocation"]) == 500
    assert "endLocation" not in body


def test_session_uses_koreader_headers_without_booklore_account(url, fake):
    fake.routes[("POST", "/api/v1/reading-sessions")] = httpx.Response(202)
    with make(url, fake, bl=False) as c:
        c.post_session(7, "EPUB", session())
        c._caps = Capabilities(flavour="upstream", single_session_koreader=False)
        with pytest.raises(NotConfiguredError) as info:
            c.post_session(7, "EPUB", session())
        assert info.value.account == "booklore"
    req = fake.requests[0]
    assert "x-auth-key" in req.headers and "authorization" not in req.headers


def test_session_html_200_is_not_success(url, fake):
    fake.routes[("POST", "/api/v1/reading-sessions")] = html()
    with make(url, fake) as c, pytest.raises(NotJSONError):
        c.post_session(7, "EPUB", session())


def test_redirects(url, fake):
    fake.routes[("GET", "/api/koreader/users/auth")] = httpx.Response(301, headers={"location": "/moved/auth"})
    fake.routes[("GET", "/moved/auth")] = json_resp(200, {"username": "kodemo"})
    fake.routes[("GET", "/api/koreader/syncs/progress/" + HASH)] = httpx.Response(
        302, headers={"location": "http://evil.test/steal"})
    fake.routes[("PUT", "/api/koreader/syncs/progress")] = httpx.Response(307, headers={"location": "/elsewhere?token=x"})
    with make(url, fake) as c:
        assert c.check_koreader_auth() == "kodemo"
        assert fake.requests[-1].headers["x-auth-user"] == "kodemo"  # same host: followed
        with pytest.raises(ServerError) as info:
            c.get_progress(HASH)
        assert "evil.test" in str(info.value)
        with pytest.raises(ServerError) as info:
            c.put_progress(HASH, progress="12", percentage=0.1, device="d", device_id="i")
        assert "token" not in str(info.value)
    assert all(r.url.host != "evil.test" for r in fake.requests)


# ------------------------------------------------------------------ endpoints


def test_ratings_bug_and_grouping(url, fake):
    known = {1, 2, 3}

    def rating(req):
        body = json.loads(req.content)
        if len(set(body["ids"])) != len(body["ids"]) or not set(body["ids"]) <= known:
            return err(400, "d != java.lang.String")
        return json_resp(200, [{"bookId": i, "personalRating": body["rating"]} for i in body["ids"]])

    fake.routes[("PUT", "/api/v1/books/personal-rating")] = bearer_route(fake, rating)
    with make(url, fake) as c:
        assert [r.book_id for r in c.set_personal_rating([1, 2, 2, 1], 8)] == [1, 2]  # de-duplicated
        with pytest.raises(UnknownRatingIdError):
            c.set_personal_rating([1, 9], 8)
        out = c.set_personal_rating_grouped([1, 9, 2, 3, 42], 6)
    assert out.unknown_ids == (9, 42)
    assert [r.book_id for r in out.results] == [1, 2, 3]


def test_search_and_unsupported(url, fake):
    fake.routes[("GET", "/api/v1/books/search")] = [
        json_resp(200, [{"id": 3, "title": "The Hobbit", "matchScore": 0.8214285714285714}]),
        err(500, "An unexpected error occurred."),
    ]
    with make(url, fake) as c:
        res = c.search_books(title="The\nHobit", isbn="978-0-306-40615-7")
        assert res[0].percent == 82 and res[0].title == "The Hobbit"
        with pytest.raises(UnsupportedEndpointError) as info:
            c.search_books(title="x")
        assert info.value.capability == "search"
        with pytest.raises(ValueError):
            c.search_books(isbn="123")
    q = fake.requests[-1].url.params if False else [r for r in fake.requests if r.url.path.endswith("search")][0].url.params
    assert q["title"] == "The Hobit" and q["isbn"] == "9780306406157"


@pytest.mark.parametrize(
    "response,refused,remembered",
    [
        (lambda: err(403, "Forbidden"), True, True),
        (lambda: json_resp(403, {"status": 403, "error": "Forbidden", "path": "/x"}), True, True),
        (lambda: err(405, "Method Not Allowed"), True, True),
        # issue 10 / §6 probe 6: on a server classed as fork a 500 is a server fault:
        # batching stops for this run only, and the next run tries the batch again
        (lambda: err(500, "An unexpected error occurred."), True, False),
        (lambda: err(501, "nope"), True, True),
        (lambda: err(404, "Resource not found: api/v1/reading-sessions/batch"), True, True),
        (lambda: html(), True, True),
        (lambda: err(404, "Book not found with ID: 7"), False, False),
        (lambda: err(400, "Validation error", details=["x"]), False, False),
    ],
)
def test_batch_refusal_rules(url, fake, response, refused, remembered):
    cache = MemoryCapabilityCache()
    fake.routes[("POST", "/api/v1/reading-sessions/batch")] = response()
    with make(url, fake, capability_cache=cache) as c:
        c._caps = Capabilities(version="v1.2.3", flavour="fork", batch=True, probed_at=time.time())
        with pytest.raises(Exception) as info:
            c.post_sessions_batch(7, "EPUB", [session(0), session(1)])
        assert batch_refused(info.value) is refused
        assert c.batch_enabled is not refused
        assert (c.capabilities.batch is False) is remembered
        if refused:
            c.mark_no_batch()  # what the engine calls: it follows the answer's verdict
            assert isinstance(info.value, UnsupportedEndpointError)
            assert (cache.data.get(c.base_url, {}).get("batch") is False) is remembered
    assert fake.count("POST", "/api/v1/reading-sessions/batch") == 1


def test_batch_500_on_booklore_is_remembered(url, fake):
    cache = MemoryCapabilityCache()
    fake.routes[("POST", "/api/v1/reading-sessions/batch")] = err(500, "An unexpected error occurred.")
    with make(url, fake, capability_cache=cache) as c:
        c._caps = Capabilities(version="v2.3.0", flavour="upstream", server="booklore", batch=True,
                               probed_at=time.time())
        with pytest.raises(UnsupportedEndpointError):
            c.post_sessions_batch(7, "EPUB", [session(0)])
        assert c.capabilities.batch is False and cache.data[c.base_url]["batch"] is False


def test_batch_helper_on_raw_errors():
    assert batch_refused(ServerError("x", status=500))
    assert batch_refused(AuthError("x", account="koreader", kind="rejected", status=403))
    assert not batch_refused(AuthError("x", account="booklore", kind="rate_limited", status=429))
    assert not batch_refused(NotFoundError("Book not found with ID: 1", status=404))
    assert batch_refused(NotFoundError("Resource not found: x", status=404))
    assert not batch_refused(OutcomeUnknownError("x"))
    assert not batch_refused(RequestRejectedError("x", status=400))


def test_batch_success(url, fake):
    def ok(req):
        body = json.loads(req.content)
        assert body["bookId"] == 7 and body["bookType"] == "PDF" and len(body["sessions"]) == 2
        assert "bookId" not in body["sessions"][0]
        return json_resp(200, {"totalRequested": 2, "successCount": 2, "results": [
            {"sessionId": 11, "startTime": "x", "endTime": "y"}, {"sessionId": 12, "startTime": "x", "endTime": "y"}]})

    fake.routes[("POST", "/api/v1/reading-sessions/batch")] = bearer_route(fake, ok)
    with make(url, fake) as c:
        res = c.post_sessions_batch(7, "PDF", [session(0), session(1)])
        with pytest.raises(ValueError):
            c.post_sessions_batch(7, "PDF", [session(i) for i in range(101)])
    assert res.session_ids == (11, 12) and res.success_count == 2


def test_verify_sessions_walk(url, fake):
    # server holds 250 sessions, one per hour, newest first; pages of 100
    server = []
    for i in range(250):
        start = T0 + timedelta(hours=i)
        server.append({"id": i + 1, "bookId": 7, "startTime": format_instant(start),
                       "endTime": format_instant(start + timedelta(minutes=30)), "durationSeconds": 1800,
                       "createdAt": "2026-03-11T18:42:58.123456"})
    server.reverse()

    def page(req):
        p, size = int(req.url.params["page"]), int(req.url.params["size"])
        assert size == 100
        items = server[p * size:(p + 1) * size]
        return json_resp(200, {"content": items, "page": {"size": size, "number": p, "totalElements": 250, "totalPages": 3}})

    fake.routes[("GET", "/api/v1/reading-sessions/book/7")] = bearer_route(fake, page)
    with make(url, fake) as c:
        recent = [session(240), session(249), session(300), SessionIn(
            start_time=T0 + timedelta(hours=245, microseconds=400000), end_time=T0 + timedelta(hours=245, minutes=30),
            duration_seconds=1800)]
        assert c.verify_sessions(7, recent) == [True, True, False, True]
        assert fake.count("GET", "/api/v1/reading-sessions/book/7") == 1  # the walk stopped after page 0
        other_duration = SessionIn(start_time=T0, end_time=T0 + timedelta(minutes=30), duration_seconds=1799)
        assert c.verify_sessions(7, [session(0), other_duration]) == [True, False]
        assert fake.count("GET", "/api/v1/reading-sessions/book/7") == 4  # all three pages


def test_v1_note_and_pdf_bookmark_checks(url, fake):
    fake.routes[("GET", "/api/v1/book-notes/book/7")] = json_resp(200, [{"id": 1, "title": "T", "content": "C"}])
    fake.routes[("GET", "/api/v1/bookmarks/book/7")] = json_resp(200, [
        {"id": 1, "cfi": "epubcfi(/6/2)", "title": "Page 3"}, {"id": 2, "cfi": None, "title": "Page 4"}])
    with make(url, fake) as c:
        assert c.book_note_v1_present(7, title="T", content="C")
        assert not c.book_note_v1_present(7, title="T", content="D")
        assert c.bookmark_without_cfi_present(7, title="Page 4")
        assert not c.bookmark_without_cfi_present(7, title="Page 3")


def test_progress(url, fake):
    seen = []

    def put(req):
        seen.append(json.loads(req.content))
        return json_resp(200, {"status": "progress updated"})

    fake.routes[("PUT", "/api/koreader/syncs/progress")] = put
    fake.routes[("GET", f"/api/koreader/syncs/progress/{HASH}")] = [
        json_resp(200, {"timestamp": 1767225600, "document": HASH, "progress": "/body/p[3]", "percentage": 0.42,
                        "device": "BookLore", "device_id": "BookLore"}),
        err(404, f"Book not found for hash {HASH}"),
        err(401, "Sync is disabled for this user"),
    ]
    with make(url, fake) as c:
        assert c.put_progress(HASH, progress="/body/p[3]", percentage=0.42, device="Kobo" * 40, device_id="abc") == {"status": "progress updated"}
        for bad in (None, 1.5, float("nan")):
            with pytest.raises(ValueError):
                c.put_progress(HASH, progress="x", percentage=bad, device="d", device_id="i")
        with pytest.raises(ValueError):
            c.put_progress(HASH, progress="x" * 1001, percentage=0.1, device="d", device_id="i")
        p = c.get_progress(HASH)
        assert p.percentage == 0.42 and p.timestamp == 1767225600
        with pytest.raises(NotFoundError):
            c.get_progress(HASH)
        with pytest.raises(AuthError) as info:
            c.get_progress(HASH)
        assert info.value.kind == "sync_disabled" and info.value.account == "koreader"
    assert seen[0]["document"] == HASH and seen[0]["percentage"] == 0.42 and len(seen[0]["device"]) == 100
    assert "timestamp" not in seen[0]


def test_annotation_payload(url, fake):
    seen = []

    def ok(req):
        seen.append(json.loads(req.content))
        return json_resp(200, {"id": 5, **seen[-1]})

    fake.routes[("POST", "/api/v1/annotations")] = ok
    fake.routes[("POST", "/api/v1/bookmarks")] = ok
    fake.routes[("POST", "/api/v1/book-notes")] = ok
    with make(url, fake) as c:
        assert c.create_annotation(7, cfi="epubcfi(/6/4)", text="t" * 6000, chapter_title="Ch")["id"] == 5
        c.create_bookmark(7, title="Page 9")
        c.create_book_note_v1(7, content="c", title="T" * 300)
        with pytest.raises(ValueError):
            c.create_annotation(7, cfi="e" * 1001, text="x")
    assert len(seen[0]["text"]) == 5000 and "color" not in seen[0] and seen[0]["chapterTitle"] == "Ch"
    assert seen[1] == {"bookId": 7, "title": "Page 9"}
    assert "id" not in seen[2] and len(seen[2]["title"]) == 255


# ------------------------------------------------------------------ health + capabilities


@pytest.mark.parametrize(
    "response,error,reason",
    [
        (lambda: httpx.ConnectError("refused"), OfflineError, None),
        (lambda: httpx.ReadTimeout("slow"), OfflineError, None),
        (lambda: httpx.Response(502), OfflineError, None),
        (lambda: httpx.Response(503), OfflineError, None),
        (lambda: httpx.Response(504), OfflineError, None),
        (lambda: html(), NotBookLoreError, "not_json"),
        (lambda: err(404, "Resource not found: x"), NotBookLoreError, "wrong_base_path"),
        (lambda: httpx.Response(404, text="not found"), NotBookLoreError, "wrong_base_path"),
        (lambda: json_resp(200, {"hello": "world"}), NotBookLoreError, "not_booklore"),
        (lambda: httpx.Response(401, text="auth required"), NotBookLoreError, "unexpected_status"),
        (lambda: err(500, "boom"), ServerError, None),
    ],
)
def test_health_probe(url, fake, response, error, reason):
    fake.routes[("GET", "/api/v1/healthcheck")] = response()
    with make(url, fake) as c, pytest.raises(error) as info:
        c.healthcheck()
    if reason:
        assert info.value.reason == reason


def test_health_ok(url, fake):
    with make(url, fake) as c:
        assert c.healthcheck().version == "v1.2.3"


def fork_routes(fake):
    fake.routes[("GET", "/api/koreader/users/auth")] = json_resp(200, {"username": "kodemo"})
    fake.routes[("GET", "/api/v1/books/search")] = bearer_route(fake, lambda r: json_resp(200, []))

    def by_hash(req):
        return err(404, f"Book with hash {req.url.path.rsplit('/', 1)[1]} not found")

    return by_hash


def test_probe_fork_and_cache(url, fake):
    by_hash = fork_routes(fake)
    now = [2_000_000.0]

    class Router(FakeServer):
        pass

    orig = fake.handler

    def handler(req):
        if req.url.path.startswith(("/api/koreader/books/by-hash/", "/api/v1/books/by-hash/")):
            fake.requests.append(req)
            return by_hash(req)
        return orig(req)

    cache = MemoryCapabilityCache()
    transport = httpx.MockTransport(handler)
    kw = dict(booklore_user="demo", booklore_password=BL_PASSWORD, koreader_user="kodemo",
              koreader_password=KO_PASSWORD, transport=transport, capability_cache=cache, clock=lambda: now[0])
    with BookLoreClient(url, **kw) as c:
        caps = c.probe()
    assert caps.flavour == "fork" and caps.by_hash_koreader and caps.search and caps.batch
    assert caps.by_hash_bearer and caps.koreader_auth_ok and caps.booklore_auth_ok and caps.koreader_linked
    assert not caps.from_cache and cache.data[url]["version"] == "v1.2.3"
    assert "koreader_auth_ok" not in cache.data[url]
    n = len(fake.requests)
    with BookLoreClient(url, **kw) as c:
        caps2 = c.probe()
        assert caps2.from_cache and caps2.flavour == "fork"
        assert [r.url.path for r in fake.requests[n:]] == ["/api/v1/healthcheck"]  # health probe only
        # a contradiction drops the cache
        fake.routes[("GET", "/api/v1/books/search")] = err(500, "An unexpected error occurred.")
        with pytest.raises(UnsupportedEndpointError):
            c.search_books(title="x")
        assert c.capabilities.search is False
        assert url not in cache.data
    # TTL: stale after 24 h
    with BookLoreClient(url, **kw) as c:
        c.probe()
        now[0] += 24 * 3600 + 1
        n = len(fake.requests)
        c.probe()
        assert len(fake.requests) - n > 1


def test_probe_upstream(url, fake):
    fake.routes[("GET", "/api/koreader/users/auth")] = json_resp(200, {"username": "kodemo"})
    fake.routes[("GET", "/api/v1/books/search")] = bearer_route(fake, lambda r: err(500, "An unexpected error occurred."))
    orig = fake.handler

    def handler(req):
        if req.url.path.startswith("/api/koreader/books/by-hash/"):
            fake.requests.append(req)
            return html()
        return orig(req)

    cache = MemoryCapabilityCache()
    with BookLoreClient(url, booklore_user="demo", booklore_password=BL_PASSWORD, koreader_user="kodemo",
                        koreader_password=KO_PASSWORD, transport=httpx.MockTransport(handler),
                        capability_cache=cache) as c:
        caps = c.probe()
    assert caps.flavour == "upstream"
    assert caps.by_hash_koreader is False and caps.search is False and caps.batch is False
    assert caps.by_hash_bearer is False and caps.single_session_koreader is False


def test_probe_auth_problems_do_not_raise(url, fake):
    fake.routes[("GET", "/api/koreader/users/auth")] = json_resp(403, {"status": 403, "error": "Forbidden"})
    with BookLoreClient(url, booklore_user="demo", booklore_password="wrong", koreader_user="kodemo",
                        koreader_password="wrong", transport=fake.transport()) as c:
        caps = c.probe()
    assert caps.koreader_auth_ok is False and caps.booklore_auth_ok is False and caps.flavour is None


def test_probe_offline(url, fake):
    fake.routes[("GET", "/api/v1/healthcheck")] = httpx.ConnectError("refused")
    with make(url, fake) as c, pytest.raises(OfflineError):
        c.probe()


# ------------------------------------------------------------------ secrets


def test_secrets_never_leak(url, fake, caplog):
    caplog.set_level(logging.DEBUG)
    store = MemoryTokenStore()
    fake.routes[("GET", "/api/v1/books/7")] = [err(403, f"echo {BL_PASSWORD} {KO_PASSWORD}")]
    fake.routes[("GET", "/api/koreader/users/auth")] = json_resp(403, {"error": f"bad key {koreader_key(KO_PASSWORD)}"})
    fake.routes[("POST", "/api/v1/reading-sessions")] = httpx.ReadTimeout(f"timeout {BL_PASSWORD}")
    errors = []
    with make(url, fake, token_store=store) as c:
        for call in (lambda: c.get_book(7), c.check_koreader_auth, lambda: c.post_session(7, "EPUB", session())):
            with pytest.raises(Exception) as info:
                call()
            errors.append(info.value)
        tokens = [store.history[-1], c._tokens.access]
        state = {k: v for k, v in vars(c).items() if k != "_scrub"}  # the scrubber holds them by design
        texts = [str(e) for e in errors] + [repr(e) for e in errors] + [repr(c), repr(state), caplog.text]
    secrets = [BL_PASSWORD, KO_PASSWORD, koreader_key(KO_PASSWORD), *tokens]
    for text in texts:
        for s in secrets:
            assert s not in text, (s, text)


def test_session_key_rejects_naive_times():
    with pytest.raises(ValueError):
        SessionIn(start_time=datetime(2026, 1, 1), end_time=datetime(2026, 1, 1, 0, 30), duration_seconds=1).key()
    s = SessionIn(start_time=T0.replace(microsecond=999), end_time=T0 + timedelta(minutes=1), duration_seconds=60)
    assert s.key() == (T0, T0 + timedelta(minutes=1), 60)

"""The BookLore client against the emulator, over real HTTP on loopback, in both modes."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from booklore_sync.booklore import (
    AlreadyExistsError,
    AuthError,
    BookLoreClient,
    NotBookLoreError,
    NotConfiguredError,
    NotFoundError,
    OfflineError,
    OutcomeUnknownError,
    ServerError,
    SessionIn,
    UnsupportedEndpointError,
    batch_refused,
    koreader_key,
)
from booklore_sync.booklore import auth as auth_mod
from booklore_sync.emulator import start_emulator

from .fakes import MemoryCapabilityCache, MemoryTokenStore

BL = ("reader", "bl-Integr4tion-pw")
KO = ("koreader-dev", "ko-Integr4tion-pw")
HASH = "59d481d168cca6267322f150c5f6a2a3"
HASH2 = "41cce710f34e5ec21315e19c99821415"
T0 = datetime(2026, 2, 22, 14, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def emulator():
    started = []

    def start(mode: str = "fork", **kw):
        emu = start_emulator(mode=mode, port=0, user=BL, koreader_user=KO, **kw)
        emu.state.add_book(title="Leaves of Grass", authors=["Walt Whitman"], isbn13="9780306406157",
                           file_hash=HASH)
        emu.state.add_book(title="Tall", file_hash=HASH2, book_type="PDF")
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()


def client(emu, *, bl=True, ko=True, **kw) -> BookLoreClient:
    kw.setdefault("retry_backoff", 0)
    return BookLoreClient(
        emu.base_url,
        booklore_user=BL[0] if bl else None,
        booklore_password=BL[1] if bl else None,
        koreader_user=KO[0] if ko else None,
        koreader_password=KO[1] if ko else None,
        **kw,
    )


def session(i: int = 0, minutes: int = 30) -> SessionIn:
    start = T0 + timedelta(hours=i)
    return SessionIn(start_time=start, end_time=start + timedelta(minutes=minutes), duration_seconds=minutes * 60,
                     start_progress=10.0, end_progress=12.5, progress_delta=2.5, duration_formatted="30m")


def log_paths(emu, since=0):
    return [(e["method"], e["path"], e["status"]) for e in emu.request_log(since)]


def last_seq(emu) -> int:
    log = emu.request_log()
    return log[-1]["seq"] if log else 0


# ------------------------------------------------------------------ capabilities


def test_probe_fork(emulator):
    emu = emulator("fork")
    cache = MemoryCapabilityCache()
    with client(emu, capability_cache=cache) as c:
        caps = c.probe()
    assert caps.flavour == "fork" and caps.version
    assert caps.by_hash_koreader and caps.search and caps.batch and caps.by_hash_bearer
    assert caps.koreader_auth_ok and caps.booklore_auth_ok and caps.koreader_linked
    assert cache.data[emu.base_url]["flavour"] == "fork"
    seq = last_seq(emu)
    with client(emu, capability_cache=cache) as c:
        assert c.probe().from_cache
    assert log_paths(emu, seq) == [("GET", "/api/v1/healthcheck", 200)]


def test_probe_upstream(emulator):
    emu = emulator("upstream")
    with client(emu) as c:
        caps = c.probe()
    assert caps.flavour == "upstream"
    assert not caps.by_hash_koreader and not caps.search and not caps.batch and not caps.by_hash_bearer
    assert caps.single_session_koreader is False


def test_probe_bearer_only_uses_bearer_by_hash(emulator):
    emu = emulator("fork")
    with client(emu, ko=False) as c:
        caps = c.probe()
        assert caps.flavour == "fork" and caps.by_hash_bearer is True and caps.koreader_auth_ok is None
        assert c.find_book_by_hash(HASH).title == "Leaves of Grass"
    paths = [p for _, p, _ in log_paths(emu)]
    assert not any(p.startswith("/api/koreader/") for p in paths)


def test_probe_koreader_not_linked(emulator):
    emu = emulator("fork")
    emu.state.set_koreader_account(KO[0], userId=None)
    with client(emu, bl=False) as c:
        caps = c.probe()
        assert caps.flavour == "fork" and caps.koreader_linked is False
        with pytest.raises(AuthError) as info:
            c.book_by_hash(HASH)
    assert info.value.kind == "not_linked" and info.value.status == 409


def test_mode_switch_contradicts_cache(emulator):
    emu = emulator("fork")
    cache = MemoryCapabilityCache()
    with client(emu, capability_cache=cache) as c:
        c.probe()
        emu.set_mode("upstream")
        with pytest.raises(UnsupportedEndpointError) as info:
            c.book_by_hash(HASH)
        assert info.value.not_json
        assert emu.base_url not in cache.data  # dropped
        assert c.probe().flavour == "upstream"


# ------------------------------------------------------------------ the text/html trap


def test_upstream_html_trap(emulator):
    emu = emulator("upstream")
    with client(emu) as c:
        for call in (lambda: c.book_by_hash(HASH), lambda: c.book_by_hash_bearer(HASH), lambda: c.find_book_by_hash(HASH)):
            with pytest.raises(UnsupportedEndpointError) as info:
                call()
            assert info.value.not_json and info.value.status == 200
        # the same book is reachable by id on both flavours
        assert c.get_book(1).title == "Leaves of Grass"
        with pytest.raises(UnsupportedEndpointError) as info:
            c.search_books(title="Leaves")
        assert info.value.capability == "search"
        assert [b.id for b in c.list_books()] == [1, 2]


def test_upstream_without_spa_fallback(emulator):
    emu = emulator("upstream", spa_fallback=False)
    with client(emu) as c:
        with pytest.raises(UnsupportedEndpointError) as info:
            c.book_by_hash(HASH)
        assert not info.value.not_json and info.value.status == 404
        assert c.probe().by_hash_koreader is False


# ------------------------------------------------------------------ auth schemes


@pytest.mark.parametrize("mode", ["fork", "upstream"])
def test_both_auth_schemes(emulator, mode):
    emu = emulator(mode)
    with client(emu) as c:
        c.check_koreader_auth()
        c.put_progress(HASH, progress="/body/DocFragment[3]/p[2]", percentage=0.25, device="dev", device_id="id1")
        assert c.get_progress(HASH).percentage == 0.25
        c.get_book(1)
        c.post_session(1, "EPUB", session())
    log = emu.request_log()
    for e in log:
        if e["path"].startswith("/api/koreader/"):
            assert e["sent"] == ["koreader"], e
        elif e["path"].startswith("/api/v1/auth/"):
            assert e["sent"] == [], e  # never a bearer (or KOReader headers) on login
        elif e["path"] != "/api/v1/healthcheck":
            assert e["sent"] == ["bearer"], e  # sessions use the bearer when there is an account
    assert all(e["status"] and e["status"] < 300 for e in log)


def test_sessions_with_koreader_headers_only(emulator):
    emu = emulator("fork")
    with client(emu, bl=False) as c:
        c.post_session(1, "EPUB", session(0))
        res = c.post_sessions_batch(1, "EPUB", [session(1), session(2)])
        assert res.success_count == 2
        with pytest.raises(NotConfiguredError):
            c.verify_sessions(1, [session(0)])  # verification needs the BookLore account
    assert len(emu.state.sessions()) == 3


def test_upstream_koreader_only_sessions_not_configured(emulator):
    emu = emulator("upstream")
    with client(emu, bl=False) as c:
        c.probe()
        with pytest.raises(NotConfiguredError) as info:
            c.post_session(1, "EPUB", session())
        assert info.value.account == "booklore"
    assert not emu.state.sessions()


def test_wrong_koreader_password(emulator):
    emu = emulator("fork")
    with BookLoreClient(emu.base_url, koreader_user=KO[0], koreader_password="nope") as c:
        with pytest.raises(AuthError) as info:
            c.check_koreader_auth()
        assert (info.value.account, info.value.kind, info.value.status) == ("koreader", "rejected", 403)
        caps = c.probe()
        assert caps.koreader_auth_ok is False


def test_sync_disabled(emulator):
    emu = emulator("fork")
    emu.state.set_koreader_account(KO[0], syncEnabled=False)
    with client(emu) as c:
        assert c.check_koreader_auth() == KO[0]  # users/auth ignores sync_enabled
        with pytest.raises(AuthError) as info:
            c.put_progress(HASH, progress="1", percentage=0.5, device="d", device_id="i")
        assert info.value.kind == "sync_disabled" and info.value.status == 401


def test_wrong_booklore_password_not_retried(emulator):
    emu = emulator("fork")
    with BookLoreClient(emu.base_url, booklore_user=BL[0], booklore_password="wrong") as c:
        for _ in range(3):
            with pytest.raises(AuthError) as info:
                c.get_book(1)
            assert info.value.kind == "rejected" and info.value.account == "booklore"
    assert [p for _, p, _ in log_paths(emu)].count("/api/v1/auth/login") == 1


def test_login_rate_limit(emulator, monkeypatch):
    monkeypatch.setattr(auth_mod, "TOKEN_SPACING_SECONDS", 0.0)  # failed logins store no token
    emu = emulator("fork")
    for _ in range(5):
        with BookLoreClient(emu.base_url, booklore_user=BL[0], booklore_password="wrong") as c:
            with pytest.raises(AuthError):
                c.check_booklore_auth()
    with client(emu) as c:
        for _ in range(2):
            with pytest.raises(AuthError) as info:
                c.get_book(1)
            assert info.value.kind == "rate_limited" and "wait 15 minutes" in str(info.value)
    assert [s for m, p, s in log_paths(emu) if p == "/api/v1/auth/login"][-1] == 429
    assert [p for _, p, _ in log_paths(emu)].count("/api/v1/auth/login") == 6


def test_oidc_only(emulator):
    emu = emulator("fork")
    emu.state.configure(oidc_only=True)
    with client(emu) as c, pytest.raises(AuthError) as info:
        c.list_books()
    assert info.value.kind == "login_disabled"


# ------------------------------------------------------------------ tokens


def test_access_expiry_401_refresh_retry_and_rotation(emulator):
    emu = emulator("fork")
    store = MemoryTokenStore()
    with client(emu, token_store=store) as c:
        c.get_book(1)
        first_refresh = store.history[-1]
        emu.state.expire_access_tokens()
        seq = last_seq(emu)
        assert c.get_book(1).id == 1
        assert log_paths(emu, seq) == [
            ("GET", "/api/v1/books/1", 401),
            ("POST", "/api/v1/auth/refresh", 200),
            ("GET", "/api/v1/books/1", 200),
        ]
        assert store.history[-1] != first_refresh  # rotated, newest kept
    # the old refresh token is revoked: a later run holding it falls back to login
    stale = MemoryTokenStore(initial=first_refresh)
    with client(emu, token_store=stale) as c:
        seq = last_seq(emu)
        c.get_book(1)
    assert log_paths(emu, seq) == [
        ("POST", "/api/v1/auth/refresh", 400),
        ("POST", "/api/v1/auth/login", 200),
        ("GET", "/api/v1/books/1", 200),
    ]
    assert stale.history[0] is None and stale.history[-1]


def test_next_run_uses_stored_refresh_token(emulator):
    emu = emulator("fork")
    store = MemoryTokenStore()
    with client(emu, token_store=store) as c:
        c.get_book(1)
    with client(emu, token_store=store) as c:
        seq = last_seq(emu)
        c.get_book(1)
    assert log_paths(emu, seq) == [("POST", "/api/v1/auth/refresh", 200), ("GET", "/api/v1/books/1", 200)]


def test_proactive_refresh_from_token_expiry(emulator):
    emu = emulator("fork", access_token_ttl=3600)
    now = [time.time()]
    with client(emu, clock=lambda: now[0]) as c:
        c.get_book(1)
        now[0] += 3600 - 59  # within 60 s of the token's own expiry
        seq = last_seq(emu)
        c.get_book(1)
    assert log_paths(emu, seq) == [("POST", "/api/v1/auth/refresh", 200), ("GET", "/api/v1/books/1", 200)]


def test_server_clock_far_ahead_does_not_loop(emulator):
    # expiry is measured from the token's own lifetime, so a skewed server clock is harmless
    emu = emulator("fork")
    emu.state.set_clock("2030-01-01T00:00:00Z")
    with client(emu) as c:
        c.get_book(1)
        c.get_book(1)
    assert [p for _, p, _ in log_paths(emu)].count("/api/v1/auth/refresh") == 0


def test_refresh_expired_falls_back_to_login(emulator):
    emu = emulator("fork")
    with client(emu) as c:
        c.get_book(1)
        emu.state.expire_access_tokens()
        emu.state.expire_refresh_tokens()
        seq = last_seq(emu)
        c.get_book(1)
    assert log_paths(emu, seq) == [
        ("GET", "/api/v1/books/1", 401),
        ("POST", "/api/v1/auth/refresh", 400),
        ("POST", "/api/v1/auth/login", 200),
        ("GET", "/api/v1/books/1", 200),
    ]


def test_broken_signature(emulator):
    emu = emulator("fork")
    with client(emu) as c:
        c.list_books()
        emu.state.break_signatures()
        assert len(c.list_books()) == 2
    assert [p for _, p, _ in log_paths(emu)].count("/api/v1/auth/login") == 2


def test_second_401_is_final(emulator):
    emu = emulator("fork")
    with client(emu) as c:
        c.check_booklore_auth()
        emu.inject_fault("/api/v1/reading-sessions", "status", method="POST", status=401, body=None, times=2)
        with pytest.raises(AuthError) as info:
            c.post_session(1, "EPUB", session())
    assert info.value.status == 401 and info.value.kind == "rejected"
    assert [p for _, p, _ in log_paths(emu)].count("/api/v1/reading-sessions") == 2
    assert not emu.state.sessions()


def test_concurrent_threads_one_login(emulator):
    emu = emulator("fork")
    errors = []
    with client(emu) as c:
        def work():
            try:
                c.get_book(1)
            except Exception as exc:  # pragma: no cover
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    assert [p for _, p, _ in log_paths(emu)].count("/api/v1/auth/login") == 1


def test_two_runs_same_second_no_collision(emulator):
    # two clients for the same user log in back to back: the spacing rule keeps them
    # out of the same server second, so no "data conflict"
    emu = emulator("fork")
    with client(emu) as a, client(emu) as b:
        a.check_booklore_auth()
        b.check_booklore_auth()
    statuses = [s for _, p, s in log_paths(emu) if p == "/api/v1/auth/login"]
    assert statuses == [200, 200]


def test_login_collision_retried_once(emulator):
    emu = emulator("fork")
    emu.inject_fault("/api/v1/auth/login", "status", status=400, times=1,
                     body={"status": 400, "message": "A data conflict occurred. The operation could not be completed."})
    with client(emu) as c:
        c.get_book(1)
    assert [s for _, p, s in log_paths(emu) if p == "/api/v1/auth/login"] == [400, 200]


# ------------------------------------------------------------------ failures via fault injection


def test_server_stopped_is_offline(emulator):
    emu = emulator("fork")
    with client(emu) as c:
        c.healthcheck()
        emu.stop()
        with pytest.raises(OfflineError):
            c.healthcheck()
        with pytest.raises(OfflineError):
            c.post_session(1, "EPUB", session())
        with pytest.raises(OfflineError):
            c.probe()


def test_nothing_listening_is_offline():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with BookLoreClient(f"http://127.0.0.1:{port}", koreader_user="x", koreader_password="y", connect_timeout=2) as c:
        with pytest.raises(OfflineError) as info:
            c.put_progress(HASH, progress="1", percentage=0.5, device="d", device_id="i")
    assert info.value.status is None


def test_drop_on_write_is_outcome_unknown_then_verify(emulator):
    emu = emulator("fork")
    with client(emu) as c:
        emu.inject_fault("/api/v1/reading-sessions", "drop", method="POST")
        with pytest.raises(OutcomeUnknownError):
            c.post_session(1, "EPUB", session(0))
        assert c.verify_sessions(1, [session(0)]) == [False]  # dropped before processing
        c.post_session(1, "EPUB", session(0))
        assert c.verify_sessions(1, [session(0)]) == [True]
    assert len(emu.state.sessions()) == 1


def test_commit_then_drop_batch_no_duplicate(emulator):
    emu = emulator("fork")
    batch = [session(i) for i in range(5)]
    with client(emu) as c:
        emu.inject_fault("/api/v1/reading-sessions/batch", "commit_then_drop", method="POST")
        with pytest.raises(OutcomeUnknownError) as info:
            c.post_sessions_batch(1, "EPUB", batch)
        assert not batch_refused(info.value)
        present = c.verify_sessions(1, batch)
    assert present == [True] * 5
    assert len(emu.state.sessions()) == 5
    assert [p for _, p, _ in log_paths(emu)].count("/api/v1/reading-sessions/batch") == 1  # never resent


def test_commit_then_hang_with_short_read_timeout(emulator):
    emu = emulator("fork")
    with client(emu, read_timeout=0.5) as c:
        c.check_booklore_auth()
        emu.inject_fault("/api/v1/reading-sessions", "commit_then_hang", method="POST")
        t = time.monotonic()
        with pytest.raises(OutcomeUnknownError) as info:
            c.post_session(1, "EPUB", session(3))
        assert time.monotonic() - t < 5
        assert "outcome unknown" in info.value.message
        assert c.verify_sessions(1, [session(3)]) == [True]  # it was stored
    assert len(emu.state.sessions()) == 1


def test_hang_on_get_and_health(emulator):
    emu = emulator("fork")
    with client(emu, read_timeout=0.3) as c:
        emu.inject_fault("/api/koreader/users/auth", "hang", times=1)
        with pytest.raises(OutcomeUnknownError):
            c.check_koreader_auth()
        emu.inject_fault("/api/v1/healthcheck", "hang", times=1)
        with pytest.raises(OfflineError):
            c.healthcheck()
        assert c.healthcheck().version  # recovers


def test_drop_on_get_retried(emulator):
    emu = emulator("fork")
    with client(emu) as c:
        emu.inject_fault("/api/koreader/users/auth", "drop", times=1)
        assert c.check_koreader_auth() == KO[0]
        emu.inject_fault("/api/koreader/users/auth", "drop", times=1, reset=True)
        assert c.check_koreader_auth() == KO[0]


def test_status_503_then_success_batch(emulator):
    emu = emulator("fork")
    with client(emu) as c:
        c.probe()
        emu.inject_fault("/api/v1/reading-sessions/batch", "status", method="POST", status=503, times=2)
        for _ in range(2):
            with pytest.raises(OfflineError) as info:
                c.post_sessions_batch(1, "EPUB", [session(0)])
            assert not batch_refused(info.value)
        assert c.post_sessions_batch(1, "EPUB", [session(0)]).success_count == 1
        assert c.capabilities.batch is True
    assert len(emu.state.sessions()) == 1


def test_commit_then_502_is_outcome_unknown(emulator):
    emu = emulator("fork")
    with client(emu) as c:
        emu.inject_fault("/api/v1/book-notes", "commit_then_status", method="POST", status=502)
        with pytest.raises(OutcomeUnknownError) as info:
            c.create_book_note_v1(1, title="T", content="C")
        assert info.value.status == 502
        assert c.book_note_v1_present(1, title="T", content="C")
    assert len(emu.state.book_notes()) == 1


def test_html_status_override_is_not_json(emulator):
    emu = emulator("fork")
    with client(emu) as c:
        emu.inject_fault("/api/v1/books/1", "status", method="GET", status=200, body="<html><body>login</body></html>")
        from booklore_sync.booklore import NotJSONError
        with pytest.raises(NotJSONError):
            c.get_book(1)


def test_health_variants(emulator):
    emu = emulator("fork")
    with client(emu) as c:
        emu.inject_fault("/api/v1/healthcheck", "status", status=200, body="<html>proxy</html>")
        with pytest.raises(NotBookLoreError) as info:
            c.healthcheck()
        assert info.value.reason == "not_json"
        emu.inject_fault("/api/v1/healthcheck", "status", status=502, times=3)
        with pytest.raises(OfflineError):
            c.healthcheck()
    with BookLoreClient(emu.base_url + "/prefix") as c, pytest.raises(NotBookLoreError):
        c.healthcheck()  # HTML fallback at a wrong base path


# ------------------------------------------------------------------ batch refusal


def test_upstream_batch_refused_falls_back(emulator):
    emu = emulator("upstream")
    cache = MemoryCapabilityCache()
    with client(emu, capability_cache=cache) as c:
        c.probe()
        c._caps = c.capabilities.with_(batch=True)  # pretend a stale "fork" belief
        with pytest.raises(UnsupportedEndpointError) as info:
            c.post_sessions_batch(1, "EPUB", [session(0), session(1)])
        assert batch_refused(info.value) and info.value.status == 500
        assert c.capabilities.batch is False
        for s in (session(0), session(1)):
            c.post_session(1, "EPUB", s)
        assert c.verify_sessions(1, [session(0), session(1)]) == [True, True]
    assert cache.data[emu.base_url]["batch"] is False
    assert len(emu.state.sessions()) == 2


def test_upstream_batch_koreader_headers_403(emulator):
    emu = emulator("upstream")
    with client(emu, bl=False) as c, pytest.raises(UnsupportedEndpointError) as info:
        c.post_sessions_batch(1, "EPUB", [session(0)])
    assert info.value.status == 403 and batch_refused(info.value)


def test_batch_unknown_book_keeps_capability(emulator):
    emu = emulator("fork")
    with client(emu) as c:
        c.probe()
        with pytest.raises(NotFoundError) as info:
            c.post_sessions_batch(999, "EPUB", [session(0)])
        assert not batch_refused(info.value)
        assert c.capabilities.batch is True


# ------------------------------------------------------------------ endpoints end to end


def test_search_and_isbn(emulator):
    emu = emulator("fork")
    with client(emu) as c:
        res = c.search_books(isbn="978-0-306-40615-7")
        assert [(r.id, r.match_score) for r in res] == [(1, 1.0)]
        res = c.search_books(title="Leaves")
        assert res[0].id == 1 and res[0].match_score == pytest.approx(0.37209302325581395)
        assert res[0].hash == HASH


def test_by_hash_not_found_and_found(emulator):
    emu = emulator("fork")
    with client(emu) as c:
        assert c.book_by_hash(HASH.upper()).id == 1
        assert c.book_by_hash("f" * 32) is None
        assert c.book_by_hash_bearer(HASH2).book_type == "PDF"
        assert c.book_by_hash_bearer("f" * 32) is None


def test_rating_bug_grouped(emulator):
    emu = emulator("fork")
    for i in range(3):
        emu.state.add_book(title=f"Book {i}", file_hash=f"{i:032x}")
    with client(emu) as c:
        out = c.set_personal_rating_grouped([1, 2, 3, 4, 77], 8)
    assert out.unknown_ids == (77,)
    assert sorted(r.book_id for r in out.results) == [1, 2, 3, 4]
    assert {r["bookId"] for r in emu.state.ratings()} == {1, 2, 3, 4}


def test_duplicates_are_already_exists(emulator):
    emu = emulator("fork")
    with client(emu) as c:
        c.create_annotation(1, cfi="epubcfi(/6/4!/4/2/1:0)", text="hello", note="n")
        c.create_book_note_v2(1, cfi="epubcfi(/6/4!/4/2/1:0)", note_content="a note")
        c.create_bookmark(1, cfi="epubcfi(/6/8)", title="Chapter 2")
        with pytest.raises(AlreadyExistsError):
            c.create_annotation(1, cfi="epubcfi(/6/4!/4/2/1:0)", text="hello")
        with pytest.raises(AlreadyExistsError):
            c.create_book_note_v2(1, cfi="epubcfi(/6/4!/4/2/1:0)", note_content="again")
        with pytest.raises(AlreadyExistsError):
            c.create_bookmark(1, cfi="epubcfi(/6/8)", title="Chapter 2")
        assert len(c.list_annotations(1)) == 1 and len(c.list_book_notes_v2(1)) == 1
        # lost response on an idempotent POST: retried, the 409 says it is there
        emu.inject_fault("/api/v1/annotations", "commit_then_drop", method="POST")
        with pytest.raises(AlreadyExistsError):
            c.create_annotation(1, cfi="epubcfi(/6/10)", text="lost answer")
        assert len(c.list_annotations(1)) == 2


def test_unknown_book_500_then_book_exists(emulator):
    emu = emulator("fork")
    with client(emu) as c:
        with pytest.raises(ServerError) as info:
            c.create_annotation(404, cfi="epubcfi(/6/4)", text="x")
        assert info.value.status == 500
        assert c.book_exists(404) is False and c.book_exists(1) is True
        with pytest.raises(NotFoundError):
            c.create_book_note_v1(404, content="x")


def test_pdf_bookmark_verify(emulator):
    emu = emulator("fork")
    with client(emu) as c:
        emu.inject_fault("/api/v1/bookmarks", "commit_then_drop", method="POST")
        with pytest.raises(OutcomeUnknownError):
            c.create_bookmark(2, title="Page 12")  # no CFI: not retried
        assert c.bookmark_without_cfi_present(2, title="Page 12")
    assert len(emu.state.bookmarks()) == 1


def test_renumbered_library(emulator):
    emu = emulator("fork")
    emu.state.renumber(100)
    with client(emu) as c:
        with pytest.raises(NotFoundError):
            c.get_book(1)
        assert c.get_book(101).title == "Leaves of Grass"
        assert c.book_by_hash(HASH).id == 101


def test_progress_roundtrip(emulator):
    emu = emulator("fork")
    with client(emu) as c:
        assert c.get_progress(HASH) is None  # known book, no progress yet
        with pytest.raises(NotFoundError):
            c.get_progress("e" * 32)
        c.put_progress(HASH, progress="/body/DocFragment[7]/body/p[3]/text().0", percentage=0.9951,
                       device="Kobo", device_id="K1")
        p = c.get_progress(HASH)
        assert p.progress == "/body/DocFragment[7]/body/p[3]/text().0" and p.device == "BookLore"
        with pytest.raises(NotFoundError):
            c.put_progress("e" * 32, progress="1", percentage=0.5, device="d", device_id="i")


def test_verify_sessions_paging(emulator):
    emu = emulator("fork")
    sessions = [session(i, minutes=10) for i in range(230)]
    with client(emu) as c:
        for i in range(0, 230, 100):
            c.post_sessions_batch(1, "EPUB", sessions[i:i + 100])
        seq = last_seq(emu)
        assert c.verify_sessions(1, [sessions[229], session(500)]) == [True, False]
        assert len(emu.request_log(seq)) == 1
        seq = last_seq(emu)
        assert c.verify_sessions(1, [sessions[0]]) == [True]
        assert len(emu.request_log(seq)) == 3
        page = c.list_sessions(1, page=0, size=100)
        assert page.total_elements == 230 and page.total_pages == 3
        assert page.items[0].start_time == sessions[229].start_time  # newest first


# ------------------------------------------------------------------ secrets


def test_secrets_never_leak(emulator, caplog):
    caplog.set_level(logging.DEBUG)
    emu = emulator("fork")
    store = MemoryTokenStore()
    errors = []
    with client(emu, token_store=store, read_timeout=0.3) as c:
        c.probe()
        c.get_book(1)
        emu.state.expire_access_tokens()
        c.get_book(1)
        emu.inject_fault("/api/v1/reading-sessions", "commit_then_hang", method="POST")
        for call in (
            lambda: c.post_session(1, "EPUB", session()),
            lambda: c.get_book(999),
            lambda: c.create_annotation(999, cfi="epubcfi(/6/4)", text="x"),
        ):
            try:
                call()
            except Exception as exc:
                errors.append(exc)
        tokens = [t for t in store.history if t] + [c._tokens.access]
        rep = repr(c)
    emu.stop()
    with BookLoreClient(emu.base_url, booklore_user=BL[0], booklore_password=BL[1],
                        koreader_user=KO[0], koreader_password=KO[1]) as c:
        for call in (c.healthcheck, c.check_koreader_auth, c.list_books):
            try:
                call()
            except Exception as exc:
                errors.append(exc)
    assert len(errors) == 6
    secrets = [BL[1], KO[1], koreader_key(KO[1]), *tokens]
    texts = [rep, caplog.text] + [str(e) for e in errors] + [repr(e) for e in errors]
    for text in texts:
        for s in secrets:
            assert s not in text
    # the emulator's request log keeps no secrets either (its own contract, checked here too)
    dump = json.dumps(emu.request_log())
    assert BL[1] not in dump and koreader_key(KO[1]) not in dump


def test_find_by_hash_falls_back_to_bearer_when_not_linked(emulator):
    emu = emulator("fork")
    emu.state.set_koreader_account(KO[0], userId=None)
    with client(emu) as c:
        c.probe()
        assert c.find_book_by_hash(HASH).id == 1
        assert c.find_book_by_hash(HASH2).id == 2
    by_hash = [(p.split("/")[2], s) for _, p, s in log_paths(emu) if "/by-hash/" in p]
    # the probe's KOReader try (409), then only the bearer route
    assert by_hash[0] == ("koreader", 409)
    assert [x for x in by_hash[1:] if x[0] == "koreader"] == []


def test_login_dropped_once_is_repeated(emulator):
    emu = emulator("fork")
    emu.inject_fault("/api/v1/auth/login", "drop", method="POST", times=1)
    with client(emu) as c:
        assert c.get_book(1).id == 1


def test_login_hang_is_offline_for_the_call(emulator):
    emu = emulator("fork")
    emu.inject_fault("/api/v1/auth/login", "hang", method="POST", times=1)
    with client(emu, read_timeout=0.3) as c:
        with pytest.raises(OfflineError) as info:
            c.post_session(1, "EPUB", session())  # the session itself was never sent
        assert "login" in info.value.message
        c.post_session(1, "EPUB", session())
    assert len(emu.state.sessions()) == 1

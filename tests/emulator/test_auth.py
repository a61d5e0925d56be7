"""§2: the two credential sets, the route/scheme table, JWT login/refresh, the rate
limiter and the same-second collision."""

from __future__ import annotations

import base64
import json

import pytest

from booklore_sync.emulator import start_emulator

from .conftest import (
    BAD_KO,
    DATA_CONFLICT,
    KO,
    MALFORMED,
    Api,
    assert_empty_401,
    assert_error,
    assert_forbidden,
    book,
    md5,
)

TOO_MANY = "Too many failed login attempts. Please try again later."


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


# ---------------------------------------------------------------- §2.1 scheme per route


def test_public_routes_need_no_auth(mapi: Api):
    assert mapi.get("/api/v1/healthcheck", auth=None).status_code == 200
    assert mapi.login().status_code == 200


def test_koreader_routes_accept_koreader_headers_only(mapi: Api):
    assert mapi.get("/api/koreader/users/auth", auth="ko").status_code == 200
    # a valid bearer does not authenticate there
    assert_forbidden(mapi.get("/api/koreader/users/auth", auth="demo"), "/api/koreader/users/auth")
    assert_forbidden(mapi.get("/api/koreader/users/auth", auth=None), "/api/koreader/users/auth")


def test_bearer_routes_reject_koreader_headers(mapi: Api):
    bid = book(mapi.emu)
    for path in (f"/api/v1/books/{bid}", f"/api/v1/reading-sessions/book/{bid}", "/api/v1/books"):
        assert_forbidden(mapi.get(path, auth="ko"), path)
        assert_forbidden(mapi.get(path, auth=None), path)
        assert mapi.get(path, auth="demo").status_code == 200


SESSION = {"bookType": "EPUB", "startTime": "2026-02-22T14:00:00Z",
           "endTime": "2026-02-22T14:10:00Z", "durationSeconds": 600}


def test_single_session_auth_per_mode(mapi: Api, mode):
    bid = book(mapi.emu)
    body = dict(SESSION, bookId=bid)
    assert mapi.post("/api/v1/reading-sessions", auth="demo", json=body).status_code == 202
    r = mapi.post("/api/v1/reading-sessions", auth="ko", json=body)
    if mode == "fork":
        assert r.status_code == 202
    else:
        assert_forbidden(r, "/api/v1/reading-sessions")
    assert_forbidden(mapi.post("/api/v1/reading-sessions", auth=None, json=body), "/api/v1/reading-sessions")


def test_fork_precedence_valid_bearer_replaces_koreader(api: Api, emu):
    bid = book(emu)
    headers = dict(KO, Authorization=f"Bearer {api.token('admin')}")
    r = api.http.post("/api/v1/reading-sessions", headers=headers, json=dict(SESSION, bookId=bid))
    assert r.status_code == 202
    admin_id = next(u["id"] for u in emu.state.users() if u["username"] == "admin")
    assert emu.state.sessions()[0]["userId"] == admin_id
    assert emu.state.request_log()[-1]["auth"] == "bearer"


def test_fork_precedence_invalid_bearer_gives_401_even_with_valid_koreader(api: Api, emu):
    bid = book(emu)
    headers = dict(KO, Authorization="Bearer not.a.token")
    for path, body in (("/api/v1/reading-sessions", dict(SESSION, bookId=bid)),
                       ("/api/v1/reading-sessions/batch", {"bookId": bid, "bookType": "EPUB",
                                                           "sessions": [SESSION]})):
        assert_empty_401(api.http.post(path, headers=headers, json=body))
    assert emu.state.sessions() == []


def test_bearer_on_koreader_routes(api: Api):
    # invalid → 401 empty; valid → ignored (the KOReader identity stands)
    assert_empty_401(api.http.get("/api/koreader/users/auth", headers=dict(KO, Authorization="Bearer x.y.z")))
    r = api.http.get("/api/koreader/users/auth",
                     headers=dict(KO, Authorization=f"Bearer {api.token('admin')}"))
    assert r.status_code == 200 and r.json() == {"username": "demo"}
    # bad KOReader headers with a bad bearer: the chain's 403 comes first
    assert_forbidden(api.http.get("/api/koreader/users/auth", headers=dict(BAD_KO, Authorization="Bearer x")),
                     "/api/koreader/users/auth")


# ---------------------------------------------------------------- §2.2 KOReader headers


@pytest.mark.parametrize("headers", [
    BAD_KO,
    {"x-auth-user": "nobody", "x-auth-key": md5("demo")},
    {"x-auth-user": "demo"},
    {"x-auth-key": md5("demo")},
    {},
])
def test_koreader_failures_are_403_never_401(api: Api, headers):
    r = api.http.get("/api/koreader/users/auth", headers=headers)
    assert_forbidden(r, "/api/koreader/users/auth")


def test_koreader_username_and_key_ignore_case(api: Api):
    r = api.http.get("/api/koreader/users/auth",
                     headers={"x-auth-user": "DEMO", "x-auth-key": md5("demo").upper()})
    assert r.status_code == 200 and r.json() == {"username": "demo"}


def test_koreader_not_linked_gives_409_on_fork_routes(api: Api, emu):
    bid = book(emu)
    emu.state.set_koreader_account("demo", userId=None)
    assert api.get("/api/koreader/users/auth", auth="ko").status_code == 200
    assert_error(api.get(f"/api/koreader/books/by-hash/{'a' * 32}", auth="ko"), 409,
                 "KOReader user is not linked to a BookLore user")
    assert_error(api.post("/api/v1/reading-sessions", auth="ko", json=dict(SESSION, bookId=bid)), 409,
                 "KOReader user is not linked to a BookLore user")
    assert_error(api.post("/api/v1/reading-sessions/batch", auth="ko",
                          json={"bookId": bid, "bookType": "EPUB", "sessions": [SESSION]}), 409,
                 "KOReader user is not linked to a BookLore user")


def test_sync_disabled_only_blocks_progress_routes(api: Api, emu):
    bid = book(emu)
    emu.state.set_koreader_account("demo", syncEnabled=False)
    assert_error(api.put("/api/koreader/syncs/progress", auth="ko",
                         json={"document": "a" * 32, "progress": "1", "percentage": 0.5}),
                 401, "Sync is disabled for this user")
    assert_error(api.get(f"/api/koreader/syncs/progress/{'a' * 32}", auth="ko"), 401,
                 "Sync is disabled for this user")
    assert api.get("/api/koreader/users/auth", auth="ko").status_code == 200
    assert api.get(f"/api/koreader/books/by-hash/{'a' * 32}", auth="ko").status_code == 200
    assert api.post("/api/v1/reading-sessions", auth="ko", json=dict(SESSION, bookId=bid)).status_code == 202


def test_revoked_permission_does_not_block_koreader_routes(api: Api, emu):
    emu.state.set_user("demo", canSyncKoReader=False)
    assert api.get("/api/koreader/users/auth", auth="ko").status_code == 200


def test_users_create_is_always_403(api: Api):
    r = api.post("/api/koreader/users/create", auth="ko", json={"username": "x", "password": "y"})
    assert r.status_code == 403 and r.json() == {"error": "User registration via Koreader is disabled"}
    assert_forbidden(api.post("/api/koreader/users/create", auth=None, json={}), "/api/koreader/users/create")


# ---------------------------------------------------------------- §2.3 JWT


def test_login_response_and_claims(api: Api, emu):
    r = api.login()
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"accessToken", "refreshToken", "isDefaultPassword"}
    assert body["isDefaultPassword"] == "false"  # a string
    c = claims(body["accessToken"])
    assert c["sub"] == "demo" and isinstance(c["userId"], int) and c["isDefaultPassword"] is False
    assert c["exp"] - c["iat"] == 36_000
    assert json.loads(base64.urlsafe_b64decode(body["accessToken"].split(".")[0] + "=="))["alg"] == "HS256"
    rc = claims(body["refreshToken"])
    assert rc["exp"] - rc["iat"] == 30 * 24 * 3600


def test_is_default_password_is_a_string(api: Api, emu):
    emu.state.set_user("demo", isDefaultPassword=True)
    assert api.login().json()["isDefaultPassword"] == "true"


def test_refresh_rotates_and_old_token_gives_400(api: Api, emu):
    first = api.login().json()
    emu.state.advance_clock(2)
    r = api.http.post("/api/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert r.status_code == 200 and set(r.json()) == {"accessToken", "refreshToken"}
    second = r.json()
    assert second["refreshToken"] != first["refreshToken"]
    assert api.get("/api/v1/books", auth=None,
                   headers={"Authorization": f"Bearer {second['accessToken']}"}).status_code == 200
    emu.state.advance_clock(2)
    assert_error(api.http.post("/api/v1/auth/refresh", json={"refreshToken": first["refreshToken"]}),
                 400, "Invalid credentials")
    emu.state.advance_clock(2)
    assert api.http.post("/api/v1/auth/refresh", json={"refreshToken": second["refreshToken"]}).status_code == 200


def test_refresh_ignores_a_stale_bearer(api: Api):
    tokens = api.login().json()
    api.emu.state.advance_clock(2)
    r = api.http.post("/api/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]},
                      headers={"Authorization": "Bearer stale.token.here"})
    assert r.status_code == 200  # the JWT filter skips /api/v1/auth/refresh


@pytest.mark.parametrize("body,details", [
    ({}, ["refreshToken: Refresh token must not be blank"]),
    ({"refreshToken": " "}, ["refreshToken: Refresh token must not be blank"]),
])
def test_refresh_validation(api: Api, body, details):
    assert_error(api.http.post("/api/v1/auth/refresh", json=body), 400, "Validation error", details)


def test_refresh_rejects_unknown_expired_and_broken(api: Api, emu):
    assert_error(api.http.post("/api/v1/auth/refresh", json={"refreshToken": "nope"}), 400, "Invalid credentials")
    t = api.login().json()
    emu.state.expire_refresh_tokens()
    assert_error(api.http.post("/api/v1/auth/refresh", json={"refreshToken": t["refreshToken"]}),
                 400, "Invalid credentials")
    emu.state.advance_clock(2)
    t = api.login().json()
    emu.state.break_signatures()
    assert_error(api.http.post("/api/v1/auth/refresh", json={"refreshToken": t["refreshToken"]}),
                 400, "Invalid credentials")


def test_refresh_token_expires_after_30_days(api: Api, emu):
    t = api.login().json()
    emu.state.advance_clock(30 * 24 * 3600 + 1)
    assert_error(api.http.post("/api/v1/auth/refresh", json={"refreshToken": t["refreshToken"]}),
                 400, "Invalid credentials")


def test_refresh_rate_limit_per_ip(api: Api):
    for _ in range(5):
        assert api.http.post("/api/v1/auth/refresh", json={"refreshToken": "bad"}).status_code == 400
    assert_error(api.http.post("/api/v1/auth/refresh", json={"refreshToken": "bad"}), 429, TOO_MANY)


def test_bad_bearer_is_401_empty_missing_bearer_is_403(api: Api, emu):
    assert_empty_401(api.get("/api/v1/books", auth=None, headers={"Authorization": "Bearer garbage"}))
    assert_forbidden(api.get("/api/v1/books", auth=None), "/api/v1/books")
    token = api.token()
    emu.state.advance_clock(36_001)
    assert_empty_401(api.get("/api/v1/books", auth=None, headers={"Authorization": f"Bearer {token}"}))


def test_access_token_lifetime_is_configurable():
    with start_emulator(access_token_ttl=5) as emu:
        api = Api(emu)
        token = api.token()
        assert claims(token)["exp"] - claims(token)["iat"] == 5
        assert api.get("/api/v1/books").status_code == 200
        emu.state.advance_clock(6)
        assert_empty_401(api.get("/api/v1/books"))


def test_control_expire_access_and_break_signature(api: Api, emu):
    token = api.token()
    emu.state.expire_access_tokens()
    assert_empty_401(api.get("/api/v1/books"))
    emu.state.advance_clock(2)
    fresh = api.login().json()["accessToken"]  # tokens issued afterwards are fine
    assert api.get("/api/v1/books", auth=None, headers={"Authorization": f"Bearer {fresh}"}).status_code == 200
    emu.state.break_signatures()
    assert_empty_401(api.get("/api/v1/books", auth=None, headers={"Authorization": f"Bearer {fresh}"}))
    assert token


def test_token_of_a_deleted_user_is_401(api: Api, emu):
    api.token()
    emu.state.delete_user("demo")
    assert_empty_401(api.get("/api/v1/books"))


def test_login_with_a_stale_bearer_is_401(api: Api):
    r = api.http.post("/api/v1/auth/login", json={"username": "demo", "password": "demo"},
                      headers={"Authorization": "Bearer stale"})
    assert_empty_401(r)


@pytest.mark.parametrize("body,details", [
    ({"username": "demo"}, ["password: Password must not be blank"]),
    ({"username": "", "password": "x"}, ["username: Username must not be blank"]),
    ({}, ["username: Username must not be blank", "password: Password must not be blank"]),
])
def test_login_validation(api: Api, body, details):
    assert_error(api.http.post("/api/v1/auth/login", json=body), 400, "Validation error", details)


def test_login_malformed_json(api: Api):
    r = api.http.post("/api/v1/auth/login", content=b"{not json", headers={"Content-Type": "application/json"})
    assert_error(r, 400, MALFORMED)


def test_login_wrong_credentials_are_400(api: Api):
    assert_error(api.login("demo", "wrong"), 400, "Invalid credentials")
    assert_error(api.login("nobody", "x"), 400, "Invalid credentials")


def test_login_rate_limit_and_window(api: Api, emu):
    for _ in range(5):
        assert_error(api.login("demo", "wrong"), 400, "Invalid credentials")
    # even the correct password now gets 429
    assert_error(api.login("demo", "demo"), 429, TOO_MANY)
    emu.state.advance_clock(14 * 60)
    assert_error(api.login("demo", "demo"), 429, TOO_MANY)
    emu.state.advance_clock(61)  # 15 minutes after the first failure
    assert api.login("demo", "demo").status_code == 200


def test_login_rate_limit_per_username_trimmed_lowercased(api: Api, emu):
    for name in ("Demo", "demo ", "DEMO", "demo", " demo"):
        api.login(name, "wrong")
    # another IP would still be limited by the username counter; here both counters are full
    assert api.login("demo", "demo").status_code == 429


def test_successful_login_resets_counters(api: Api, emu):
    for _ in range(4):
        api.login("demo", "wrong")
    assert api.login("demo", "demo").status_code == 200
    emu.state.advance_clock(2)
    for _ in range(4):
        api.login("demo", "wrong")
    assert api.login("demo", "demo").status_code == 200


def test_same_second_login_collision(api: Api, emu):
    emu.state.set_clock("2026-01-01T00:00:00Z", frozen=True)
    assert api.login().status_code == 200
    assert_error(api.login(), 400, DATA_CONFLICT)
    emu.state.advance_clock(1)
    assert api.login().status_code == 200


def test_same_second_refresh_collides_with_login(api: Api, emu):
    emu.state.set_clock("2026-01-01T00:00:00Z", frozen=True)
    t = api.login().json()
    assert_error(api.http.post("/api/v1/auth/refresh", json={"refreshToken": t["refreshToken"]}), 400, DATA_CONFLICT)
    emu.state.advance_clock(1)
    assert api.http.post("/api/v1/auth/refresh", json={"refreshToken": t["refreshToken"]}).status_code == 200


def test_fixed_bugs_has_no_login_collision():
    with start_emulator(fixed_bugs=True) as emu:
        api = Api(emu)
        emu.state.set_clock("2026-01-01T00:00:00Z", frozen=True)
        assert api.login().status_code == 200
        assert api.login().status_code == 200


def test_oidc_only(api: Api, emu):
    emu.state.configure(oidc_only=True)
    assert_error(api.login(), 403, "Local login is disabled. Use OIDC to sign in.")


def test_control_one_token_expired_or_broken(api: Api, emu):
    import httpx

    token = api.token()
    assert httpx.post(f"{emu.base_url}/__emulator/tokens", json={"token": token}).json() == {"expired": 1}
    assert_empty_401(api.get("/api/v1/books"))
    emu.state.advance_clock(2)
    other = api.login().json()["accessToken"]
    r = httpx.post(f"{emu.base_url}/__emulator/tokens", json={"token": other, "break_signature": True})
    assert r.json() == {"broken": 1}
    assert_empty_401(api.get("/api/v1/books", auth=None, headers={"Authorization": f"Bearer {other}"}))

"""§7.7 fault hooks: status, delay, hang, drop, commit_then_{drop,hang,status}; rule
matching (method, exact/prefix, skip, times); the request log."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from .conftest import KO, Api, assert_error, book

BATCH = "/api/v1/reading-sessions/batch"


def batch_body(bid: int) -> dict:
    return {"bookId": bid, "bookType": "EPUB",
            "sessions": [{"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T00:01:00Z", "durationSeconds": 60}]}


def test_status_n_times_then_success(api: Api, emu):
    bid = book(emu)
    rule = emu.state.inject_fault(BATCH, "status", status=503, times=2, method="POST")
    for _ in range(2):
        assert_error(api.post(BATCH, json=batch_body(bid)), 503, "Injected fault")
    assert emu.state.sessions() == []  # not processed
    assert api.post(BATCH, json=batch_body(bid)).status_code == 200
    assert len(emu.state.sessions()) == 1
    [r] = emu.state.fault_rules()
    assert r["id"] == rule["id"] and r["remaining"] == 0 and r["hits"] == 2
    log = emu.state.request_log()
    assert [e["status"] for e in log if e["path"] == BATCH] == [503, 503, 200]
    assert [e["fault"] for e in log if e["path"] == BATCH] == [rule["id"], rule["id"], None]


def test_status_bodies_and_headers(api: Api, emu):
    emu.state.inject_fault("/api/v1/healthcheck", "status", status=502, body="<html>Bad gateway</html>",
                           headers={"X-Proxy": "nginx"})
    emu.state.inject_fault("/api/v1/healthcheck", "status", status=504, body="upstream timed out")
    emu.state.inject_fault("/api/v1/healthcheck", "status", status=503, body={"custom": True})
    emu.state.inject_fault("/api/v1/healthcheck", "status", status=500, body=None)
    r = api.get("/api/v1/healthcheck", auth=None)
    assert (r.status_code, r.headers["content-type"], r.headers["x-proxy"]) == (502, "text/html", "nginx")
    r = api.get("/api/v1/healthcheck", auth=None)
    assert (r.status_code, r.headers["content-type"], r.text) == (504, "text/plain", "upstream timed out")
    r = api.get("/api/v1/healthcheck", auth=None)
    assert (r.status_code, r.json()) == (503, {"custom": True})
    r = api.get("/api/v1/healthcheck", auth=None)
    assert (r.status_code, r.content) == (500, b"")
    assert api.get("/api/v1/healthcheck", auth=None).status_code == 200


def test_status_fault_skips_auth_and_processing(api: Api, emu):
    emu.state.inject_fault("/api/v1/books", "status", status=418)
    assert api.get("/api/v1/books", auth=None).status_code == 418


def test_matching_method_prefix_skip_unlimited(api: Api, emu):
    bid = book(emu)
    emu.state.inject_fault("/api/v1/reading-sessions", "status", match="prefix", method="GET", skip=1, times=None,
                           status=500)
    assert api.get(f"/api/v1/reading-sessions/book/{bid}").status_code == 200  # skipped
    for _ in range(3):
        assert api.get(f"/api/v1/reading-sessions/book/{bid}").status_code == 500
    assert api.post(BATCH, json=batch_body(bid)).status_code == 200  # other method
    emu.state.clear_faults()
    assert api.get(f"/api/v1/reading-sessions/book/{bid}").status_code == 200


def test_rules_in_order_first_with_count_left(api: Api, emu):
    emu.state.inject_fault("/api/v1/healthcheck", "status", status=501, times=1)
    emu.state.inject_fault("/api/v1/healthcheck", "status", status=502, times=1)
    assert [api.get("/api/v1/healthcheck", auth=None).status_code for _ in range(3)] == [501, 502, 200]


def test_delay(api: Api, emu):
    emu.state.inject_fault("/api/v1/healthcheck", "delay", delay_ms=300)
    t0 = time.monotonic()
    assert api.get("/api/v1/healthcheck", auth=None).status_code == 200
    assert time.monotonic() - t0 >= 0.3
    emu.state.inject_fault("/api/v1/healthcheck", "delay", delay_ms=2000)
    with pytest.raises(httpx.ReadTimeout):
        api.http.get("/api/v1/healthcheck", timeout=httpx.Timeout(5, read=0.3))


def test_delay_then_status(api: Api, emu):
    emu.state.inject_fault("/api/v1/healthcheck", "status", status=503, delay_ms=200)
    t0 = time.monotonic()
    assert api.get("/api/v1/healthcheck", auth=None).status_code == 503
    assert time.monotonic() - t0 >= 0.2


def test_hang_never_answers_and_does_not_process(api: Api, emu):
    bid = book(emu)
    emu.state.inject_fault(BATCH, "hang")
    with pytest.raises(httpx.ReadTimeout):
        api.post(BATCH, json=batch_body(bid), timeout=httpx.Timeout(5, read=0.4))
    assert emu.state.sessions() == []
    entry = [e for e in emu.state.request_log() if e["path"] == BATCH][-1]
    assert entry["outcome"] == "hung" and entry["status"] is None


def test_hang_is_released_by_deleting_the_rule(api: Api, emu):
    rule = emu.state.inject_fault("/api/v1/healthcheck", "hang")
    errors = []

    def call():
        try:
            httpx.get(emu.base_url + "/api/v1/healthcheck", timeout=5)
        except httpx.HTTPError as exc:
            errors.append(exc)

    t = threading.Thread(target=call)
    t0 = time.monotonic()
    t.start()
    wait_until_hung(emu, "/api/v1/healthcheck")
    # the server stays concurrent while a connection hangs
    assert api.get("/api/v1/books").status_code == 200
    assert httpx.delete(f"{emu.base_url}/__emulator/faults/{rule['id']}").status_code == 204
    t.join(5)
    assert errors and isinstance(errors[0], httpx.RemoteProtocolError)
    assert time.monotonic() - t0 < 3


@pytest.mark.parametrize("reset", [False, True])
def test_drop_before_processing(api: Api, emu, reset):
    bid = book(emu)
    emu.state.inject_fault(BATCH, "drop", reset=reset)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        api.post(BATCH, json=batch_body(bid))
    assert emu.state.sessions() == []
    assert emu.state.request_log()[-1]["outcome"] == "dropped"
    assert api.post(BATCH, json=batch_body(bid)).status_code == 200  # next one goes through


def test_commit_then_drop_stores_but_does_not_answer(api: Api, emu):
    """Scenario 3: the batch is committed, then the connection drops."""
    bid = book(emu)
    emu.state.inject_fault(BATCH, "commit_then_drop")
    with pytest.raises(httpx.RemoteProtocolError):
        api.post(BATCH, json=batch_body(bid))
    assert len(emu.state.sessions()) == 1
    entry = emu.state.request_log()[-1]
    assert entry["outcome"] == "dropped" and entry["status"] is None
    listed = api.get(f"/api/v1/reading-sessions/book/{bid}?size=100").json()
    assert listed["page"]["totalElements"] == 1  # verify-before-resend finds it


def test_commit_then_hang(api: Api, emu):
    """Scenario 4: accept then time out; the write happened."""
    bid = book(emu)
    emu.state.inject_fault("/api/v1/reading-sessions", "commit_then_hang")
    body = dict(batch_body(bid)["sessions"][0], bookId=bid, bookType="EPUB")
    with pytest.raises(httpx.ReadTimeout):
        api.post("/api/v1/reading-sessions", json=body, timeout=httpx.Timeout(5, read=0.4))
    assert len(emu.state.sessions()) == 1
    assert emu.state.request_log()[-1]["outcome"] == "hung"
    # the retry goes through (and, with no dedup on the server, duplicates)
    assert api.post("/api/v1/reading-sessions", json=body).status_code == 202
    assert len(emu.state.sessions()) == 2


def test_commit_then_hang_answers_after_hang_ms(api: Api, emu):
    bid = book(emu)
    emu.state.inject_fault(BATCH, "commit_then_hang", hang_ms=400)
    t0 = time.monotonic()
    r = api.post(BATCH, json=batch_body(bid), timeout=5)
    assert r.status_code == 200 and time.monotonic() - t0 >= 0.4
    with pytest.raises(httpx.ReadTimeout):
        emu.state.inject_fault(BATCH, "commit_then_hang", hang_ms=1500)
        api.post(BATCH, json=batch_body(bid), timeout=httpx.Timeout(5, read=0.3))
    assert len(emu.state.sessions()) == 2


def test_commit_then_status(api: Api, emu):
    bid = book(emu)
    emu.state.inject_fault(BATCH, "commit_then_status", status=502)
    r = api.post(BATCH, json=batch_body(bid))
    assert r.status_code == 502 and r.json()["message"] == "Injected fault"
    assert len(emu.state.sessions()) == 1


def test_stop_releases_hung_connections(emu):
    emu.state.inject_fault("/api/v1/healthcheck", "hang")
    errors = []

    def call():
        try:
            httpx.get(emu.base_url + "/api/v1/healthcheck", timeout=10)
        except httpx.HTTPError as exc:
            errors.append(exc)

    t = threading.Thread(target=call)
    t.start()
    wait_until_hung(emu, "/api/v1/healthcheck")
    t0 = time.monotonic()
    emu.stop()
    t.join(5)
    assert errors and time.monotonic() - t0 < 3
    with pytest.raises(httpx.ConnectError):  # scenario 1: offline
        httpx.get(emu.base_url + "/api/v1/healthcheck", timeout=2)


def test_fault_control_routes(emu):
    base = emu.base_url + "/__emulator/faults"
    r = httpx.post(base, json={"method": "POST", "path": BATCH, "match": "exact", "skip": 0, "times": 2,
                               "action": "status", "status": 503, "body": {"status": 503, "message": "Injected"},
                               "headers": {}, "delay_ms": 0})
    assert r.status_code == 201 and r.json()["id"] >= 1
    assert httpx.get(base).json()[0]["remaining"] == 2
    assert httpx.post(base, json={"path": "/x", "action": "explode"}).status_code == 400
    assert httpx.delete(base + "/999").status_code == 404
    assert httpx.delete(base).status_code == 204
    assert httpx.get(base).json() == []


# ---------------------------------------------------------------- request log


def test_request_log_auth_and_no_secrets(api: Api, emu):
    bid = book(emu)
    api.tokens["demo"] = api.login().json()["accessToken"]
    api.get(f"/api/koreader/books/by-hash/{'a' * 32}", auth="ko")
    api.get("/api/v1/books/1")
    api.http.get("/api/v1/books/1", headers=KO)
    api.http.post("/api/v1/auth/refresh", json={"refreshToken": "secret-refresh-token"})
    api.put("/api/v1/koreader-users/me", json={"username": "demo", "password": "topsecret"})
    log = emu.state.request_log()
    assert [e["seq"] for e in log] == sorted(e["seq"] for e in log)
    login, byhash, get, ko_on_bearer, refresh, me = log
    assert (login["auth"], login["body"]) == ("none", {"username": "demo", "password": "***"})
    assert (byhash["auth"], byhash["username"], byhash["authenticated"]) == ("koreader", "demo", True)
    assert (get["auth"], get["username"], get["sent"]) == ("bearer", "demo", ["bearer"])
    assert (ko_on_bearer["status"], ko_on_bearer["authenticated"], ko_on_bearer["sent"]) == (403, False, ["koreader"])
    assert refresh["body"] == {"refreshToken": "***"} and me["body"]["password"] == "***"
    text = str(log)
    for secret in ("secret-refresh-token", "topsecret", KO["x-auth-key"], api.tokens["demo"]):
        assert secret not in text
    assert {"seq", "time", "method", "path", "query", "auth", "username", "body", "status", "outcome",
            "fault"} <= set(get)
    since = log[2]["seq"]
    assert [e["seq"] for e in emu.state.request_log(since)] == [e["seq"] for e in log[3:]]
    r = httpx.get(f"{emu.base_url}/__emulator/requests", params={"since": since})
    assert [e["seq"] for e in r.json()] == [e["seq"] for e in log[3:]]
    assert httpx.delete(f"{emu.base_url}/__emulator/requests").status_code == 204
    assert emu.state.request_log() == []
    assert bid


def test_scenario_9_duplicate_annotation_after_lost_response(api: Api, emu):
    bid = book(emu)
    emu.state.inject_fault({"method": "POST", "path": "/api/v1/annotations", "action": "commit_then_drop"})
    body = {"bookId": bid, "cfi": "epubcfi(/6/2!/4/1:0)", "text": "t"}
    with pytest.raises(httpx.RemoteProtocolError):
        api.post("/api/v1/annotations", json=body)
    assert_error(api.post("/api/v1/annotations", json=body), 409, "Annotation already exists at this location")
    assert len(emu.state.annotations()) == 1


def test_scenario_8_rating_bug_one_unknown_in_five(api: Api, emu):
    ids = [book(emu, f"B{i}", None) for i in range(4)] + [9999]
    assert_error(api.put("/api/v1/books/personal-rating", json={"ids": ids, "rating": 8}), 400,
                 "d != java.lang.String")
    for i in ids[:4]:
        assert api.put("/api/v1/books/personal-rating", json={"ids": [i], "rating": 8}).status_code == 200
    assert len(emu.state.ratings()) == 4


def wait_until_hung(emu, path: str, timeout: float = 5.0) -> None:
    """Poll the request log until a request to ``path`` is held by a hang rule."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e["path"] == path and e.get("outcome") == "hung" for e in emu.state.request_log()):
            return
        time.sleep(0.01)
    raise AssertionError(f"no hung request to {path} within {timeout} s")

"""§6 capability probes and §7.4 modes: each probe comes out right in each mode,
including a switch at run time."""

from __future__ import annotations

import secrets
import string

import pytest

from booklore_sync.emulator import start_emulator

from .conftest import UNEXPECTED, Api, assert_error, assert_forbidden, assert_html, book

RANDOM_HEX = secrets.token_hex(16)
RANDOM_TITLE = "".join(secrets.choice(string.ascii_lowercase) for _ in range(12))


def probe(api: Api) -> dict:
    """The §6 probes, evaluated the way the client must read them."""
    out = {}
    r = api.get("/api/v1/healthcheck", auth=None)
    out["reachable"] = r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    out["koreader_ok"] = api.get("/api/koreader/users/auth", auth="ko").status_code == 200
    r = api.get(f"/api/koreader/books/by-hash/{RANDOM_HEX}", auth="ko")
    json_ = r.headers.get("content-type", "").startswith("application/json")
    out["by_hash_koreader"] = r.status_code == 404 and json_ and not r.json()["message"].startswith("Resource not found")
    r = api.get("/api/v1/books/search", params={"title": RANDOM_TITLE})
    out["search"] = r.status_code == 200 and r.headers["content-type"].startswith("application/json") and r.json() == []
    r = api.get(f"/api/v1/books/by-hash/{RANDOM_HEX}")
    out["by_hash_bearer"] = (r.status_code == 404 and r.headers["content-type"].startswith("application/json")
                             and not r.json()["message"].startswith("Resource not found"))
    return out


def test_probes_fork():
    with start_emulator(mode="fork") as emu:
        assert probe(Api(emu)) == {"reachable": True, "koreader_ok": True, "by_hash_koreader": True,
                                   "search": True, "by_hash_bearer": True}


@pytest.mark.parametrize("spa", [True, False])
def test_probes_upstream(spa):
    with start_emulator(mode="upstream", spa_fallback=spa) as emu:
        api = Api(emu)
        assert probe(api) == {"reachable": True, "koreader_ok": True, "by_hash_koreader": False,
                              "search": False, "by_hash_bearer": False}
        r = api.get(f"/api/koreader/books/by-hash/{RANDOM_HEX}", auth="ko")
        if spa:
            assert_html(r)
        else:
            assert_error(r, 404, f"Resource not found: /api/koreader/books/by-hash/{RANDOM_HEX}")
        assert_error(api.get("/api/v1/books/search", params={"title": RANDOM_TITLE}), 500, UNEXPECTED)


def test_probe_unlinked_account_is_409_on_fork():
    with start_emulator() as emu:
        emu.state.set_koreader_account("demo", userId=None)
        assert Api(emu).get(f"/api/koreader/books/by-hash/{RANDOM_HEX}", auth="ko").status_code == 409


def test_probe_bad_koreader_credentials_is_403():
    with start_emulator() as emu:
        api = Api(emu)
        r = api.http.get(f"/api/koreader/books/by-hash/{RANDOM_HEX}", headers={"x-auth-user": "demo", "x-auth-key": "0"})
        assert_forbidden(r, f"/api/koreader/books/by-hash/{RANDOM_HEX}")


def test_batch_probe_rows_per_mode():
    """Probe 6 is not a write probe, but each mode's batch answer is what the client keys on."""
    with start_emulator(mode="fork") as emu:
        api = Api(emu)
        bid = book(emu)
        ok = {"bookId": bid, "bookType": "EPUB",
              "sessions": [{"startTime": "2026-01-01T00:00:00Z", "endTime": "2026-01-01T00:01:00Z", "durationSeconds": 60}]}
        assert api.post("/api/v1/reading-sessions/batch", json=ok).status_code == 200
        assert_error(api.post("/api/v1/reading-sessions/batch", json=dict(ok, bookId=bid + 100)), 404,
                     f"Book not found with ID: {bid + 100}")
        emu.state.set_mode("upstream")  # switched at run time
        assert_error(api.post("/api/v1/reading-sessions/batch", json=ok), 500, UNEXPECTED)
        assert api.post("/api/v1/reading-sessions/batch", auth="ko", json=ok).status_code == 403
        r = api.http.post(emu.base_url + "/__emulator/mode", json={"mode": "fork"})
        assert r.status_code == 200 and r.json() == {"mode": "fork"}
        assert api.post("/api/v1/reading-sessions/batch", auth="ko", json=ok).status_code == 200


def test_mode_switch_changes_probes():
    with start_emulator(mode="upstream") as emu:
        api = Api(emu)
        assert probe(api)["by_hash_koreader"] is False
        emu.state.set_mode("fork")
        assert probe(api)["by_hash_koreader"] is True and probe(api)["search"] is True


def test_healthcheck_version_is_the_same_in_every_mode():
    versions = set()
    for mode in ("fork", "upstream", "fork-2675"):
        with start_emulator(mode=mode) as emu:
            versions.add(Api(emu).get("/api/v1/healthcheck", auth=None).json()["data"]["version"])
    assert len(versions) == 1

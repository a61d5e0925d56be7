"""`serve`'s security rules (spec §10.1) and its start/stop contract (§6.2, §6.4)."""

from __future__ import annotations

import json
import signal

import pytest

from tests.conftest import run_process
from tests.web.conftest import Page, csrf, start_serve

PASSWORD = "correct horse battery staple"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1"])
def test_non_loopback_without_password_refused(host):
    proc = run_process("serve", "--host", host, "--port", "0", timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "--password-file" in proc.stderr and "BOOKLORE_SYNC_WEB_PASSWORD" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_process("serve", "--host", host, "--port", "0", "--json", timeout=60)
    assert proc.returncode == 2
    data = json.loads(proc.stdout)
    assert data["exit_code"] == 2 and data["error"]["type"] == "usage"


def test_unreadable_password_file_and_missing_source(tmp_path):
    proc = run_process("serve", "--port", "0", "--password-file", str(tmp_path / "nope"))
    assert proc.returncode == 2 and "password file" in proc.stderr
    proc = run_process("serve", str(tmp_path / "no-such-folder"), "--port", "0")
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_json_first_line_and_sigint_exit_0():
    s = start_serve("--json")
    try:
        assert json.loads(s.first_line) == {"url": s.url}
        with s.client() as c:
            assert c.get("/").status_code == 200
        s.proc.send_signal(signal.SIGINT)
        assert s.proc.wait(timeout=20) == 0
    finally:
        s.stop()


def _login(c, password):
    token = csrf(c.get("/login").text)
    return c.post("/login", data={"csrf_token": token, "password": password})


@pytest.mark.parametrize("how", ["env", "file"])
def test_password_required_when_set(serve_factory, tmp_path, how):
    if how == "env":
        s = serve_factory(env={"BOOKLORE_SYNC_WEB_PASSWORD": PASSWORD})
    else:
        f = tmp_path / "pw"
        f.write_text(PASSWORD + "\nsecond line ignored\n", encoding="utf-8")
        s = serve_factory("--password-file", str(f))
    with s.client() as c:
        for path in ("/", "/pending", "/advanced", "/clear-pending", "/match/manual"):
            r = c.get(path)
            assert r.status_code == 303 and r.headers["location"] == "/login", path
        assert c.get("/jobs/x.json").status_code == 401
        token = csrf(c.get("/login").text)
        r = c.post("/clear-cache", data={"csrf_token": token})
        assert r.status_code == 303 and r.headers["location"] == "/login"
        page = Page(c.get("/login").text)
        page.button("Log in")
        assert "Password" in page.text
        r = _login(c, "wrong")
        assert r.status_code == 401 and "Wrong password." in r.text
        r = c.post("/login", data={"password": PASSWORD})  # no CSRF token
        assert r.status_code == 403
        r = _login(c, PASSWORD)
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"]
        for flag in ("HttpOnly", "SameSite=Strict", "Path=/"):
            assert flag in cookie
        r = c.get("/")
        assert r.status_code == 200 and Page(r.text).headings[0] == "Sync & Cache"
        for path in ("/", "/pending", "/advanced", "/advanced/clear", "/login"):
            body = c.get(path)
            assert PASSWORD not in body.text
            assert all(PASSWORD not in v for v in body.headers.values())
    with s.client() as other:  # a new browser is not logged in
        assert other.get("/").status_code == 303


def test_five_failures_then_429(serve_factory):
    s = serve_factory(env={"BOOKLORE_SYNC_WEB_PASSWORD": PASSWORD})
    with s.client() as c:
        for _ in range(5):
            assert _login(c, "nope").status_code == 401
        r = _login(c, PASSWORD)  # even the right one, for 15 minutes
        assert r.status_code == 429
        assert c.get("/").status_code == 303


def test_password_allows_other_hosts(serve_factory):
    s = serve_factory(env={"BOOKLORE_SYNC_WEB_PASSWORD": PASSWORD})
    with s.client() as c:
        assert c.get("/login", headers={"host": "books.example.org"}).status_code == 200

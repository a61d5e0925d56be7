"""Shared fixtures for the emulator contract suite: every test talks to a real emulator
over loopback HTTP (port 0)."""

from __future__ import annotations

import hashlib
import re
import ssl
from typing import Any

import httpx
import pytest

from booklore_sync.emulator import start_emulator
from tests.conftest import BOOKS

FIXTURE_BOOKS = BOOKS  # tests/fixtures/books
LEAVES_HASH = "59d481d168cca6267322f150c5f6a2a3"
TALL_HASH = "41cce710f34e5ec21315e19c99821415"
H1 = "a" * 32
H2 = "b" * 32
KO = {"x-auth-user": "demo", "x-auth-key": hashlib.md5(b"demo").hexdigest()}
BAD_KO = {"x-auth-user": "demo", "x-auth-key": hashlib.md5(b"wrong").hexdigest()}
LOCAL_DT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?$")
SPRING_TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
MALFORMED = "Request body is missing or malformed."
DATA_CONFLICT = "A data conflict occurred. The operation could not be completed."
UNEXPECTED = "An unexpected error occurred."
_SSL = ssl.create_default_context()  # shared: building one per client costs ~40 ms


def client(base_url: str = "", **kw: Any) -> httpx.Client:
    return httpx.Client(base_url=base_url, verify=_SSL, trust_env=False, timeout=kw.pop("timeout", 10), **kw)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


class Api:
    """A thin httpx wrapper: ``auth`` is "demo" / "admin" (bearer), "ko" (KOReader
    headers) or None."""

    def __init__(self, emu: Any) -> None:
        self.emu = emu
        self.http = client(emu.base_url)
        self.tokens: dict[str, str] = {}

    def login(self, username: str = "demo", password: str = "demo") -> httpx.Response:
        return self.http.post("/api/v1/auth/login", json={"username": username, "password": password})

    def token(self, username: str = "demo", password: str | None = None) -> str:
        if username not in self.tokens:
            r = self.login(username, password or username)
            assert r.status_code == 200, r.text
            self.tokens[username] = r.json()["accessToken"]
        return self.tokens[username]

    def headers(self, auth: str | None) -> dict[str, str]:
        if auth is None:
            return {}
        if auth == "ko":
            return dict(KO)
        return {"Authorization": f"Bearer {self.token(auth)}"}

    def request(self, method: str, path: str, auth: str | None = "demo", **kw: Any) -> httpx.Response:
        headers = dict(self.headers(auth))
        headers.update(kw.pop("headers", {}) or {})
        return self.http.request(method, path, headers=headers, **kw)

    def get(self, path: str, auth: str | None = "demo", **kw: Any) -> httpx.Response:
        return self.request("GET", path, auth, **kw)

    def post(self, path: str, auth: str | None = "demo", **kw: Any) -> httpx.Response:
        return self.request("POST", path, auth, **kw)

    def put(self, path: str, auth: str | None = "demo", **kw: Any) -> httpx.Response:
        return self.request("PUT", path, auth, **kw)

    def patch(self, path: str, auth: str | None = "demo", **kw: Any) -> httpx.Response:
        return self.request("PATCH", path, auth, **kw)

    def delete(self, path: str, auth: str | None = "demo", **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, auth, **kw)

    def close(self) -> None:
        self.http.close()


def assert_error(r: httpx.Response, status: int, message: str, details: list[str] | None = None) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == status
    assert body["message"] == message, body
    assert LOCAL_DT.match(body["timestamp"]), body["timestamp"]
    if details is None:
        assert "details" not in body
    else:
        assert body["details"] == details


def assert_forbidden(r: httpx.Response, path: str) -> None:
    """The security chain's 403 with Spring Boot's default body (no ``message``)."""
    assert r.status_code == 403, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"timestamp", "status", "error", "path"}
    assert body["status"] == 403 and body["error"] == "Forbidden" and body["path"] == path
    assert SPRING_TS.match(body["timestamp"])


def assert_empty_401(r: httpx.Response) -> None:
    assert r.status_code == 401, (r.status_code, r.text)
    assert r.content == b""


def assert_html(r: httpx.Response) -> None:
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("text/html")
    assert b"<app-root>" in r.content


@pytest.fixture
def emu():
    with start_emulator(port=0) as e:
        yield e


@pytest.fixture
def api(emu):
    a = Api(emu)
    yield a
    a.close()


@pytest.fixture(params=["fork", "upstream"])
def mode(request):
    return request.param


@pytest.fixture
def memu(mode):
    """An emulator in each of the two main modes."""
    with start_emulator(mode=mode, port=0) as e:
        yield e


@pytest.fixture
def mapi(memu):
    a = Api(memu)
    yield a
    a.close()


def book(emu: Any, title: str = "Dune", file_hash: str | None = H1, **kw: Any) -> int:
    return emu.state.add_book(title=title, authors=kw.pop("authors", ["Frank Herbert"]),
                              file_hash=file_hash, **kw)["id"]

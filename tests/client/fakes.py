"""A tiny scripted BookLore for ``httpx.MockTransport`` unit tests."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

BL_PASSWORD = "bl-Secr3t-pass"
KO_PASSWORD = "ko-Secr3t-pass"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(sub: str = "demo", lifetime: int = 36000, iat: int | None = None, nonce: int = 0) -> str:
    iat = int(time.time()) if iat is None else iat
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps({"sub": sub, "iat": iat, "exp": iat + lifetime, "n": nonce}).encode())
    return f"{header}.{payload}.{b64url(b'sig-%d' % nonce)}"


def json_resp(status: int, body: Any, headers: dict | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def err(status: int, message: str, **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"status": status, "message": message, "timestamp": "2026-01-01T00:00:00", **extra})


def html(status: int = 200) -> httpx.Response:
    return httpx.Response(
        status, text="<!doctype html><title>BookLore</title><app-root></app-root>",
        headers={"content-type": "text/html"},
    )


HEALTH_OK = {"status": 200, "message": "Pong", "data": {"status": "UP", "message": "ok", "version": "v1.2.3", "timestamp": "2026-01-01T00:00:00"}}


class FakeServer:
    """Routes: ``routes[(METHOD, path)] = handler(request) -> Response`` or a
    Response, or a list of them consumed in order (the last one repeats). Requests
    are recorded in ``self.requests``. Login/refresh are built in unless overridden."""

    def __init__(self, lifetime: int = 36000) -> None:
        self.routes: dict[tuple[str, str], Any] = {}
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()
        self.lifetime = lifetime
        self.nonce = 0
        self.valid_access: set[str] = set()
        self.valid_refresh: set[str] = set()
        self.logins = 0
        self.refreshes = 0
        self.login_delay = 0.0
        #: (method, path prefix, handler) used when no exact route matches
        self.prefix: list[tuple[str, str, Callable[[httpx.Request], httpx.Response]]] = []

    # --- built-in auth -------------------------------------------------------
    def issue(self) -> dict[str, str]:
        self.nonce += 1
        access = make_jwt(lifetime=self.lifetime, nonce=self.nonce)
        refresh = make_jwt(lifetime=30 * 86400, nonce=10_000 + self.nonce)
        self.valid_access.add(access)
        self.valid_refresh.add(refresh)
        return {"accessToken": access, "refreshToken": refresh}

    def login(self, request: httpx.Request) -> httpx.Response:
        if self.login_delay:
            time.sleep(self.login_delay)
        body = json.loads(request.content)
        if body.get("password") != BL_PASSWORD:
            return err(400, "Invalid credentials")
        self.logins += 1
        return json_resp(200, {**self.issue(), "isDefaultPassword": "false"})

    def refresh(self, request: httpx.Request) -> httpx.Response:
        token = json.loads(request.content).get("refreshToken")
        if token not in self.valid_refresh:
            return err(400, "Invalid credentials")
        self.valid_refresh.discard(token)
        self.refreshes += 1
        return json_resp(200, self.issue())

    def bearer_ok(self, request: httpx.Request) -> bool:
        auth = request.headers.get("authorization", "")
        return auth.startswith("Bearer ") and auth[7:] in self.valid_access

    def expire_all_access(self) -> None:
        self.valid_access.clear()

    # --- dispatch ----------------------------------------------------------
    def handler(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
        key = (request.method, request.url.path)
        route = self.routes.get(key)
        if route is None:
            for method, prefix, fn in self.prefix:
                if request.method == method and request.url.path.startswith(prefix):
                    return fn(request)
            if key == ("POST", "/api/v1/auth/login"):
                return self.login(request)
            if key == ("POST", "/api/v1/auth/refresh"):
                return self.refresh(request)
            if key == ("GET", "/api/v1/healthcheck"):
                return json_resp(200, HEALTH_OK)
            return err(404, f"no fake route for {key}")
        if isinstance(route, list):
            item = route.pop(0) if len(route) > 1 else route[0]
        else:
            item = route
        if isinstance(item, BaseException):
            raise item
        if callable(item):
            return item(request)
        return item

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    def paths(self, method: str | None = None) -> list[str]:
        return [r.url.path for r in self.requests if method is None or r.method == method]

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if r.method == method and r.url.path == path)


def bearer_route(fake: FakeServer, ok: Callable[[httpx.Request], httpx.Response]) -> Callable:
    def handler(request: httpx.Request) -> httpx.Response:
        if not fake.bearer_ok(request):
            return httpx.Response(401)
        return ok(request)

    return handler


class MemoryTokenStore:
    def __init__(self, initial: str | None = None) -> None:
        self.tokens: dict[tuple[str, str], str | None] = {}
        self.history: list[str | None] = []
        self.initial = initial

    def get_refresh_token(self, server_url: str, username: str) -> str | None:
        return self.tokens.get((server_url, username), self.initial)

    def set_refresh_token(self, server_url: str, username: str, token: str | None) -> None:
        self.tokens[(server_url, username)] = token
        self.history.append(token)


class MemoryCapabilityCache:
    def __init__(self) -> None:
        self.data: dict[str, dict] = {}
        self.drops = 0
        self.puts = 0

    def get(self, server_url: str) -> dict | None:
        return self.data.get(server_url)

    def put(self, server_url: str, data: dict) -> None:
        self.puts += 1
        self.data[server_url] = dict(data)

    def drop(self, server_url: str) -> None:
        self.drops += 1
        self.data.pop(server_url, None)


def make_client(url: str, fake: FakeServer, *, bl: bool = True, ko: bool = True,
                **kw: Any) -> Any:
    """A client of ``fake`` with both test accounts (or either left out), no backoff."""
    from booklore_sync.booklore import BookLoreClient

    return BookLoreClient(
        url,
        booklore_user="demo" if bl else None,
        booklore_password=BL_PASSWORD if bl else None,
        koreader_user="kodemo" if ko else None,
        koreader_password=KO_PASSWORD if ko else None,
        transport=fake.transport(),
        retry_backoff=0,
        **kw,
    )

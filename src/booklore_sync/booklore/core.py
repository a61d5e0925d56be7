"""The shared core of the BookLore client: accounts, authenticated requests, answer
checks, and the one copy of the server's capabilities (booklore-api.md §6).

The resource modules (``books``, ``sessions``, ``notes``, ``bookmarks``, ``ratings``,
``progress``, ``status``) and the probe add their methods to this core as mixins; the
facade :class:`booklore_sync.booklore.client.BookLoreClient` combines them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from .auth import Secret, Tokens, koreader_headers, koreader_key
from .bearer import LOGIN, BearerAuth
from .capabilities import Capabilities, CapabilityCache, TokenStore, route_missing_reason
from .errors import (
    BookLoreError,
    NotConfiguredError,
    NotJSONError,
    RouteMissingError,
)
from .http import (
    Scrubber,
    is_json_response,
    is_route_missing_404,
    media_type,
    status_error,
)
from .transport import RequestHook, Transport

__all__ = ["ClientCore", "RATING_PATH"]

RATING_PATH = "/api/v1/books/personal-rating"

log = logging.getLogger("booklore_sync.booklore")


class ClientCore:
    """A client for one BookLore server and up to two accounts.

    Thread-safe: the engine may call it from several threads; logins and refreshes
    are serialised per (server, user) for the whole process.

    Secrets (passwords, the KOReader key, tokens) are held in memory only, never
    appear in ``repr``, in exception messages or in logs.
    """

    def __init__(
        self,
        base_url: str,
        *,
        booklore_user: str | None = None,
        booklore_password: str | None = None,
        koreader_user: str | None = None,
        koreader_password: str | None = None,
        connect_timeout: float = 10,
        read_timeout: float = 30,
        capability_cache: CapabilityCache | None = None,
        token_store: TokenStore | None = None,
        transport: httpx.BaseTransport | None = None,
        retries: int = 2,
        retry_backoff: float = 0.5,
        clock: Callable[[], float] | None = None,
        on_request: RequestHook | None = None,
    ) -> None:
        self._scrub = Scrubber()
        self._scrub.add(booklore_password)
        self._scrub.add(koreader_password)
        self._t = Transport(
            base_url, connect_timeout=connect_timeout, read_timeout=read_timeout, transport=transport,
            retries=retries, retry_backoff=retry_backoff, scrub=self._scrub, on_request=on_request,
        )
        self._base = self._t.base
        self._http = self._t.http
        self._clock = clock or time.time
        self._cache = capability_cache
        self._bl_user = booklore_user or None
        self._ko_user = koreader_user or None
        self._ko_password = Secret(koreader_password) if self._ko_user and koreader_password else None
        if self._ko_password is not None:
            self._scrub.add(koreader_key(self._ko_password.reveal()))
        self._bearer: BearerAuth | None = None
        if self._bl_user and booklore_password:
            self._bearer = BearerAuth(
                self._t, self._bl_user, Secret(booklore_password), token_store=token_store,
                scrub=self._scrub, clock=self._clock,
            )
        self._caps: Capabilities | None = None
        self._caps_lock = threading.Lock()
        # batch answers of this run: False = switched off for this run only (§6 probe 6)
        self._batch_this_run: bool | None = None
        self._batch_remember: bool = True
        self._routes_checked: set[str] = set()

    # ------------------------------------------------------------------ basics

    @property
    def base_url(self) -> str:
        return self._base

    @property
    def account_names(self) -> tuple[str | None, str | None]:
        """The BookLore and KOReader user names this client logs in with (no secrets):
        with the URL, the identity the store's first-contact records belong to."""
        return self._bl_user, self._ko_user

    @property
    def has_booklore_account(self) -> bool:
        return self._bearer is not None

    @property
    def has_koreader_account(self) -> bool:
        return self._ko_user is not None and self._ko_password is not None

    @property
    def capabilities(self) -> Capabilities | None:
        """The last probe result (or what calls learnt since), ``None`` before ``probe()``."""
        return self._caps

    @property
    def default_password(self) -> bool | None:
        """The login answer's ``isDefaultPassword`` (``None`` before a login)."""
        return self._bearer.default_password if self._bearer is not None else None

    @property
    def _tokens(self) -> Tokens:
        """The bearer tokens in memory (an empty set without a BookLore account)."""
        return self._bearer.tokens if self._bearer is not None else Tokens()

    @property
    def on_request(self) -> RequestHook | None:
        return self._t.on_request

    @on_request.setter
    def on_request(self, hook: RequestHook | None) -> None:
        self._t.on_request = hook

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self._base!r}, booklore_user={self._bl_user!r}, "
            f"koreader_user={self._ko_user!r})"
        )

    def close(self) -> None:
        self._t.close()

    def __enter__(self) -> ClientCore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ requests

    def _require(self, account: str, path: str, method: str) -> None:
        if account == "booklore" and not self.has_booklore_account:
            raise NotConfiguredError(
                "no BookLore account configured (username and password)",
                account="booklore", method=method, path=path,
            )
        if account == "koreader" and not self.has_koreader_account:
            raise NotConfiguredError(
                "no KOReader account configured (username and password)",
                account="koreader", method=method, path=path,
            )

    def _request(
        self,
        method: str,
        path: str,
        *,
        auth: str,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        idempotent: bool | None = None,
        follow: bool = True,
    ) -> httpx.Response:
        """Send with the given auth (``"none"``, ``"koreader"``, ``"bearer"``) and return
        the final response, whatever its status. A 401 on a bearer call refreshes the
        token and retries once."""
        if idempotent is None:
            idempotent = method == "GET"
        if auth == "koreader":
            self._require("koreader", path, method)
            assert self._ko_user is not None and self._ko_password is not None
            headers: dict[str, Any] = dict(koreader_headers(self._ko_user, self._ko_password.reveal()))
            return self._t.exchange(method, path, headers=headers, json_body=json_body, params=params,
                                    idempotent=idempotent, follow=follow)
        if auth == "bearer":
            self._require("booklore", path, method)
            bearer = self._bearer
            assert bearer is not None

            def send() -> tuple[httpx.Response, int]:
                token, generation = bearer.access_token()
                return self._t.exchange(method, path, headers={"Authorization": f"Bearer {token}"},
                                        json_body=json_body, params=params, idempotent=idempotent,
                                        follow=follow), generation

            resp, generation = send()
            if resp.status_code != 401:
                return resp
            log.info("%s %s: bearer refused (401); renewing the token and retrying once", method, path)
            bearer.invalidate(generation)
            return send()[0]
        return self._t.exchange(method, path, json_body=json_body, params=params, idempotent=idempotent,
                                follow=follow)

    def _fail(self, resp: httpx.Response, method: str, path: str, auth: str, *, dedup: bool = False) -> BookLoreError:
        return status_error(resp, method=method, path=path, auth=auth, scrub=self._scrub, url=self._base)

    def _json_ok(self, resp: httpx.Response, method: str, path: str) -> Any:
        """The parsed JSON of a 2xx, or NotJSONError."""
        if not is_json_response(resp):
            raise NotJSONError(
                f"expected JSON, got {media_type(resp) or 'no content type'}",
                content_type=media_type(resp), method=method, path=path, status=resp.status_code,
            )
        try:
            return resp.json()
        except ValueError:
            raise NotJSONError(
                "the answer is not valid JSON", content_type=media_type(resp), method=method, path=path,
                status=resp.status_code,
            ) from None

    def _call_json(
        self,
        method: str,
        path: str,
        *,
        auth: str,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        idempotent: bool | None = None,
        dedup: bool = False,
        kind: str | None = None,
    ) -> Any:
        """A JSON call. With ``kind`` (a route of §0.1's release table), an answer that
        says the route is missing (``Resource not found`` 404, a non-JSON 2xx) is
        remembered and raised as :class:`RouteMissingError`."""
        if kind is not None:
            self.require_route(kind, method=method, path=path)
        resp = self._request(method, path, auth=auth, json_body=json_body, params=params, idempotent=idempotent)
        if kind is not None and self._route_missing_answer(resp):
            raise self._route_gone(kind, method, path, resp.status_code)
        if 200 <= resp.status_code < 300:
            return self._json_ok(resp, method, path)
        raise self._fail(resp, method, path, auth)

    def _bad_shape(self, method: str, path: str, resp_status: int, what: str) -> NotJSONError:
        return NotJSONError(f"unexpected JSON answer: {what}", method=method, path=path, status=resp_status)

    # ------------------------------------------------------------------ capabilities

    def _observe(self, capability: str, value: bool) -> None:
        """Record what a real call showed; drop the cached probe on a contradiction."""
        with self._caps_lock:
            caps = self._caps
            if caps is None:
                return
            current = getattr(caps, capability)
            if current == value:
                return
            self._caps = caps.with_(**{capability: value})
            if current is None:
                return
        log.info("server capability %s changed (was %s, now %s): cached probe dropped", capability, current, value)
        self._drop_cache()

    def _drop_cache(self) -> None:
        if self._cache is None:
            return
        try:
            self._cache.drop(self._base)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not drop the capability cache: %s", type(exc).__name__)

    def _put_cache(self, caps: Capabilities) -> None:
        if self._cache is None:
            return
        try:
            self._cache.put(self._base, caps.to_cache())
        except Exception as exc:  # noqa: BLE001
            log.warning("could not store the capability cache: %s", type(exc).__name__)

    def invalidate_capabilities(self) -> None:
        """Forget the probe result (memory and cache); the next ``probe()`` probes again."""
        with self._caps_lock:
            self._caps = None
        self._drop_cache()

    def describe_server(self) -> str:
        """``BookLore 1.16.3``, ``Grimmory 3.2.4`` … (``BookLore`` before a probe)."""
        caps = self._caps
        return caps.describe() if caps is not None else "BookLore"

    # ------------------------------------------------------------------ routes by release

    def has_route(self, kind: str) -> bool | None:
        """Whether this server has the route of ``kind`` (``"annotations"``,
        ``"notes_v2"``, ``"bookmarks"``, ``"bookmark_update"``, ``"sessions"``,
        ``"ratings"``, ``"status"``): from the release table or what was learnt;
        ``None`` when unknown (the route's first answer will tell)."""
        caps = self._caps
        if caps is None:
            return None
        return caps.has_route(kind)

    def route_missing_reason(self, kind: str) -> str:
        return route_missing_reason(self.describe_server(), kind)

    def require_route(self, kind: str, *, method: str | None = None, path: str | None = None) -> None:
        """Raise :class:`RouteMissingError` when the route of ``kind`` is known to be
        missing (nothing is sent)."""
        if self.has_route(kind) is False:
            raise RouteMissingError(self.route_missing_reason(kind), capability=kind, method=method, path=path)

    def mark_route_missing(self, kind: str) -> None:
        """Remember (with the capability cache) that this server has no route for ``kind``."""
        with self._caps_lock:
            caps = self._caps or Capabilities(probed_at=self._clock())
            if kind in caps.missing_routes:
                return
            caps = caps.with_(missing_routes=(*caps.missing_routes, kind))
            self._caps = caps
        log.info("%s", route_missing_reason(caps.describe(), kind))
        if caps.flavour is not None or caps.server is not None:
            self._put_cache(caps)

    @staticmethod
    def _route_missing_answer(resp: httpx.Response) -> bool:
        status = resp.status_code
        if 200 <= status < 300:
            return bool(resp.content.strip()) and not is_json_response(resp)
        return is_route_missing_404(resp)

    def _route_gone(self, kind: str, method: str, path: str, status: int) -> RouteMissingError:
        self.mark_route_missing(kind)
        return RouteMissingError(self.route_missing_reason(kind), capability=kind, method=method, path=path,
                                 status=status)

    # ------------------------------------------------------------------ bearer check

    def check_booklore_auth(self) -> None:
        """Make sure a bearer token can be had (refresh or login now). Raises
        :class:`AuthError` (rejected / rate_limited / login_disabled),
        :class:`NotConfiguredError`, :class:`OfflineError`."""
        self._require("booklore", LOGIN, "POST")
        assert self._bearer is not None
        self._bearer.access_token()

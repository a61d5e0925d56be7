"""The BookLore client (booklore-api.md; sync-and-cache.md §4.1, §6.1, §7).

One :class:`BookLoreClient` per run: one pooled ``httpx.Client``, lazy JWT login,
KOReader header auth, typed endpoint methods, and errors as the types of
:mod:`booklore_sync.booklore.errors`.
"""

from __future__ import annotations

import logging
import math
import random
import secrets as _secrets
import string
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from .. import __version__
from .auth import Secret, Tokens, koreader_key, token_gate
from .capabilities import CACHE_TTL_SECONDS, Capabilities, CapabilityCache, TokenStore
from .errors import (
    AuthError,
    BookLoreError,
    NotBookLoreError,
    NotConfiguredError,
    NotFoundError,
    NotJSONError,
    OfflineError,
    OutcomeUnknownError,
    RequestRejectedError,
    UnknownRatingIdError,
    UnsupportedEndpointError,
)
from .http import (
    GATEWAY_STATUSES,
    Scrubber,
    body_json,
    extract_message,
    is_error_response_json,
    is_json_response,
    is_quick_drop,
    media_type,
    status_error,
    transport_error,
)
from .models import (
    BOOK_TYPES,
    BatchResult,
    Book,
    Health,
    KoreaderProgress,
    RatingResult,
    SearchResult,
    SessionIn,
    SessionPage,
    normalize_hash,
    normalize_isbn,
    truncate_utf16,
    utf16_len,
)

__all__ = ["BookLoreClient", "RatingOutcome", "normalize_base_url"]

log = logging.getLogger("booklore_sync.booklore")

# paths
HEALTH = "/api/v1/healthcheck"
LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"
KO_AUTH = "/api/koreader/users/auth"
KO_BY_HASH = "/api/koreader/books/by-hash/"
KO_PROGRESS = "/api/koreader/syncs/progress"
BOOKS = "/api/v1/books"
BY_HASH = "/api/v1/books/by-hash/"
SEARCH = "/api/v1/books/search"
RATING = "/api/v1/books/personal-rating"
SESSIONS = "/api/v1/reading-sessions"
SESSIONS_BATCH = "/api/v1/reading-sessions/batch"
SESSIONS_BOOK = "/api/v1/reading-sessions/book/"
ANNOTATIONS = "/api/v1/annotations"
NOTES_V2 = "/api/v2/book-notes"
NOTES_V1 = "/api/v1/book-notes"
BOOKMARKS = "/api/v1/bookmarks"

MAX_BATCH = 100
MAX_RATING_IDS = 500
MAX_REDIRECTS = 5


def normalize_base_url(url: str) -> str:
    """Strip blanks and trailing ``/``, then a trailing ``/api/koreader`` (KOReader's own
    sync URL, which users paste), then trailing ``/`` again (§1.1)."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("the BookLore server URL is empty")
    base = url.strip().rstrip("/")
    if base.endswith("/api/koreader"):
        base = base[: -len("/api/koreader")].rstrip("/")
    try:
        parsed = httpx.URL(base)
    except Exception:  # noqa: BLE001
        raise ValueError("the BookLore server URL is not a valid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("the BookLore server URL must start with http:// or https:// and name a host")
    if parsed.userinfo:
        raise ValueError("credentials inside the server URL are not supported; use the account settings")
    if parsed.query or parsed.fragment:
        raise ValueError("the BookLore server URL must not have a query or fragment")
    return base


@dataclass(frozen=True)
class RatingOutcome:
    """Result of :meth:`BookLoreClient.set_personal_rating_grouped`."""

    results: tuple[RatingResult, ...]
    unknown_ids: tuple[int, ...]


class BookLoreClient:
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
    ) -> None:
        self._base = normalize_base_url(base_url)
        self._bl_user = booklore_user or None
        self._bl_password = Secret(booklore_password) if self._bl_user and booklore_password else None
        self._ko_user = koreader_user or None
        self._ko_password = Secret(koreader_password) if self._ko_user and koreader_password else None
        self._cache = capability_cache
        self._token_store = token_store
        self._retries = max(0, int(retries))
        self._backoff = max(0.0, float(retry_backoff))
        self._clock = clock or time.time

        self._scrub = Scrubber()
        self._scrub.add(booklore_password)
        self._scrub.add(koreader_password)
        if self._ko_password is not None:
            self._scrub.add(koreader_key(self._ko_password.reveal()))

        timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
        )
        self._http = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            verify=True,
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": f"booklore-sync/{__version__}"},
            trust_env=True,
            # drop idle pooled connections well before common server keep-alive
            # timeouts (5 s and up), which keeps the keep-alive race rare
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10, keepalive_expiry=2.0),
        )

        self._tokens = Tokens()
        self._gate = token_gate(self._base, self._bl_user) if self._bl_user else None
        self._bearer_block: AuthError | None = None  # rejected / rate-limited / disabled
        self._stored_refresh_checked = False
        self.default_password: bool | None = None  # login's isDefaultPassword

        self._caps: Capabilities | None = None
        self._caps_lock = threading.Lock()

    # ------------------------------------------------------------------ basics

    @property
    def base_url(self) -> str:
        return self._base

    @property
    def has_booklore_account(self) -> bool:
        return self._bl_user is not None and self._bl_password is not None

    @property
    def has_koreader_account(self) -> bool:
        return self._ko_user is not None and self._ko_password is not None

    @property
    def capabilities(self) -> Capabilities | None:
        """The last probe result (or what calls learnt since), ``None`` before ``probe()``."""
        return self._caps

    def __repr__(self) -> str:
        return (
            f"BookLoreClient(base_url={self._base!r}, booklore_user={self._bl_user!r}, "
            f"koreader_user={self._ko_user!r})"
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BookLoreClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ transport

    def _url(self, path: str) -> str:
        return self._base + "/" + path.lstrip("/")

    def _exchange(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, Any] | None = None,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        idempotent: bool,
    ) -> httpx.Response:
        """Send one request (following same-host GET redirects), retrying idempotent
        requests on a dropped connection or a proxy 502/503/504. Transport failures
        are raised as :class:`OfflineError` / :class:`OutcomeUnknownError`."""
        attempts = 1 + (self._retries if idempotent else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                resp = self._send_following(method, path, headers, json_body, params)
            except httpx.HTTPError as exc:
                err = transport_error(exc, method, path, self._scrub)
                log.debug("%s %s -> %s", method, path, type(err).__name__)
                if not last and is_quick_drop(err):
                    self._sleep_backoff(attempt, first_free=True)
                    continue
                raise err from None
            if not last and resp.status_code in GATEWAY_STATUSES:
                self._sleep_backoff(attempt)
                continue
            return resp
        raise AssertionError("unreachable")  # pragma: no cover

    def _sleep_backoff(self, attempt: int, *, first_free: bool = False) -> None:
        if first_free and attempt == 0:
            return
        delay = self._backoff * (2**attempt)
        if delay > 0:
            time.sleep(delay)

    def _send_following(
        self,
        method: str,
        path: str,
        headers: dict[str, Any] | None,
        json_body: Any,
        params: dict[str, Any] | None,
    ) -> httpx.Response:
        url = httpx.URL(self._url(path))
        origin = url
        hops = 0
        while True:
            started = time.monotonic()
            if json_body is not None:
                resp = self._http.request(method, url, headers=headers, json=json_body, params=params)
            else:
                resp = self._http.request(method, url, headers=headers, params=params)
            log.debug(
                "%s %s -> %s (%.0f ms)", method, path, resp.status_code, (time.monotonic() - started) * 1000
            )
            if not (method == "GET" and resp.is_redirect and hops < MAX_REDIRECTS):
                return resp
            location = resp.headers.get("location")
            if not location:
                return resp
            target = url.join(location)
            same_host = target.host == origin.host
            no_downgrade = not (origin.scheme == "https" and target.scheme == "http")
            if not (same_host and no_downgrade):
                return resp  # never forward credentials to another host
            url = target
            params = None  # the Location carries its own query
            hops += 1

    # ------------------------------------------------------------------ auth headers

    def _require(self, account: str, path: str, method: str) -> None:
        if account == "booklore" and not self.has_booklore_account:
            raise NotConfiguredError(
                "no BookLore account configured (username and password)",
                account="booklore",
                method=method,
                path=path,
            )
        if account == "koreader" and not self.has_koreader_account:
            raise NotConfiguredError(
                "no KOReader account configured (username and password)",
                account="koreader",
                method=method,
                path=path,
            )

    def _koreader_headers(self) -> dict[str, Any]:
        assert self._ko_user is not None and self._ko_password is not None
        return {
            "x-auth-user": self._ko_user.encode("utf-8"),
            "x-auth-key": koreader_key(self._ko_password.reveal()),
        }

    # ------------------------------------------------------------------ tokens

    def _access_token(self) -> tuple[str, int]:
        """A usable access token (logging in or refreshing when needed) and its
        generation number."""
        assert self._gate is not None
        with self._gate.lock:
            if self._bearer_block is not None:
                raise self._blocked_copy()
            if not self._tokens.access_usable(self._clock()):
                self._renew()
            assert self._tokens.access is not None
            return self._tokens.access, self._tokens.generation

    def _blocked_copy(self) -> AuthError:
        b = self._bearer_block
        assert b is not None
        return AuthError(b.message, account=b.account, kind=b.kind, method=b.method, path=b.path, status=b.status)

    def _invalidate_access(self, generation: int) -> None:
        assert self._gate is not None
        with self._gate.lock:
            if self._tokens.generation == generation:
                self._tokens.clear_access()

    def _stored_refresh(self) -> str | None:
        if self._token_store is None or self._stored_refresh_checked:
            return None
        self._stored_refresh_checked = True
        try:
            token = self._token_store.get_refresh_token(self._base, self._bl_user or "")
        except Exception as exc:  # noqa: BLE001 - keyring trouble must not stop the run
            log.warning("could not read the stored refresh token: %s", type(exc).__name__)
            return None
        if token:
            self._scrub.add(token)
        return token or None

    def _save_refresh(self, token: str | None) -> None:
        if self._token_store is None:
            return
        try:
            self._token_store.set_refresh_token(self._base, self._bl_user or "", token)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not store the refresh token: %s", type(exc).__name__)

    def _renew(self) -> None:
        """Refresh (if a refresh token is known) or log in. Lock held."""
        refresh = self._tokens.refresh or self._stored_refresh()
        if refresh:
            if self._refresh(refresh):
                return
        self._login()

    def _token_request(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """One token request: never with ``Authorization``, never retried blindly,
        spaced ≥ 1.1 s from the previous one for this (server, user)."""
        assert self._gate is not None
        self._gate.wait_turn()
        try:
            return self._exchange("POST", path, json_body=body, idempotent=False)
        finally:
            self._gate.mark()

    def _install_tokens(self, data: Any, path: str) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("accessToken"), str):
            raise NotJSONError("token answer without an accessToken", method="POST", path=path, status=200)
        access = data["accessToken"]
        self._scrub.add(access)
        self._tokens.set_access(access, self._clock())
        new_refresh = data.get("refreshToken")
        if isinstance(new_refresh, str) and new_refresh:
            old = self._tokens.refresh
            self._tokens.refresh = new_refresh
            self._scrub.add(new_refresh)
            if new_refresh != old:
                self._save_refresh(new_refresh)
        if "isDefaultPassword" in data:
            self.default_password = str(data["isDefaultPassword"]).lower() == "true"

    def _refresh(self, token: str) -> bool:
        """Try ``POST /api/v1/auth/refresh``. True on success; False when the caller
        should log in instead. OfflineError propagates."""
        for attempt in range(2):
            try:
                resp = self._token_request(REFRESH, {"refreshToken": token})
            except OutcomeUnknownError:
                # the old token may have been rotated: forget it, log in (§5.1)
                log.info("token refresh got no answer; logging in instead")
                self._forget_refresh()
                return False
            if resp.status_code == 200 and is_json_response(resp):
                data = body_json(resp)
                try:
                    self._install_tokens(data, REFRESH)
                except NotJSONError:
                    return False
                log.info("BookLore token refreshed for user %s", self._bl_user)
                return True
            message = extract_message(resp)
            if resp.status_code == 400 and _is_data_conflict(message) and attempt == 0:
                continue  # same-second collision: the gate spaces the retry
            if resp.status_code == 400:
                log.info("stored refresh token not accepted (%s); logging in", message)
                self._forget_refresh()
            else:
                log.info("token refresh failed with HTTP %s; logging in", resp.status_code)
            return False
        return False

    def _forget_refresh(self) -> None:
        self._tokens.refresh = None
        self._save_refresh(None)

    def _login(self) -> None:
        """``POST /api/v1/auth/login``. Lock held. Raises AuthError / OfflineError /
        ServerError."""
        assert self._bl_password is not None
        for attempt in range(2):
            try:
                resp = self._token_request(LOGIN, {"username": self._bl_user, "password": self._bl_password.reveal()})
            except OutcomeUnknownError as exc:
                if attempt == 0 and is_quick_drop(exc):
                    continue  # a dropped (pooled) connection: a login is safe to repeat
                # no answer to the login: for the caller's request nothing was sent.
                raise OfflineError(
                    f"no answer to the BookLore login ({exc.message}); nothing else was sent",
                    method="POST",
                    path=LOGIN,
                ) from None
            status = resp.status_code
            if status == 200:
                if not is_json_response(resp):
                    raise NotJSONError(
                        "login answered with a non-JSON page",
                        content_type=media_type(resp),
                        method="POST",
                        path=LOGIN,
                        status=status,
                    )
                self._install_tokens(body_json(resp), LOGIN)
                log.info("BookLore login for user %s", self._bl_user)
                return
            message = self._scrub(extract_message(resp))
            kw = {"method": "POST", "path": LOGIN, "status": status}
            if status == 400 and _is_data_conflict(message) and attempt == 0:
                log.info("login collided with another login in the same second; retrying once")
                continue
            if status == 400 and _is_data_conflict(message):
                # a second same-second collision: not a credentials problem
                raise RequestRejectedError(f"BookLore login collided: {message}", **kw)
            if status == 400:
                # "Invalid credentials" (or a blank field): a configuration error, never
                # retried in this run (each retry feeds the server's rate limiter)
                err = AuthError(
                    f"BookLore login rejected: {message}", account="booklore", kind="rejected", **kw
                )
                self._bearer_block = err
                raise err
            if status == 429:
                err = AuthError(
                    "login rate-limited — wait 15 minutes", account="booklore", kind="rate_limited", **kw
                )
                self._bearer_block = err
                raise err
            if status == 403:
                kind = "login_disabled" if "oidc" in message.lower() or "disabled" in message.lower() else "refused"
                err = AuthError(f"BookLore login refused: {message}", account="booklore", kind=kind, **kw)
                self._bearer_block = err
                raise err
            raise status_error(resp, method="POST", path=LOGIN, auth="none", scrub=self._scrub)
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ requests

    def _request(
        self,
        method: str,
        path: str,
        *,
        auth: str,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send with the given auth (``"none"``, ``"koreader"``, ``"bearer"``) and return
        the final response, whatever its status. A 401 on a bearer call refreshes the
        token and retries once."""
        if idempotent is None:
            idempotent = method == "GET"
        if auth == "koreader":
            self._require("koreader", path, method)
            return self._exchange(
                method, path, headers=self._koreader_headers(), json_body=json_body, params=params,
                idempotent=idempotent,
            )
        if auth == "bearer":
            self._require("booklore", path, method)
            token, generation = self._access_token()
            resp = self._exchange(
                method, path, headers={"Authorization": f"Bearer {token}"}, json_body=json_body,
                params=params, idempotent=idempotent,
            )
            if resp.status_code != 401:
                return resp
            log.info("%s %s: bearer refused (401); renewing the token and retrying once", method, path)
            self._invalidate_access(generation)
            token, _ = self._access_token()
            return self._exchange(
                method, path, headers={"Authorization": f"Bearer {token}"}, json_body=json_body,
                params=params, idempotent=idempotent,
            )
        return self._exchange(method, path, json_body=json_body, params=params, idempotent=idempotent)

    def _fail(self, resp: httpx.Response, method: str, path: str, auth: str, *, dedup: bool = False) -> BookLoreError:
        return status_error(resp, method=method, path=path, auth=auth, scrub=self._scrub, dedup_route=dedup)

    def _json_ok(self, resp: httpx.Response, method: str, path: str) -> Any:
        """The parsed JSON of a 2xx, or NotJSONError."""
        if not is_json_response(resp):
            raise NotJSONError(
                f"expected JSON, got {media_type(resp) or 'no content type'}",
                content_type=media_type(resp),
                method=method,
                path=path,
                status=resp.status_code,
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
    ) -> Any:
        resp = self._request(method, path, auth=auth, json_body=json_body, params=params, idempotent=idempotent)
        if 200 <= resp.status_code < 300:
            return self._json_ok(resp, method, path)
        raise self._fail(resp, method, path, auth, dedup=dedup)

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

    def mark_no_batch(self) -> None:
        """Remember that this server refuses the batch endpoint (§6 probe 6): sessions go
        one by one from now on, also in later runs (kept in the capability cache)."""
        with self._caps_lock:
            caps = self._caps or Capabilities(probed_at=self._clock())
            if caps.batch is False:
                return
            caps = caps.with_(batch=False)
            self._caps = caps
        log.info("the server refuses the session batch endpoint: sending sessions one by one")
        if caps.version is not None and caps.flavour is not None:
            self._put_cache(caps)

    def healthcheck(self) -> Health:
        """``GET /api/v1/healthcheck`` with probe-1 semantics (§6).

        Raises :class:`OfflineError` (connection error, any timeout, 502/503/504),
        :class:`NotBookLoreError` (non-JSON 2xx: ``reason="not_json"``; 404:
        ``"wrong_base_path"``; redirect elsewhere: ``"redirect"``; other 4xx:
        ``"unexpected_status"``; JSON without the healthcheck shape: ``"not_booklore"``),
        :class:`ServerError` (other 5xx)."""
        try:
            resp = self._request("GET", HEALTH, auth="none")
        except OutcomeUnknownError as exc:
            raise OfflineError(f"no answer from the server: {exc.message}", method="GET", path=HEALTH) from None
        status = resp.status_code
        kw = {"method": "GET", "path": HEALTH, "status": status}
        if status in GATEWAY_STATUSES:
            raise OfflineError(f"server unavailable behind a proxy ({extract_message(resp)})", **kw)
        if 200 <= status < 300:
            if not is_json_response(resp):
                raise NotBookLoreError(
                    "the URL does not answer as BookLore (not JSON: wrong port, or a proxy page?)",
                    reason="not_json", **kw,
                )
            data = body_json(resp)
            if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
                raise NotBookLoreError("the URL does not answer as BookLore", reason="not_booklore", **kw)
            return Health.from_json(data)
        if status == 404:
            raise NotBookLoreError(
                "the URL does not answer as BookLore (404: wrong base path?)", reason="wrong_base_path", **kw
            )
        if 300 <= status < 400:
            raise NotBookLoreError(
                "the URL redirects elsewhere: " + str(self._fail(resp, "GET", HEALTH, "none").message),
                reason="redirect", **kw,
            )
        if 400 <= status < 500:
            raise NotBookLoreError(
                f"the URL does not answer as BookLore ({self._scrub(extract_message(resp))})",
                reason="unexpected_status", **kw,
            )
        raise self._fail(resp, "GET", HEALTH, "none")

    def probe(self, *, force: bool = False) -> Capabilities:
        """Health probe, then the capability probes of §6 (or the cached result for this
        URL and version, younger than 24 h, unless ``force``).

        Raises what :meth:`healthcheck` raises; account problems do not raise, they are
        reported in ``koreader_auth_ok`` / ``koreader_linked`` / ``booklore_auth_ok``.
        Network errors during the later probes propagate."""
        health = self.healthcheck()
        version = health.version
        now = self._clock()
        previous: Capabilities | None = None
        if self._cache is not None:
            try:
                data = self._cache.get(self._base)
            except Exception as exc:  # noqa: BLE001
                log.warning("could not read the capability cache: %s", type(exc).__name__)
                data = None
            cached = Capabilities.from_cache_dict(data) if data else None
            if cached is not None and cached.version == version:
                previous = cached
                fresh = cached.probed_at is not None and 0 <= now - cached.probed_at < CACHE_TTL_SECONDS
                if fresh and not force:
                    with self._caps_lock:
                        self._caps = cached
                    return cached

        ko_ok: bool | None = None
        ko_linked: bool | None = None
        bl_ok: bool | None = None
        bhk: bool | None = None
        search: bool | None = None
        bhb: bool | None = None

        # 2. KOReader credentials
        if self.has_koreader_account:
            try:
                self.check_koreader_auth()
                ko_ok = True
            except AuthError:
                ko_ok = False
        # 3. by-hash with KOReader headers
        if ko_ok:
            resp = self._request("GET", KO_BY_HASH + _secrets.token_hex(16), auth="koreader")
            bhk, ko_linked = _probe_by_hash(resp)
            if resp.status_code in GATEWAY_STATUSES:
                raise self._fail(resp, "GET", KO_BY_HASH, "koreader")
        # 4. search with a bearer
        if self.has_booklore_account:
            try:
                resp = self._request(
                    "GET", SEARCH, auth="bearer",
                    params={"title": "".join(random.choices(string.ascii_lowercase, k=12))},
                )
                if resp.status_code in GATEWAY_STATUSES:
                    raise self._fail(resp, "GET", SEARCH, "bearer")
                if resp.status_code in (401, 403):
                    bl_ok = False
                else:
                    bl_ok = True
                    search = _probe_search(resp)
            except AuthError:
                bl_ok = False
        # 5. by-hash with a bearer, when the KOReader route cannot be used
        if bl_ok and (not self.has_koreader_account or ko_ok is False):
            resp = self._request("GET", BY_HASH + _secrets.token_hex(16), auth="bearer")
            if resp.status_code in GATEWAY_STATUSES:
                raise self._fail(resp, "GET", BY_HASH, "bearer")
            bhb, _ = _probe_by_hash(resp)

        found = [v for v in (bhk, search, bhb) if v is not None]
        flavour = "fork" if any(found) else ("upstream" if found else None)
        if flavour is None and previous is not None:
            # nothing could be probed (accounts refused): an older result for this
            # version is better than nothing; it stays in the cache as it was
            caps = previous.with_(koreader_auth_ok=ko_ok, koreader_linked=ko_linked, booklore_auth_ok=bl_ok)
            with self._caps_lock:
                self._caps = caps
            return caps
        is_fork = None if flavour is None else flavour == "fork"
        batch = is_fork
        if previous is not None and previous.batch is False and previous.flavour == flavour:
            batch = False
        caps = Capabilities(
            reachable=True,
            version=version,
            flavour=flavour,
            by_hash_koreader=bhk if bhk is not None else is_fork,
            by_hash_bearer=bhb if bhb is not None else is_fork,
            search=search if search is not None else is_fork,
            batch=batch,
            single_session_koreader=is_fork,
            koreader_auth_ok=ko_ok,
            koreader_linked=ko_linked,
            booklore_auth_ok=bl_ok,
            from_cache=False,
            probed_at=now,
        )
        with self._caps_lock:
            self._caps = caps
        if flavour is not None:
            self._put_cache(caps)
        return caps

    # ------------------------------------------------------------------ accounts

    def check_koreader_auth(self) -> str | None:
        """``GET /api/koreader/users/auth``: the KOReader username the server reports
        (``None`` for a kosync-style ``{"authorized": "OK"}``). 403 → AuthError."""
        data = self._call_json("GET", KO_AUTH, auth="koreader")
        if isinstance(data, dict):
            name = data.get("username")
            return name if isinstance(name, str) else None
        return None

    def check_booklore_auth(self) -> None:
        """Make sure a bearer token can be had (refresh or login now). Raises
        :class:`AuthError` (rejected / rate_limited / login_disabled),
        :class:`NotConfiguredError`, :class:`OfflineError`."""
        self._require("booklore", LOGIN, "POST")
        self._access_token()

    # ------------------------------------------------------------------ books

    def _by_hash(self, route: str, fingerprint: str, auth: str, capability: str, params: dict | None) -> Book | None:
        path = route + normalize_hash(fingerprint)
        resp = self._request("GET", path, auth=auth, params=params)
        status = resp.status_code
        if 200 <= status < 300:
            if not is_json_response(resp):
                self._observe(capability, False)
                raise UnsupportedEndpointError(
                    "this server has no by-hash endpoint (it answered with a web page)",
                    capability=capability, not_json=True, method="GET", path=path, status=status,
                )
            data = self._json_ok(resp, "GET", path)
            try:
                book = Book.from_json(data)
            except ValueError:
                raise self._bad_shape("GET", path, status, "not a Book") from None
            self._observe(capability, True)
            return book
        if status == 404:
            message = extract_message(resp)
            if is_error_response_json(resp) and not message.startswith("Resource not found"):
                self._observe(capability, True)
                return None
            self._observe(capability, False)
            raise UnsupportedEndpointError(
                f"this server has no by-hash endpoint ({message})",
                capability=capability, method="GET", path=path, status=status,
            )
        raise self._fail(resp, "GET", path, auth)

    def book_by_hash(self, fingerprint: str) -> Book | None:
        """``GET /api/koreader/books/by-hash/{hash}`` (KOReader headers; fork only).

        ``None``: the server does not know the fingerprint (404 ErrorResponse).
        Raises :class:`UnsupportedEndpointError` (upstream: the 200 text/html trap, or a
        ``Resource not found`` 404), :class:`AuthError` (403 rejected, 409 not linked),
        :class:`ServerError` (500: e.g. two books share the hash — ambiguous)."""
        return self._by_hash(KO_BY_HASH, fingerprint, "koreader", "by_hash_koreader", None)

    def book_by_hash_bearer(self, fingerprint: str, *, with_description: bool = False) -> Book | None:
        """``GET /api/v1/books/by-hash/{hash}`` (bearer; fork only). As :meth:`book_by_hash`."""
        params = {"withDescription": "true"} if with_description else None
        return self._by_hash(BY_HASH, fingerprint, "bearer", "by_hash_bearer", params)

    def find_book_by_hash(self, fingerprint: str) -> Book | None:
        """By-hash through whichever route fits the accounts and capabilities: the
        KOReader route when a KOReader account is configured (and not known to be
        rejected or the route missing), else the bearer route. Raises
        :class:`UnsupportedEndpointError` when neither route exists."""
        caps = self._caps
        ko_usable = self.has_koreader_account and not (
            caps is not None
            and (caps.koreader_auth_ok is False or caps.koreader_linked is False or caps.by_hash_koreader is False)
        )
        if ko_usable:
            try:
                return self.book_by_hash(fingerprint)
            except UnsupportedEndpointError:
                if not self.has_booklore_account:
                    raise
            except AuthError as exc:
                if not (exc.kind in ("rejected", "not_linked") and self.has_booklore_account):
                    raise
                with self._caps_lock:
                    if self._caps is not None:
                        field = "koreader_auth_ok" if exc.kind == "rejected" else "koreader_linked"
                        self._caps = self._caps.with_(**{field: False})
        if self.has_booklore_account:
            if caps is not None and caps.by_hash_bearer is False:
                raise UnsupportedEndpointError(
                    "this server has no by-hash endpoint", capability="by_hash_bearer", method="GET", path=BY_HASH
                )
            return self.book_by_hash_bearer(fingerprint)
        self._require("koreader", KO_BY_HASH, "GET")
        raise UnsupportedEndpointError(
            "this server has no by-hash endpoint", capability="by_hash_koreader", method="GET", path=KO_BY_HASH
        )

    def get_book(self, book_id: int, *, with_description: bool = False) -> Book:
        """``GET /api/v1/books/{id}`` (bearer). 404 → :class:`NotFoundError`; 403 →
        :class:`AuthError` ``kind="refused"`` (no access to that book's library)."""
        path = f"{BOOKS}/{int(book_id)}"
        params = {"withDescription": "true"} if with_description else None
        data = self._call_json("GET", path, auth="bearer", params=params)
        try:
            return Book.from_json(data)
        except ValueError:
            raise self._bad_shape("GET", path, 200, "not a Book") from None

    def book_exists(self, book_id: int) -> bool:
        """§8 #2: does book N exist? False on 404, True on 200; anything else raises."""
        try:
            self.get_book(book_id)
        except NotFoundError:
            return False
        return True

    def list_books(self, *, with_description: bool = False) -> list[Book]:
        """``GET /api/v1/books`` (bearer): every book the user can see, ascending id."""
        params = {"withDescription": "true"} if with_description else None
        data = self._call_json("GET", BOOKS, auth="bearer", params=params)
        if not isinstance(data, list):
            raise self._bad_shape("GET", BOOKS, 200, "not a list")
        books = []
        for item in data:
            try:
                books.append(Book.from_json(item))
            except ValueError:
                log.debug("skipping a book list entry without an id")
        return books

    def search_books(self, *, title: str | None = None, isbn: str | None = None) -> list[SearchResult]:
        """``GET /api/v1/books/search`` (bearer; fork only). The ISBN is normalised and
        checked (ValueError when invalid); newlines in the title become spaces.

        Raises :class:`UnsupportedEndpointError` (``capability="search"``) on a server
        without search (500, HTML, ``Resource not found``)."""
        params: dict[str, str] = {}
        if isbn is not None:
            clean = normalize_isbn(isbn)
            if clean is None:
                raise ValueError("not a valid ISBN")
            params["isbn"] = clean
        if title is not None:
            params["title"] = title.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
        if not params:
            raise ValueError("give a title or an ISBN")
        resp = self._request("GET", SEARCH, auth="bearer", params=params)
        status = resp.status_code
        if 200 <= status < 300:
            if not is_json_response(resp):
                self._observe("search", False)
                raise UnsupportedEndpointError(
                    "this server has no search endpoint (it answered with a web page)",
                    capability="search", not_json=True, method="GET", path=SEARCH, status=status,
                )
            data = self._json_ok(resp, "GET", SEARCH)
            if not isinstance(data, list):
                raise self._bad_shape("GET", SEARCH, status, "not a list")
            self._observe("search", True)
            out = []
            for item in data:
                try:
                    out.append(SearchResult.from_json(item))
                except ValueError:
                    log.debug("skipping a search result without an id")
            return out
        if status == 500 or (status == 404 and extract_message(resp).startswith("Resource not found")):
            self._observe("search", False)
            raise UnsupportedEndpointError(
                f"this server has no search endpoint ({extract_message(resp)})",
                capability="search", method="GET", path=SEARCH, status=status,
            )
        raise self._fail(resp, "GET", SEARCH, "bearer")

    # ------------------------------------------------------------------ sessions

    def _session_auth(self, path: str) -> str:
        if self.has_booklore_account:
            return "bearer"
        if self.has_koreader_account:
            caps = self._caps
            if caps is not None and caps.single_session_koreader is False and path == SESSIONS:
                raise NotConfiguredError(
                    "this server (upstream BookLore) accepts reading sessions only with the BookLore account",
                    account="booklore", method="POST", path=path,
                )
            return "koreader"
        raise NotConfiguredError(
            "uploading reading sessions needs the BookLore account (or the KOReader account on the fork)",
            account="booklore", method="POST", path=path,
        )

    def post_session(self, book_id: int, book_type: str, session: SessionIn) -> None:
        """``POST /api/v1/reading-sessions`` (202, empty). Bearer when a BookLore account
        is configured, else KOReader headers (fork). Not idempotent: on
        :class:`OutcomeUnknownError` verify with :meth:`verify_sessions` before resending."""
        _check_book_type(book_type)
        auth = self._session_auth(SESSIONS)
        body = session.to_json(book_id=book_id, book_type=book_type)
        resp = self._request("POST", SESSIONS, auth=auth, json_body=body, idempotent=False)
        status = resp.status_code
        if 200 <= status < 300:
            if resp.content.strip() and not is_json_response(resp):
                raise NotJSONError(
                    "unexpected non-JSON answer to a session upload",
                    content_type=media_type(resp), method="POST", path=SESSIONS, status=status,
                )
            return None
        raise self._fail(resp, "POST", SESSIONS, auth)

    def post_sessions_batch(self, book_id: int, book_type: str, sessions: Sequence[SessionIn]) -> BatchResult:
        """``POST /api/v1/reading-sessions/batch`` (fork only; 1–100 sessions of one
        book; all or nothing).

        When the answer shows that the server refuses the batch route (§6 probe 6: 403,
        405, 500, 501, a 404 other than "Book not found…", a non-JSON 2xx) this calls
        :meth:`mark_no_batch` and raises :class:`UnsupportedEndpointError`
        (``capability="batch"``): nothing was stored; send these sessions one by one.
        A 404 "Book not found…" raises :class:`NotFoundError`; a 400
        :class:`RequestRejectedError`. Not idempotent: on :class:`OutcomeUnknownError`
        verify before resending."""
        _check_book_type(book_type)
        if not sessions:
            raise ValueError("a batch needs at least one session")
        if len(sessions) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} sessions per batch")
        auth = self._session_auth(SESSIONS_BATCH)
        body = {
            "bookId": int(book_id),
            "bookType": book_type,
            "sessions": [s.to_json() for s in sessions],
        }
        resp = self._request("POST", SESSIONS_BATCH, auth=auth, json_body=body, idempotent=False)
        status = resp.status_code
        message = extract_message(resp) if not (200 <= status < 300) else ""
        refused = (
            (200 <= status < 300 and not is_json_response(resp))
            or status in (403, 405, 500, 501)
            or (status == 404 and not message.startswith("Book not found"))
        )
        if refused:
            self.mark_no_batch()
            raise UnsupportedEndpointError(
                f"the server refuses the session batch endpoint ({self._scrub(message) or 'non-JSON answer'})",
                capability="batch", not_json=200 <= status < 300,
                method="POST", path=SESSIONS_BATCH, status=status,
            )
        if 200 <= status < 300:
            data = self._json_ok(resp, "POST", SESSIONS_BATCH)
            try:
                result = BatchResult.from_json(data)
            except ValueError:
                # a JSON 2xx of an unknown shape: the write may well have happened
                raise OutcomeUnknownError(
                    "unexpected JSON answer to a batch upload (outcome unknown)",
                    method="POST", path=SESSIONS_BATCH, status=status,
                ) from None
            self._observe("batch", True)
            return result
        raise self._fail(resp, "POST", SESSIONS_BATCH, auth)

    def list_sessions(self, book_id: int, *, page: int = 0, size: int = 100) -> SessionPage:
        """``GET /api/v1/reading-sessions/book/{id}`` (bearer): one page, newest first."""
        if not 1 <= size <= 100 or page < 0:
            raise ValueError("page >= 0 and 1 <= size <= 100")
        path = f"{SESSIONS_BOOK}{int(book_id)}"
        data = self._call_json("GET", path, auth="bearer", params={"page": page, "size": size})
        try:
            return SessionPage.from_json(data)
        except (ValueError, TypeError):
            raise self._bad_shape("GET", path, 200, "not a session page") from None

    def verify_sessions(self, book_id: int, sessions: Sequence[SessionIn]) -> list[bool]:
        """Verify-before-resend (§3.12, §5.3): for each local session, whether the server
        already has it — same (startTime, endTime) in whole seconds and the same
        ``durationSeconds``. Reads pages of 100 while they can still hold a match.
        Needs the BookLore account (:class:`NotConfiguredError` otherwise)."""
        if not sessions:
            return []
        keys = [s.key() for s in sessions]
        earliest = min(k[0] for k in keys)
        present: dict[tuple, set[int | None]] = {}
        page = 0
        while True:
            result = self.list_sessions(book_id, page=page, size=100)
            for item in result.items:
                start, end, duration = item.key()
                present.setdefault((start, end), set()).add(duration)
            if not result.items:
                break
            last_start = result.items[-1].start_time
            if last_start is None or last_start.replace(microsecond=0) < earliest:
                break
            if result.number + 1 >= result.total_pages:
                break
            page = result.number + 1
        return [k[2] in present.get((k[0], k[1]), ()) for k in keys]

    # ------------------------------------------------------------------ ratings

    def set_personal_rating(self, book_ids: Iterable[int], rating: int | None) -> list[RatingResult]:
        """``PUT /api/v1/books/personal-rating`` (bearer; upsert). Ids are de-duplicated
        (order kept); at most 500. A 400 ``"d != java.lang.String"`` (an unknown id in
        the list) raises :class:`UnknownRatingIdError`."""
        ids = list(dict.fromkeys(int(i) for i in book_ids))
        if len(ids) > MAX_RATING_IDS:
            raise ValueError(f"at most {MAX_RATING_IDS} ids per request")
        if rating is not None and (isinstance(rating, bool) or not isinstance(rating, int)):
            raise TypeError("rating must be an int or None")
        resp = self._request("PUT", RATING, auth="bearer", json_body={"ids": ids, "rating": rating}, idempotent=True)
        if 200 <= resp.status_code < 300:
            data = self._json_ok(resp, "PUT", RATING)
            if not isinstance(data, list):
                raise self._bad_shape("PUT", RATING, resp.status_code, "not a list")
            out = []
            for item in data:
                if isinstance(item, dict) and item.get("bookId") is not None:
                    pr = item.get("personalRating")
                    out.append(RatingResult(int(item["bookId"]), int(pr) if isinstance(pr, (int, float)) else None))
            return out
        err = self._fail(resp, "PUT", RATING, "bearer")
        if isinstance(err, RequestRejectedError) and "java.lang.String" in err.message:
            raise UnknownRatingIdError(
                err.message, details=err.details, method="PUT", path=RATING, status=err.status
            )
        raise err

    def set_personal_rating_grouped(self, book_ids: Iterable[int], rating: int | None) -> RatingOutcome:
        """§8 #1: try the whole group; on :class:`UnknownRatingIdError` retry each id
        alone, collecting the ids the server does not know. Other errors propagate
        (the call is an upsert: repeating it is safe)."""
        ids = list(dict.fromkeys(int(i) for i in book_ids))
        if not ids:
            return RatingOutcome((), ())
        try:
            return RatingOutcome(tuple(self.set_personal_rating(ids, rating)), ())
        except UnknownRatingIdError:
            if len(ids) == 1:
                return RatingOutcome((), (ids[0],))
        results: list[RatingResult] = []
        unknown: list[int] = []
        for book_id in ids:
            try:
                results.extend(self.set_personal_rating([book_id], rating))
            except UnknownRatingIdError:
                unknown.append(book_id)
        return RatingOutcome(tuple(results), tuple(unknown))

    # ------------------------------------------------------------------ annotations & notes

    def _create(self, path: str, body: dict[str, Any], *, idempotent: bool, dedup: bool) -> dict[str, Any]:
        data = self._call_json("POST", path, auth="bearer", json_body=body, idempotent=idempotent, dedup=dedup)
        return data if isinstance(data, dict) else {}

    def _list(self, path: str) -> list[dict[str, Any]]:
        data = self._call_json("GET", path, auth="bearer")
        if not isinstance(data, list):
            raise self._bad_shape("GET", path, 200, "not a list")
        return [x for x in data if isinstance(x, dict)]

    def create_annotation(
        self,
        book_id: int,
        *,
        cfi: str,
        text: str,
        color: str | None = None,
        style: str | None = None,
        note: str | None = None,
        chapter_title: str | None = None,
    ) -> dict[str, Any]:
        """``POST /api/v1/annotations`` (bearer): returns the stored annotation (dict).
        409 → :class:`AlreadyExistsError` (success). 500 → :class:`ServerError`
        (probably an unknown book: check with :meth:`book_exists`)."""
        body: dict[str, Any] = {"bookId": int(book_id), "cfi": _cfi(cfi), "text": truncate_utf16(text, 5000)}
        if color is not None:
            body["color"] = color
        if style is not None:
            body["style"] = style
        if note is not None:
            body["note"] = truncate_utf16(note, 5000)
        if chapter_title is not None:
            body["chapterTitle"] = truncate_utf16(chapter_title, 500)
        return self._create(ANNOTATIONS, body, idempotent=True, dedup=True)

    def list_annotations(self, book_id: int) -> list[dict[str, Any]]:
        """``GET /api/v1/annotations/book/{id}`` (bearer), newest first."""
        return self._list(f"{ANNOTATIONS}/book/{int(book_id)}")

    def create_book_note_v2(
        self,
        book_id: int,
        *,
        cfi: str,
        note_content: str,
        selected_text: str | None = None,
        color: str | None = None,
        chapter_title: str | None = None,
    ) -> dict[str, Any]:
        """``POST /api/v2/book-notes`` (bearer; in-book note). 409 →
        :class:`AlreadyExistsError` (success); 500 → :class:`ServerError` (unknown book?)."""
        body: dict[str, Any] = {"bookId": int(book_id), "cfi": _cfi(cfi), "noteContent": note_content}
        if selected_text is not None:
            body["selectedText"] = truncate_utf16(selected_text, 5000)
        if color is not None:
            body["color"] = color
        if chapter_title is not None:
            body["chapterTitle"] = truncate_utf16(chapter_title, 500)
        return self._create(NOTES_V2, body, idempotent=True, dedup=True)

    def list_book_notes_v2(self, book_id: int) -> list[dict[str, Any]]:
        """``GET /api/v2/book-notes/book/{id}`` (bearer)."""
        return self._list(f"{NOTES_V2}/book/{int(book_id)}")

    def create_book_note_v1(self, book_id: int, *, content: str, title: str | None = None) -> dict[str, Any]:
        """``POST /api/v1/book-notes`` (bearer; standalone note; **no dedup** — on
        :class:`OutcomeUnknownError` check :meth:`book_note_v1_present` before resending).
        Never sends ``id`` (that would update). 404 → :class:`NotFoundError`."""
        body: dict[str, Any] = {"bookId": int(book_id), "content": content}
        if title is not None:
            body["title"] = truncate_utf16(title, 255)
        return self._create(NOTES_V1, body, idempotent=False, dedup=False)

    def list_book_notes_v1(self, book_id: int) -> list[dict[str, Any]]:
        """``GET /api/v1/book-notes/book/{id}`` (bearer), newest first."""
        return self._list(f"{NOTES_V1}/book/{int(book_id)}")

    def book_note_v1_present(self, book_id: int, *, title: str | None, content: str) -> bool:
        """§5.3: a v1 note with the same title (as sent: cut to 255) and content exists."""
        want_title = truncate_utf16(title, 255) if title is not None else None
        for note in self.list_book_notes_v1(book_id):
            if note.get("content") == content and (note.get("title") or None) == (want_title or None):
                return True
        return False

    def create_bookmark(self, book_id: int, *, cfi: str | None = None, title: str | None = None) -> dict[str, Any]:
        """``POST /api/v1/bookmarks`` (bearer). With a CFI the server deduplicates
        (409 → :class:`AlreadyExistsError`, success); without one (PDF) it does not —
        on :class:`OutcomeUnknownError` check :meth:`bookmark_without_cfi_present`."""
        body: dict[str, Any] = {"bookId": int(book_id)}
        if cfi is not None:
            body["cfi"] = _cfi(cfi)
        if title is not None:
            body["title"] = truncate_utf16(title, 255)
        return self._create(BOOKMARKS, body, idempotent=cfi is not None, dedup=cfi is not None)

    def list_bookmarks(self, book_id: int) -> list[dict[str, Any]]:
        """``GET /api/v1/bookmarks/book/{id}`` (bearer)."""
        return self._list(f"{BOOKMARKS}/book/{int(book_id)}")

    def bookmark_without_cfi_present(self, book_id: int, *, title: str | None) -> bool:
        """§5.3: a bookmark with no CFI and the same title (as sent) exists."""
        want_title = truncate_utf16(title, 255) if title is not None else None
        for bm in self.list_bookmarks(book_id):
            if not bm.get("cfi") and bm.get("positionMs") is None and (bm.get("title") or None) == (want_title or None):
                return True
        return False

    # ------------------------------------------------------------------ KOReader progress

    def put_progress(
        self,
        document: str,
        *,
        progress: str,
        percentage: float,
        device: str,
        device_id: str,
    ) -> dict[str, Any]:
        """``PUT /api/koreader/syncs/progress`` (KOReader headers; upsert). ``percentage``
        is a fraction 0–1 (required: §8 #3). ``progress`` longer than 1000 UTF-16 units
        is refused with ValueError (a cut position is a wrong one).

        404 → :class:`NotFoundError` (fingerprint unknown: skip, keep the book id);
        401 "Sync is disabled" → :class:`AuthError` ``kind="sync_disabled"``."""
        doc = normalize_hash(document)
        if percentage is None or isinstance(percentage, bool) or not isinstance(percentage, (int, float)):
            raise ValueError("percentage is required (a fraction 0–1)")
        if not math.isfinite(percentage) or not 0.0 <= float(percentage) <= 1.0:
            raise ValueError("percentage must be a fraction between 0 and 1")
        if not isinstance(progress, str):
            raise TypeError("progress must be a string")
        if utf16_len(progress) > 1000:
            raise ValueError("progress is longer than the server's 1000-character column")
        body = {
            "document": doc,
            "progress": progress,
            "percentage": float(percentage),
            "device": truncate_utf16(device, 100),
            "device_id": truncate_utf16(device_id, 100),
        }
        resp = self._request("PUT", KO_PROGRESS, auth="koreader", json_body=body, idempotent=True)
        if 200 <= resp.status_code < 300:
            data = self._json_ok(resp, "PUT", KO_PROGRESS)
            return data if isinstance(data, dict) else {}
        raise self._fail(resp, "PUT", KO_PROGRESS, "koreader")

    def get_progress(self, document: str) -> KoreaderProgress | None:
        """``GET /api/koreader/syncs/progress/{document}`` (KOReader headers).

        ``None``: the book is known but this user has no progress for it.
        404 "Book not found for hash" → :class:`NotFoundError`."""
        path = f"{KO_PROGRESS}/{normalize_hash(document)}"
        resp = self._request("GET", path, auth="koreader")
        if 200 <= resp.status_code < 300:
            data = self._json_ok(resp, "GET", path)
            try:
                return KoreaderProgress.from_json(data)
            except ValueError:
                raise self._bad_shape("GET", path, resp.status_code, "not a progress object") from None
        if resp.status_code == 404 and extract_message(resp).startswith("No progress"):
            return None
        raise self._fail(resp, "GET", path, "koreader")


# ---------------------------------------------------------------------- helpers


def _is_data_conflict(message: str) -> bool:
    low = message.lower()
    return "data conflict" in low or "duplicate entry" in low


def _check_book_type(book_type: str) -> None:
    if book_type not in BOOK_TYPES:
        raise ValueError(f"bookType must be one of {sorted(BOOK_TYPES)}")


def _cfi(cfi: str) -> str:
    if not isinstance(cfi, str) or not cfi:
        raise ValueError("a CFI is required")
    if utf16_len(cfi) > 1000:
        raise ValueError("CFI longer than 1000 characters (unconvertible)")
    return cfi


def _probe_by_hash(resp: httpx.Response) -> tuple[bool | None, bool | None]:
    """Probe 3/5: (by_hash supported?, KOReader account linked?)."""
    status = resp.status_code
    if 200 <= status < 300:
        return (True, True) if is_json_response(resp) else (False, None)
    if status == 404:
        message = extract_message(resp)
        if is_error_response_json(resp) and not message.startswith("Resource not found"):
            return True, True
        return False, None
    if status == 409:
        return True, False
    return None, None


def _probe_search(resp: httpx.Response) -> bool | None:
    status = resp.status_code
    if 200 <= status < 300:
        if is_json_response(resp) and isinstance(body_json(resp), list):
            return True
        return False
    if status == 500:
        return False
    if status == 404 and extract_message(resp).startswith("Resource not found"):
        return False
    return None


"""HTTP transport of the BookLore client: one pooled ``httpx.Client``, same-host GET
redirects, quick retries of idempotent requests, the "nothing sent" / "outcome unknown"
classification of network failures (booklore-api.md §5.2) with the URL and a classified
cause (product spec §6.1), and the per-request hook for ``-v``.

The hook and the ``booklore_sync.http`` logger see the method, the path (no query), the
status and the time — never a header, a body, a password, a key or a token.
"""

from __future__ import annotations

import logging
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from .. import __version__
from .errors import BookLoreError, OfflineError, OutcomeUnknownError
from .http import GATEWAY_STATUSES, Scrubber
from .pool import PooledTransport

__all__ = [
    "Transport",
    "RequestEvent",
    "RequestHook",
    "NormalizedURL",
    "normalize_base_url",
    "normalize_server_url",
    "transport_error",
    "is_quick_drop",
    "MAX_REDIRECTS",
]

log = logging.getLogger("booklore_sync.booklore")
http_log = logging.getLogger("booklore_sync.http")

MAX_REDIRECTS = 5
_API_SUFFIXES = ("/api/koreader", "/api/v1", "/api")


# ---------------------------------------------------------------------- URLs


def normalize_base_url(url: str) -> str:
    """Strip blanks and trailing ``/``, then a trailing ``/api/koreader`` (KOReader's own
    sync URL, which users paste), ``/api/v1`` or ``/api``, then trailing ``/`` again
    (§1.1). The URL must carry ``http://`` or ``https://`` (see
    :func:`normalize_server_url` for the lenient form used by ``login``/``config``)."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError("the BookLore server URL is empty")
    base = url.strip().rstrip("/")
    for suffix in _API_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)].rstrip("/")
            break
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
class NormalizedURL:
    """:func:`normalize_server_url`'s answer: the URL to use and what was changed."""

    url: str
    notices: tuple[str, ...] = ()


def normalize_server_url(raw: str) -> NormalizedURL:
    """The product spec's §6.1 normalisation: ``host[:port][/path]`` without a scheme
    gets ``http://`` and ``:port`` alone means ``http://localhost:port`` (as httpie
    does); trailing ``/`` and a pasted ``/api/koreader``, ``/api/v1`` or ``/api`` are
    removed. Each change is reported in ``notices``. ValueError for what is still not
    an http/https URL with a host (the message never repeats credentials)."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("the BookLore server URL is empty")
    text = raw.strip()
    notices: list[str] = []
    if "://" not in text:
        text = "http://localhost" + text if text.startswith(":") else "http://" + text
        shown = text.rstrip("/")
        for suffix in _API_SUFFIXES:
            if shown.endswith(suffix):
                shown = shown[: -len(suffix)].rstrip("/")
                break
        notices.append(f"no scheme given; using {shown}")
    url = normalize_base_url(text)
    stripped = text.rstrip("/")
    for suffix in _API_SUFFIXES:
        if stripped.endswith(suffix):
            notices.append(f"removed {suffix} from the URL (the server's base URL is {url})")
            break
    return NormalizedURL(url, tuple(notices))


# ---------------------------------------------------------------------- request hook


@dataclass(frozen=True)
class RequestEvent:
    """One HTTP exchange, for ``-v``: ``status`` is ``None`` when no answer came
    (``error`` then names the failure class)."""

    method: str
    path: str
    status: int | None
    milliseconds: float
    error: str | None = None


RequestHook = Callable[[RequestEvent], None]


# ---------------------------------------------------------------------- failures


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        out.append(cur)
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return out


def _host_port(url: str) -> tuple[str, str]:
    u = httpx.URL(url)
    port = f":{u.port}" if u.port else ""
    return u.host, f"{u.host}{port}{u.path.rstrip('/')}"


def classify_connect_error(exc: BaseException, url: str | None) -> tuple[str, str, str | None]:
    """(cause, reason, hint) of a failure to connect (nothing was sent)."""
    texts = " | ".join(str(e) for e in _chain(exc)).lower()
    scheme = httpx.URL(url).scheme if url else ""
    host, rest = _host_port(url) if url else ("", "")
    if isinstance(exc, httpx.ConnectTimeout) or "timed out" in texts:
        return "timeout", "the connection timed out (wrong host or port, or a firewall?)", None
    if any(isinstance(e, ssl.SSLError) for e in _chain(exc)) or "ssl" in texts or "tls" in texts:
        if "certificate" in texts:
            return "certificate", "the server's TLS certificate is not trusted", None
        if scheme == "https" and ("wrong_version_number" in texts or "wrong version number" in texts
                                  or "record layer" in texts or "unknown protocol" in texts):
            hint = f"did you mean http://{rest}?"
            return "tls", f"TLS failed: the server speaks plain HTTP — {hint}", hint
        return "tls", "the TLS handshake failed", None
    dns_words = ("name or service not known", "nodename nor servname", "getaddrinfo",
                 "name resolution", "no address associated", "name does not resolve")
    if any(w in texts for w in dns_words):
        return "dns", f"the name {host} was not found (DNS)", None
    if "refused" in texts or "errno 111" in texts or "errno 61" in texts:
        return "refused", "the connection was refused (is the port right, is the server running?)", None
    return "other", (str(exc).strip() or type(exc).__name__)[:200], None


def transport_error(
    exc: httpx.HTTPError, method: str, path: str, scrub: Scrubber, url: str | None = None
) -> BookLoreError:
    """Classify an httpx exception (booklore-api.md §5.2).

    * nothing was sent → :class:`OfflineError` (with ``url``, ``cause`` and ``hint``):
      ``ConnectError`` (refused, DNS, TLS), ``ConnectTimeout``, ``PoolTimeout``,
      ``ProxyError``, ``UnsupportedProtocol``;
    * sent, or possibly sent → :class:`OutcomeUnknownError`: ``ReadTimeout``,
      ``WriteTimeout``, ``RemoteProtocolError`` (includes "server disconnected without
      sending a response" — also the keep-alive race on a pooled connection, where
      httpx cannot tell whether the request left), ``ReadError``, ``WriteError`` and
      any other transport error.
    """
    detail = scrub((str(exc).strip() or type(exc).__name__)[:200])
    where = url or "the server"
    kw: dict[str, Any] = {"method": method, "path": path}
    if isinstance(exc, (httpx.ConnectTimeout, httpx.ConnectError, httpx.ProxyError, httpx.UnsupportedProtocol)):
        cause, reason, hint = classify_connect_error(exc, url)
        return OfflineError(f"cannot connect to {where}: {scrub(reason)}", url=url, cause=cause, hint=hint, **kw)
    if isinstance(exc, httpx.PoolTimeout):
        return OfflineError(f"cannot connect to {where}: no free connection ({detail})", url=url,
                            cause="pool", **kw)
    if isinstance(exc, httpx.ReadTimeout):
        return OutcomeUnknownError(f"no answer within the read timeout (outcome unknown): {detail}", **kw)
    if isinstance(exc, httpx.WriteTimeout):
        return OutcomeUnknownError(f"timeout while sending (outcome unknown): {detail}", **kw)
    if isinstance(exc, httpx.TimeoutException):
        return OutcomeUnknownError(f"timeout (outcome unknown): {detail}", **kw)
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.CloseError)):
        return OutcomeUnknownError(f"connection closed before an answer (outcome unknown): {detail}", **kw)
    return OutcomeUnknownError(f"transport error (outcome unknown): {type(exc).__name__}: {detail}", **kw)


def is_quick_drop(err: BookLoreError) -> bool:
    """An OutcomeUnknown caused by a dropped connection (not a timeout): the one worth an
    immediate retry for idempotent calls (keep-alive race)."""
    return isinstance(err, OutcomeUnknownError) and err.message.startswith("connection closed")


# ---------------------------------------------------------------------- transport


def _environment_proxy() -> bool:
    """Whether httpx (``trust_env``) would route some request through a proxy named by
    the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, the system's)."""
    found = urllib.request.getproxies()
    return any(found.get(scheme) for scheme in ("http", "https", "all"))



class Transport:
    """The pooled HTTP connection to one server (thread-safe, as ``httpx.Client``)."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 10,
        read_timeout: float = 30,
        transport: httpx.BaseTransport | None = None,
        retries: int = 2,
        retry_backoff: float = 0.5,
        scrub: Scrubber | None = None,
        on_request: RequestHook | None = None,
    ) -> None:
        self.base = normalize_base_url(base_url)
        self.retries = max(0, int(retries))
        self.backoff = max(0.0, float(retry_backoff))
        self.scrub = scrub or Scrubber()
        self.on_request = on_request
        timeout = httpx.Timeout(connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout)
        # drop idle pooled connections well before common server keep-alive
        # timeouts (5 s and up), which keeps the keep-alive race rare
        limits = httpx.Limits(max_connections=20, max_keepalive_connections=10, keepalive_expiry=2.0)
        pool = PooledTransport(limits) if transport is None else None
        self.http = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            verify=True,
            transport=transport if transport is not None else pool,
            headers={"Accept": "application/json", "User-Agent": f"booklore-sync/{__version__}"},
            trust_env=True,
            limits=limits,
        )
        # Requests go straight to the pool when nothing of httpx.Client.send is in use
        # here: no proxy from the environment (httpx would mount one), no redirects or
        # auth flows (this class handles both), no cookie yet (see _send).  That skips
        # a tenth of a millisecond of bookkeeping per request.
        self._direct = pool if pool is not None and not _environment_proxy() else None

    def close(self) -> None:
        self.http.close()

    def url(self, path: str) -> str:
        return self.base + "/" + path.lstrip("/")

    def exchange(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, Any] | None = None,
        json_body: Any = None,
        params: dict[str, Any] | None = None,
        idempotent: bool,
        follow: bool = True,
    ) -> httpx.Response:
        """Send one request (following same-host GET redirects unless ``follow`` is
        False), retrying idempotent requests on a dropped connection or a proxy
        502/503/504. Transport failures are raised as :class:`OfflineError` /
        :class:`OutcomeUnknownError`."""
        attempts = 1 + (self.retries if idempotent else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                resp = self._send_following(method, path, headers, json_body, params, follow)
            except httpx.HTTPError as exc:
                err = transport_error(exc, method, path, self.scrub, self.base)
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
        delay = self.backoff * (2**attempt)
        if delay > 0:
            time.sleep(delay)

    def _emit(self, method: str, path: str, status: int | None, started: float, error: str | None) -> None:
        ms = (time.monotonic() - started) * 1000
        if status is not None:
            http_log.debug("%s %s → %s (%.0f ms)", method, path, status, ms)
        else:
            http_log.debug("%s %s → %s (%.0f ms)", method, path, error, ms)
        if self.on_request is not None:
            try:
                self.on_request(RequestEvent(method, path, status, round(ms, 1), error))
            except Exception:  # noqa: BLE001 - a display hook must not break a sync
                log.debug("the request hook failed", exc_info=True)

    def _send(self, method: str, url: httpx.URL, headers: dict[str, Any] | None, json_body: Any,
              params: dict[str, Any] | None) -> httpx.Response:
        """One request and its whole answer.  Without cookies (a server that sets one
        gets httpx.Client's own path from then on: its jar sends it back) the request
        goes to the pool directly; httpx.Client.send would add only what is unused."""
        direct = self._direct
        if direct is None or self.http.cookies:
            if json_body is not None:
                return self.http.request(method, url, headers=headers, json=json_body, params=params)
            return self.http.request(method, url, headers=headers, params=params)
        if json_body is not None:
            request = self.http.build_request(method, url, headers=headers, json=json_body, params=params)
        else:
            request = self.http.build_request(method, url, headers=headers, params=params)
        resp = direct.handle_request(request)
        resp.request = request
        try:
            resp.read()
        except BaseException:
            resp.close()
            raise
        if "set-cookie" in resp.headers:
            self.http.cookies.extract_cookies(resp)
        return resp

    def _send_following(
        self,
        method: str,
        path: str,
        headers: dict[str, Any] | None,
        json_body: Any,
        params: dict[str, Any] | None,
        follow: bool,
    ) -> httpx.Response:
        url = httpx.URL(self.url(path))
        origin = url
        hops = 0
        shown = path.split("?", 1)[0]
        while True:
            started = time.monotonic()
            try:
                resp = self._send(method, url, headers, json_body, params)
            except httpx.HTTPError as exc:
                self._emit(method, shown, None, started, type(exc).__name__)
                raise
            self._emit(method, shown, resp.status_code, started, None)
            if not (follow and method == "GET" and resp.is_redirect and hops < MAX_REDIRECTS):
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
            shown = target.path
            params = None  # the Location carries its own query
            hops += 1

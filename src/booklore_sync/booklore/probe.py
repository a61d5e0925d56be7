"""The health probe and the capability probes (booklore-api.md §6): reachability,
release, flavour (fork | booklore | grimmory), and the account checks.

The client alone owns the capabilities: the probe result lives in the client (and in
the capability cache between runs); calls that learn something update it.
"""

from __future__ import annotations

import logging
import random
import secrets as _secrets
import string
from typing import Any

import httpx

from .capabilities import CACHE_TTL_SECONDS, Capabilities
from .core import ClientCore
from .errors import (
    AuthError,
    NotBookLoreError,
    OfflineError,
    OutcomeUnknownError,
    SyncDisabledError,
)
from .http import (
    GATEWAY_STATUSES,
    body_json,
    extract_message,
    is_error_response_json,
    is_json_response,
    safe_location,
)
from .models import Health

__all__ = ["ProbeMixin", "HEALTH", "KO_AUTH", "KO_BY_HASH", "BY_HASH", "SEARCH"]

log = logging.getLogger("booklore_sync.booklore")

HEALTH = "/api/v1/healthcheck"
KO_AUTH = "/api/koreader/users/auth"
KO_BY_HASH = "/api/koreader/books/by-hash/"
KO_PROGRESS = "/api/koreader/syncs/progress"
BY_HASH = "/api/v1/books/by-hash/"
SEARCH = "/api/v1/books/search"


def _spring_auth_body(resp: httpx.Response) -> dict | None:
    """Spring's error body of §4.3 (no ``message``; ``error`` and ``path``)."""
    if resp.status_code not in (401, 403):
        return None
    data = body_json(resp)
    if isinstance(data, dict) and "message" not in data and isinstance(data.get("error"), str):
        return data
    return None


def probe_by_hash(resp: httpx.Response) -> tuple[bool | None, bool | None]:
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


def probe_search(resp: httpx.Response) -> bool | None:
    status = resp.status_code
    if 200 <= status < 300:
        return bool(is_json_response(resp) and isinstance(body_json(resp), list))
    if status == 500:
        return False
    if status == 404 and extract_message(resp).startswith("Resource not found"):
        return False
    return None


class ProbeMixin(ClientCore):
    """Health probe, capability probes, account checks."""

    def healthcheck(self) -> Health:
        """``GET /api/v1/healthcheck`` with probe-1 semantics (§6).

        Returns :class:`Health` (``no_healthcheck=True`` when the answer is the 403/401
        of a release before v1.16.2). Raises :class:`OfflineError` (connection error,
        any timeout, 502/503/504; with ``url``, ``cause`` and ``hint``),
        :class:`NotBookLoreError` (non-JSON 2xx: ``reason="not_json"``; 404:
        ``"wrong_base_path"``; a redirect: ``"redirect"`` with ``location``; other
        4xx: ``"unexpected_status"``; JSON without the healthcheck shape:
        ``"not_booklore"``), :class:`ServerError` (other 5xx)."""
        url = self._base
        try:
            resp = self._request("GET", HEALTH, auth="none", follow=False)
        except OutcomeUnknownError as exc:
            hint = None
            if url.startswith("http://") and "connection closed" in exc.message:
                hint = "did you mean https://" + url[len("http://"):] + "?"
            raise OfflineError(
                f"cannot connect to {url}: no answer ({exc.message})" + (f" — {hint}" if hint else ""),
                url=url, cause="tls" if hint else "timeout", hint=hint, method="GET", path=HEALTH,
            ) from None
        status = resp.status_code
        kw: dict[str, Any] = {"method": "GET", "path": HEALTH, "status": status, "url": url}
        if status in GATEWAY_STATUSES:
            raise OfflineError(
                f"cannot connect to {url}: the server is unavailable behind it (HTTP {status})",
                cause="unavailable", **kw,
            )
        if 200 <= status < 300:
            if not is_json_response(resp):
                raise NotBookLoreError(
                    f"{url} answers, but not as BookLore/Grimmory (a web page: wrong port or base path?)",
                    reason="not_json", **kw,
                )
            data = body_json(resp)
            if not isinstance(data, dict) or not isinstance(data.get("data"), dict):
                raise NotBookLoreError(
                    f"{url} answers, but not as BookLore/Grimmory (wrong base path?)", reason="not_booklore", **kw
                )
            return Health.from_json(data)
        spring = _spring_auth_body(resp)
        if spring is not None and str(spring.get("path", "")).endswith(HEALTH):
            # a release before v1.16.2: no healthcheck, the filter answers (§6 probe 1)
            return Health(version=None, status=None, raw=spring, no_healthcheck=True)
        if status == 404:
            raise NotBookLoreError(
                f"{url} answers, but not as BookLore/Grimmory (404: wrong base path?)", reason="wrong_base_path", **kw
            )
        if 300 <= status < 400:
            location = resp.headers.get("location", "")
            target = safe_location(str(httpx.URL(self._t.url(HEALTH)).join(location))) if location else ""
            suggested = target[: -len(HEALTH)] if target.endswith(HEALTH) else target
            raise NotBookLoreError(
                f"{url} redirects to {suggested or 'another address'}; use that URL",
                reason="redirect", location=suggested or None, **kw,
            )
        if 400 <= status < 500:
            text = self._scrub(extract_message(resp))
            hint = ""
            if url.startswith("http://") and "https" in text.lower():
                hint = " — did you mean https://" + url[len("http://"):] + "?"
            raise NotBookLoreError(
                f"{url} answers, but not as BookLore/Grimmory (HTTP {status}: {text}){hint}",
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
            if cached is not None and cached.version == version and cached.no_healthcheck == health.no_healthcheck:
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
        grimmory = False

        # 2. KOReader credentials
        if self.has_koreader_account:
            try:
                self.check_koreader_auth()
                ko_ok = True
            except AuthError as exc:
                ko_ok = False
                grimmory = exc.status == 401  # a 401 where booklore answers 403 (§0.1)
        # 3. by-hash with KOReader headers
        if ko_ok:
            resp = self._request("GET", KO_BY_HASH + _secrets.token_hex(16), auth="koreader")
            bhk, ko_linked = probe_by_hash(resp)
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
                    search = probe_search(resp)
            except AuthError:
                bl_ok = False
            if self._bearer is not None and self._bearer.flavour_hint == "grimmory":
                grimmory = True
        # 5. by-hash with a bearer, when the KOReader route cannot be used
        if bl_ok and (not self.has_koreader_account or ko_ok is False):
            resp = self._request("GET", BY_HASH + _secrets.token_hex(16), auth="bearer")
            if resp.status_code in GATEWAY_STATUSES:
                raise self._fail(resp, "GET", BY_HASH, "bearer")
            bhb, _ = probe_by_hash(resp)

        found = [v for v in (bhk, search, bhb) if v is not None]
        flavour = "fork" if any(found) else ("upstream" if found else None)
        if flavour is None and previous is not None:
            # nothing could be probed (accounts refused): an older result for this
            # version is better than nothing; it stays in the cache as it was
            caps = previous.with_(koreader_auth_ok=ko_ok, koreader_linked=ko_linked, booklore_auth_ok=bl_ok)
            with self._caps_lock:
                self._caps = caps
            return caps
        server: str | None = None
        if flavour == "fork":
            server = "fork"
        elif grimmory:
            server = "grimmory"
        elif flavour == "upstream":
            server = "booklore"
        is_fork = None if flavour is None else flavour == "fork"
        batch = is_fork
        if previous is not None and previous.batch is False and previous.flavour == flavour:
            batch = False
        missing = previous.missing_routes if previous is not None else ()
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
            server=server,
            no_healthcheck=health.no_healthcheck,
            missing_routes=missing,
        )
        with self._caps_lock:
            self._caps = caps
        if flavour is not None:
            self._put_cache(caps)
        return caps

    # ------------------------------------------------------------------ accounts

    def check_koreader_auth(self) -> str | None:
        """``GET /api/koreader/users/auth``: the KOReader username the server reports
        (``None`` for a kosync-style ``{"authorized": "OK"}``). 403 (grimmory: 401) →
        AuthError."""
        data = self._call_json("GET", KO_AUTH, auth="koreader")
        if isinstance(data, dict):
            name = data.get("username")
            return name if isinstance(name, str) else None
        return None

    def check_koreader_sync(self) -> bool:
        """Whether the KOReader account's "Sync" switch is on (§6 probe 2, for
        ``login``): reads the position of a random fingerprint — 404 → on; 401 "Sync is
        disabled for this user" → off. Other answers raise as usual."""
        path = f"{KO_PROGRESS}/{_secrets.token_hex(16)}"
        resp = self._request("GET", path, auth="koreader")
        if resp.status_code == 404 or 200 <= resp.status_code < 300:
            return True
        err = self._fail(resp, "GET", path, "koreader")
        if isinstance(err, SyncDisabledError):
            return False
        raise err

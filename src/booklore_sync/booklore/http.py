"""Response inspection shared by the client: content types, §4.7 message extraction,
and the generic status → error mapping of booklore-api.md §4.8 and §5.2."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import httpx

from .errors import (
    AlreadyExistsError,
    AuthError,
    BookLoreError,
    BookNotFoundError,
    ConflictError,
    NotFoundError,
    OfflineError,
    OutcomeUnknownError,
    RequestRejectedError,
    ServerError,
    SyncDisabledError,
)

SYNC_DISABLED = "sync is disabled for this user"

FIXED_TEXT = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

GATEWAY_STATUSES = frozenset({502, 503, 504})
_MISSING = object()


class Scrubber:
    """Replaces known secrets in text with ``***``."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: list[str] = []
        for s in secrets:
            self.add(s)

    def add(self, secret: str | None) -> None:
        # copy-on-write: other threads may be scrubbing with the old list
        if secret and len(secret) >= 3 and secret not in self._secrets:
            self._secrets = sorted([*self._secrets, secret], key=len, reverse=True)

    def __repr__(self) -> str:
        return f"Scrubber({len(self._secrets)} secrets)"

    def __call__(self, text: str) -> str:
        for s in self._secrets:
            if s in text:
                text = text.replace(s, "***")
        return text


def media_type(resp: httpx.Response) -> str | None:
    ct = resp.headers.get("content-type")
    if ct is None:
        return None
    return ct.split(";", 1)[0].strip().lower()


def is_json_response(resp: httpx.Response) -> bool:
    mt = media_type(resp) or ""
    return mt == "application/json" or mt.endswith("+json")


def looks_html(resp: httpx.Response, text: str) -> bool:
    mt = media_type(resp) or ""
    if "html" in mt:
        return True
    head = text.lstrip()[:64].lower()
    return head.startswith("<!doctype html") or head.startswith("<html") or head.startswith("<")


def body_json(resp: httpx.Response) -> Any:
    """The body parsed as JSON when it plausibly is JSON, else ``_MISSING``."""
    try:
        text = resp.text
    except Exception:  # noqa: BLE001 - undecodable body
        return _MISSING
    stripped = text.strip()
    if not stripped or stripped[0] not in "{[\"":
        return _MISSING
    try:
        return json.loads(stripped)
    except ValueError:
        return _MISSING


def extract_message(resp: httpx.Response) -> str:
    """§4.7: message → error (string) → error.message → detail → short raw body →
    fixed text for the status → ``HTTP <code>``."""
    data = body_json(resp)
    if isinstance(data, dict):
        msg = data.get("message")
        if isinstance(msg, str) and msg:
            return msg
        err = data.get("error")
        if isinstance(err, str) and err:
            return err
        if isinstance(err, dict) and isinstance(err.get("message"), str) and err["message"]:
            return err["message"]
        detail = data.get("detail")
        if isinstance(detail, str) and detail:
            return detail
    try:
        text = resp.text.strip()
    except Exception:  # noqa: BLE001
        text = ""
    if text and len(text) < 500 and not looks_html(resp, text):
        return text
    return FIXED_TEXT.get(resp.status_code, f"HTTP {resp.status_code}")


def extract_details(resp: httpx.Response) -> list[str]:
    data = body_json(resp)
    if isinstance(data, dict) and isinstance(data.get("details"), list):
        return [str(d) for d in data["details"]]
    return []


def is_error_response_json(resp: httpx.Response) -> bool:
    """A JSON ErrorResponse body (an object with ``status``/``message``)."""
    data = body_json(resp)
    return isinstance(data, dict) and ("message" in data or "status" in data)


# ------------------------------------------------------------------- status mapping


def is_route_missing_404(resp: httpx.Response) -> bool:
    """A 404 that says the *route* is missing (or the base path is wrong): Spring's
    ``Resource not found…`` (booklore and grimmory texts), or a 404 without an
    ErrorResponse body (a proxy) — §4.8."""
    if resp.status_code != 404:
        return False
    if not is_error_response_json(resp):
        return True
    return extract_message(resp).startswith("Resource not found")


def status_error(
    resp: httpx.Response,
    *,
    method: str,
    path: str,
    auth: str,
    scrub: Scrubber,
    dedup_route: bool = False,
    url: str | None = None,
) -> BookLoreError:
    """The generic mapping of a non-2xx answer (after the client's own handling of 401
    refresh, capability hooks and redirects). ``dedup_route`` is kept for callers of
    the old signature; a 409 is "already there" only when its message says so."""
    del dedup_route
    status = resp.status_code
    message = scrub(extract_message(resp))
    kw: dict[str, Any] = {"method": method, "path": path, "status": status}
    lowered = message.lower()

    if status == 503 or (status in (502, 504) and method in ("GET", "HEAD")):
        where = f" at {url}" if url else ""
        return OfflineError(f"server unavailable{where} (HTTP {status}: {message})", url=url,
                            cause="unavailable", **kw)
    if status in (502, 504):
        return OutcomeUnknownError(f"proxy error after the request was sent ({message})", **kw)
    if status == 401:
        if auth == "koreader":
            if SYNC_DISABLED in lowered:
                return SyncDisabledError(message, **kw)
            return AuthError(message, account="koreader", kind="rejected", **kw)
        if auth == "bearer":
            return AuthError(
                f"bearer token refused after refresh ({message})", account="booklore", kind="rejected", **kw
            )
        return ServerError(message, **kw)
    if status == 403:
        if auth == "koreader":
            return AuthError(message, account="koreader", kind="rejected", **kw)
        if auth == "bearer":
            return AuthError(message, account="booklore", kind="refused", **kw)
        return ServerError(message, **kw)
    if status == 409 and "not linked" in lowered:
        return AuthError(message, account="koreader", kind="not_linked", **kw)
    if status in (400, 409) and "already exists" in lowered:
        return AlreadyExistsError(message, **kw)
    if status == 409:
        return ConflictError(message, **kw)
    if status == 404:
        if message.startswith("Book not found with ID"):
            return BookNotFoundError(message, **kw)
        return NotFoundError(message, **kw)
    if status == 400:
        return RequestRejectedError(message, details=[scrub(d) for d in extract_details(resp)], **kw)
    if 300 <= status < 400:
        loc = resp.headers.get("location", "")
        return ServerError(f"redirect not followed ({scrub(safe_location(loc))})", **kw)
    return ServerError(message, **kw)


def safe_location(location: str) -> str:
    """A redirect target without its query string or user info."""
    try:
        url = httpx.URL(location)
    except Exception:  # noqa: BLE001
        return "invalid location"
    if url.is_relative_url:
        return url.path or "/"
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}{url.path}"

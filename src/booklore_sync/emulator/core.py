"""Plumbing every controller shares: the request and response types, the error that ends a
request, the request context, and the binding and validation helpers of Bean
Validation as BookLore applies them (booklore-api.md §4)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .wire import Malformed, dumps, parse_json_body, utf16_len

MALFORMED = "Request body is missing or malformed."
DATA_CONFLICT = "A data conflict occurred. The operation could not be completed."
UNEXPECTED = "An unexpected error occurred."
INVALID_CREDENTIALS = "Invalid credentials"
TOO_MANY = "Too many failed login attempts. Please try again later."
NOT_LINKED = "KOReader user is not linked to a BookLore user"
SYNC_DISABLED = "Sync is disabled for this user"
SPA_HTML = b"<!doctype html><html><head><title>BookLore</title></head><body><app-root></app-root></body></html>"
HEX_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
STYLES = re.compile(r"^(highlight|underline|strikethrough|squiggly)$")
JWT_SKIP = ("/api/v1/opds/", "/api/v2/opds/", "/api/v1/auth/refresh", "/api/v1/setup/", "/api/kobo/")
SHELF_ICON_TYPES = ("PRIME_NG", "CUSTOM_SVG")


# ============================================================================ plumbing


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any  # email.message.Message (case-insensitive .get)
    body: bytes
    client_ip: str = "127.0.0.1"
    parsed: Any = None  # the JSON body once parsed (for the request log)
    parse_failed: bool = False

    def header(self, name: str) -> str | None:
        value = self.headers.get(name)
        return value if value is None else str(value)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


class ApiError(Exception):
    """Ends a request with an ErrorResponse (or ``response``).  ``kind`` names the Java
    exception class where a flavour words it differently (grimmory's generic texts):
    ``access_denied``, ``illegal_state``, ``unsupported``."""

    def __init__(self, status: int, message: str = "", details: list[str] | None = None,
                 *, empty: bool = False, response: Response | None = None,
                 kind: str | None = None) -> None:
        super().__init__(message)
        self.kind, self.status, self.message, self.details = kind, status, message, details
        self.empty, self.response = empty, response


@dataclass
class Identity:
    """Who a request is: the scheme that authenticated it and the BookLore user it acts as."""

    scheme: str = "none"  # koreader | bearer | none
    username: str | None = None
    user: dict[str, Any] | None = None
    koreader: dict[str, Any] | None = None


class Ctx:
    def __init__(self, api: Any, req: Request) -> None:
        self.api = api
        self.state = api.state
        self.req = req
        self.identity = Identity()

    # ---- bodies
    def json_body(self) -> Any:
        ctype = (self.req.header("Content-Type") or "").split(";")[0].strip().lower()
        if not (ctype == "application/json" or (ctype.startswith("application/") and ctype.endswith("+json"))):
            raise ApiError(500, UNEXPECTED)  # HttpMediaTypeNotSupported → catch-all
        if self.req.parsed is not None:
            return self.req.parsed
        try:
            self.req.parsed = parse_json_body(self.req.body)
        except Malformed as exc:
            self.req.parse_failed = True
            raise ApiError(400, MALFORMED) from exc
        return self.req.parsed

    def json_object(self) -> dict[str, Any]:
        body = self.json_body()
        if not isinstance(body, dict):
            raise ApiError(400, MALFORMED)
        return body

    # ---- identity
    @property
    def user(self) -> dict[str, Any]:
        user = self.identity.user
        assert user is not None
        return user

    def linked_user(self) -> dict[str, Any]:
        """The BookLore user of this request; for KOReader auth, the linked user (409)."""
        if self.identity.scheme == "koreader":
            acc = self.identity.koreader or {}
            user = self.state.data["users"].get(acc["userId"]) if acc.get("userId") is not None else None
            if user is None:
                raise ApiError(409, NOT_LINKED)
            self.identity.user = user
            return user
        return self.user


def json_response(status: int, obj: Any) -> Response:
    return Response(status, dumps(obj), "application/json")


def empty(status: int) -> Response:
    return Response(status)


def path_long(value: str) -> int:
    """A ``{id}`` path variable bound to a Java long; a mismatch is the catch-all 500."""
    if not re.fullmatch(r"-?\d+", value):
        raise ApiError(500, UNEXPECTED)
    out = int(value)
    if not -(2**63) <= out < 2**63:
        raise ApiError(500, UNEXPECTED)
    return out


def query_bool(ctx: Ctx, name: str, default: bool = False) -> bool:
    value = ctx.req.param(name)
    if value is None or value == "":
        return default
    low = value.strip().lower()
    if low in ("true", "on", "yes", "1"):
        return True
    if low in ("false", "off", "no", "0"):
        return False
    raise ApiError(500, UNEXPECTED)


def query_int(ctx: Ctx, name: str, default: int) -> int:
    value = ctx.req.param(name)
    if value is None or value == "":
        return default
    if not re.fullmatch(r"[+-]?\d+", value.strip()):
        raise ApiError(500, UNEXPECTED)
    out = int(value)
    if not -(2**31) <= out < 2**31:
        raise ApiError(500, UNEXPECTED)
    return out


def bind(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Malformed as exc:
        raise ApiError(400, MALFORMED) from exc


def max_len(details: list[str], fields: dict[str, Any], name: str, limit: int) -> None:
    """Bean Validation's @Size(max=limit) on an optional string, counted in UTF-16 units."""
    value = fields[name]
    if value is not None and utf16_len(value) > limit:
        details.append(f"{name}: size must be between 0 and {limit}")


def book_and_cfi(fields: dict[str, Any]) -> list[str]:
    """The checks annotations and v2 notes share: bookId and cfi required, cfi ≤ 1000."""
    details = []
    if fields["bookId"] is None:
        details.append("bookId: Book ID is required")
    if not fields["cfi"]:
        details.append("cfi: CFI is required")
    else:
        max_len(details, fields, "cfi", 1000)
    return details


def validation(details: list[str]) -> None:
    if details:
        raise ApiError(400, "Validation error", details)


def too_long_db(value: str | None, limit: int) -> bool:
    """A value over a MariaDB ``varchar(limit)`` column (counted in characters)."""
    return value is not None and len(value) > limit


def round_tenth(percent: float) -> float:
    return math.floor(percent * 10 + 0.5) / 10




TEXT_LIMIT = 65_535  # a MariaDB TEXT column, in bytes


def text_too_long(value: str | None) -> bool:
    """A value over a ``TEXT`` column (65,535 bytes of UTF-8)."""
    return value is not None and len(value.encode("utf-8", "surrogatepass")) > TEXT_LIMIT

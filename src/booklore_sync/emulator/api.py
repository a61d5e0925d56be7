"""BookLore's API as booklore-api.md §2–§4 describes it: authentication, routing, every
endpoint of §3 with its status codes and bodies, and the web-UI fallback.

``BookLoreApi.handle(request)`` runs one request against the state (with the state lock
held) and returns a ``Response``; the HTTP server (``server.py``) does the sockets and
the fault hooks.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import jwt
from .matchscore import clean_isbn_query, clean_stored_isbn, match_score
from .state import BOOK_TYPES, MODES, State, md5_hex
from .wire import (
    Instant,
    Malformed,
    dumps,
    f32,
    float_as_java_float,
    format_instant,
    format_local,
    format_spring_timestamp,
    parse_instant,
    parse_json_body,
    to_bool,
    to_enum,
    to_float,
    to_int,
    to_long,
    to_str,
    utf16_len,
)

FORKS = ("fork", "fork-2675")
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
    def __init__(self, status: int, message: str = "", details: list[str] | None = None,
                 *, empty: bool = False, response: Response | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
        self.empty = empty
        self.response = response


@dataclass
class Identity:
    """Who a request is: the scheme that authenticated it and the BookLore user it acts as."""

    scheme: str = "none"  # koreader | bearer | none
    username: str | None = None
    user: dict[str, Any] | None = None
    koreader: dict[str, Any] | None = None


class Ctx:
    def __init__(self, api: BookLoreApi, req: Request) -> None:
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
            acc = self.identity.koreader
            user = self.state.data["users"].get(acc["userId"]) if acc.get("userId") is not None else None
            if user is None:
                raise ApiError(409, NOT_LINKED)
            self.identity.user = user
            return user
        return self.user


def _json(status: int, obj: Any) -> Response:
    return Response(status, dumps(obj), "application/json")


def _empty(status: int) -> Response:
    return Response(status)


def _path_long(value: str) -> int:
    """A ``{id}`` path variable bound to a Java long; a mismatch is the catch-all 500."""
    if not re.fullmatch(r"-?\d+", value):
        raise ApiError(500, UNEXPECTED)
    out = int(value)
    if not -(2**63) <= out < 2**63:
        raise ApiError(500, UNEXPECTED)
    return out


def _query_bool(ctx: Ctx, name: str, default: bool = False) -> bool:
    value = ctx.req.param(name)
    if value is None or value == "":
        return default
    low = value.strip().lower()
    if low in ("true", "on", "yes", "1"):
        return True
    if low in ("false", "off", "no", "0"):
        return False
    raise ApiError(500, UNEXPECTED)


def _query_int(ctx: Ctx, name: str, default: int) -> int:
    value = ctx.req.param(name)
    if value is None or value == "":
        return default
    if not re.fullmatch(r"[+-]?\d+", value.strip()):
        raise ApiError(500, UNEXPECTED)
    out = int(value)
    if not -(2**31) <= out < 2**31:
        raise ApiError(500, UNEXPECTED)
    return out


def _bind(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Malformed as exc:
        raise ApiError(400, MALFORMED) from exc


def _max_len(details: list[str], fields: dict[str, Any], name: str, limit: int) -> None:
    """Bean Validation's @Size(max=limit) on an optional string, counted in UTF-16 units."""
    value = fields[name]
    if value is not None and utf16_len(value) > limit:
        details.append(f"{name}: size must be between 0 and {limit}")


def _book_and_cfi(fields: dict[str, Any]) -> list[str]:
    """The checks annotations and v2 notes share: bookId and cfi required, cfi ≤ 1000."""
    details = []
    if fields["bookId"] is None:
        details.append("bookId: Book ID is required")
    if not fields["cfi"]:
        details.append("cfi: CFI is required")
    else:
        _max_len(details, fields, "cfi", 1000)
    return details


def _validation(details: list[str]) -> None:
    if details:
        raise ApiError(400, "Validation error", details)


def _too_long_db(value: str | None, limit: int) -> bool:
    """A value over a MariaDB ``varchar(limit)`` column (counted in characters)."""
    return value is not None and len(value) > limit


def _round_tenth(percent: float) -> float:
    return math.floor(percent * 10 + 0.5) / 10


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Callable[..., Response]
    modes: tuple[str, ...] = MODES


def _route(method: str, template: str, handler: Callable[..., Response],
           modes: tuple[str, ...] = MODES) -> Route:
    regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$"
    return Route(method, re.compile(regex), handler, modes)


# ============================================================================ the API


class BookLoreApi:
    def __init__(self, state: State) -> None:
        self.state = state
        h = self
        self.routes = [
            _route("GET", "/api/v1/healthcheck", h.healthcheck),
            _route("POST", "/api/v1/auth/login", h.login),
            _route("POST", "/api/v1/auth/refresh", h.refresh),
            _route("GET", "/api/koreader/users/auth", h.koreader_auth),
            _route("POST", "/api/koreader/users/create", h.koreader_create),
            _route("GET", "/api/koreader/books/by-hash/{hash}", h.koreader_by_hash, FORKS),
            _route("PUT", "/api/koreader/syncs/progress", h.put_progress),
            _route("GET", "/api/koreader/syncs/progress/{document}", h.get_progress),
            _route("GET", "/api/v1/books/by-hash/{hash}", h.bearer_by_hash, FORKS),
            _route("GET", "/api/v1/books/search", h.search, FORKS),
            _route("PUT", "/api/v1/books/personal-rating", h.personal_rating),
            _route("POST", "/api/v1/books/shelves", h.assign_shelves),
            _route("GET", "/api/v1/books", h.list_books),
            _route("GET", "/api/v1/books/{bookId}", h.get_book),
            _route("POST", "/api/v1/reading-sessions", h.post_session),
            _route("POST", "/api/v1/reading-sessions/batch", h.post_batch, FORKS),
            _route("GET", "/api/v1/reading-sessions/book/{bookId}", h.list_sessions),
            _route("POST", "/api/v1/annotations", h.create_annotation),
            _route("GET", "/api/v1/annotations/book/{bookId}", h.list_annotations),
            _route("GET", "/api/v1/annotations/{id}", h.get_annotation),
            _route("PUT", "/api/v1/annotations/{id}", h.update_annotation),
            _route("DELETE", "/api/v1/annotations/{id}", h.delete_annotation),
            _route("POST", "/api/v2/book-notes", h.create_note_v2),
            _route("GET", "/api/v2/book-notes/book/{bookId}", h.list_notes_v2),
            _route("GET", "/api/v2/book-notes/{id}", h.get_note_v2),
            _route("PUT", "/api/v2/book-notes/{id}", h.update_note_v2),
            _route("DELETE", "/api/v2/book-notes/{id}", h.delete_note_v2),
            _route("POST", "/api/v1/book-notes", h.save_book_note),
            _route("GET", "/api/v1/book-notes/book/{bookId}", h.list_book_notes),
            _route("DELETE", "/api/v1/book-notes/{id}", h.delete_book_note),
            _route("POST", "/api/v1/bookmarks", h.create_bookmark),
            _route("GET", "/api/v1/bookmarks/book/{bookId}", h.list_bookmarks),
            _route("GET", "/api/v1/bookmarks/{id}", h.get_bookmark),
            _route("PUT", "/api/v1/bookmarks/{id}", h.update_bookmark),
            _route("DELETE", "/api/v1/bookmarks/{id}", h.delete_bookmark),
            _route("GET", "/api/v1/shelves", h.list_shelves),
            _route("POST", "/api/v1/shelves", h.create_shelf),
            _route("GET", "/api/v1/shelves/{id}/books", h.shelf_books),
            _route("GET", "/api/v1/koreader-users/me", h.get_koreader_me),
            _route("PUT", "/api/v1/koreader-users/me", h.put_koreader_me),
            _route("PATCH", "/api/v1/koreader-users/me/sync", h.patch_koreader_sync),
            _route("PATCH", "/api/v1/koreader-users/me/sync-progress-with-booklore",
                   h.patch_koreader_sync_reader),
        ]

    # ------------------------------------------------------------------ responses

    def error(self, status: int, message: str, details: list[str] | None = None) -> Response:
        body: dict[str, Any] = {"status": status, "message": message}
        if details is not None:
            body["details"] = details
        body["timestamp"] = format_local(self.state.clock.now())
        return _json(status, body)

    def forbidden(self, path: str) -> Response:
        """Spring Boot's default error body for the security chain's 403 (§4.3)."""
        return _json(403, {
            "timestamp": format_spring_timestamp(self.state.clock.now()),
            "status": 403, "error": "Forbidden", "path": path,
        })

    def fallback(self, req: Request) -> Response:
        """A path that matches no route (§4.5)."""
        if req.method in ("GET", "HEAD"):
            if self.state.spa_fallback:
                return Response(200, SPA_HTML, "text/html;charset=UTF-8")
            return self.error(404, f"Resource not found: {req.path}")
        return self.error(500, UNEXPECTED)

    # ------------------------------------------------------------------ auth

    def _chain(self, req: Request) -> str:
        path, mode = req.path, self.state.mode
        if path == "/api/koreader" or path.startswith("/api/koreader/"):
            return "koreader"
        if req.method == "POST" and path == "/api/v1/reading-sessions":
            if mode == "fork":
                return "either"
            if mode == "fork-2675":
                return "koreader"
        if req.method == "POST" and path == "/api/v1/reading-sessions/batch" and mode == "fork":
            return "either"
        if path.startswith("/api/v1/auth/") or path == "/api/v1/healthcheck" or path.startswith(
            "/api/v1/healthcheck/"
        ):
            return "public"
        if path == "/api" or path.startswith("/api/"):
            return "bearer"
        return "public"

    def _bearer_token(self, req: Request) -> str | None:
        value = req.header("Authorization")
        if value is None or not value.startswith("Bearer "):
            return None
        return value[len("Bearer "):].strip()

    def _koreader_account(self, req: Request) -> dict[str, Any] | None:
        name, key = req.header("x-auth-user"), req.header("x-auth-key")
        if not name or not key:
            return None
        acc = self.state.find_koreader(name)
        if acc is None or acc["md5"].lower() != key.strip().lower():
            return None
        return acc

    def authenticate(self, ctx: Ctx) -> Response | None:
        """Run the filters of §2; a response means the request stops here."""
        req = ctx.req
        chain = self._chain(req)
        token = self._bearer_token(req)
        jwt_applies = token is not None and not any(req.path.startswith(p) for p in JWT_SKIP)
        bearer_user = self.state.access_user(token) if jwt_applies else None
        if chain == "koreader":
            acc = self._koreader_account(req)
            if acc is None:
                return self.forbidden(req.path)
            if jwt_applies and bearer_user is None:
                return _empty(401)  # the JWT servlet filter after the chain (derived)
            ctx.identity = Identity("koreader", acc["username"], None, acc)
            return None
        if jwt_applies and bearer_user is None:
            return _empty(401)
        if chain == "public":
            if bearer_user is not None:
                ctx.identity = Identity("bearer", bearer_user["username"], bearer_user)
            return None
        if bearer_user is not None:
            ctx.identity = Identity("bearer", bearer_user["username"], bearer_user)
            return None
        if chain == "either":
            acc = self._koreader_account(req)
            if acc is not None:
                ctx.identity = Identity("koreader", acc["username"], None, acc)
                return None
        return self.forbidden(req.path)

    # ------------------------------------------------------------------ dispatch

    def handle(self, req: Request) -> tuple[Response, Identity]:
        ctx = Ctx(self, req)
        with self.state.lock:
            try:
                stop = self.authenticate(ctx)
                if stop is not None:
                    return stop, ctx.identity
                resp = self._dispatch(ctx)
            except ApiError as exc:
                if exc.response is not None:
                    resp = exc.response
                elif exc.empty:
                    resp = _empty(exc.status)
                else:
                    resp = self.error(exc.status, exc.message, exc.details)
            except Exception:  # an emulator bug must still look like BookLore's catch-all
                import traceback

                traceback.print_exc()
                resp = self.error(500, UNEXPECTED)
            if req.method not in ("GET", "HEAD"):
                self.state.mark_dirty()
            return resp, ctx.identity

    def _dispatch(self, ctx: Ctx) -> Response:
        req = ctx.req
        method = "GET" if req.method == "HEAD" else req.method
        path_matched = False
        mode = self.state.mode
        for route in self.routes:
            if mode not in route.modes:
                continue
            m = route.pattern.match(req.path)
            if m is None:
                continue
            if route.method != method:
                path_matched = True
                continue
            return route.handler(ctx, **m.groupdict())
        if path_matched:
            return self.error(500, UNEXPECTED)  # wrong method (derived)
        return self.fallback(req)

    # ================================================================== §3.1–3.5

    def healthcheck(self, ctx: Ctx) -> Response:
        stamp = format_local(self.state.clock.now())
        return _json(200, {
            "status": 200, "message": "Pong",
            "data": {"status": "UP", "message": "Application is running smoothly.",
                     "version": self.state.version, "timestamp": stamp},
            "timestamp": stamp,
        })

    def _issue_tokens(self, user: dict[str, Any]) -> tuple[str, str]:
        st = self.state
        now = int(st.clock.time())
        access = st.token_for({
            "sub": user["username"], "userId": user["id"],
            "isDefaultPassword": user["isDefaultPassword"], "iat": now,
            "exp": now + st.access_token_ttl,
        })
        claims = {"sub": user["username"], "userId": user["id"], "tokenType": "refresh",
                  "iat": now, "exp": now + st.refresh_token_ttl}
        if not st.bug_compat:
            claims["jti"] = secrets.token_hex(8)
        refresh = st.token_for(claims)
        if refresh in st.refresh_tokens:
            # identical claims within one second: UNIQUE(refresh_token.token)
            raise ApiError(400, DATA_CONFLICT)
        return access, refresh

    def _store_tokens(self, user: dict[str, Any], access: str, refresh: str) -> None:
        st = self.state
        st.issued_access.append(access)
        st.refresh_tokens[refresh] = {"userId": user["id"],
                                      "expiry": int(st.clock.time()) + st.refresh_token_ttl,
                                      "revoked": False}

    def login(self, ctx: Ctx) -> Response:
        body = ctx.json_object()
        username = _bind(lambda: to_str(body.get("username")))
        password = _bind(lambda: to_str(body.get("password")))
        details = []
        if username is None or not username.strip():
            details.append("username: Username must not be blank")
        if password is None or not password.strip():
            details.append("password: Password must not be blank")
        _validation(details)
        st = self.state
        if st.data["oidcOnly"]:
            raise ApiError(403, "Local login is disabled. Use OIDC to sign in.")
        ip_key, user_key = ("login-ip", ctx.req.client_ip), ("login-user", username.strip().lower())
        if st.limited(ip_key) or st.limited(user_key):
            raise ApiError(429, TOO_MANY)
        user = st.find_user(username)
        if user is None or user["password"] != password:
            st.fail(ip_key)
            st.fail(user_key)
            raise ApiError(400, INVALID_CREDENTIALS)
        st.limiter.pop(ip_key, None)
        st.limiter.pop(user_key, None)
        access, refresh = self._issue_tokens(user)
        self._store_tokens(user, access, refresh)
        return _json(200, {"accessToken": access, "refreshToken": refresh,
                           "isDefaultPassword": "true" if user["isDefaultPassword"] else "false"})

    def refresh(self, ctx: Ctx) -> Response:
        body = ctx.json_object()
        token = _bind(lambda: to_str(body.get("refreshToken")))
        if token is None or not token.strip():
            _validation(["refreshToken: Refresh token must not be blank"])
        st = self.state
        ip_key = ("refresh-ip", ctx.req.client_ip)
        if st.limited(ip_key):
            raise ApiError(429, TOO_MANY)
        rec = st.refresh_tokens.get(token)
        user = st.data["users"].get(rec["userId"]) if rec else None
        valid = (
            rec is not None and not rec["revoked"] and rec["expiry"] > st.clock.time()
            and token not in st.broken_tokens and token not in st.expired_tokens
            and jwt.verify_signature(token, st.secret) is not None and user is not None
        )
        if not valid:
            st.fail(ip_key)
            raise ApiError(400, INVALID_CREDENTIALS)
        st.limiter.pop(ip_key, None)
        access, new_refresh = self._issue_tokens(user)
        rec["revoked"] = True
        self._store_tokens(user, access, new_refresh)
        return _json(200, {"accessToken": access, "refreshToken": new_refresh})

    def koreader_auth(self, ctx: Ctx) -> Response:
        return _json(200, {"username": ctx.identity.koreader["username"]})

    def koreader_create(self, ctx: Ctx) -> Response:
        return _json(403, {"error": "User registration via Koreader is disabled"})

    # ================================================================== books

    def _file_dto(self, book: dict[str, Any], f: dict[str, Any]) -> dict[str, Any]:
        name = f["fileName"]
        ext = name.rsplit(".", 1)[1].lower() if "." in name else None
        out = {"id": f["id"], "bookId": book["id"], "fileName": name, "filePath": f["filePath"],
               "fileSubPath": f.get("fileSubPath", ""), "bookType": f["bookType"],
               "extension": ext, "fileSizeKb": f.get("sizeKb"), "folderBased": False,
               "addedOn": book["addedOn"], "book": f["isBook"]}
        return {k: v for k, v in out.items() if v is not None}

    def _shelf_dto(self, shelf: dict[str, Any]) -> dict[str, Any]:
        count = sum(1 for b in shelf["bookIds"] if self.state.live_book(b))
        return {"id": shelf["id"], "name": shelf["name"], "icon": shelf.get("icon"),
                "iconType": shelf.get("iconType"), "sort": None, "userId": shelf["userId"],
                "publicShelf": shelf.get("publicShelf", False), "bookCount": count}

    def book_dto(self, book: dict[str, Any], user: dict[str, Any] | None,
                 with_description: bool) -> dict[str, Any]:
        st = self.state
        meta = {k: v for k, v in book["metadata"].items() if v is not None}
        meta.setdefault("authors", [])
        if not with_description:
            meta.pop("description", None)
        lib = st.data["libraries"].get(book["libraryId"])
        out: dict[str, Any] = {"id": book["id"], "libraryId": book["libraryId"]}
        if lib:
            out["libraryName"] = lib["name"]
        out["metadata"] = meta
        primary = next((f for f in book["files"] if f["primary"]), None)
        if primary is not None:
            out["primaryFile"] = self._file_dto(book, primary)
        out["alternativeFormats"] = [self._file_dto(book, f) for f in book["files"]
                                     if f["isBook"] and f is not primary]
        out["supplementaryFiles"] = [self._file_dto(book, f) for f in book["files"]
                                     if not f["isBook"]]
        out["addedOn"] = book["addedOn"]
        row = st.progress_row(user["id"], book["id"]) if user else None
        out["readStatus"] = (row and row.get("readStatus")) or "UNSET"
        if row:
            for key in ("lastReadTime", "dateFinished", "personalRating"):
                if row.get(key) is not None:
                    out[key] = row[key]
            if row.get("koreaderPercent") is not None:
                out["koreaderProgress"] = {"percentage": _round_tenth(f32(row["koreaderPercent"]) * 100)}
        if user:
            out["shelves"] = [self._shelf_dto(s) for _k, s in sorted(st.data["shelves"].items())
                              if s["userId"] == user["id"] and book["id"] in s["bookIds"]]
        out["isPhysical"] = False
        return out

    def _lookup_hash(self, digest: str, user: dict[str, Any]) -> dict[str, Any]:
        found = self.state.books_by_hash(digest)
        if len(found) > 1:
            raise ApiError(500, UNEXPECTED)  # two live books share the hash (derived)
        if not found or not self.state.can_access(user, found[0]):
            raise ApiError(404, f"Book with hash {digest} not found")
        return found[0]

    def koreader_by_hash(self, ctx: Ctx, hash: str) -> Response:  # noqa: A002
        user = ctx.linked_user()
        book = self._lookup_hash(hash, user)
        return _json(200, self.book_dto(book, user, with_description=True))

    def bearer_by_hash(self, ctx: Ctx, hash: str) -> Response:  # noqa: A002
        with_desc = _query_bool(ctx, "withDescription")
        book = self._lookup_hash(hash, ctx.user)
        return _json(200, self.book_dto(book, ctx.user, with_description=with_desc))

    def _visible_books(self, user: dict[str, Any]) -> list[dict[str, Any]]:
        return [b for _k, b in sorted(self.state.data["books"].items())
                if not b["deleted"] and self.state.can_access(user, b)]

    def _search_title(self, book: dict[str, Any]) -> str:
        title = book["metadata"].get("title")
        if title is not None:
            return title
        primary = next((f for f in book["files"] if f["primary"]), None)
        return primary["fileName"] if primary and primary.get("fileName") else ""

    def _search_result(self, book: dict[str, Any], score: float) -> dict[str, Any]:
        out: dict[str, Any] = {"id": book["id"], "title": self._search_title(book)}
        primary = next((f for f in book["files"] if f["primary"]), None)
        if primary is not None and primary.get("currentHash"):
            out["hash"] = primary["currentHash"]
        if book.get("coverHash"):
            out["coverHash"] = book["coverHash"]
        out["matchScore"] = score
        return out

    def search(self, ctx: Ctx) -> Response:
        title = ctx.req.param("title")
        isbn = ctx.req.param("isbn")
        if title is None and isbn is None:
            raise ApiError(400, "At least one search parameter (title or isbn) must be provided")
        books = self._visible_books(ctx.user)
        if self.state.mode == "fork-2675":
            return _json(200, self._search_combined(books, title, isbn))
        if isbn is not None:
            cleaned = clean_isbn_query(isbn)
            hits = [b for b in books if cleaned and cleaned in (
                clean_stored_isbn(b["metadata"].get("isbn13")),
                clean_stored_isbn(b["metadata"].get("isbn10")))]
            if hits:
                return _json(200, [self._search_result(b, 1.0) for b in hits])
            if title is None:
                return _json(200, [])
        if not title:
            return _json(200, [])
        scored = [(match_score(self._search_title(b), title), b) for b in books]
        scored = [(s, b) for s, b in scored if s != 0]
        scored.sort(key=lambda item: -item[0])  # stable: ties keep ascending id
        return _json(200, [self._search_result(b, s) for s, b in scored[:50]])

    def _search_combined(self, books: list[dict[str, Any]], title: str | None,
                         isbn: str | None) -> list[dict[str, Any]]:
        scored = []
        cleaned = clean_isbn_query(isbn) if isbn is not None else None
        for b in books:
            score = 0.0
            if cleaned:
                for stored in (b["metadata"].get("isbn13"), b["metadata"].get("isbn10")):
                    s = clean_stored_isbn(stored)
                    if s is None:
                        continue
                    score = max(score, 1.0 if s == cleaned else match_score(s, cleaned))
            if title:
                score = max(score, match_score(self._search_title(b), title))
            if score != 0:
                scored.append((score, b))
        scored.sort(key=lambda item: -item[0])
        return [self._search_result(b, s) for s, b in scored[:50]]

    def list_books(self, ctx: Ctx) -> Response:
        with_desc = _query_bool(ctx, "withDescription")
        return _json(200, [self.book_dto(b, ctx.user, with_desc) for b in self._visible_books(ctx.user)])

    def get_book(self, ctx: Ctx, bookId: str) -> Response:  # noqa: N803
        book_id = _path_long(bookId)
        with_desc = _query_bool(ctx, "withDescription")
        book = self.state.live_book(book_id)
        if book is None:
            raise ApiError(404, f"Book not found with ID: {book_id}")
        if not self.state.can_access(ctx.user, book):
            raise ApiError(403, "You are not authorized to access this book.")
        return _json(200, self.book_dto(book, ctx.user, with_desc))

    # ================================================================== sessions

    def _session_book(self, ctx: Ctx, book_id: int, user: dict[str, Any]) -> dict[str, Any]:
        book = self.state.live_book(book_id)
        if book is None:
            raise ApiError(404, f"Book not found with ID: {book_id}")
        if self.state.mode == "fork" and not self.state.can_access(user, book):
            raise ApiError(404, f"Book not found with ID: {book_id}")
        return book

    def _store_session(self, user: dict[str, Any], book_id: int, book_type: str,
                       start: Instant, end: Instant, item: dict[str, Any]) -> dict[str, Any]:
        st = self.state
        sid = st._next_id("sessions")

        def pct(value: float | None) -> float | None:
            return None if value is None else float_as_java_float(value)

        rec = {
            "id": sid, "userId": user["id"], "bookId": book_id, "bookType": book_type,
            "startTime": start.truncated().iso(), "endTime": end.truncated().iso(),
            "durationSeconds": item["durationSeconds"],
            "durationFormatted": item.get("durationFormatted"),
            "startProgress": pct(item.get("startProgress")),
            "endProgress": pct(item.get("endProgress")),
            "progressDelta": pct(item.get("progressDelta")),
            "startLocation": item.get("startLocation"), "endLocation": item.get("endLocation"),
            "createdAt": format_local(st.clock.now()),
        }
        st.data["sessions"][sid] = rec
        return rec

    @staticmethod
    def _bind_session_item(raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise Malformed("item")
        return {
            "startTime": parse_instant(raw["startTime"]) if raw.get("startTime") is not None else None,
            "endTime": parse_instant(raw["endTime"]) if raw.get("endTime") is not None else None,
            "durationSeconds": to_int(raw.get("durationSeconds")),
            "durationFormatted": to_str(raw.get("durationFormatted")),
            "startProgress": to_float(raw.get("startProgress")),
            "endProgress": to_float(raw.get("endProgress")),
            "progressDelta": to_float(raw.get("progressDelta")),
            "startLocation": to_str(raw.get("startLocation")),
            "endLocation": to_str(raw.get("endLocation")),
        }

    def post_session(self, ctx: Ctx) -> Response:
        body = ctx.json_object()

        def bind() -> dict[str, Any]:
            item = self._bind_session_item(body)
            item["bookId"] = to_long(body.get("bookId"))
            item["bookType"] = to_enum(body.get("bookType"), BOOK_TYPES)
            return item

        item = _bind(bind)
        details = []
        for key in ("bookId", "startTime", "endTime", "durationSeconds"):
            if item[key] is None:
                details.append(f"{key}: must not be null")
        _validation(details)
        user = ctx.linked_user()
        self._session_book(ctx, item["bookId"], user)
        if (item["bookType"] is None or _too_long_db(item["durationFormatted"], 50)
                or _too_long_db(item["startLocation"], 500) or _too_long_db(item["endLocation"], 500)):
            raise ApiError(400, DATA_CONFLICT)
        self._store_session(user, item["bookId"], item["bookType"], item["startTime"],
                            item["endTime"], item)
        return _empty(202)

    def post_batch(self, ctx: Ctx) -> Response:
        body = ctx.json_object()
        fork_2675 = self.state.mode == "fork-2675"

        def bind() -> tuple[int | None, str | None, list[dict[str, Any]] | None]:
            book_id = to_long(body.get("bookId"))
            book_type = to_enum(body.get("bookType"), BOOK_TYPES)
            raw = body.get("sessions")
            if raw is None:
                return book_id, book_type, None
            if not isinstance(raw, list):
                raise Malformed("sessions")
            return book_id, book_type, [self._bind_session_item(x) for x in raw]

        book_id, book_type, items = _bind(bind)
        details = []
        if book_id is None:
            details.append("bookId: Book ID is required")
        if book_type is None:
            details.append("bookType: Book type is required")
        if not items:
            details.append("sessions: Sessions list cannot be empty")
        elif len(items) > 1000 and not fork_2675:
            details.append("sessions: Sessions list cannot exceed 1000 items")
        for i, item in enumerate(items or []):
            if item["startTime"] is None:
                details.append(f"sessions[{i}].startTime: Start time is required")
            if item["endTime"] is None:
                details.append(f"sessions[{i}].endTime: End time is required")
            if item["durationSeconds"] is None:
                details.append(f"sessions[{i}].durationSeconds: Duration is required")
            if item["startLocation"] is not None and utf16_len(item["startLocation"]) > 500:
                details.append(f"sessions[{i}].startLocation: Start location must not exceed 500 characters")
            if item["endLocation"] is not None and utf16_len(item["endLocation"]) > 500:
                details.append(f"sessions[{i}].endLocation: End location must not exceed 500 characters")
        _validation(details)
        user = ctx.linked_user()
        self._session_book(ctx, book_id, user)
        for item in items:
            if item["endTime"] < item["startTime"]:
                raise ApiError(400, "End time must be after start time")
        for item in items:
            if (_too_long_db(item["durationFormatted"], 50) or _too_long_db(item["startLocation"], 500)
                    or _too_long_db(item["endLocation"], 500)):
                raise ApiError(400, DATA_CONFLICT)  # one transaction: nothing stored
        results = []
        for item in items:
            rec = self._store_session(user, book_id, book_type, item["startTime"], item["endTime"], item)
            results.append({"sessionId": rec["id"], "startTime": item["startTime"].iso(),
                            "endTime": item["endTime"].iso()})
        return _json(200, {"totalRequested": len(items), "successCount": len(items),
                           "results": results})

    def list_sessions(self, ctx: Ctx, bookId: str) -> Response:  # noqa: N803
        book_id = _path_long(bookId)
        page = _query_int(ctx, "page", 0)
        size = _query_int(ctx, "size", 5)
        details = []
        if page < 0:
            details.append("page: must be greater than or equal to 0")
        if size < 1:
            details.append("size: must be greater than or equal to 1")
        if size > 100:
            details.append("size: must be less than or equal to 100")
        _validation(details)
        book = self.state.live_book(book_id)
        if book is None:
            raise ApiError(404, f"Book not found with ID: {book_id}")
        uid = ctx.user["id"]
        rows = [s for s in self.state.data["sessions"].values()
                if s["bookId"] == book_id and s["userId"] == uid]
        rows.sort(key=lambda s: (s["startTime"], s["id"]), reverse=True)
        total = len(rows)
        chunk = rows[page * size:(page + 1) * size]
        title = book["metadata"].get("title")
        content = [{
            "id": s["id"], "bookId": s["bookId"], "bookTitle": title, "bookType": s["bookType"],
            "startTime": s["startTime"], "endTime": s["endTime"],
            "durationSeconds": s["durationSeconds"], "startProgress": s["startProgress"],
            "endProgress": s["endProgress"], "progressDelta": s["progressDelta"],
            "startLocation": s["startLocation"], "endLocation": s["endLocation"],
            "createdAt": s["createdAt"],
        } for s in chunk]
        return _json(200, {"content": content, "page": {
            "size": size, "number": page, "totalElements": total,
            "totalPages": (total + size - 1) // size}})

    # ================================================================== ratings

    def personal_rating(self, ctx: Ctx) -> Response:
        body = ctx.json_object()

        def bind() -> tuple[list[int | None] | None, int | None]:
            raw = body.get("ids")
            if raw is not None and not isinstance(raw, list):
                raise Malformed("ids")
            ids = None if raw is None else [to_long(x) for x in raw]
            return ids, to_int(body.get("rating"))

        ids, rating = _bind(bind)
        if ids is None:
            raise ApiError(500, UNEXPECTED)  # (derived)
        if len(ids) > 500:
            _validation(["ids: size must be between 0 and 500"])
        if not ids:
            return _json(200, [])
        if any(i is None for i in ids):
            raise ApiError(500, UNEXPECTED)
        st = self.state
        existing = {i for i in ids if st.live_book(i) is not None}
        if self.state.bug_compat:
            if len(existing) != len(ids):
                raise ApiError(400, "d != java.lang.String")
        else:
            missing = [i for i in ids if i not in existing]
            if missing:
                raise ApiError(404, f"Book not found with ID: {missing[0]}")
            ids = list(dict.fromkeys(ids))
        out = []
        for book_id in ids:
            row = st.progress_row(ctx.user["id"], book_id, create=True)
            row["personalRating"] = rating
            out.append({"bookId": book_id, "personalRating": rating})
        return _json(200, out)

    # ================================================================== annotations

    def _unknown_book(self, book_id: int) -> ApiError:
        if self.state.bug_compat:
            return ApiError(500, UNEXPECTED)
        return ApiError(404, f"Book not found with ID: {book_id}")

    def _duplicate(self, table: str, user_id: int, book_id: int, cfi: str) -> bool:
        return self.state.unique_exists(table, user_id, book_id, cfi)

    def _owned(self, table: str, ctx: Ctx, raw_id: str) -> dict[str, Any]:
        rec = self.state.data[table].get(_path_long(raw_id))
        if rec is None or rec["userId"] != ctx.user["id"]:
            raise ApiError(500, UNEXPECTED)
        return rec

    def _delete(self, table: str, ctx: Ctx, raw_id: str) -> Response:
        """DELETE of one of the caller's own rows: 204, or 500 when missing or not theirs."""
        rec = self._owned(table, ctx, raw_id)
        del self.state.data[table][rec["id"]]
        self.state.invalidate()
        return _empty(204)

    @staticmethod
    def _annotation_dto(r: dict[str, Any]) -> dict[str, Any]:
        keys = ("id", "userId", "bookId", "cfi", "text", "color", "style", "note", "chapterTitle",
                "createdAt", "updatedAt")
        return {k: r.get(k) for k in keys}

    def create_annotation(self, ctx: Ctx) -> Response:
        body = ctx.json_object()
        f = _bind(lambda: {
            "bookId": to_long(body.get("bookId")), "cfi": to_str(body.get("cfi")),
            "text": to_str(body.get("text")), "color": to_str(body.get("color")),
            "style": to_str(body.get("style")), "note": to_str(body.get("note")),
            "chapterTitle": to_str(body.get("chapterTitle")),
        })
        details = _book_and_cfi(f)
        if not f["text"]:
            details.append("text: Text is required")
        elif utf16_len(f["text"]) > 5000:
            details.append("text: size must be between 0 and 5000")
        if f["color"] is not None and not HEX_COLOR.match(f["color"]):
            details.append("color: Color must be a valid hex color (e.g., #FFFF00)")
        if f["style"] is not None and not STYLES.match(f["style"]):
            details.append('style: must match "^(highlight|underline|strikethrough|squiggly)$"')
        _max_len(details, f, "note", 5000)
        _max_len(details, f, "chapterTitle", 500)
        _validation(details)
        uid = ctx.user["id"]
        if self._duplicate("annotations", uid, f["bookId"], f["cfi"]):
            raise ApiError(409, "Annotation already exists at this location")
        if self.state.live_book(f["bookId"]) is None:
            raise self._unknown_book(f["bookId"])
        st = self.state
        aid = st._next_id("annotations")
        now = format_local(st.clock.now())
        rec = {"id": aid, "userId": uid, "bookId": f["bookId"], "cfi": f["cfi"], "text": f["text"],
               "color": f["color"] or "#FFFF00", "style": f["style"] or "highlight",
               "note": f["note"], "chapterTitle": f["chapterTitle"], "createdAt": now, "updatedAt": now}
        st.data["annotations"][aid] = rec
        st.unique_add("annotations", rec)
        return _json(200, self._annotation_dto(rec))

    def _newest_first(self, rows: list[dict[str, Any]], key: str = "createdAt") -> list[dict[str, Any]]:
        return sorted(rows, key=lambda r: (r.get(key) or "", r["id"]), reverse=True)

    def _mine(self, table: str, ctx: Ctx, bookId: str) -> list[dict[str, Any]]:  # noqa: N803
        book_id = _path_long(bookId)
        uid = ctx.user["id"]
        return [r for r in self.state.data[table].values() if r["bookId"] == book_id and r["userId"] == uid]

    def list_annotations(self, ctx: Ctx, bookId: str) -> Response:  # noqa: N803
        rows = self._newest_first(self._mine("annotations", ctx, bookId))
        return _json(200, [self._annotation_dto(r) for r in rows])

    def get_annotation(self, ctx: Ctx, id: str) -> Response:  # noqa: A002
        return _json(200, self._annotation_dto(self._owned("annotations", ctx, id)))

    def update_annotation(self, ctx: Ctx, id: str) -> Response:  # noqa: A002
        rec = self._owned("annotations", ctx, id)
        body = ctx.json_object()
        f = _bind(lambda: {"color": to_str(body.get("color")), "style": to_str(body.get("style")),
                           "note": to_str(body.get("note"))})
        details = []
        if f["color"] is not None and not HEX_COLOR.match(f["color"]):
            details.append("color: Color must be a valid hex color (e.g., #FFFF00)")
        if f["style"] is not None and not STYLES.match(f["style"]):
            details.append('style: must match "^(highlight|underline|strikethrough|squiggly)$"')
        _max_len(details, f, "note", 5000)
        _validation(details)
        for key in ("color", "style"):
            if f[key] is not None:
                rec[key] = f[key]
        if "note" in body:
            rec["note"] = f["note"]
        rec["updatedAt"] = format_local(self.state.clock.now())
        return _json(200, self._annotation_dto(rec))

    def delete_annotation(self, ctx: Ctx, id: str) -> Response:  # noqa: A002
        return self._delete("annotations", ctx, id)

    # ================================================================== v2 notes

    @staticmethod
    def _note_v2_dto(r: dict[str, Any]) -> dict[str, Any]:
        keys = ("id", "userId", "bookId", "cfi", "selectedText", "noteContent", "color",
                "chapterTitle", "createdAt", "updatedAt")
        return {k: r.get(k) for k in keys}

    def create_note_v2(self, ctx: Ctx) -> Response:
        body = ctx.json_object()
        f = _bind(lambda: {
            "bookId": to_long(body.get("bookId")), "cfi": to_str(body.get("cfi")),
            "selectedText": to_str(body.get("selectedText")),
            "noteContent": to_str(body.get("noteContent")), "color": to_str(body.get("color")),
            "chapterTitle": to_str(body.get("chapterTitle")),
        })
        details = _book_and_cfi(f)
        _max_len(details, f, "selectedText", 5000)
        if not f["noteContent"]:
            details.append("noteContent: Note content is required")
        if f["color"] is not None and not HEX_COLOR.match(f["color"]):
            details.append("color: Color must be a valid hex color (e.g., #FFC107)")
        _max_len(details, f, "chapterTitle", 500)
        _validation(details)
        uid = ctx.user["id"]
        if self._duplicate("notesV2", uid, f["bookId"], f["cfi"]):
            raise ApiError(409, "Note already exists at this location")
        if self.state.live_book(f["bookId"]) is None:
            raise self._unknown_book(f["bookId"])
        st = self.state
        nid = st._next_id("notesV2")
        now = format_local(st.clock.now())
        rec = dict(f, id=nid, userId=uid, color=f["color"] or "#FFC107", createdAt=now, updatedAt=now)
        st.data["notesV2"][nid] = rec
        st.unique_add("notesV2", rec)
        return _json(200, self._note_v2_dto(rec))

    def list_notes_v2(self, ctx: Ctx, bookId: str) -> Response:  # noqa: N803
        rows = self._newest_first(self._mine("notesV2", ctx, bookId))
        return _json(200, [self._note_v2_dto(r) for r in rows])

    def get_note_v2(self, ctx: Ctx, id: str) -> Response:  # noqa: A002
        return _json(200, self._note_v2_dto(self._owned("notesV2", ctx, id)))

    def update_note_v2(self, ctx: Ctx, id: str) -> Response:  # noqa: A002
        rec = self._owned("notesV2", ctx, id)
        body = ctx.json_object()
        f = _bind(lambda: {k: to_str(body.get(k)) for k in ("noteContent", "color", "selectedText",
                                                             "chapterTitle")})
        details = []
        if f["color"] is not None and not HEX_COLOR.match(f["color"]):
            details.append("color: Color must be a valid hex color (e.g., #FFC107)")
        _max_len(details, f, "selectedText", 5000)
        _max_len(details, f, "chapterTitle", 500)
        _validation(details)
        for key, value in f.items():
            if value is not None:
                rec[key] = value
        rec["updatedAt"] = format_local(self.state.clock.now())
        return _json(200, self._note_v2_dto(rec))

    def delete_note_v2(self, ctx: Ctx, id: str) -> Response:  # noqa: A002
        return self._delete("notesV2", ctx, id)

    # ================================================================== v1 notes

    @staticmethod
    def _book_note_dto(r: dict[str, Any]) -> dict[str, Any]:
        return {k: r.get(k) for k in ("id", "userId", "bookId", "title", "content", "createdAt", "updatedAt")}

    def save_book_note(self, ctx: Ctx) -> Response:
        body = ctx.json_object()
        f = _bind(lambda: {"id": to_long(body.get("id")), "bookId": to_long(body.get("bookId")),
                           "title": to_str(body.get("title")), "content": to_str(body.get("content"))})
        details = []
        if f["bookId"] is None:
            details.append("bookId: Book ID is required")
        if f["content"] is None or not f["content"].strip():
            details.append("content: Content is required")
        _validation(details)
        st = self.state
        uid = ctx.user["id"]
        existing = None
        if f["id"] is not None:
            existing = st.data["bookNotes"].get(f["id"])
            if existing is None or existing["userId"] != uid:
                raise ApiError(500, UNEXPECTED)
        if st.live_book(f["bookId"]) is None:
            raise ApiError(404, f"Book not found with ID: {f['bookId']}")
        if _too_long_db(f["title"], 255):
            raise ApiError(400, DATA_CONFLICT)
        now = format_local(st.clock.now())
        if existing is not None:
            existing.update(bookId=f["bookId"], title=f["title"], content=f["content"], updatedAt=now)
            rec = existing
        else:
            nid = st._next_id("bookNotes")
            rec = {"id": nid, "userId": uid, "bookId": f["bookId"], "title": f["title"],
                   "content": f["content"], "createdAt": now, "updatedAt": now}
            st.data["bookNotes"][nid] = rec
        return _json(200, self._book_note_dto(rec))

    def list_book_notes(self, ctx: Ctx, bookId: str) -> Response:  # noqa: N803
        rows = self._newest_first(self._mine("bookNotes", ctx, bookId), "updatedAt")
        return _json(200, [self._book_note_dto(r) for r in rows])

    def delete_book_note(self, ctx: Ctx, id: str) -> Response:  # noqa: A002
        return self._delete("bookNotes", ctx, id)

    # ================================================================== bookmarks

    @staticmethod
    def _bookmark_dto(r: dict[str, Any]) -> dict[str, Any]:
        keys = ("id", "userId", "bookId", "cfi", "positionMs", "trackIndex", "title", "color", "notes",
                "priority", "createdAt", "updatedAt")
        return {k: r.get(k) for k in keys}

    def create_bookmark(self, ctx: Ctx) -> Response:
        body = ctx.json_object()
        f = _bind(lambda: {"bookId": to_long(body.get("bookId")), "cfi": to_str(body.get("cfi")),
                           "title": to_str(body.get("title")), "positionMs": to_long(body.get("positionMs")),
                           "trackIndex": to_int(body.get("trackIndex"))})
        if f["bookId"] is None:
            _validation(["bookId: must not be null"])
        st = self.state
        uid = ctx.user["id"]
        if f["positionMs"] is not None:
            for r in st.data["bookmarks"].values():
                if (r["userId"] == uid and r["bookId"] == f["bookId"] and r.get("positionMs") is not None
                        and r.get("trackIndex") == f["trackIndex"]
                        and abs(r["positionMs"] - f["positionMs"]) < 5000):
                    raise ApiError(409, "A bookmark already exists near this position")
        elif f["cfi"] is not None and self._duplicate("bookmarks", uid, f["bookId"], f["cfi"]):
            raise ApiError(409, "Bookmark already exists at this location")
        if st.live_book(f["bookId"]) is None:
            raise self._unknown_book(f["bookId"])
        if _too_long_db(f["cfi"], 1000) or _too_long_db(f["title"], 255):
            raise ApiError(400, DATA_CONFLICT)
        bid = st._next_id("bookmarks")
        now = format_local(st.clock.now())
        rec = dict(f, id=bid, userId=uid, color=None, notes=None, priority=3, createdAt=now, updatedAt=now)
        st.data["bookmarks"][bid] = rec
        st.unique_add("bookmarks", rec)
        return _json(200, self._bookmark_dto(rec))

    def list_bookmarks(self, ctx: Ctx, bookId: str) -> Response:  # noqa: N803
        rows = sorted(self._mine("bookmarks", ctx, bookId), key=lambda r: r["id"])
        return _json(200, [self._bookmark_dto(r) for r in rows])

    def get_bookmark(self, ctx: Ctx, id: str) -> Response:  # noqa: A002
        return _json(200, self._bookmark_dto(self._owned("bookmarks", ctx, id)))

    def update_bookmark(self, ctx: Ctx, id: str) -> Response:  # noqa: A002
        rec = self._owned("bookmarks", ctx, id)
        body = ctx.json_object()
        f = _bind(lambda: {"title": to_str(body.get("title")), "cfi": to_str(body.get("cfi")),
                           "color": to_str(body.get("color")), "notes": to_str(body.get("notes")),
                           "priority": to_int(body.get("priority")),
                           "positionMs": to_long(body.get("positionMs")),
                           "trackIndex": to_int(body.get("trackIndex"))})
        details = []
        _max_len(details, f, "title", 255)
        _max_len(details, f, "cfi", 500)
        if f["color"] is not None and not HEX_COLOR.match(f["color"]):
            details.append('color: must match "^#[0-9A-Fa-f]{6}$"')
        _max_len(details, f, "notes", 2000)
        if f["priority"] is not None and f["priority"] < 1:
            details.append("priority: must be greater than or equal to 1")
        if f["priority"] is not None and f["priority"] > 5:
            details.append("priority: must be less than or equal to 5")
        _validation(details)
        for key, value in f.items():
            if value is not None:
                rec[key] = value
        self.state.invalidate()
        rec["updatedAt"] = format_local(self.state.clock.now())
        return _json(200, self._bookmark_dto(rec))

    def delete_bookmark(self, ctx: Ctx, id: str) -> Response:  # noqa: A002
        return self._delete("bookmarks", ctx, id)

    # ================================================================== kosync

    def _sync_user(self, ctx: Ctx) -> dict[str, Any]:
        acc = ctx.identity.koreader
        if not acc["syncEnabled"]:
            raise ApiError(401, SYNC_DISABLED)
        return ctx.linked_user()

    def put_progress(self, ctx: Ctx) -> Response:
        body = ctx.json_object()
        f = _bind(lambda: {
            "document": to_str(body.get("document")), "progress": to_str(body.get("progress")),
            "percentage": to_float(body.get("percentage")), "device": to_str(body.get("device")),
            "device_id": to_str(body.get("device_id")), "timestamp": to_long(body.get("timestamp")),
        })
        user = self._sync_user(ctx)
        st = self.state
        digest = f["document"]
        found = st.books_by_hash(digest) if digest is not None else []
        if len(found) > 1:
            raise ApiError(500, UNEXPECTED)
        if not found:
            raise ApiError(404, f"Book not found for hash {digest if digest is not None else 'null'}")
        if f["percentage"] is None:
            if st.bug_compat:
                raise ApiError(500, UNEXPECTED)
            _validation(["percentage: must not be null"])
        if (_too_long_db(f["progress"], 1000) or _too_long_db(f["device"], 100)
                or _too_long_db(f["device_id"], 100)):
            raise ApiError(400, DATA_CONFLICT)
        book = found[0]
        row = st.progress_row(user["id"], book["id"], create=True)
        now = st.clock.now()
        stored = float_as_java_float(f["percentage"])
        row.update(koreaderProgress=f["progress"], koreaderPercent=stored, koreaderDevice=f["device"],
                   koreaderDeviceId=f["device_id"], koreaderLastSyncTime=format_instant(int(now.timestamp())),
                   lastReadTime=format_instant(int(now.timestamp())))
        percent = f32(f32(f["percentage"]) * 100)
        if percent >= 99.5:
            row["readStatus"] = "READ"
            row["dateFinished"] = format_instant(int(now.timestamp()))
        elif percent >= 0.25:
            row["readStatus"] = "READING"
        else:
            row["readStatus"] = "UNREAD"
        return _json(200, {"status": "progress updated"})

    def get_progress(self, ctx: Ctx, document: str) -> Response:
        user = self._sync_user(ctx)
        st = self.state
        found = st.books_by_hash(document)
        if len(found) > 1:
            raise ApiError(500, UNEXPECTED)
        if not found:
            raise ApiError(404, f"Book not found for hash {document}")
        row = st.progress_row(user["id"], found[0]["id"])
        if row is None:
            raise ApiError(404, "No progress found for user and book")
        ts = None
        if row.get("koreaderLastSyncTime"):
            ts = parse_instant(row["koreaderLastSyncTime"]).seconds
        return _json(200, {"timestamp": ts, "document": document, "progress": row.get("koreaderProgress"),
                           "percentage": row.get("koreaderPercent"), "device": "BookLore",
                           "device_id": "BookLore"})

    # ================================================================== shelves

    def assign_shelves(self, ctx: Ctx) -> Response:
        body = ctx.json_object()

        def ids(name: str) -> list[int] | None:
            raw = body.get(name)
            if raw is None:
                return None
            if not isinstance(raw, list):
                raise Malformed(name)
            return [to_long(x) for x in raw]

        book_ids, assign, unassign = _bind(lambda: (ids("bookIds"), ids("shelvesToAssign"),
                                                     ids("shelvesToUnassign")))
        if book_ids is None or assign is None or unassign is None:
            raise ApiError(500, UNEXPECTED)
        st = self.state
        uid = ctx.user["id"]
        for wanted, verb in ((assign, "assign"), (unassign, "unassign")):
            for sid in wanted:
                shelf = st.data["shelves"].get(sid)
                if shelf is None or shelf["userId"] != uid:
                    msg = f"Cannot {verb} shelves that do not belong to the user."
                    raise ApiError(401 if st.bug_compat else 403, msg)
        books = []
        for bid in dict.fromkeys(book_ids):
            book = st.live_book(bid) if bid is not None else None
            if book is None:
                continue
            for sid in assign:
                if bid not in st.data["shelves"][sid]["bookIds"]:
                    st.data["shelves"][sid]["bookIds"].append(bid)
            for sid in unassign:
                if bid in st.data["shelves"][sid]["bookIds"]:
                    st.data["shelves"][sid]["bookIds"].remove(bid)
            books.append(book)
        return _json(200, [self.book_dto(b, ctx.user, False) for b in books])

    def list_shelves(self, ctx: Ctx) -> Response:
        uid = ctx.user["id"]
        return _json(200, [self._shelf_dto(s) for _k, s in sorted(self.state.data["shelves"].items())
                           if s["userId"] == uid])

    def create_shelf(self, ctx: Ctx) -> Response:
        body = ctx.json_object()
        f = _bind(lambda: {"id": to_long(body.get("id")), "name": to_str(body.get("name")),
                           "icon": to_str(body.get("icon")),
                           "iconType": to_enum(body.get("iconType"), SHELF_ICON_TYPES),
                           "publicShelf": to_bool(body.get("publicShelf"))})
        details = []
        if f["id"] is not None:
            details.append("id: must be null")
        if f["name"] is None or not f["name"].strip():
            details.append("name: must not be blank")
        _validation(details)
        st = self.state
        uid = ctx.user["id"]
        if any(s["userId"] == uid and s["name"] == f["name"] for s in st.data["shelves"].values()):
            raise ApiError(400, DATA_CONFLICT)
        sid = st._next_id("shelves")
        shelf = {"id": sid, "userId": uid, "name": f["name"], "icon": f["icon"], "iconType": f["iconType"],
                 "publicShelf": bool(f["publicShelf"]), "bookIds": []}
        st.data["shelves"][sid] = shelf
        return _json(201, self._shelf_dto(shelf))

    def shelf_books(self, ctx: Ctx, id: str) -> Response:  # noqa: A002
        sid = _path_long(id)
        shelf = self.state.data["shelves"].get(sid)
        if shelf is None:
            raise ApiError(404, f"Shelf not found with ID: {sid}")
        if shelf["userId"] != ctx.user["id"] and not shelf.get("publicShelf"):
            raise ApiError(403, "You are not authorized to access this shelf.")
        books = [self.state.live_book(b) for b in shelf["bookIds"]]
        return _json(200, [self.book_dto(b, ctx.user, False) for b in books if b is not None])

    # ================================================================== koreader-users

    def _koreader_guard(self, ctx: Ctx) -> dict[str, Any]:
        user = ctx.user
        if not (user["canSyncKoReader"] or user["isAdmin"]):
            raise ApiError(403, "Access Denied")
        return user

    def _my_koreader(self, user: dict[str, Any]) -> dict[str, Any] | None:
        for acc in self.state.data["koreaderAccounts"].values():
            if acc["userId"] == user["id"]:
                return acc
        return None

    @staticmethod
    def _koreader_dto(acc: dict[str, Any]) -> dict[str, Any]:
        return {"id": acc["id"], "username": acc["username"], "password": acc["password"],
                "passwordMD5": acc["md5"], "syncEnabled": acc["syncEnabled"],
                "syncWithBookloreReader": acc["syncWithBookloreReader"]}

    def get_koreader_me(self, ctx: Ctx) -> Response:
        user = self._koreader_guard(ctx)
        acc = self._my_koreader(user)
        if acc is None:
            raise ApiError(404, f"Koreader user not found for BookLore user ID: {user['id']}")
        return _json(200, self._koreader_dto(acc))

    def put_koreader_me(self, ctx: Ctx) -> Response:
        user = self._koreader_guard(ctx)
        body = ctx.json_object()
        f = _bind(lambda: {"username": to_str(body.get("username")), "password": to_str(body.get("password"))})
        if f["username"] is None or f["password"] is None:
            raise ApiError(400, DATA_CONFLICT)  # NOT NULL columns
        st = self.state
        acc = self._my_koreader(user)
        other = st.find_koreader(f["username"])
        if other is not None and other is not acc:
            raise ApiError(400, DATA_CONFLICT)  # UNIQUE(username)
        if acc is None:
            kid = st._next_id("koreaderAccounts")
            acc = {"id": kid, "username": f["username"], "password": f["password"],
                   "md5": md5_hex(f["password"]), "syncEnabled": True,
                   "syncWithBookloreReader": False, "userId": user["id"]}
            st.data["koreaderAccounts"][kid] = acc
        else:
            acc.update(username=f["username"], password=f["password"], md5=md5_hex(f["password"]))
        return _json(200, self._koreader_dto(acc))

    def _patch_flag(self, ctx: Ctx, key: str) -> Response:
        user = self._koreader_guard(ctx)
        raw = ctx.req.param("enabled")
        if raw is None or raw.strip().lower() not in ("true", "false"):
            raise ApiError(500, UNEXPECTED)  # missing / mistyped request parameter
        acc = self._my_koreader(user)
        if acc is None:
            raise ApiError(404, f"Koreader user not found for BookLore user ID: {user['id']}")
        acc[key] = raw.strip().lower() == "true"
        return _empty(204)

    def patch_koreader_sync(self, ctx: Ctx) -> Response:
        return self._patch_flag(ctx, "syncEnabled")

    def patch_koreader_sync_reader(self, ctx: Ctx) -> Response:
        return self._patch_flag(ctx, "syncWithBookloreReader")

"""One generic controller for the items a user keeps on a book — annotations (§3.14), v2
in-book notes (§3.15), v1 book notes (§3.16) and bookmarks (§3.17) — with their update
routes (§3.25).  Each kind is an ``ItemKind``: its table, path, fields, checks and order;
the create → validate → duplicate → book → column-limit → store path exists once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from .. import flavours
from ..core import (
    DATA_CONFLICT,
    HEX_COLOR,
    STYLES,
    UNEXPECTED,
    book_and_cfi,
    empty,
    max_len,
    path_long,
    text_too_long,
    too_long_db,
    validation,
)
from ..routing import Router
from ..wire import format_local, to_int, to_long, to_str
from .base import ApiError, Controller, Ctx, Response, bind, json_response

Fields = dict[str, Any]
STYLE_DETAIL = 'style: must match "^(highlight|underline|strikethrough|squiggly)$"'


def _color(details: list[str], f: Fields, example: str) -> None:
    if f.get("color") is not None and not HEX_COLOR.match(f["color"]):
        details.append(f"color: Color must be a valid hex color (e.g., {example})")


@dataclass(frozen=True)
class ItemKind:
    table: str
    path: str  # the create route; lists under {path}/book/{bookId}
    since: tuple[int, int, int] | None  # the first release with the kind
    dto: tuple[str, ...]
    create: dict[str, Callable[[Any], Any]]  # field → binder
    check_create: Callable[[Fields], list[str]]
    update: dict[str, Callable[[Any], Any]]  # the PUT's fields ({} = no PUT route)
    check_update: Callable[[Fields], list[str]]
    defaults: tuple[tuple[str, Any], ...] = ()
    duplicate: str | None = None  # 409 for the same (user, book, cfi)
    order: str = "created"  # created | updated | priority
    unknown_book_404: bool = False  # v1 notes answer 404, the others 500
    text_columns: tuple[str, ...] = ()  # TEXT: at most 65,535 bytes
    varchar: tuple[tuple[str, int], ...] = ()  # column limits (400 data conflict)
    has_get: bool = True
    put_since: tuple[int, int, int] | None = None


def _annotation_checks(f: Fields) -> list[str]:
    details = book_and_cfi(f)
    if not f["text"]:
        details.append("text: Text is required")
    else:
        max_len(details, f, "text", 5000)
    return details + _annotation_update_checks(f) + _chapter(f)


def _annotation_update_checks(f: Fields) -> list[str]:
    details: list[str] = []
    _color(details, f, "#FFFF00")
    if f.get("style") is not None and not STYLES.match(f["style"]):
        details.append(STYLE_DETAIL)
    max_len(details, f, "note", 5000)
    return details


def _chapter(f: Fields) -> list[str]:
    details: list[str] = []
    if "chapterTitle" in f:
        max_len(details, f, "chapterTitle", 500)
    return details


def _note_v2_checks(f: Fields) -> list[str]:
    details = book_and_cfi(f)
    max_len(details, f, "selectedText", 5000)
    if not f["noteContent"]:
        details.append("noteContent: Note content is required")
    _color(details, f, "#FFC107")
    return details + _chapter(f)


def _note_v2_update_checks(f: Fields) -> list[str]:
    details: list[str] = []
    _color(details, f, "#FFC107")
    return details + _chapter(f)


def _book_note_checks(f: Fields) -> list[str]:
    details = []
    if f["bookId"] is None:
        details.append("bookId: Book ID is required")
    if f["content"] is None or not f["content"].strip():
        details.append("content: Content is required")
    return details


def _bookmark_checks(f: Fields) -> list[str]:
    details = ["bookId: must not be null"] if f["bookId"] is None else []
    return details + _page_check(f)


def _page_check(f: Fields) -> list[str]:
    if f.get("pageNumber") is not None and f["pageNumber"] < 1:
        return ["pageNumber: Page number must be at least 1"]
    return []


def _bookmark_update_checks(f: Fields) -> list[str]:
    details: list[str] = []
    max_len(details, f, "title", 255)
    max_len(details, f, "cfi", 500)
    if f["color"] is not None and not HEX_COLOR.match(f["color"]):
        details.append('color: must match "^#[0-9A-Fa-f]{6}$"')
    max_len(details, f, "notes", 2000)
    if f["priority"] is not None and f["priority"] < 1:
        details.append("priority: must be greater than or equal to 1")
    if f["priority"] is not None and f["priority"] > 5:
        details.append("priority: must be less than or equal to 5")
    return details + _page_check(f)


ANNOTATIONS = ItemKind(
    table="annotations", path="/api/v1/annotations", since=flavours.ANNOTATIONS,
    dto=("id", "userId", "bookId", "cfi", "text", "color", "style", "note", "chapterTitle",
         "createdAt", "updatedAt"),
    create={"bookId": to_long, "cfi": to_str, "text": to_str, "color": to_str, "style": to_str,
            "note": to_str, "chapterTitle": to_str},
    check_create=_annotation_checks,
    update={"color": to_str, "style": to_str, "note": to_str},
    check_update=_annotation_update_checks,
    defaults=(("color", "#FFFF00"), ("style", "highlight")),
    duplicate="Annotation already exists at this location",
)
NOTES_V2 = ItemKind(
    table="notesV2", path="/api/v2/book-notes", since=flavours.ANNOTATIONS,
    dto=("id", "userId", "bookId", "cfi", "selectedText", "noteContent", "color", "chapterTitle",
         "createdAt", "updatedAt"),
    create={"bookId": to_long, "cfi": to_str, "selectedText": to_str, "noteContent": to_str,
            "color": to_str, "chapterTitle": to_str},
    check_create=_note_v2_checks,
    update={"noteContent": to_str, "color": to_str, "chapterTitle": to_str},
    check_update=_note_v2_update_checks,
    defaults=(("color", "#FFC107"),),
    duplicate="Note already exists at this location",
    text_columns=("noteContent",),
)
BOOK_NOTES = ItemKind(
    table="bookNotes", path="/api/v1/book-notes", since=None,
    dto=("id", "userId", "bookId", "title", "content", "createdAt", "updatedAt"),
    create={"id": to_long, "bookId": to_long, "title": to_str, "content": to_str},
    check_create=_book_note_checks,
    update={}, check_update=lambda f: [],
    order="updated", unknown_book_404=True, text_columns=("content",),
    varchar=(("title", 255),), has_get=False,
)
BOOKMARKS = ItemKind(
    table="bookmarks", path="/api/v1/bookmarks", since=flavours.BOOKMARKS,
    dto=("id", "userId", "bookId", "cfi", "positionMs", "trackIndex", "title", "color", "notes",
         "priority", "createdAt", "updatedAt"),
    create={"bookId": to_long, "cfi": to_str, "title": to_str, "positionMs": to_long,
            "trackIndex": to_int, "pageNumber": to_int},
    check_create=_bookmark_checks,
    update={"title": to_str, "cfi": to_str, "color": to_str, "notes": to_str, "priority": to_int,
            "positionMs": to_long, "trackIndex": to_int, "pageNumber": to_int},
    check_update=_bookmark_update_checks,
    defaults=(("color", None), ("notes", None), ("priority", 3)),
    duplicate="Bookmark already exists at this location",
    order="priority", varchar=(("cfi", 1000), ("title", 255)), put_since=flavours.BOOKMARK_PUT,
)
KINDS = (ANNOTATIONS, NOTES_V2, BOOK_NOTES, BOOKMARKS)
PAGE_TAKEN = "A bookmark already exists on this page"


class ItemsController(Controller):
    def register(self, router: Router) -> None:
        for kind in KINDS:
            live = self.api.since(kind.since) if kind.since else None
            base = kind.path
            router.add("POST", base, partial(self.create, kind), live)
            router.add("GET", base + "/book/{bookId}", partial(self.list, kind), live)
            if kind.has_get:
                router.add("GET", base + "/{id}", partial(self.get, kind), live)
            if kind.update:
                put_live = self.api.since(kind.put_since) if kind.put_since else live
                router.add("PUT", base + "/{id}", partial(self.update, kind), put_live)
            router.add("DELETE", base + "/{id}", partial(self.delete, kind), live)

    # ---- helpers
    def dto(self, kind: ItemKind, rec: dict[str, Any]) -> dict[str, Any]:
        out = {k: rec.get(k) for k in kind.dto}
        if kind is BOOKMARKS and self.state.flavour == "grimmory":
            out["pageNumber"] = rec.get("pageNumber")
        return out

    def _bind(self, binders: dict[str, Callable[[Any], Any]], body: dict[str, Any]) -> Fields:
        fields: Fields = bind(lambda: {k: conv(body.get(k)) for k, conv in binders.items()})
        if self.state.flavour != "grimmory":
            fields.pop("pageNumber", None)  # an unknown field outside grimmory: ignored
        return fields

    def owned(self, kind: ItemKind, ctx: Ctx, raw_id: str) -> dict[str, Any]:
        rec = self.state.data[kind.table].get(path_long(raw_id))
        if rec is None or rec["userId"] != ctx.user["id"]:
            raise ApiError(500, UNEXPECTED)  # EntityNotFoundException
        return rec

    def _same_page(self, uid: int, book_id: int, page: int, other_than: int | None = None) -> bool:
        return any(r["userId"] == uid and r["bookId"] == book_id and r.get("pageNumber") == page
                   and r.get("cfi") is None and r.get("positionMs") is None and r["id"] != other_than
                   for r in self.state.data["bookmarks"].values())

    def _conflict(self, kind: ItemKind, uid: int, f: Fields) -> str | None:
        """The 409 a create meets: the same (user, book, cfi), or a bookmark's own rules."""
        st = self.state
        if kind is BOOKMARKS and f["positionMs"] is not None:
            for r in st.data["bookmarks"].values():
                if (r["userId"] == uid and r["bookId"] == f["bookId"] and r.get("positionMs") is not None
                        and r.get("trackIndex") == f["trackIndex"]
                        and abs(r["positionMs"] - f["positionMs"]) < 5000):
                    return "A bookmark already exists near this position"
            return None
        if kind.duplicate and f.get("cfi") is not None and st.unique_exists(kind.table, uid, f["bookId"], f["cfi"]):
            return kind.duplicate
        if (kind is BOOKMARKS and f.get("cfi") is None and f.get("pageNumber") is not None
                and self._same_page(uid, f["bookId"], f["pageNumber"])):
            return PAGE_TAKEN
        return None

    def _columns(self, kind: ItemKind, f: Fields) -> None:
        if any(text_too_long(f.get(c)) for c in kind.text_columns) or any(
                too_long_db(f.get(c), n) for c, n in kind.varchar):
            raise ApiError(400, DATA_CONFLICT)

    # ---- routes
    def create(self, kind: ItemKind, ctx: Ctx) -> Response:
        body = ctx.json_object()
        f = self._bind(kind.create, body)
        validation(kind.check_create(f))
        st = self.state
        uid = ctx.user["id"]
        existing = None
        if kind is BOOK_NOTES and f["id"] is not None:  # the v1 update path (§3.25)
            existing = st.data[kind.table].get(f["id"])
            if existing is None or existing["userId"] != uid:
                raise ApiError(500, UNEXPECTED)
        conflict = self._conflict(kind, uid, f)
        if conflict is not None:
            raise ApiError(409, conflict)
        if st.live_book(f["bookId"]) is None:
            raise self.book_not_found(f["bookId"]) if kind.unknown_book_404 else self.unknown_book(f["bookId"])
        self._columns(kind, f)
        now = format_local(st.clock.now())
        if existing is not None:
            existing.update(bookId=f["bookId"], title=f["title"], content=f["content"], updatedAt=now)
            return json_response(200, self.dto(kind, existing))
        rec = {k: v for k, v in f.items() if k != "id"}
        for key, default in kind.defaults:
            if rec.get(key) is None:
                rec[key] = default
        rec.update(id=st._next_id(kind.table), userId=uid, createdAt=now, updatedAt=now)
        st.data[kind.table][rec["id"]] = rec
        st.unique_add(kind.table, rec)
        return json_response(200, self.dto(kind, rec))

    def list(self, kind: ItemKind, ctx: Ctx, bookId: str) -> Response:  # noqa: N803
        book_id = path_long(bookId)
        uid = ctx.user["id"]
        rows = [r for r in self.state.data[kind.table].values() if r["bookId"] == book_id and r["userId"] == uid]
        if kind.order == "priority":
            rows.sort(key=lambda r: (r.get("createdAt") or "", r["id"]), reverse=True)
            rows.sort(key=lambda r: r.get("priority") or 3)
        else:
            key = "updatedAt" if kind.order == "updated" else "createdAt"
            rows.sort(key=lambda r: (r.get(key) or "", r["id"]), reverse=True)
        return json_response(200, [self.dto(kind, r) for r in rows])

    def get(self, kind: ItemKind, ctx: Ctx, id: str) -> Response:  # noqa: A002
        return json_response(200, self.dto(kind, self.owned(kind, ctx, id)))

    def update(self, kind: ItemKind, ctx: Ctx, id: str) -> Response:  # noqa: A002
        """§3.25: only the fields present and non-null change."""
        rec = self.owned(kind, ctx, id)
        f = self._bind(kind.update, ctx.json_object())
        validation(kind.check_update(f))
        uid = ctx.user["id"]
        if kind is BOOKMARKS:
            cfi = f.get("cfi")
            if cfi is not None and any(
                    r["userId"] == uid and r["bookId"] == rec["bookId"] and r["id"] != rec["id"]
                    and r.get("cfi") is not None and self.state.cfi_key(r["cfi"]) == self.state.cfi_key(cfi)
                    for r in self.state.data["bookmarks"].values()):
                raise ApiError(409, "Bookmark already exists at this location")
            page = f.get("pageNumber")
            if page is not None and self._same_page(uid, rec["bookId"], page, other_than=rec["id"]):
                raise ApiError(409, PAGE_TAKEN)
        self._columns(kind, f)
        for key, value in f.items():
            if value is not None:
                rec[key] = value
        self.state.invalidate()
        rec["updatedAt"] = format_local(self.state.clock.now())
        return json_response(200, self.dto(kind, rec))

    def delete(self, kind: ItemKind, ctx: Ctx, id: str) -> Response:  # noqa: A002
        rec = self.owned(kind, ctx, id)
        del self.state.data[kind.table][rec["id"]]
        self.state.invalidate()
        return empty(204)

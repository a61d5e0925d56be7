"""The KOReader controller: account check, the fork's by-hash, kosync progress
(booklore-api.md §3.4–3.6, §3.18, §3.19)."""

from __future__ import annotations

from typing import Any

from .. import flavours
from ..core import DATA_CONFLICT, SYNC_DISABLED, UNEXPECTED, round_tenth, too_long_db, validation
from ..routing import Router
from ..wire import (
    f32,
    float_as_java_float,
    format_instant,
    parse_instant,
    to_float,
    to_long,
    to_str,
)
from .base import ApiError, Controller, Ctx, Response, bind, json_response

READ_AT = 99.5  # percent: kosync and the web reader both call a book READ from here


def kosync_status(percent: float) -> str:
    """The read status a kosync push sets (§3.18 step 3)."""
    if percent >= READ_AT:
        return "READ"
    return "READING" if percent >= 0.25 else "UNREAD"


class KoreaderController(Controller):
    def register(self, router: Router) -> None:
        forks = self.api.only(*flavours.FORKS)
        router.add("GET", "/api/koreader/users/auth", self.koreader_auth)
        router.add("POST", "/api/koreader/users/create", self.koreader_create)
        router.add("GET", "/api/koreader/books/by-hash/{hash}", self.koreader_by_hash, forks)
        router.add("PUT", "/api/koreader/syncs/progress", self.put_progress)
        router.add("GET", "/api/koreader/syncs/progress/{document}", self.get_progress)

    def koreader_auth(self, ctx: Ctx) -> Response:
        acc = ctx.identity.koreader
        assert acc is not None
        return json_response(200, {"username": acc["username"]})

    def koreader_create(self, ctx: Ctx) -> Response:
        return json_response(403, {"error": "User registration via Koreader is disabled"})

    def koreader_by_hash(self, ctx: Ctx, hash: str) -> Response:  # noqa: A002
        user = ctx.linked_user()
        book = self.lookup_hash(hash, user)
        return json_response(200, self.book_dto(book, user, with_description=True))

    def _sync_user(self, ctx: Ctx) -> dict[str, Any]:
        acc = ctx.identity.koreader
        assert acc is not None
        if not acc["syncEnabled"]:
            raise ApiError(401, SYNC_DISABLED)
        return ctx.linked_user()

    def _one_book(self, digest: str | None) -> dict[str, Any]:
        found = self.state.books_by_hash(digest) if digest is not None else []
        if len(found) > 1:
            raise ApiError(500, UNEXPECTED)
        if not found:
            raise ApiError(404, f"Book not found for hash {digest if digest is not None else 'null'}")
        return found[0]

    def put_progress(self, ctx: Ctx) -> Response:
        body = ctx.json_object()
        f = bind(lambda: {
            "document": to_str(body.get("document")), "progress": to_str(body.get("progress")),
            "percentage": to_float(body.get("percentage")), "device": to_str(body.get("device")),
            "device_id": to_str(body.get("device_id")), "timestamp": to_long(body.get("timestamp")),
        })
        user = self._sync_user(ctx)
        st = self.state
        book = self._one_book(f["document"])
        grimmory = st.flavour == "grimmory"
        if f["percentage"] is None and not grimmory:
            if st.bug_compat:
                raise ApiError(500, UNEXPECTED)
            validation(["percentage: must not be null"])
        if too_long_db(f["progress"], 1000) or too_long_db(f["device"], 100) or too_long_db(f["device_id"], 100):
            raise ApiError(400, DATA_CONFLICT)
        row = st.progress_for(user["id"], book["id"])
        now = format_instant(int(st.clock.time()))
        before = (row.get("koreaderPercent"), row.get("readStatus"))
        stored = None if f["percentage"] is None else float_as_java_float(f["percentage"])
        row.update(koreaderProgress=f["progress"], koreaderPercent=stored, koreaderDevice=f["device"],
                   koreaderDeviceId=f["device_id"], koreaderLastSyncTime=now, lastReadTime=now)
        if f["percentage"] is None:  # grimmory: position stored, nothing recomputed
            return json_response(200, {"status": "progress updated"})
        percent = f32(f["percentage"]) * 100  # the float32 widened to double (§7.5)
        row["readStatus"] = kosync_status(percent)
        if row["readStatus"] == "READ":
            row["dateFinished"] = now
        acc = ctx.identity.koreader
        if acc is not None and acc.get("syncWithBookloreReader"):
            # the web reader's position; the emulator has no XPointer → CFI converter, so a
            # deterministic stand-in is stored (booklore-api.md §7.5)
            row["epubProgress"] = {"cfi": f"epubcfi(/6/2!/4/2:0)#kosync:{f['progress']}",
                                   "href": None, "percentage": round_tenth(percent)}
        if (stored, row["readStatus"]) != before:
            st.data["hardcoverPushes"].append({"userId": user["id"], "bookId": book["id"],
                                               "percentage": round_tenth(percent),
                                               "readStatus": row["readStatus"], "time": now})
        return json_response(200, {"status": "progress updated"})

    def get_progress(self, ctx: Ctx, document: str) -> Response:
        user = self._sync_user(ctx)
        st = self.state
        book = self._one_book(document)
        row = st.progress_row(user["id"], book["id"])
        if row is None:
            raise ApiError(404, "No progress found for user and book")
        ts = None
        if row.get("koreaderLastSyncTime"):
            ts = parse_instant(row["koreaderLastSyncTime"]).seconds
        return json_response(200, {"timestamp": ts, "document": document, "progress": row.get("koreaderProgress"),
                                   "percentage": row.get("koreaderPercent"), "device": "BookLore",
                                   "device_id": "BookLore"})

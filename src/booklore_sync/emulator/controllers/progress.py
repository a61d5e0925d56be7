"""Progress by book id and read status (booklore-api.md §3.23, §3.24)."""

from __future__ import annotations

from typing import Any

from .. import flavours
from ..core import UNEXPECTED, empty, round_tenth, validation
from ..routing import Router
from ..state import READ_STATUSES
from ..wire import Malformed, format_instant, parse_instant, to_float, to_int, to_long, to_str
from .base import ApiError, Controller, Ctx, Response, bind, json_response
from .koreader import READ_AT

_OBJECT_FOR = {"EPUB": "epubProgress", "FB2": "epubProgress", "MOBI": "epubProgress",
               "AZW3": "epubProgress", "PDF": "pdfProgress", "CBX": "cbxProgress"}
KEEP_OVER_UNREAD = ("READING", "RE_READING", "READ", "PARTIALLY_READ", "PAUSED", "ABANDONED", "WONT_READ")


def _object(raw: Any, keys: tuple[str, ...]) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise Malformed("progress")
    out: dict[str, Any] = {}
    for key in keys:
        if key == "page":
            out[key] = to_int(raw.get(key))
        elif key == "percentage":
            out[key] = to_float(raw.get(key))
        else:
            out[key] = to_str(raw.get(key))
    return out


class ProgressController(Controller):
    def register(self, router: Router) -> None:
        router.add("POST", "/api/v1/books/progress", self.post_progress)
        router.add("POST", "/api/v1/books/status", self.post_status, self.api.since(flavours.READ_STATUS))

    def post_progress(self, ctx: Ctx) -> Response:
        body = ctx.json_object()
        f = bind(lambda: {
            "bookId": to_long(body.get("bookId")),
            "epubProgress": _object(body.get("epubProgress"), ("cfi", "href", "percentage", "ttsPositionCfi")),
            "pdfProgress": _object(body.get("pdfProgress"), ("page", "percentage")),
            "cbxProgress": _object(body.get("cbxProgress"), ("page", "percentage")),
            "fileProgress": body.get("fileProgress"), "audiobookProgress": body.get("audiobookProgress"),
            "dateFinished": parse_instant(body["dateFinished"]) if body.get("dateFinished") is not None else None,
        })
        details = []
        if f["bookId"] is None:
            details.append("bookId: must not be null")
        if all(f[k] is None for k in ("epubProgress", "pdfProgress", "cbxProgress", "fileProgress",
                                      "audiobookProgress", "dateFinished")):
            details.append("progressFieldPresent: At least one progress field must be provided")
        validation(details)
        st = self.state
        book = st.data["books"].get(f["bookId"])
        if book is None:
            raise self.book_not_found(f["bookId"])
        primary = self.primary_file(book)
        if primary is None:
            raise ApiError(400, "Unsupported book type for viewer settings")
        if f["fileProgress"] is not None:
            raise ApiError(500, UNEXPECTED)  # per-file progress rows are not emulated (docs/emulator.md)
        row = st.progress_for(ctx.user["id"], book["id"])
        now = format_instant(int(st.clock.time()))
        row["lastReadTime"] = now
        name = _OBJECT_FOR.get(primary["bookType"])
        given = f[name] if name else None
        if name is not None and given is not None and given.get("percentage") is not None:
            percent = round_tenth(given["percentage"])
            row[name] = dict(given, percentage=percent)
            self._status_from(row, given["percentage"], now)
            self._kosync_fields(ctx, row, percent, now)
        if f["dateFinished"] is not None:
            row["dateFinished"] = f["dateFinished"].iso()
        return empty(204)

    def _status_from(self, row: dict[str, Any], percent: float, now: str) -> None:
        if percent >= READ_AT:
            status = "READ"
        elif percent > 0.1:
            status = "READING"
        else:
            status = "UNREAD"
        if status == "UNREAD" and row.get("readStatus") in KEEP_OVER_UNREAD:
            return
        if status != row.get("readStatus"):
            row["readStatusModifiedTime"] = now
        row["readStatus"] = status
        if status == "READ" and self.state.flavour == "grimmory" and row.get("dateFinished") is None:
            row["dateFinished"] = now

    def _kosync_fields(self, ctx: Ctx, row: dict[str, Any], percent: float, now: str) -> None:
        """grimmory: with Sync and sync-with-web-reader on, the kosync fields follow."""
        if self.state.flavour != "grimmory":
            return
        acc = next((a for a in self.state.data["koreaderAccounts"].values()
                    if a.get("userId") == ctx.user["id"]), None)
        if acc is not None and acc["syncEnabled"] and acc["syncWithBookloreReader"]:
            row.update(koreaderPercent=percent / 100, koreaderLastSyncTime=now, koreaderProgress=None)

    def post_status(self, ctx: Ctx) -> Response:
        body = ctx.json_object()

        def read() -> tuple[list[int | None] | None, str | None]:
            raw = body.get("bookIds")
            if raw is not None and not isinstance(raw, list):
                raise Malformed("bookIds")
            return (None if raw is None else [to_long(x) for x in raw]), to_str(body.get("status"))

        ids, status = bind(read)
        details = []
        if not ids:
            details.append("bookIds: Book IDs cannot be empty")
        if status is None:
            details.append("status: Status cannot be null")
        validation(details)
        assert ids is not None and status is not None
        st = self.state
        if len(ids) > 1 and not ctx.user["isAdmin"]:
            raise ApiError(403, "Permission denied: CAN_BULK_RESET_BOOK_READ_STATUS", kind="access_denied")
        missing = [i for i in ids if i is None or i not in st.data["books"]]
        if missing:
            if st.bug_compat:
                raise ApiError(400, "d != java.lang.String")
            raise self.book_not_found(missing[0] or 0)
        wanted = next((s for s in READ_STATUSES if s.lower() == status.lower()), None)
        now = format_instant(int(st.clock.time()))
        out = []
        for book_id in ids:
            assert book_id is not None
            row = st.progress_for(ctx.user["id"], book_id)
            row.update(readStatus=wanted, readStatusModifiedTime=now,
                       dateFinished=now if wanted == "READ" else None)
            out.append({"bookId": book_id, "readStatus": wanted, "readStatusModifiedTime": now,
                        "dateFinished": row["dateFinished"]})
        return json_response(200, out)

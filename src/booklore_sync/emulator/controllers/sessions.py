"""Reading sessions: single, the fork's batch, the list (§3.10–3.12)."""

from __future__ import annotations

from typing import Any

from .. import flavours
from ..core import DATA_CONFLICT, empty, path_long, query_int, too_long_db, validation
from ..routing import Router
from ..state import BOOK_TYPES
from ..wire import (
    Instant,
    Malformed,
    float_as_java_float,
    format_local,
    parse_instant,
    to_enum,
    to_float,
    to_int,
    to_long,
    to_str,
    utf16_len,
)
from .base import ApiError, Controller, Ctx, Response, bind, json_response


class SessionsController(Controller):
    def register(self, router: Router) -> None:
        router.add("POST", "/api/v1/reading-sessions", self.post_session, self.api.since(flavours.SESSIONS))
        router.add("POST", "/api/v1/reading-sessions/batch", self.post_batch, self.api.only("fork", "fork-2675"))
        router.add("GET", "/api/v1/reading-sessions/book/{bookId}", self.list_sessions,
                   self.api.since(flavours.SESSION_LIST))
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

        def read() -> dict[str, Any]:
            item = self._bind_session_item(body)
            item["bookId"] = to_long(body.get("bookId"))
            item["bookType"] = to_enum(body.get("bookType"), BOOK_TYPES)
            return item

        item = bind(read)
        details = []
        for key in ("bookId", "startTime", "endTime", "durationSeconds"):
            if item[key] is None:
                details.append(f"{key}: must not be null")
        validation(details)
        user = ctx.linked_user()
        self._session_book(ctx, item["bookId"], user)
        if (item["bookType"] is None or too_long_db(item["durationFormatted"], 50)
                or too_long_db(item["startLocation"], 500) or too_long_db(item["endLocation"], 500)):
            raise ApiError(400, DATA_CONFLICT)
        self._store_session(user, item["bookId"], item["bookType"], item["startTime"],
                            item["endTime"], item)
        return empty(202)

    def post_batch(self, ctx: Ctx) -> Response:
        body = ctx.json_object()
        fork_2675 = self.state.mode == "fork-2675"

        def read() -> tuple[int | None, str | None, list[dict[str, Any]] | None]:
            book_id = to_long(body.get("bookId"))
            book_type = to_enum(body.get("bookType"), BOOK_TYPES)
            raw = body.get("sessions")
            if raw is None:
                return book_id, book_type, None
            if not isinstance(raw, list):
                raise Malformed("sessions")
            return book_id, book_type, [self._bind_session_item(x) for x in raw]

        book_id, book_type, items = bind(read)
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
        validation(details)
        user = ctx.linked_user()
        self._session_book(ctx, book_id, user)
        for item in items:
            if item["endTime"] < item["startTime"]:
                raise ApiError(400, "End time must be after start time")
        for item in items:
            if (too_long_db(item["durationFormatted"], 50) or too_long_db(item["startLocation"], 500)
                    or too_long_db(item["endLocation"], 500)):
                raise ApiError(400, DATA_CONFLICT)  # one transaction: nothing stored
        results = []
        for item in items:
            rec = self._store_session(user, book_id, book_type, item["startTime"], item["endTime"], item)
            results.append({"sessionId": rec["id"], "startTime": item["startTime"].iso(),
                            "endTime": item["endTime"].iso()})
        return json_response(200, {"totalRequested": len(items), "successCount": len(items),
                           "results": results})

    def list_sessions(self, ctx: Ctx, bookId: str) -> Response:  # noqa: N803
        book_id = path_long(bookId)
        page = query_int(ctx, "page", 0)
        size = query_int(ctx, "size", 5)
        details = []
        if page < 0:
            details.append("page: must be greater than or equal to 0")
        if size < 1:
            details.append("size: must be greater than or equal to 1")
        if size > 100:
            details.append("size: must be less than or equal to 100")
        validation(details)
        book = self.state.live_book(book_id)
        if book is None:
            raise ApiError(404, f"Book not found with ID: {book_id}")
        uid = ctx.user["id"]
        rows = self.state.sessions_of_book(book_id, uid)
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
        return json_response(200, {"content": content, "page": {
            "size": size, "number": page, "totalElements": total,
            "totalPages": (total + size - 1) // size}})

    # ================================================================== ratings

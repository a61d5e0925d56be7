"""Personal ratings (§3.13)."""

from __future__ import annotations

from .. import flavours
from ..core import UNEXPECTED, validation
from ..routing import Router
from ..wire import Malformed, to_int, to_long
from .base import ApiError, Controller, Ctx, Response, bind, json_response


class RatingsController(Controller):
    def register(self, router: Router) -> None:
        router.add("PUT", "/api/v1/books/personal-rating", self.personal_rating, self.api.since(flavours.RATINGS))
    def personal_rating(self, ctx: Ctx) -> Response:
        body = ctx.json_object()

        def read() -> tuple[list[int | None] | None, int | None]:
            raw = body.get("ids")
            if raw is not None and not isinstance(raw, list):
                raise Malformed("ids")
            ids = None if raw is None else [to_long(x) for x in raw]
            return ids, to_int(body.get("rating"))

        ids, rating = bind(read)
        if ids is None:
            raise ApiError(500, UNEXPECTED)  # (derived)
        if len(ids) > 500:
            validation(["ids: size must be between 0 and 500"])
        if not ids:
            return json_response(200, [])
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
            row = st.progress_for(ctx.user["id"], book_id)
            row["personalRating"] = rating
            out.append({"bookId": book_id, "personalRating": rating})
        return json_response(200, out)

    # ================================================================== annotations


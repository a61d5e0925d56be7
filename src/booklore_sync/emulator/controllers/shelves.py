"""Shelves (§3.20)."""

from __future__ import annotations

from ..core import DATA_CONFLICT, SHELF_ICON_TYPES, UNEXPECTED, path_long, validation
from ..routing import Router
from ..wire import Malformed, to_bool, to_enum, to_long, to_str
from .base import ApiError, Controller, Ctx, Response, bind, json_response


class ShelvesController(Controller):
    def register(self, router: Router) -> None:
        router.add("POST", "/api/v1/books/shelves", self.assign_shelves)
        router.add("GET", "/api/v1/shelves", self.list_shelves)
        router.add("POST", "/api/v1/shelves", self.create_shelf)
        router.add("GET", "/api/v1/shelves/{id}/books", self.shelf_books)
    def assign_shelves(self, ctx: Ctx) -> Response:
        body = ctx.json_object()

        def ids(name: str) -> list[int | None] | None:
            raw = body.get(name)
            if raw is None:
                return None
            if not isinstance(raw, list):
                raise Malformed(name)
            return [to_long(x) for x in raw]

        book_ids, assign, unassign = bind(lambda: (ids("bookIds"), ids("shelvesToAssign"),
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
        return json_response(200, [self.book_dto(b, ctx.user, False) for b in books])

    def list_shelves(self, ctx: Ctx) -> Response:
        uid = ctx.user["id"]
        return json_response(200, [self._shelf_dto(s) for _k, s in sorted(self.state.data["shelves"].items())
                           if s["userId"] == uid])

    def create_shelf(self, ctx: Ctx) -> Response:
        body = ctx.json_object()
        f = bind(lambda: {"id": to_long(body.get("id")), "name": to_str(body.get("name")),
                           "icon": to_str(body.get("icon")),
                           "iconType": to_enum(body.get("iconType"), SHELF_ICON_TYPES),
                           "publicShelf": to_bool(body.get("publicShelf"))})
        details = []
        if f["id"] is not None:
            details.append("id: must be null")
        if f["name"] is None or not f["name"].strip():
            details.append("name: must not be blank")
        validation(details)
        st = self.state
        uid = ctx.user["id"]
        if any(s["userId"] == uid and s["name"] == f["name"] for s in st.data["shelves"].values()):
            raise ApiError(400, DATA_CONFLICT)
        sid = st._next_id("shelves")
        shelf = {"id": sid, "userId": uid, "name": f["name"], "icon": f["icon"], "iconType": f["iconType"],
                 "publicShelf": bool(f["publicShelf"]), "bookIds": []}
        st.data["shelves"][sid] = shelf
        return json_response(201, self._shelf_dto(shelf))

    def shelf_books(self, ctx: Ctx, id: str) -> Response:  # noqa: A002
        sid = path_long(id)
        shelf = self.state.data["shelves"].get(sid)
        if shelf is None:
            raise ApiError(404, f"Shelf not found with ID: {sid}")
        if shelf["userId"] != ctx.user["id"] and not shelf.get("publicShelf"):
            raise ApiError(403, "You are not authorized to access this shelf.")
        books = [self.state.live_book(b) for b in shelf["bookIds"]]
        return json_response(200, [self.book_dto(b, ctx.user, False) for b in books if b is not None])

    # ================================================================== koreader-users


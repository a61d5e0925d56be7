"""What every controller shares: the state, the ``Book`` DTO (booklore-api.md §3.9.1),
the hash lookup of §3.6 and the unknown-book answers; and the names every handler
uses (``ApiError``, ``Ctx``, ``Response``, ``bind``, ``json_response``), so that a
controller imports them from here in one line."""

from __future__ import annotations

from typing import Any

from ..core import UNEXPECTED, ApiError, Ctx, Response, bind, json_response, round_tenth
from ..routing import Router
from ..state import State
from ..wire import f32

__all__ = ["ApiError", "Controller", "Ctx", "Response", "bind", "json_response"]


class Controller:
    """One BookLore controller: registers its routes, answers through ``self.state``."""

    def __init__(self, api: Any) -> None:
        self.api = api

    @property
    def state(self) -> State:
        state: State = self.api.state
        return state

    def register(self, router: Router) -> None:
        raise NotImplementedError

    def json(self, status: int, obj: Any) -> Response:
        return json_response(status, obj)

    # ---- books
    @staticmethod
    def primary_file(book: dict[str, Any]) -> dict[str, Any] | None:
        return next((f for f in book["files"] if f["primary"]), None)

    def unknown_book(self, book_id: int) -> ApiError:
        """Annotations, v2 notes, bookmarks: an unknown book is a 500 (bug-compatible)."""
        if self.state.bug_compat:
            return ApiError(500, UNEXPECTED)
        return ApiError(404, f"Book not found with ID: {book_id}")

    def book_not_found(self, book_id: int) -> ApiError:
        return ApiError(404, f"Book not found with ID: {book_id}")

    def visible_books(self, user: dict[str, Any]) -> list[dict[str, Any]]:
        return [b for _k, b in sorted(self.state.data["books"].items())
                if not b["deleted"] and self.state.can_access(user, b)]

    def lookup_hash(self, digest: str, user: dict[str, Any]) -> dict[str, Any]:
        found = self.state.books_by_hash(digest)
        if len(found) > 1:
            raise ApiError(500, UNEXPECTED)  # two live books share the hash (derived)
        if not found or not self.state.can_access(user, found[0]):
            raise ApiError(404, f"Book with hash {digest} not found")
        return found[0]

    # ---- DTOs
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
        primary = self.primary_file(book)
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
                out["koreaderProgress"] = {"percentage": round_tenth(f32(row["koreaderPercent"]) * 100)}
            for key in ("epubProgress", "pdfProgress", "cbxProgress"):
                if row.get(key):
                    out[key] = dict(row[key])
        if user:
            out["shelves"] = [self._shelf_dto(s) for _k, s in sorted(st.data["shelves"].items())
                              if s["userId"] == user["id"] and book["id"] in s["bookIds"]]
        out["isPhysical"] = False
        return out

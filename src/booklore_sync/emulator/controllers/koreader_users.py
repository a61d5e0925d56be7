"""KOReader account management (§3.21)."""

from __future__ import annotations

from typing import Any

from ..core import DATA_CONFLICT, UNEXPECTED, empty
from ..routing import Router
from ..state import md5_hex
from ..wire import to_str
from .base import ApiError, Controller, Ctx, Response, bind, json_response


class KoreaderUsersController(Controller):
    def register(self, router: Router) -> None:
        me = "/api/v1/koreader-users/me"
        router.add("GET", me, self.get_koreader_me)
        router.add("PUT", me, self.put_koreader_me)
        router.add("PATCH", me + "/sync", self.patch_koreader_sync)
        router.add("PATCH", me + "/sync-progress-with-booklore", self.patch_koreader_sync_reader)
        router.add("PATCH", me + "/sync-progress-with-grimmory", self.patch_koreader_sync_reader,
                   self.api.only("grimmory"))
    def _koreader_guard(self, ctx: Ctx) -> dict[str, Any]:
        user = ctx.user
        if not (user["canSyncKoReader"] or user["isAdmin"]):
            raise ApiError(403, "Access Denied", kind="access_denied")
        return user

    def _my_koreader(self, user: dict[str, Any]) -> dict[str, Any] | None:
        for acc in self.state.data["koreaderAccounts"].values():
            if acc["userId"] == user["id"]:
                return acc
        return None

    def _koreader_dto(self, acc: dict[str, Any]) -> dict[str, Any]:
        reader = "syncWithWebReader" if self.state.flavour == "grimmory" else "syncWithBookloreReader"
        return {"id": acc["id"], "username": acc["username"], "password": acc["password"],
                "passwordMD5": acc["md5"], "syncEnabled": acc["syncEnabled"],
                reader: acc["syncWithBookloreReader"]}

    def get_koreader_me(self, ctx: Ctx) -> Response:
        user = self._koreader_guard(ctx)
        acc = self._my_koreader(user)
        if acc is None:
            raise ApiError(404, f"Koreader user not found for BookLore user ID: {user['id']}")
        return json_response(200, self._koreader_dto(acc))

    def put_koreader_me(self, ctx: Ctx) -> Response:
        user = self._koreader_guard(ctx)
        body = ctx.json_object()
        f = bind(lambda: {"username": to_str(body.get("username")), "password": to_str(body.get("password"))})
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
                   "md5": md5_hex(f["password"]), "syncEnabled": st.koreader_sync,
                   "syncWithBookloreReader": False, "userId": user["id"]}
            st.data["koreaderAccounts"][kid] = acc
        else:
            acc.update(username=f["username"], password=f["password"], md5=md5_hex(f["password"]))
        return json_response(200, self._koreader_dto(acc))

    def _patch_flag(self, ctx: Ctx, key: str) -> Response:
        user = self._koreader_guard(ctx)
        raw = ctx.req.param("enabled")
        if raw is None or raw.strip().lower() not in ("true", "false"):
            raise ApiError(500, UNEXPECTED)  # missing / mistyped request parameter
        acc = self._my_koreader(user)
        if acc is None:
            raise ApiError(404, f"Koreader user not found for BookLore user ID: {user['id']}")
        acc[key] = raw.strip().lower() == "true"
        return empty(204)

    def patch_koreader_sync(self, ctx: Ctx) -> Response:
        return self._patch_flag(ctx, "syncEnabled")

    def patch_koreader_sync_reader(self, ctx: Ctx) -> Response:
        return self._patch_flag(ctx, "syncWithBookloreReader")


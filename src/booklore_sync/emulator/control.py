"""The control API under ``/__emulator/`` (booklore-api.md §7.7).  Not part of BookLore:
no auth, never logged, never subject to faults."""

from __future__ import annotations

import re
from typing import Any

from .api import Request, Response
from .faults import FaultError
from .state import TABLES, SeedError, State
from .wire import Malformed, dumps, parse_json_body

PREFIX = "/__emulator"
_STATE_TABLES = {name.lower(): name for name in TABLES + ("progress", "ratings")}
_STATE_TABLES["book-notes"] = "bookNotes"
_STATE_TABLES["notes-v2"] = "notesV2"
_STATE_TABLES["koreader-accounts"] = "koreaderAccounts"


def _json(status: int, obj: Any) -> Response:
    return Response(status, dumps(obj), "application/json")


def _problem(status: int, message: str) -> Response:
    return _json(status, {"status": status, "message": message})


class ControlApi:
    def __init__(self, state: State) -> None:
        self.state = state

    def handle(self, req: Request) -> Response:
        path = req.path[len(PREFIX):].rstrip("/") or "/"
        try:
            body: Any = None
            if req.body.strip():
                body = parse_json_body(req.body)
            return self._route(req, path, body)
        except Malformed:
            return _problem(400, "the body is not valid JSON")
        except (FaultError, SeedError, ValueError, KeyError, TypeError) as exc:
            return _problem(400, f"{type(exc).__name__}: {exc}")

    def _route(self, req: Request, path: str, body: Any) -> Response:
        st, m = self.state, req.method
        obj = body if isinstance(body, dict) else {}
        if path == "/reset" and m == "POST":
            st.reset()
            return _json(200, {"reset": True})
        if path == "/seed" and m == "POST":
            if not isinstance(body, dict):
                return _problem(400, "a seed is a JSON object")
            st.seed(body)
            return _json(200, {"seeded": True, "books": len(st.data["books"])})
        if path == "/books" and m == "POST":
            if not isinstance(body, dict):
                return _problem(400, "a book is a JSON object")
            return _json(201, st.add_book_entry(body))
        if path == "/books" and m == "GET":
            return _json(200, st.books())
        mm = re.fullmatch(r"/books/(\d+)", path)
        if mm and m == "PATCH":
            return _json(200, st.update_book(int(mm.group(1)), **obj))
        if path == "/renumber" and m == "POST":
            return _json(200, st.renumber(int(obj.get("offset", 0))))
        if path == "/state" and m == "GET":
            return _json(200, st.dump())
        mm = re.fullmatch(r"/state/([\w-]+)", path)
        if mm and m == "GET":
            name = _STATE_TABLES.get(mm.group(1).lower())
            if name is None:
                return _problem(404, f"no such table: {mm.group(1)}")
            return _json(200, st.dump()[name])
        if path == "/mode" and m == "POST":
            st.set_mode(obj.get("mode"))
            return _json(200, {"mode": st.mode})
        if path == "/config" and m in ("PATCH", "POST"):
            return _json(200, st.configure(**{k: v for k, v in obj.items() if k in (
                "bug_compat", "spa_fallback", "oidc_only", "access_token_ttl", "refresh_token_ttl", "mode")}))
        if path == "/config" and m == "GET":
            return _json(200, st.config())
        if path == "/clock" and m == "POST":
            if obj.get("real"):
                st.real_clock()
            if "set" in obj:
                st.set_clock(obj["set"], frozen=bool(obj.get("frozen", False)))
            if "advance_seconds" in obj:
                st.advance_clock(float(obj["advance_seconds"]))
            return _json(200, st.clock.describe())
        if path == "/clock" and m == "GET":
            return _json(200, st.clock.describe())
        if path == "/tokens" and m == "POST":
            out = {}
            if obj.get("token"):  # one given token: expired (default) or a bad signature
                if obj.get("break_signature"):
                    st.break_token(str(obj["token"]))
                    out["broken"] = 1
                else:
                    st.expire_token(str(obj["token"]))
                    out["expired"] = 1
                return _json(200, out)
            if obj.get("expire_access"):
                out["expired_access"] = st.expire_access_tokens()
            if obj.get("expire_refresh"):
                out["expired_refresh"] = st.expire_refresh_tokens()
            if obj.get("break_signature"):
                out["broken"] = st.break_signatures()
            return _json(200, out)
        if path == "/faults":
            if m == "POST":
                if not isinstance(body, dict):
                    return _problem(400, "a fault rule is a JSON object")
                return _json(201, st.faults.add(body).to_json())
            if m == "GET":
                return _json(200, st.fault_rules())
            if m == "DELETE":
                st.clear_faults()
                return Response(204)
        mm = re.fullmatch(r"/faults/(\d+)", path)
        if mm and m == "DELETE":
            if st.remove_fault(int(mm.group(1))):
                return Response(204)
            return _problem(404, "no such fault rule")
        if path == "/requests":
            if m == "GET":
                since = req.param("since")
                return _json(200, st.request_log(int(since) if since else 0))
            if m == "DELETE":
                st.clear_request_log()
                return Response(204)
        mm = re.fullmatch(r"/koreader-accounts/([^/]+)", path)
        if mm and m == "PATCH":
            return _json(200, st.set_koreader_account(mm.group(1), **obj))
        mm = re.fullmatch(r"/users/([^/]+)", path)
        if mm and m == "PATCH":
            return _json(200, st.set_user(mm.group(1), **obj))
        return _problem(404, f"no control route {m} {PREFIX}{path}")

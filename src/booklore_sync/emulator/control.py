"""The control API under ``/__emulator/`` (booklore-api.md §7.7).  Not part of BookLore:
no auth, never logged, never subject to faults.  Its routes go through the same
``Router`` as BookLore's."""

from __future__ import annotations

from typing import Any

from .core import Request, Response
from .faults import FaultError
from .routing import Router
from .state import TABLES, SeedError, State
from .wire import Malformed, dumps, parse_json_body

PREFIX = "/__emulator"
_STATE_TABLES = {name.lower(): name for name in TABLES + ("progress", "ratings", "hardcoverPushes")}
_STATE_TABLES["book-notes"] = "bookNotes"
_STATE_TABLES["notes-v2"] = "notesV2"
_STATE_TABLES["koreader-accounts"] = "koreaderAccounts"
_STATE_TABLES["hardcover-pushes"] = "hardcoverPushes"
_CONFIG_KEYS = ("bug_compat", "spa_fallback", "oidc_only", "access_token_ttl", "refresh_token_ttl",
                "mode", "server_version", "koreader_sync", "latency_ms")


def _json(status: int, obj: Any) -> Response:
    return Response(status, dumps(obj), "application/json")


def _problem(status: int, message: str) -> Response:
    return _json(status, {"status": status, "message": message})


class ControlApi:
    def __init__(self, state: State) -> None:
        self.state = state
        r = self.router = Router()
        r.add("POST", "/reset", self.reset)
        r.add("POST", "/seed", self.seed)
        r.add("POST", "/books", self.add_book)
        r.add("GET", "/books", lambda req, obj, body: _json(200, self.state.books()))
        r.add("PATCH", "/books/{id}", self.patch_book)
        r.add("POST", "/renumber", lambda req, obj, body: _json(200, self.state.renumber(int(obj.get("offset", 0)))))
        r.add("GET", "/state", lambda req, obj, body: _json(200, self.state.dump()))
        r.add("GET", "/state/{table}", self.state_table)
        r.add("POST", "/mode", self.mode)
        r.add("PATCH", "/config", self.config)
        r.add("POST", "/config", self.config)
        r.add("GET", "/config", lambda req, obj, body: _json(200, self.state.config()))
        r.add("POST", "/latency", self.latency)
        r.add("POST", "/clock", self.clock)
        r.add("GET", "/clock", lambda req, obj, body: _json(200, self.state.clock.describe()))
        r.add("POST", "/tokens", self.tokens)
        r.add("POST", "/faults", self.add_fault)
        r.add("GET", "/faults", lambda req, obj, body: _json(200, self.state.fault_rules()))
        r.add("DELETE", "/faults", self.clear_faults)
        r.add("DELETE", "/faults/{id}", self.remove_fault)
        r.add("GET", "/requests", self.requests)
        r.add("DELETE", "/requests", self.clear_requests)
        r.add("PATCH", "/koreader-accounts/{name}", self.patch_koreader)
        r.add("PATCH", "/users/{name}", self.patch_user)

    def handle(self, req: Request) -> Response:
        path = req.path[len(PREFIX):].rstrip("/") or "/"
        try:
            body: Any = None
            if req.body.strip():
                body = parse_json_body(req.body)
            handler, params, _matched = self.router.match(req.method, path)
            if handler is None:
                return _problem(404, f"no control route {req.method} {PREFIX}{path}")
            obj = body if isinstance(body, dict) else {}
            resp: Response = handler(req, obj, body, **params)
            return resp
        except Malformed:
            return _problem(400, "the body is not valid JSON")
        except (FaultError, SeedError, ValueError, KeyError, TypeError) as exc:
            return _problem(400, f"{type(exc).__name__}: {exc}")

    # ---- handlers: (request, body as an object or {}, the raw body, path params)
    def reset(self, req: Request, obj: dict[str, Any], body: Any) -> Response:
        self.state.reset()
        return _json(200, {"reset": True})

    def seed(self, req: Request, obj: dict[str, Any], body: Any) -> Response:
        if not isinstance(body, dict):
            return _problem(400, "a seed is a JSON object")
        self.state.seed(body)
        return _json(200, {"seeded": True, "books": len(self.state.data["books"])})

    def add_book(self, req: Request, obj: dict[str, Any], body: Any) -> Response:
        if not isinstance(body, dict):
            return _problem(400, "a book is a JSON object")
        return _json(201, self.state.add_book_entry(body))

    def patch_book(self, req: Request, obj: dict[str, Any], body: Any, id: str) -> Response:  # noqa: A002
        if not id.isdigit():
            return _problem(404, f"no control route {req.method} {req.path}")
        return _json(200, self.state.update_book(int(id), **obj))

    def state_table(self, req: Request, obj: dict[str, Any], body: Any, table: str) -> Response:
        name = _STATE_TABLES.get(table.lower())
        if name is None:
            return _problem(404, f"no such table: {table}")
        return _json(200, self.state.dump()[name])

    def mode(self, req: Request, obj: dict[str, Any], body: Any) -> Response:
        self.state.set_mode(obj.get("mode") or self.state.mode, obj.get("server_version"))
        out = {"mode": self.state.mode}
        if "server_version" in obj:
            out["server_version"] = self.state.server_version
        return _json(200, out)

    def config(self, req: Request, obj: dict[str, Any], body: Any) -> Response:
        return _json(200, self.state.configure(**{k: v for k, v in obj.items() if k in _CONFIG_KEYS}))

    def latency(self, req: Request, obj: dict[str, Any], body: Any) -> Response:
        self.state.set_latency(int(obj.get("ms", obj.get("latency_ms", 0))))
        return _json(200, {"latency_ms": self.state.latency_ms})

    def clock(self, req: Request, obj: dict[str, Any], body: Any) -> Response:
        st = self.state
        if obj.get("real"):
            st.real_clock()
        if "set" in obj:
            st.set_clock(obj["set"], frozen=bool(obj.get("frozen", False)))
        if "advance_seconds" in obj:
            st.advance_clock(float(obj["advance_seconds"]))
        return _json(200, st.clock.describe())

    def tokens(self, req: Request, obj: dict[str, Any], body: Any) -> Response:
        st = self.state
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

    def add_fault(self, req: Request, obj: dict[str, Any], body: Any) -> Response:
        if not isinstance(body, dict):
            return _problem(400, "a fault rule is a JSON object")
        return _json(201, self.state.faults.add(body).to_json())

    def clear_faults(self, req: Request, obj: dict[str, Any], body: Any) -> Response:
        self.state.clear_faults()
        return Response(204)

    def remove_fault(self, req: Request, obj: dict[str, Any], body: Any, id: str) -> Response:  # noqa: A002
        if id.isdigit() and self.state.remove_fault(int(id)):
            return Response(204)
        return _problem(404, "no such fault rule")

    def requests(self, req: Request, obj: dict[str, Any], body: Any) -> Response:
        since = req.param("since")
        return _json(200, self.state.request_log(int(since) if since else 0))

    def clear_requests(self, req: Request, obj: dict[str, Any], body: Any) -> Response:
        self.state.clear_request_log()
        return Response(204)

    def patch_koreader(self, req: Request, obj: dict[str, Any], body: Any, name: str) -> Response:
        return _json(200, self.state.set_koreader_account(name, **obj))

    def patch_user(self, req: Request, obj: dict[str, Any], body: Any, name: str) -> Response:
        return _json(200, self.state.set_user(name, **obj))

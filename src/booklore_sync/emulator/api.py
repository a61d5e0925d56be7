"""BookLore's API as booklore-api.md §2–§4 describes it: the authentication filters, the
routing to one controller per BookLore controller (``controllers/``), the error bodies
of each flavour and the web-UI fallback.

``BookLoreApi.handle(request)`` runs one request against the state (with the state lock
held) and returns a ``Response``; the HTTP server (``server.py``) does the sockets and
the fault hooks.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from . import flavours
from .controllers.auth import AuthController
from .controllers.books import BooksController
from .controllers.items import ItemsController
from .controllers.koreader import KoreaderController
from .controllers.koreader_users import KoreaderUsersController
from .controllers.progress import ProgressController
from .controllers.ratings import RatingsController
from .controllers.sessions import SessionsController
from .controllers.shelves import ShelvesController
from .core import (
    JWT_SKIP,
    SPA_HTML,
    UNEXPECTED,
    ApiError,
    Ctx,
    Identity,
    Request,
    Response,
    empty,
    json_response,
)
from .routing import Router
from .state import State
from .wire import format_local, format_spring_timestamp

__all__ = ["ApiError", "BookLoreApi", "Ctx", "Identity", "Request", "Response"]

# grimmory words these exception classes generically (§0.1, §4.6)
GRIMMORY_TEXTS = {"access_denied": "Access denied.", "illegal_state": "A conflict occurred.",
                  "unsupported": "Operation not supported."}
CONTROLLERS = (AuthController, KoreaderController, BooksController, ProgressController,
               RatingsController, SessionsController, ItemsController, ShelvesController,
               KoreaderUsersController)


class BookLoreApi:
    def __init__(self, state: State) -> None:
        self.state = state
        self.router = Router()
        # /api/v1/books/progress and …/status are registered before /api/v1/books/{bookId}
        for cls in CONTROLLERS:
            cls(self).register(self.router)

    # ------------------------------------------------------------------ route conditions

    def only(self, *names: str) -> Callable[[], bool]:
        """The route exists only in these flavours (``fork-2675`` is its own)."""
        return lambda: self.state.flavour in names

    def since(self, release: tuple[int, int, int]) -> Callable[[], bool]:
        """The route exists from this BookLore release on."""
        return lambda: self.state.has(release)

    # ------------------------------------------------------------------ responses

    def error(self, status: int, message: str, details: list[str] | None = None) -> Response:
        body: dict[str, Any] = {"status": status, "message": message}
        if details is not None:
            body["details"] = details
        body["timestamp"] = format_local(self.state.clock.now())
        return json_response(status, body)

    def _spring(self, status: int, error: str, path: str) -> Response:
        """Spring Boot's default error body (§4.3): no ``message``."""
        return json_response(status, {
            "timestamp": format_spring_timestamp(self.state.clock.now()),
            "status": status, "error": error, "path": path,
        })

    def forbidden(self, path: str) -> Response:
        """Missing credentials: the security chain's 403 (grimmory: 401)."""
        if self.state.flavour == "grimmory":
            return self._spring(401, "Unauthorized", path)
        return self._spring(403, "Forbidden", path)

    def bad_bearer(self, path: str) -> Response:
        """A bearer that fails the JWT filter: 401 empty (grimmory: Spring's 401 body)."""
        if self.state.flavour == "grimmory":
            return self._spring(401, "Unauthorized", path)
        return empty(401)

    def fallback(self, req: Request) -> Response:
        """A path that matches no route (§4.5, §7.1)."""
        st = self.state
        if req.method not in ("GET", "HEAD"):
            return self.error(500, UNEXPECTED)
        if st.flavour == "grimmory" and not st.spa_fallback:
            return self.error(404, "Resource not found.")
        if not st.has(flavours.SPA_FALLBACK):  # nginx in front: Spring's resource handler
            if st.flavour == "grimmory":
                return self.error(404, "Resource not found.")
            return self.error(404, f"Resource not found: No static resource {req.path.lstrip('/')}.")
        if st.spa_fallback:
            return Response(200, SPA_HTML, "text/html;charset=UTF-8")
        return self.error(404, f"Resource not found: {req.path}")

    # ------------------------------------------------------------------ auth

    def _chain(self, req: Request) -> str:
        path, flavour = req.path, self.state.flavour
        if path == "/api/koreader" or path.startswith("/api/koreader/"):
            return "koreader"
        if req.method == "POST" and path == "/api/v1/reading-sessions":
            if flavour == "fork":
                return "either"
            if flavour == "fork-2675":
                return "koreader"
        if req.method == "POST" and path == "/api/v1/reading-sessions/batch" and flavour == "fork":
            return "either"
        if path.startswith("/api/v1/auth/"):
            return "public"
        if path == "/api/v1/healthcheck" or path.startswith("/api/v1/healthcheck/"):
            return "public" if self.state.has(flavours.HEALTHCHECK) else "bearer"
        if path == "/api/v1/version" and flavour == "grimmory":
            return "public"
        if path == "/api" or path.startswith("/api/"):
            return "bearer"
        return "public"

    @staticmethod
    def _bearer_token(req: Request) -> str | None:
        value = req.header("Authorization")
        if value is None or not value.startswith("Bearer "):
            return None
        return value[len("Bearer "):].strip()

    def _koreader_account(self, req: Request) -> dict[str, Any] | None:
        name, key = req.header("x-auth-user"), req.header("x-auth-key")
        if not name or not key:
            return None
        acc = self.state.find_koreader(name)
        if acc is None or acc["md5"].lower() != key.strip().lower():
            return None
        return acc

    def authenticate(self, ctx: Ctx) -> Response | None:
        """Run the filters of §2; a response means the request stops here."""
        req = ctx.req
        chain = self._chain(req)
        token = self._bearer_token(req)
        jwt_applies = token is not None and not any(req.path.startswith(p) for p in JWT_SKIP)
        if chain == "koreader" and self.state.flavour == "grimmory":
            jwt_applies = False  # grimmory: a bearer on /api/koreader/** is ignored
        bearer_user = self.state.access_user(token) if jwt_applies and token else None
        if chain == "koreader":
            acc = self._koreader_account(req)
            if acc is None:
                return self.forbidden(req.path)
            if jwt_applies and bearer_user is None:
                return empty(401)  # the JWT servlet filter after the chain (derived)
            ctx.identity = Identity("koreader", acc["username"], None, acc)
            return None
        if jwt_applies and bearer_user is None:
            return self.bad_bearer(req.path)
        if bearer_user is not None:
            ctx.identity = Identity("bearer", bearer_user["username"], bearer_user)
            return None
        if chain == "public":
            return None
        if chain == "either":
            acc = self._koreader_account(req)
            if acc is not None:
                ctx.identity = Identity("koreader", acc["username"], None, acc)
                return None
        return self.forbidden(req.path)

    # ------------------------------------------------------------------ dispatch

    def handle(self, req: Request) -> tuple[Response, Identity]:
        ctx = Ctx(self, req)
        with self.state.lock:
            try:
                stop = self.authenticate(ctx)
                if stop is not None:
                    return stop, ctx.identity
                resp = self._dispatch(ctx)
            except ApiError as exc:
                resp = self._render(exc)
            except Exception:  # an emulator bug must still look like BookLore's catch-all
                traceback.print_exc()
                resp = self.error(500, UNEXPECTED)
            if req.method not in ("GET", "HEAD"):
                self.state.mark_dirty()
            return resp, ctx.identity

    def _render(self, exc: ApiError) -> Response:
        if exc.response is not None:
            return exc.response
        if exc.empty:
            return empty(exc.status)
        message = exc.message
        if self.state.flavour == "grimmory" and exc.kind in GRIMMORY_TEXTS:
            message = GRIMMORY_TEXTS[exc.kind]
        return self.error(exc.status, message, exc.details)

    def _dispatch(self, ctx: Ctx) -> Response:
        req = ctx.req
        method = "GET" if req.method == "HEAD" else req.method
        handler, params, path_matched = self.router.match(method, req.path)
        if handler is not None:
            resp: Response = handler(ctx, **params)
            return resp
        if path_matched:
            return self.error(500, UNEXPECTED)  # wrong method (derived)
        return self.fallback(req)

"""The Starlette application: the pages of spec §10 and their security rules.

Handlers only parse, check and render; every action goes through
:mod:`booklore_sync.web.actions`.  Blocking work (the store, the lock, the
server) runs in the thread pool, long work in a job.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from booklore_sync.actions.base import ActionError as LibraryError
from booklore_sync.config import Config, ConfigError
from booklore_sync.store import StoreError
from booklore_sync.web import actions, watching
from booklore_sync.web.jobs import Jobs
from booklore_sync.web.responses import (  # noqa: F401 - names the pages use too
    JOB_HEADINGS,
    MENU_FORMS,
    blocking,
    redirect,
    session_cookie,
)
from booklore_sync.web.security import COOKIE, Session, Sessions

TEMPLATES = Path(__file__).parent / "templates"
LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1"}

Handler = Callable[[Request, Session, FormData | None], Awaitable[Response]]


@dataclass
class Settings:
    host: str
    password: str | None
    load_config: Callable[[], Config] = Config.load
    watch: watching.WatchLoop | None = None
    source: Path | None = None


class Web:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.sessions = Sessions(settings.password)
        self.jobs = Jobs()
        self.env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                               autoescape=select_autoescape(default=True, default_for_string=True))
        check_host = settings.password is None
        self.allowed_hosts = (LOOPBACK_NAMES | {settings.host.strip("[]").lower()}
                              if check_host else None)

    # ------------------------------------------------------------ plumbing
    def render(self, name: str, session: Session | None, status: int = 200,
               **context: Any) -> HTMLResponse:
        nonce = secrets.token_urlsafe(16)
        flash: list[str] = []
        if session is not None and name not in ("job.html",):
            flash, session.flash = session.flash, []
        html = self.env.get_template(name).render(
            csrf_token=session.csrf if session else "", nonce=nonce, flash=flash, **context)
        response = HTMLResponse(html, status_code=status)
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
            "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
        return response

    def message(self, session: Session | None, heading: str, text: str, *, status: int = 200,
                warn: bool = False, lines: list[str] | None = None,
                back: str = "/") -> HTMLResponse:
        return self.render("message.html", session, status=status, heading=heading, text=text,
                           warn=warn, lines=lines, back=back)

    def busy(self, session: Session, exc: actions.Busy) -> HTMLResponse:
        return self.message(session, "Busy", str(exc), status=409, warn=True)

    def config(self) -> Config:
        return self.settings.load_config()

    def route(self, handler: Handler, *, post: bool = False, open_: bool = False) -> Any:
        """Wrap a handler with the host check, the session, the login and CSRF rules."""
        async def endpoint(request: Request) -> Response:
            if self.allowed_hosts is not None:
                host = (urlsplit("//" + request.headers.get("host", "")).hostname or "").lower()
                if host not in self.allowed_hosts:
                    return Response("Unknown host.\n", status_code=400,
                                    media_type="text/plain; charset=utf-8")
            session = self.sessions.get(request.cookies.get(COOKIE))
            fresh = session is None
            if session is None:
                session = self.sessions.new()
            response: Response
            form: FormData | None = None
            if post:
                form = await request.form()
            if self.sessions.needs_login and not session.authed and not open_:
                if request.url.path.endswith(".json"):
                    response = JSONResponse({"error": "login required"}, status_code=401)
                else:
                    response = RedirectResponse("/login", status_code=303)
            elif post and not self.sessions.csrf_ok(session, _field(form, "csrf_token")):
                response = self.message(
                    session, "Forbidden", "The form has expired or did not come from this "
                    "page (missing or wrong csrf_token); nothing was changed.", status=403,
                    warn=True)
            else:
                try:
                    response = await handler(request, session, form)
                except ConfigError as exc:
                    response = self.message(session, "Configuration error", f"Error: {exc}",
                                            status=500, warn=True)
                except (StoreError, LibraryError) as exc:  # a damaged or newer store file
                    response = self.message(session, "Store error", f"Error: {exc}",
                                            status=500, warn=True)
            cookies = response.headers.getlist("set-cookie")
            if fresh and not any(c.startswith(COOKIE + "=") for c in cookies):
                response.headers.append("set-cookie", session_cookie(session.sid))
            response.headers["Cache-Control"] = "no-store"
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["X-Frame-Options"] = "DENY"
            response.headers["Referrer-Policy"] = "no-referrer"
            return response

        return endpoint

    def app(self) -> Starlette:
        from booklore_sync.web import pages

        p = pages.Pages(self)
        r = self.route
        return Starlette(routes=[
            Route("/", r(p.menu)),
            Route("/login", r(p.login_form, open_=True)),
            Route("/login", r(p.login, post=True, open_=True), methods=["POST"]),
            Route("/logout", r(p.logout, post=True), methods=["POST"]),
            Route("/sync", r(p.sync, post=True), methods=["POST"]),
            Route("/jobs/{job_id}.json", r(p.job_json)),
            Route("/jobs/{job_id}", r(p.job)),
            Route("/pending", r(p.pending)),
            Route("/match", r(p.match, post=True), methods=["POST"]),
            Route("/match/manual", r(p.manual)),
            Route("/match/manual", r(p.manual_post, post=True), methods=["POST"]),
            Route("/clear-pending", r(p.clear_pending_form)),
            Route("/clear-pending", r(p.clear_pending, post=True), methods=["POST"]),
            Route("/clear-cache", r(p.clear_cache, post=True), methods=["POST"]),
            Route("/advanced", r(p.advanced)),
            Route("/advanced/rematch", r(p.rematch_form)),
            Route("/advanced/rematch", r(p.rematch, post=True), methods=["POST"]),
            Route("/advanced/clear", r(p.clear_history_form)),
            Route("/advanced/clear", r(p.clear_history, post=True), methods=["POST"]),
        ])


def _field(form: FormData | None, name: str) -> str | None:
    if form is None:
        return None
    value = form.get(name)
    return value if isinstance(value, str) else None


def create_app(settings: Settings) -> Starlette:
    return Web(settings).app()

"""Small pieces the application and its pages share: the menu's forms, job headings,
the session cookie, the 303 redirect and running blocking work off the event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse

from booklore_sync import labels
from booklore_sync.web.security import COOKIE

MENU_FORMS = {
    labels.SYNC: ("post", "/sync"),
    labels.VIEW: ("get", "/pending"),
    labels.MATCH: ("post", "/match"),
    labels.CLEAR_PENDING: ("get", "/clear-pending"),
    labels.ADVANCED: ("get", "/advanced"),
    labels.CLEAR_CACHE: ("post", "/clear-cache"),
}
JOB_HEADINGS = {"sync": "Sync Pending Now", "match": "Match Unmatched Books",
                "rematch": "Re-match All Books in Cache"}


def session_cookie(sid: str) -> str:
    return f"{COOKIE}={sid}; HttpOnly; Path=/; SameSite=Strict"


def redirect(to: str) -> RedirectResponse:
    return RedirectResponse(to, status_code=303)


async def blocking(fn: Callable[..., Any], *args: Any) -> Any:
    return await run_in_threadpool(fn, *args)

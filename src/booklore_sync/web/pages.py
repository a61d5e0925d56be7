"""The page handlers (spec §10.2, §10.3)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from booklore_sync.store.queries import QUEUES
from booklore_sync.web import actions, matching
from booklore_sync.web.responses import JOB_HEADINGS, MENU_FORMS, blocking, redirect, session_cookie
from booklore_sync.web.security import Session

if TYPE_CHECKING:
    from booklore_sync.web.app import Web


@dataclass
class ManualWalk:
    """One browser's way through the unmatched books (spec §4.3 step 2)."""

    ids: list[int]
    index: int = 0
    term: str | None = None
    entered: dict[str, Any] | None = None
    matched: int = 0
    messages: list[str] = field(default_factory=list)

    def advance(self) -> None:
        self.index += 1
        self.term = None
        self.entered = None


def _text(form: FormData | None, name: str) -> str:
    value = form.get(name) if form is not None else None
    return value.strip() if isinstance(value, str) else ""


def _list(form: FormData | None, name: str) -> list[str]:
    if form is None:
        return []
    return [v for v in form.getlist(name) if isinstance(v, str)]


class Pages:
    def __init__(self, web: Web):
        self.web = web

    # ------------------------------------------------------------- menu
    async def menu(self, request: Request, session: Session, form: FormData | None) -> Response:
        cfg = self.web.config()
        state = await blocking(actions.menu_state, cfg)
        watch = None
        loop = self.web.settings.watch
        if loop is not None:
            watch = {"source": str(self.web.settings.source), "interval": int(loop.interval),
                     "cycles": loop.recent(), "next_run": loop.next_run()}
        return self.web.render("menu.html", session, entries=state.entries, forms=MENU_FORMS,
                               holder=state.holder, server=state.server, watch=watch,
                               logout=self.web.sessions.needs_login)

    # ------------------------------------------------------------ login
    async def login_form(self, request: Request, session: Session,
                         form: FormData | None) -> Response:
        if not self.web.sessions.needs_login or session.authed:
            return redirect("/")
        return self.web.render("login.html", session)

    async def login(self, request: Request, session: Session, form: FormData | None) -> Response:
        sessions = self.web.sessions
        if not sessions.needs_login:
            return redirect("/")
        address = request.client.host if request.client else "?"
        if sessions.blocked(address):
            return self.web.render("login.html", session, status=429,
                                   error="Too many wrong passwords; try again in 15 minutes.")
        if not sessions.check_password(address, _text_raw(form, "password")):
            return self.web.render("login.html", session, status=401, error="Wrong password.")
        sessions.drop(session)
        fresh = sessions.new(authed=True)
        response = redirect("/")
        response.headers.append("set-cookie", session_cookie(fresh.sid))
        return response

    async def logout(self, request: Request, session: Session, form: FormData | None) -> Response:
        self.web.sessions.drop(session)
        response = redirect("/login" if self.web.sessions.needs_login else "/")
        response.headers.append("set-cookie", session_cookie("") + "; Max-Age=0")
        return response

    # ------------------------------------------------------------- jobs
    async def _start(self, session: Session, kind: str, title: str, work: Any) -> Response:
        cfg = self.web.config()
        try:
            await blocking(actions.ensure_free, cfg)
        except actions.Busy as exc:
            return self.web.busy(session, exc)
        job = self.web.jobs.start(kind, title, lambda progress: work(cfg, progress))
        return redirect(f"/jobs/{job.id}")

    async def sync(self, request: Request, session: Session, form: FormData | None) -> Response:
        return await self._start(session, "sync", "Syncing…", actions.run_sync)

    async def match(self, request: Request, session: Session, form: FormData | None) -> Response:
        session.manual = None
        return await self._start(session, "match", "Matching…", actions.run_auto_match)

    async def rematch(self, request: Request, session: Session,
                      form: FormData | None) -> Response:
        return await self._start(session, "rematch", "Re-matching…", actions.run_rematch_all)

    async def job(self, request: Request, session: Session, form: FormData | None) -> Response:
        job = self.web.jobs.get(request.path_params["job_id"])
        if job is None:
            return self.web.message(session, "Not found", "There is no such job (it may have "
                                    "ended before serve was restarted).", status=404, warn=True)
        if job.result is not None and job.result.busy:
            return self.web.busy(session, actions.Busy(job.result.busy))
        return self.web.render("job.html", session, job=job, heading=JOB_HEADINGS[job.kind])

    async def job_json(self, request: Request, session: Session,
                       form: FormData | None) -> Response:
        job = self.web.jobs.get(request.path_params["job_id"])
        if job is None:
            return JSONResponse({"error": "no such job"}, status_code=404)
        return JSONResponse(job.as_json())

    # ---------------------------------------------------------- pending
    async def pending(self, request: Request, session: Session,
                      form: FormData | None) -> Response:
        data = await blocking(actions.status, self.web.config())
        from booklore_sync.status import QUEUE_NAMES

        return self.web.render("pending.html", session, data=data,
                               queue_names=[(q, QUEUE_NAMES[q]) for q in QUEUES])

    # ------------------------------------------------------- clear pending
    async def clear_pending_form(self, request: Request, session: Session,
                                 form: FormData | None) -> Response:
        counts = await blocking(actions.pending_counts, self.web.config())
        present = [(q, f"{actions.QUEUE_LABELS[q]} ({counts[q]})") for q in QUEUES if counts[q]]
        return self.web.render("clear_pending.html", session, present=present)

    async def clear_pending(self, request: Request, session: Session,
                            form: FormData | None) -> Response:
        chosen = [q for q in _list(form, "queue") if q in QUEUES]
        return await self._clear(session, chosen, actions.clear_pending)

    async def _clear(self, session: Session, chosen: list[str],
                     run: Callable[[Any, list[str]], list[str]]) -> Response:
        """Clear the chosen names (under the lock); their lines flashed on the menu."""
        if not chosen:
            session.flash.append("Nothing was selected; nothing was cleared.")
            return redirect("/")
        return await self._flashed(session, run, chosen)

    async def _flashed(self, session: Session, run: Callable[..., list[str] | str],
                       *args: Any) -> Response:
        """Run a quick action under the lock; its line(s) flashed on the menu."""
        try:
            said = await blocking(run, self.web.config(), *args)
        except actions.Busy as exc:
            return self.web.busy(session, exc)
        except actions.ActionError as exc:
            session.flash.append(str(exc))
            return redirect("/")
        session.flash.extend([said] if isinstance(said, str) else said)
        return redirect("/")

    async def clear_cache(self, request: Request, session: Session,
                          form: FormData | None) -> Response:
        return await self._flashed(session, actions.clear_cache)

    # ---------------------------------------------------------- advanced
    async def advanced(self, request: Request, session: Session,
                       form: FormData | None) -> Response:
        return self.web.render("advanced.html", session)

    async def rematch_form(self, request: Request, session: Session,
                           form: FormData | None) -> Response:
        return self.web.render("rematch.html", session)

    async def clear_history_form(self, request: Request, session: Session,
                                 form: FormData | None) -> Response:
        counts = await blocking(actions.history_counts, self.web.config())
        ledgers = [(n, actions.HISTORY_LABELS[n], counts.get(n, 0)) for n in actions.HISTORY_ORDER]
        return self.web.render("clear_history.html", session, ledgers=ledgers,
                               warning=actions.HISTORY_WARNING)

    async def clear_history(self, request: Request, session: Session,
                            form: FormData | None) -> Response:
        chosen = [n for n in _list(form, "ledger") if n in actions.HISTORY_ORDER]
        return await self._clear(session, chosen, actions.clear_history)

    # ---------------------------------------------------- manual matching
    async def manual(self, request: Request, session: Session,
                     form: FormData | None) -> Response:
        cfg = self.web.config()
        walk = session.manual
        if not isinstance(walk, ManualWalk):
            ids = await blocking(matching.unmatched_ids, cfg)
            if not ids:
                session.flash.append("No book is unmatched.")
                return redirect("/")
            walk = session.manual = ManualWalk(ids=ids)
        while walk.index < len(walk.ids):
            try:
                book = await blocking(matching.manual_book, cfg, walk.ids[walk.index],
                                      walk.index + 1, len(walk.ids), walk.term)
            except actions.ActionError as exc:
                return self.web.message(session, "Match Unmatched Books", str(exc), warn=True)
            if book is not None:
                return self.web.render("manual.html", session, book=book, entered=walk.entered)
            walk.advance()
        return await self._finish_manual(session)

    async def _finish_manual(self, session: Session) -> Response:
        walk = session.manual
        session.manual = None
        ids = await blocking(matching.unmatched_ids, self.web.config())
        matched = walk.matched if isinstance(walk, ManualWalk) else 0
        session.flash.append(f"{matched} newly matched, {len(ids)} still unmatched.")
        return redirect("/")

    async def manual_post(self, request: Request, session: Session,
                          form: FormData | None) -> Response:
        walk = session.manual
        action = _text(form, "action")
        if action == "stop" or not isinstance(walk, ManualWalk):
            return await self._finish_manual(session)
        current = walk.ids[walk.index] if walk.index < len(walk.ids) else None
        if _text(form, "cache_id") != str(current):
            session.flash.append("That page was out of date; nothing was changed.")
            return redirect("/match/manual")
        cfg = self.web.config()
        pick = _text(form, "pick")
        if pick:
            raw_id, _, raw_score = pick.partition(":")
            try:
                book_id = int(raw_id)
                score = float(raw_score) if raw_score else None
            except ValueError:
                session.flash.append("That choice is not a BookLore book; nothing was changed.")
                return redirect("/match/manual")
            try:
                lines = await blocking(matching.confirm_match, cfg, current, book_id, score)
            except actions.Busy as exc:
                return self.web.busy(session, exc)
            except actions.ActionError as exc:
                session.flash.append(str(exc))
                return redirect("/match/manual")
            session.flash.extend(lines)
            walk.matched += 1
            walk.advance()
        elif action == "skip":
            walk.advance()
        elif action == "search":
            walk.term = _text(form, "term") or walk.term
            walk.entered = None
        elif action == "enter_id":
            await self._enter_id(session, walk, _text(form, "book_id"))
        return redirect("/match/manual")

    async def _enter_id(self, session: Session, walk: ManualWalk, raw: str) -> None:
        try:
            book_id = int(raw)
            if book_id <= 0:
                raise ValueError
        except ValueError:
            session.flash.append(f"{raw!r} is not a book ID (a whole number).")
            return
        try:
            found = await blocking(matching.lookup_book, self.web.config(), book_id)
        except actions.ActionError as exc:
            session.flash.append(str(exc))
            return
        if found is None:
            session.flash.append(f"BookLore has no book with ID {book_id}.")
            return
        walk.entered = {"book_id": book_id, "title": found[0], "authors": found[1]}


def _text_raw(form: FormData | None, name: str) -> str:
    value = form.get(name) if form is not None else None
    return value if isinstance(value, str) else ""

"""Reading sessions: single and batch uploads, the paged list, verify-before-resend,
and the batch fallback rule (booklore-api.md §3.10–§3.12, §5.3, §6 probe 6)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from .capabilities import Capabilities
from .errors import NotConfiguredError, NotJSONError, OutcomeUnknownError, UnsupportedEndpointError
from .http import extract_message, is_json_response, media_type
from .models import BOOK_TYPES
from .session_models import BatchResult, ServerSession, SessionIn, SessionPage
from .writes import WritesMixin

__all__ = ["SessionsMixin", "SESSIONS", "SESSIONS_BATCH", "SESSIONS_BOOK", "MAX_BATCH"]

log = logging.getLogger("booklore_sync.booklore")

SESSIONS = "/api/v1/reading-sessions"
SESSIONS_BATCH = "/api/v1/reading-sessions/batch"
SESSIONS_BOOK = "/api/v1/reading-sessions/book/"
MAX_BATCH = 100


def _check_book_type(book_type: str) -> None:
    if book_type not in BOOK_TYPES:
        raise ValueError(f"bookType must be one of {sorted(BOOK_TYPES)}")


class SessionsMixin(WritesMixin):
    """Reading sessions."""

    @property
    def batch_enabled(self) -> bool:
        """Whether session batches should be tried now: the server has the batch route
        (probe) and no answer of this run switched it off."""
        caps = self._caps
        return bool(caps is not None and caps.batch) and self._batch_this_run is not False

    def mark_no_batch(self, *, remember: bool | None = None) -> None:
        """Stop using the batch endpoint (§6 probe 6). ``remember=True`` keeps that for
        this server in the capability cache (the route is missing); ``False`` only for
        this run (a 500 on a fork: a transient fault). ``None`` (what callers of the
        old API pass) follows the last batch answer's verdict (remember when unknown)."""
        if remember is None:
            remember = self._batch_remember
        self._batch_this_run = False
        if not remember:
            log.info("the session batch failed on this run: sending sessions one by one until the next run")
            return
        with self._caps_lock:
            caps = self._caps or Capabilities(probed_at=self._clock())
            if caps.batch is False:
                return
            caps = caps.with_(batch=False)
            self._caps = caps
        log.info("the server refuses the session batch endpoint: sending sessions one by one")
        if caps.version is not None and caps.flavour is not None:
            self._put_cache(caps)

    def _session_auth(self, path: str) -> str:
        if self.has_booklore_account:
            return "bearer"
        if self.has_koreader_account:
            caps = self._caps
            if caps is not None and caps.single_session_koreader is False and path == SESSIONS:
                raise NotConfiguredError(
                    f"this server ({self.describe_server()}) accepts reading sessions only with the BookLore account",
                    account="booklore", method="POST", path=path,
                )
            return "koreader"
        raise NotConfiguredError(
            "uploading reading sessions needs the BookLore account (or the KOReader account on the fork)",
            account="booklore", method="POST", path=path,
        )

    def post_session(self, book_id: int, book_type: str, session: SessionIn) -> None:
        """``POST /api/v1/reading-sessions`` (202, empty). Bearer when a BookLore account
        is configured, else KOReader headers (fork). Not idempotent: on
        :class:`OutcomeUnknownError` verify with :meth:`verify_sessions` before resending."""
        _check_book_type(book_type)
        self.require_route("sessions", method="POST", path=SESSIONS)
        auth = self._session_auth(SESSIONS)
        body = session.to_json(book_id=book_id, book_type=book_type)
        resp = self._request("POST", SESSIONS, auth=auth, json_body=body, idempotent=False)
        status = resp.status_code
        if 200 <= status < 300:
            if resp.content.strip() and not is_json_response(resp):
                raise NotJSONError(
                    "unexpected non-JSON answer to a session upload",
                    content_type=media_type(resp), method="POST", path=SESSIONS, status=status,
                )
            return None
        raise self._fail(resp, "POST", SESSIONS, auth)

    def post_sessions_batch(self, book_id: int, book_type: str, sessions: Sequence[SessionIn]) -> BatchResult:
        """``POST /api/v1/reading-sessions/batch`` (fork only; 1–100 sessions of one
        book; all or nothing).

        When the answer shows that the server refuses the batch route (§6 probe 6: 403,
        405, 500, 501, a 404 other than "Book not found…", a non-JSON 2xx) this calls
        :meth:`mark_no_batch` and raises :class:`UnsupportedEndpointError`
        (``capability="batch"``): nothing was stored; send these sessions one by one.
        A 404 "Book not found…" raises :class:`NotFoundError`; a 400
        :class:`RequestRejectedError`. Not idempotent: on :class:`OutcomeUnknownError`
        verify before resending."""
        _check_book_type(book_type)
        if not sessions:
            raise ValueError("a batch needs at least one session")
        if len(sessions) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} sessions per batch")
        auth = self._session_auth(SESSIONS_BATCH)
        body = {
            "bookId": int(book_id),
            "bookType": book_type,
            "sessions": [s.to_json() for s in sessions],
        }
        resp = self._request("POST", SESSIONS_BATCH, auth=auth, json_body=body, idempotent=False)
        status = resp.status_code
        message = extract_message(resp) if not (200 <= status < 300) else ""
        refused = (
            (200 <= status < 300 and not is_json_response(resp))
            or status in (403, 405, 500, 501)
            or (status == 404 and not message.startswith("Book not found"))
        )
        if refused:
            caps = self._caps
            fork = caps is not None and (caps.server == "fork" or caps.flavour == "fork")
            # a 500 on a fork is a server fault: this run only; anything else that
            # refuses says the route is missing: remembered (§4.1 "Sessions")
            self._batch_remember = not (status == 500 and fork)
            self.mark_no_batch()
            raise UnsupportedEndpointError(
                f"the server refuses the session batch endpoint ({self._scrub(message) or 'non-JSON answer'})",
                capability="batch", not_json=200 <= status < 300,
                method="POST", path=SESSIONS_BATCH, status=status,
            )
        if 200 <= status < 300:
            data = self._json_ok(resp, "POST", SESSIONS_BATCH)
            try:
                result = BatchResult.from_json(data)
            except ValueError:
                # a JSON 2xx of an unknown shape: the write may well have happened
                raise OutcomeUnknownError(
                    "unexpected JSON answer to a batch upload (outcome unknown)",
                    method="POST", path=SESSIONS_BATCH, status=status,
                ) from None
            self._observe("batch", True)
            return result
        raise self._fail(resp, "POST", SESSIONS_BATCH, auth)

    def list_sessions(self, book_id: int, *, page: int = 0, size: int = 100) -> SessionPage:
        """``GET /api/v1/reading-sessions/book/{id}`` (bearer): one page, newest first."""
        if not 1 <= size <= 100 or page < 0:
            raise ValueError("page >= 0 and 1 <= size <= 100")
        path = f"{SESSIONS_BOOK}{int(book_id)}"
        data = self._call_json("GET", path, auth="bearer", params={"page": page, "size": size}, kind="sessions")
        try:
            return SessionPage.from_json(data)
        except (ValueError, TypeError):
            raise self._bad_shape("GET", path, 200, "not a session page") from None

    def verify_sessions(self, book_id: int, sessions: Sequence[SessionIn]) -> list[bool]:
        """Verify-before-resend (§3.12, §5.3): for each local session, whether the server
        already has it — same (startTime, endTime) in whole seconds and the same
        ``durationSeconds``. Reads pages of 100 while they can still hold a match.
        Needs the BookLore account (:class:`NotConfiguredError` otherwise)."""
        if not sessions:
            return []
        keys = [s.key() for s in sessions]
        earliest = min(k[0] for k in keys)
        present: dict[tuple[Any, Any], set[int | None]] = {}
        page = 0
        while True:
            result = self.list_sessions(book_id, page=page, size=100)
            for item in result.items:
                start, end, duration = item.key()
                present.setdefault((start, end), set()).add(duration)
            if not result.items:
                break
            last_start = result.items[-1].start_time
            if last_start is None or last_start.replace(microsecond=0) < earliest:
                break
            if result.number + 1 >= result.total_pages:
                break
            page = result.number + 1
        return [k[2] in present.get((k[0], k[1]), ()) for k in keys]

    def iter_sessions(self, book_id: int, *, ending_after: datetime | None = None) -> Iterator[ServerSession]:
        """Every session of a book on the server, newest first, read in pages of 100
        (§3.12). With ``ending_after``, reading stops after the page whose last item
        ends at or before that time (older pages cannot overlap it: §5.4)."""
        page = 0
        while True:
            result = self.list_sessions(book_id, page=page, size=100)
            yield from result.items
            if not result.items or result.number + 1 >= result.total_pages:
                return
            last_end = result.items[-1].end_time
            if ending_after is not None and last_end is not None and last_end <= ending_after:
                return
            page = result.number + 1


"""The work units of the sessions phase (HTTP only); progress lives in
:mod:`booklore_sync.sync.progress` (re-exported here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from booklore_sync.booklore import errors as E
from booklore_sync.sync.outcomes import NEEDS_CHECK, Gone, Outcome, Sent, Skipped, Synced
from booklore_sync.sync.payloads import session_in
from booklore_sync.sync.plan import SessionUnit, chunks, doubtful
from booklore_sync.sync.progress import progress_unit  # noqa: F401  (moved there)
from booklore_sync.sync.reconcile import reconcile_sessions
from booklore_sync.sync.uploads import Worker

if TYPE_CHECKING:
    from booklore_sync.store.db import QueueItem


# ---------------------------------------------------------------- sessions
def sessions_unit(w: Worker, unit: SessionUnit, batch_on: Callable[[], bool]) -> None:
    """One book's sessions: on first contact, settle those the server already holds
    (one paged read, which also answers every doubtful one); else verify the doubtful
    ones; then batches (or single posts) in queue order.  Every item was marked in
    flight (or was already doubtful) before the phase began; ``Sent`` tells the engine
    which ones went into a request."""
    groups = unit.groups
    if unit.reconcile:
        found = reconcile_sessions(w, unit.book_id, [i for _, g in groups for i in g])
        if found is None:
            return  # the read failed: unsent this run, reconciled later
        groups = [(t, [i for i in g if i.id not in found]) for t, g in groups]
    for book_type, items in groups:
        if items:
            _book_type_sessions(w, unit.book_id, book_type, items, unit.batch_size, batch_on,
                                checked=unit.reconcile)


def _book_type_sessions(w: Worker, book_id: int, book_type: str, items: list[QueueItem],
                        batch_size: int, batch_on: Callable[[], bool], *,
                        checked: bool = False) -> None:
    # ``checked``: the first-contact read saw every server session that could overlap
    # these, so a doubtful one not settled by it is not on the server
    unsure = [] if checked else [i for i in items if doubtful(i)]
    if unsure:
        if not w.state.alive("booklore"):
            missing = "booklore" if "booklore" not in w.state.accounts else None
            w.add(Skipped("sessions", unsure, reason=NEEDS_CHECK, missing_account=missing))
            items = [i for i in items if not doubtful(i)]
        else:
            try:
                w.state.check()
                present = w.client.verify_sessions(book_id, [session_in(i.payload)
                                                             for i in unsure])
            except E.BookLoreError as exc:
                w.error("sessions", items, exc)
                return
            there = [i for i, yes in zip(unsure, present, strict=True) if yes]
            if there:
                w.add(Synced("sessions", there, history={"book_id": book_id}))
            sent = {i.id for i in there}
            items = [i for i in items if i.id not in sent]
    for chunk in chunks(items, batch_size):
        if batch_on() and _send_batch(w, book_id, book_type, chunk):
            continue
        for item in chunk:
            if not _send_single(w, book_id, book_type, item):
                return


def _send_batch(w: Worker, book_id: int, book_type: str, chunk: list[QueueItem]) -> bool:
    """True when the chunk is settled; False to fall back to single posts."""
    w.state.check()
    w.add(_sent(chunk))
    try:
        w.client.post_sessions_batch(book_id, book_type, [session_in(i.payload) for i in chunk])
    except E.BookLoreError as exc:
        if E.batch_refused(exc):
            # nothing was stored (all or nothing): the single posts are safe; the
            # client remembers that this server refuses batches (api §6 probe 6)
            return False
        _session_error(w, chunk, exc)
        return True
    w.add(Synced("sessions", chunk, defer=True, history={"book_id": book_id}))
    return True


def _send_single(w: Worker, book_id: int, book_type: str, item: QueueItem) -> bool:
    """Post one session; False when the rest of this book should wait."""
    w.state.check()
    w.add(_sent([item]))
    try:
        w.client.post_session(book_id, book_type, session_in(item.payload))
    except E.BookLoreError as exc:
        outcome = _session_error(w, [item], exc)
        return not isinstance(outcome, Gone) and not isinstance(exc, E.AuthError)
    w.add(Synced("sessions", [item], defer=True, history={"book_id": book_id}))
    return True


def _session_error(w: Worker, items: list[QueueItem], exc: E.BookLoreError) -> Outcome:
    """An unknown outcome leaves the sessions uncertain (checked before any resend);
    a 404 ``Book not found`` stored nothing, so they go back to pending."""
    outcome = w.error("sessions", items, exc, unknown_state="uncertain")
    if isinstance(outcome, Gone):
        outcome.reset = True
    return outcome


def _sent(items: list[QueueItem]) -> Sent:
    return Sent("sessions", items)

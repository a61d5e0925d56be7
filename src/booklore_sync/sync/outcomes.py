"""What happened to queue items, as values — and the one place where a client error
becomes such a value (booklore-api.md §5.2, spec §4.1 "Server answers are read").

Workers (which only talk HTTP) return lists of outcomes; the ledger (which alone
writes the store) records them.  Nothing here touches the store or the network,
except ``classify``'s optional ``check_book`` callback, which the caller supplies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from booklore_sync.booklore import errors as E

if TYPE_CHECKING:
    from booklore_sync.store.db import QueueItem

UNCERTAIN_STATES = ("in_flight", "uncertain")

# reasons (last_error texts) for skipped items
NOT_MATCHED = "book not matched to BookLore yet (run `booklore-sync match`)"
NO_BY_HASH = ("book not matched: this server cannot look books up by fingerprint "
              "(run `booklore-sync match` to match it by ISBN, title or by hand)")
UNKNOWN_TO_SERVER = "the BookLore/Grimmory server does not know this book's fingerprint"
NEEDS_CHECK = ("an earlier upload's outcome is unknown; checking what the server holds needs "
               "the BookLore account, which is not configured")
BOOK_GONE = ("book not found on server (its BookLore ID was cleared; "
             "run `booklore-sync match`)")
NO_CFI = "no EPUB CFI for this position (it cannot be placed in the book)"
UNKNOWN_FORMAT = ("the book's format is unknown (scan the device with the book file, or "
                  "match it, so BookLore's format can be used)")


def account_name(account: str) -> str:
    return "BookLore account" if account == "booklore" else "KOReader account"


def account_trouble(exc: E.AuthError) -> str:
    return f"{account_name(exc.account)} {exc.kind.replace('_', ' ')}: {exc.message}"


@dataclass
class Outcome:
    """Base: the items (rows of one queue) this outcome settles."""

    queue: str
    items: list[QueueItem]


@dataclass
class Synced(Outcome):
    """Confirmed (or found already there): move to synced history.  ``defer`` lets the
    move share a transaction with others (see Ledger.synced)."""

    history: dict[str, Any] = field(default_factory=dict)
    defer: bool = False


@dataclass
class Failed(Outcome):
    reason: str = ""
    status: int | None = None
    count: bool = True  # retry_count goes up
    state: str = "pending"  # 'uncertain' after an unknown outcome of an undeduplicated write


@dataclass
class Skipped(Outcome):
    reason: str = ""
    missing_account: str | None = None  # named in the report as not configured
    route_missing: bool = False  # the server (release) has no route for this kind
    sync_off: bool = False  # the KOReader account's Sync switch is off (exit 2)


@dataclass
class Missing(Outcome):
    """The account the request needs is not configured (skipped)."""

    account: str = "booklore"


@dataclass
class AccountDown(Outcome):
    """The account was rejected (or is not linked, or rate-limited): failed, no attempt
    counted, and no further request of this run uses it."""

    error: E.AuthError | None = None


@dataclass
class Gone(Outcome):
    """404 ``Book not found``: the stored BookLore ID is stale; the book becomes
    unmatched.  ``reset``: the items were sent (marked in flight) and nothing was
    stored, so they go back to 'pending'."""

    reset: bool = False


@dataclass
class PartDone(Outcome):
    """One half of a 'both' note was delivered (koreader-data.md §6.7)."""

    part: str = ""
    book_id: int | None = None
    remote_id: int | None = None


@dataclass
class Cut(Outcome):
    """These items were delivered with a text cut to fit the server's 65,535-byte
    column (spec §4.1 "Long text"): counted and named in the report."""


@dataclass
class Sent(Outcome):
    """These items were put into a request (sessions: they stay marked in flight)."""


@dataclass
class Lost(Outcome):
    """The server stopped answering: the run stops starting requests."""

    message: str = ""


def _book_not_found(exc: E.BookLoreError) -> bool:
    """404 ``Book not found with ID: …`` (api §4.8) — however the error was typed."""
    return isinstance(exc, E.BookNotFoundError) or (
        isinstance(exc, E.NotFoundError) and exc.message.startswith("Book not found with ID"))


def classify(queue: str, items: list[QueueItem], exc: E.BookLoreError, *,
             not_found: str = "gone", unknown_state: str = "pending",
             check_book: Callable[[], bool] | None = None) -> Outcome:
    """The single error ladder: a client error on ``items`` → an outcome.

    Read as booklore-api.md §4.8 says: a :class:`~E.SkipError` (Sync switched off, a
    route the server lacks, a blank text) is *skipped* — checked before
    :class:`~E.AuthError`, since Sync off is not a dead account; a 409 is "already
    there" only as :class:`~E.AlreadyExistsError`, any other 409
    (:class:`~E.ConflictError`) fails with the server's text; only
    :class:`~E.BookNotFoundError` unlinks a book (:class:`Gone`).

    ``not_found``: what a 404 means for this request — ``"gone"`` (``Book not
    found``: the book becomes unmatched), ``"fingerprint"`` (kosync: the server does
    not know the fingerprint; skipped) or ``"fail"``.  ``unknown_state``: the state an
    unknown outcome leaves (``"uncertain"`` for writes the server does not
    deduplicate).  ``check_book``: for a 500 on a per-book write, asks whether the book
    still exists (booklore-api.md §5.2: a 500 there probably means an unknown book).
    """
    if isinstance(exc, E.OfflineError):
        return Lost(queue, items, message=str(exc))
    if isinstance(exc, E.SkipError):
        # Sync switched off, a route this release lacks, a blank text: skipped, no
        # attempt counted, the account stays usable (spec §4.1)
        return Skipped(queue, items, reason=exc.reason, route_missing=isinstance(
            exc, E.RouteMissingError), sync_off=isinstance(exc, E.SyncDisabledError))
    if isinstance(exc, E.AuthError):
        return AccountDown(queue, items, error=exc)
    if isinstance(exc, E.NotConfiguredError):
        return Missing(queue, items, account=exc.account)
    if isinstance(exc, E.OutcomeUnknownError):
        return Failed(queue, items, reason=f"outcome unknown: {exc.last_error}",
                      state=unknown_state)
    if isinstance(exc, E.AlreadyExistsError):
        return Synced(queue, items)  # 409 "already exists": the item is there
    if isinstance(exc, E.UnknownRatingIdError):
        return Gone(queue, items)  # §8 #1: one id alone refused = an unknown book
    if isinstance(exc, E.NotFoundError) and not_found == "fingerprint":
        return Skipped(queue, items, reason=f"{UNKNOWN_TO_SERVER} ({exc.message})")
    if _book_not_found(exc) and not_found == "gone":
        return Gone(queue, items)  # the only 404 that unlinks a book (api §4.8)
    if (isinstance(exc, E.ServerError) and not isinstance(exc, E.ConflictError)
            and exc.status == 500 and check_book is not None and check_book()):
        return Gone(queue, items)
    # ConflictError (a 409 that does not say "already exists"), a route-missing or
    # other 404, and every other answer: a failure carrying the server's text
    return Failed(queue, items, reason=exc.last_error, status=exc.status)

"""One vocabulary for the whole program: the five queues, queue states,
enqueue outcomes, accounts, how items are settled and matched, exit codes.

Standard library only and cheap to import: the start-up fast path of
``status --json`` uses it.  That is why :class:`QueueKind` is a small
hand-written frozen record rather than a ``@dataclass``: importing
``dataclasses`` loads ``inspect`` (about 10 ms, half of that fast path's
budget), while ``enum`` is already loaded by ``json``.  Every value below is also
what the store writes to disk, so the values must never change; add new
members instead.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum

_FIELDS = ("name", "letter", "queue_table", "history_table", "key_columns", "label",
           "history_label", "latest_value")


class QueueKind:
    """One of the five upload queues (spec sync-and-cache §2).

    ``key_columns`` are the natural-key columns besides the book fingerprint;
    for the *latest-value* queues (ratings, progress: one row per book) they
    are the value columns, and "already synced" means "equal to the last value
    settled".
    """

    name: str
    letter: str
    queue_table: str
    history_table: str
    key_columns: tuple[str, ...]
    label: str
    history_label: str
    latest_value: bool

    __slots__ = _FIELDS

    def __init__(self, name: str, letter: str, queue_table: str, history_table: str,
                 key_columns: tuple[str, ...], label: str, history_label: str,
                 latest_value: bool = False) -> None:
        for field, value in zip(_FIELDS, (name, letter, queue_table, history_table,
                                          tuple(key_columns), label, history_label,
                                          bool(latest_value)), strict=True):
            object.__setattr__(self, field, value)

    def __setattr__(self, field: str, value: object) -> None:
        raise AttributeError(f"QueueKind is frozen: cannot set {field!r}")

    def __delattr__(self, field: str) -> None:
        raise AttributeError(f"QueueKind is frozen: cannot delete {field!r}")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, f) for f in _FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QueueKind):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        return f"QueueKind({self.name!r}, letter={self.letter!r})"


SESSIONS = QueueKind("sessions", "S", "pending_sessions", "historical_sessions",
                     ("start_epoch",), "Sessions", "Historical sessions")
ANNOTATIONS = QueueKind("annotations", "A", "pending_annotations", "synced_annotations",
                        ("datetime", "kind", "position"), "Annotations", "Synced annotations")
RATINGS = QueueKind("ratings", "R", "pending_ratings", "rating_sync_history",
                    ("rating",), "Ratings", "Rating sync history", latest_value=True)
BOOKMARKS = QueueKind("bookmarks", "B", "pending_bookmarks", "synced_bookmarks",
                      ("datetime",), "Bookmarks", "Synced bookmarks")
PROGRESS = QueueKind("progress", "P", "pending_koreader_progress", "synced_koreader_progress",
                     ("progress", "percentage"), "Progress", "Synced progress",
                     latest_value=True)

#: the five queues in the order of every label and report: S, A, R, B, P
QUEUE_KINDS: tuple[QueueKind, ...] = (SESSIONS, ANNOTATIONS, RATINGS, BOOKMARKS, PROGRESS)
QUEUE_BY_NAME: dict[str, QueueKind] = {k.name: k for k in QUEUE_KINDS}
QUEUE_BY_LETTER: dict[str, QueueKind] = {k.letter: k for k in QUEUE_KINDS}


def queue_kind(name: str) -> QueueKind:
    """The queue called ``name`` (``KeyError`` naming it when there is none)."""
    try:
        return QUEUE_BY_NAME[name]
    except KeyError:
        raise KeyError(f"no queue named {name!r}") from None


class QueueState(StrEnum):
    """``state`` of a queue row."""

    PENDING = "pending"
    #: marked just before its upload request is sent (the time is kept)
    IN_FLIGHT = "in_flight"
    #: the request was sent but its outcome is unknown (timeout, lost connection)
    UNCERTAIN = "uncertain"


class EnqueueOutcome(StrEnum):
    """What an ``enqueue_*`` call did with an item."""

    QUEUED = "queued"
    UPDATED = "updated"
    ALREADY_QUEUED = "already_queued"
    ALREADY_SYNCED = "already_synced"
    DISCARDED = "discarded"

    @property
    def is_new(self) -> bool:
        """The queue changed (a new row, or a new value / position for a row)."""
        return self in (EnqueueOutcome.QUEUED, EnqueueOutcome.UPDATED)


class Settlement(StrEnum):
    """How a synced-history (ledger) row was settled (spec §2, synced history)."""

    UPLOADED = "uploaded"
    FOUND_ON_SERVER = "found_on_server"
    SERVER_NEWER = "server_newer"
    DELETED_ON_SERVER = "deleted_on_server"


class MatchedBy(StrEnum):
    """How a cached book got its BookLore ID (``book_cache.matched_by``)."""

    FINGERPRINT = "fingerprint"
    ISBN = "isbn"
    MANUAL = "manual"
    PLUGIN = "plugin"


class LinkKind(StrEnum):
    """Kinds of kept links (the user's decisions kept beside the cache)."""

    MANUAL = "manual"
    PLUGIN = "plugin"


class ReconcileKind(StrEnum):
    """The kinds of first-contact reconciliation (spec §4.1 "First contact")."""

    SESSIONS = "sessions"
    BOOK_NOTES = "book_notes"
    PDF_BOOKMARKS = "pdf_bookmarks"


#: clearing a ledger forgets the reconciliation records of its kind (spec §4.5)
RECONCILE_KIND_OF_LEDGER: dict[str, ReconcileKind] = {
    SESSIONS.name: ReconcileKind.SESSIONS,
    ANNOTATIONS.name: ReconcileKind.BOOK_NOTES,
    BOOKMARKS.name: ReconcileKind.PDF_BOOKMARKS,
}


class Account(StrEnum):
    """The two server accounts (booklore-api §2.1)."""

    BOOKLORE = "booklore"
    KOREADER = "koreader"

    @property
    def display_name(self) -> str:
        return "BookLore account" if self is Account.BOOKLORE else "KOReader account"


class ExitCode(IntEnum):
    """Process exit statuses (spec §6.3)."""

    OK = 0
    FAILED = 1
    USAGE = 2
    OFFLINE = 3
    LOCKED = 4
    INTERRUPTED = 130


__all__ = [
    "ANNOTATIONS", "BOOKMARKS", "PROGRESS", "QUEUE_BY_LETTER", "QUEUE_BY_NAME", "QUEUE_KINDS",
    "RATINGS", "RECONCILE_KIND_OF_LEDGER", "SESSIONS", "Account", "EnqueueOutcome", "ExitCode",
    "LinkKind", "MatchedBy", "QueueKind", "QueueState", "ReconcileKind", "Settlement",
    "queue_kind",
]

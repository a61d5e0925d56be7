"""The BookLore client facade (booklore-api.md; sync-and-cache.md §4.1, §6.1, §7).

One :class:`BookLoreClient` per run: one pooled HTTP connection (``transport``), lazy
JWT login (``bearer``), KOReader header auth (``auth``), the capability probe
(``probe``; the client alone owns the server's capabilities), and one module per
resource group (``books``, ``sessions``, ``notes``, ``bookmarks``, ``ratings``,
``progress``, ``status``). Errors are the types of :mod:`booklore_sync.booklore.errors`.
"""

from __future__ import annotations

from .bookmarks import BookmarksMixin
from .books import BooksMixin
from .notes import NotesMixin
from .probe import ProbeMixin
from .progress import ProgressMixin
from .ratings import RatingOutcome, RatingsMixin
from .sessions import SessionsMixin
from .status import StatusMixin
from .transport import normalize_base_url

__all__ = ["BookLoreClient", "RatingOutcome", "normalize_base_url"]


class BookLoreClient(
    ProbeMixin,
    BooksMixin,
    SessionsMixin,
    RatingsMixin,
    NotesMixin,
    BookmarksMixin,
    ProgressMixin,
    StatusMixin,
):
    """A client for one BookLore (or Grimmory) server and up to two accounts.

    Thread-safe: the engine may call it from several threads; logins and refreshes
    are serialised per (server, user) for the whole process. Secrets (passwords, the
    KOReader key, tokens) are held in memory only, never appear in ``repr``, in
    exception messages or in logs.
    """

    def __enter__(self) -> BookLoreClient:
        return self

"""The :class:`Store` facade: one object over the store's feature modules.

Composition by mixins, on purpose: every feature module (``books``,
``queues``/``ledger``, ``server``) is a class over :class:`StoreCore`, so each
sees the one connection and the one transaction stack, and the 60-odd
methods the rest of the program calls on ``Store`` stay where they were (no
forwarding layer to keep in step).  Composition with sub-objects
(``store.books.upsert(...)``) would have changed every caller; the mixins keep
the seams in the files instead, each module short and about one concern.
"""

from __future__ import annotations

from booklore_sync.store.books import BooksMixin
from booklore_sync.store.queues import QueuesMixin
from booklore_sync.store.server import ServerMixin


class Store(BooksMixin, QueuesMixin, ServerMixin):
    """A connection to one store file (spec §3).  Not shared across threads: open one
    per thread.  ``Store.open(path)`` creates and migrates; ``Store.open_readonly(path)``
    never creates (None when there is no store)."""

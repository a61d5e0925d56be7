"""What the store knows of one server: the capability cache, first-contact
reconciliation records and read-status observations (spec §3, §4.1;
booklore-api §6).

Reconciliation records, status observations and the capability cache belong
to one server URL and account.  :meth:`ServerMixin.bind_server` names that
server; when the name changes they are forgotten.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from booklore_sync.common.vocab import ReconcileKind
from booklore_sync.store.core import StoreCore
from booklore_sync.store.types import ServerIdentity, utcnow

_IDENTITY_KEY = "server_identity"


@dataclass(frozen=True)
class StatusObservation:
    """The read status last seen on the server for a book, and since when."""

    book_id: int
    status: str
    first_seen: str


class ServerMixin(StoreCore):
    # --------------------------------------------------------------- identity
    def server_identity(self) -> ServerIdentity | None:
        """The server (URL and account names) the server-bound records belong to."""
        text = self._meta(_IDENTITY_KEY)
        if text is None:
            return None
        url, username, koreader_username = json.loads(text)
        return ServerIdentity(url, username, koreader_username)

    def bind_server(self, identity: ServerIdentity) -> bool:
        """Name the server this store talks to; True when that changed.

        On a change (the first binding included) the reconciliation records,
        the status observations and the capability cache are forgotten: they
        describe another server or account.
        """
        key = identity.key()
        if self._meta(_IDENTITY_KEY) == key:
            return False
        with self.transaction():
            self._execute("DELETE FROM reconciliations")
            self._execute("DELETE FROM status_observations")
            self._execute("DELETE FROM server_capabilities")
            self._set_meta(_IDENTITY_KEY, key)
        return True

    def _server_key(self) -> str:
        return self._meta(_IDENTITY_KEY) or ""

    # ---------------------------------------------------------- reconciliation
    def is_reconciled(self, book_id: int, kind: ReconcileKind | str) -> bool:
        """First contact for this book and kind was already made with the bound server."""
        return self._execute(
            "SELECT 1 FROM reconciliations WHERE server = ? AND book_id = ? AND kind = ?",
            (self._server_key(), book_id, ReconcileKind(kind).value)).fetchone() is not None

    def reconciled_books(self, kind: ReconcileKind | str) -> set[int]:
        """Every book ID reconciled for ``kind`` with the bound server."""
        return {int(r[0]) for r in self._execute(
            "SELECT book_id FROM reconciliations WHERE server = ? AND kind = ?",
            (self._server_key(), ReconcileKind(kind).value))}

    def record_reconciled(self, book_ids: int | Iterable[int],
                          kind: ReconcileKind | str) -> None:
        """Remember that first contact was made for these books and this kind."""
        ids = [book_ids] if isinstance(book_ids, int) else list(book_ids)
        server, kind_value, now = self._server_key(), ReconcileKind(kind).value, utcnow()
        with self.transaction():
            self._conn.executemany(
                "INSERT OR IGNORE INTO reconciliations(server, book_id, kind, reconciled_at)"
                " VALUES (?,?,?,?)", [(server, i, kind_value, now) for i in ids])

    def forget_reconciliations(self, kind: ReconcileKind | str | None = None) -> int:
        """Forget the reconciliation records (of one kind, or all); their number."""
        with self.transaction():
            if kind is None:
                return self._execute("DELETE FROM reconciliations").rowcount
            return self._execute("DELETE FROM reconciliations WHERE kind = ?",
                                 (ReconcileKind(kind).value,)).rowcount

    # ----------------------------------------------------------- read status
    def observe_status(self, book_id: int, status: str,
                       seen_at: str | None = None) -> StatusObservation:
        """Record the read status seen on the server now; returns the observation.

        The same status seen again keeps its first sighting; a different one
        starts a new observation at ``seen_at`` (default: now).
        """
        server = self._server_key()
        with self.transaction():
            current = self.status_observation(book_id)
            if current is not None and current.status == status:
                return current
            first_seen = seen_at or utcnow()
            self._execute(
                "INSERT INTO status_observations(server, book_id, status, first_seen)"
                " VALUES (?,?,?,?) ON CONFLICT(server, book_id) DO UPDATE SET"
                " status = excluded.status, first_seen = excluded.first_seen",
                (server, book_id, status, first_seen))
        return StatusObservation(book_id, status, first_seen)

    def status_observation(self, book_id: int) -> StatusObservation | None:
        row = self._execute(
            "SELECT status, first_seen FROM status_observations WHERE server = ? AND book_id = ?",
            (self._server_key(), book_id)).fetchone()
        return None if row is None else StatusObservation(book_id, row[0], row[1])

    # ----------------------------------------------------------- capabilities
    def get_capabilities(self, server_url: str) -> dict[str, Any] | None:
        row = self._execute("SELECT data FROM server_capabilities WHERE server_url = ?",
                            (server_url,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def put_capabilities(self, server_url: str, data: dict[str, Any]) -> None:
        self._execute(
            "INSERT INTO server_capabilities(server_url, data, stored_at) VALUES (?,?,?)"
            " ON CONFLICT(server_url) DO UPDATE SET data = excluded.data,"
            " stored_at = excluded.stored_at", (server_url, json.dumps(data), utcnow()))

    def drop_capabilities(self, server_url: str) -> None:
        self._execute("DELETE FROM server_capabilities WHERE server_url = ?", (server_url,))


class CapabilityCache:
    """Adapter giving the client's capability-cache protocol (get/put/drop) over a store."""

    def __init__(self, store: ServerMixin):
        self._store = store

    def get(self, server_url: str) -> dict[str, Any] | None:
        return self._store.get_capabilities(server_url)

    def put(self, server_url: str, data: dict[str, Any]) -> None:
        self._store.put_capabilities(server_url, data)

    def drop(self, server_url: str) -> None:
        self._store.drop_capabilities(server_url)

"""The core of the emulator's state: the attributes every part shares, ids, lookups, the
UNIQUE(user, book, cfi) index and the request log."""

from __future__ import annotations

import copy
import itertools
import threading
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..faults import FaultTable
from .base import LOG_LIMIT, _redact


class StateCore:
    """Everything the emulator knows.  ``lock`` guards all of it; each request runs with
    the lock held, so each request is atomic."""

    lock: threading.RLock
    clock: Clock
    faults: FaultTable
    mode: str
    flavour: str
    server_version: str
    version_tuple: tuple[int, int, int]
    bug_compat: bool
    spa_fallback: bool
    koreader_sync: bool
    latency_ms: int
    access_token_ttl_override: int | None
    refresh_token_ttl: int
    accounts: dict[str, tuple[str, str] | None]
    secret: bytes
    state_file: Path | None
    refresh_tokens: dict[str, dict[str, Any]]
    issued_access: list[str]
    expired_tokens: set[str]
    broken_tokens: set[str]
    limiter: dict[tuple[str, str], list[float]]
    log: list[dict[str, Any]]
    log_seq: int
    dirty: bool
    data: dict[str, Any]
    seed_data: dict[str, Any]
    _unique: dict[str, dict[tuple[int, int, str], int]]
    _by_book: tuple[dict[int, dict[str, Any]], int, dict[int, list[dict[str, Any]]]] | None
    _save_lock: threading.Lock

    @property
    def version(self) -> str:
        """The healthcheck's ``version``: the release tag (``v2.3.0``; grimmory ``v3.2.4``)."""
        return "v" + self.server_version

    def has(self, since: tuple[int, int, int]) -> bool:
        """Whether the reproduced release has what arrived in release ``since``."""
        return self.version_tuple >= since

    def _next_id(self, table: str, wanted: Any = None) -> int:
        ids = self.data["nextIds"]
        if wanted is not None:
            wanted = int(wanted)
            ids[table] = max(ids[table], wanted + 1)
            return wanted
        value = ids[table]
        ids[table] = value + 1
        return value


    # ------------------------------------------------------------------ lookups

    def find_user(self, username: str) -> dict[str, Any] | None:
        low = username.lower()
        for u in self.data["users"].values():
            if u["username"].lower() == low:
                return u
        return None

    def find_koreader(self, username: str) -> dict[str, Any] | None:
        low = username.lower()
        for acc in self.data["koreaderAccounts"].values():
            if acc["username"].lower() == low:
                return acc
        return None

    def live_book(self, book_id: int) -> dict[str, Any] | None:
        book = self.data["books"].get(book_id)
        if book is None or book["deleted"]:
            return None
        return book

    def books_by_hash(self, digest: str) -> list[dict[str, Any]]:
        low = digest.lower()
        found = []
        for book in self.data["books"].values():
            if book["deleted"]:
                continue
            for f in book["files"]:
                if f["isBook"] and f["currentHash"] and f["currentHash"].lower() == low:
                    found.append(book)
                    break
        return found

    def can_access(self, user: dict[str, Any], book: dict[str, Any]) -> bool:
        return user["isAdmin"] or book["libraryId"] in user["libraryIds"]

    def progress_for(self, user_id: int, book_id: int) -> dict[str, Any]:
        """The user's progress row of a book, created when missing."""
        row = self.progress_row(user_id, book_id, create=True)
        assert row is not None
        return row

    def progress_row(self, user_id: int, book_id: int, create: bool = False) -> dict[str, Any] | None:
        key = (int(user_id), int(book_id))
        row = self.data["progress"].get(key)
        if row is None and create:
            row = {
                "userId": key[0], "bookId": key[1], "personalRating": None, "readStatus": None,
                "dateFinished": None, "lastReadTime": None, "koreaderProgress": None,
                "koreaderPercent": None, "koreaderDevice": None, "koreaderDeviceId": None,
                "koreaderLastSyncTime": None,
            }
            self.data["progress"][key] = row
        return row

    # ------------------------------------------------------------------ UNIQUE(user, book, cfi)

    @staticmethod
    def cfi_key(cfi: str) -> str:
        # MariaDB's default collation: case-insensitive, trailing spaces ignored
        return cfi.rstrip(" ").lower()

    def _unique_index(self, table: str) -> dict[tuple[int, int, str], int]:
        idx = self._unique.get(table)
        if idx is None:
            idx = {}
            for rec in self.data[table].values():
                if rec.get("cfi") is not None:
                    idx[(rec["userId"], rec["bookId"], self.cfi_key(rec["cfi"]))] = rec["id"]
            self._unique[table] = idx
        return idx

    def unique_exists(self, table: str, user_id: int, book_id: int, cfi: str) -> bool:
        return (user_id, book_id, self.cfi_key(cfi)) in self._unique_index(table)

    def unique_add(self, table: str, rec: dict[str, Any]) -> None:
        if rec.get("cfi") is not None:
            self._unique_index(table)[(rec["userId"], rec["bookId"], self.cfi_key(rec["cfi"]))] = rec["id"]

    def sessions_of_book(self, book_id: int, user_id: int) -> list[dict[str, Any]]:
        """The user's sessions of one book (the stored records, not copies), through an
        index by book kept up to date as sessions are added — a real server reads them by
        an indexed column, so a read costs the same however many sessions others hold.
        Sessions are only ever added (ids grow, dicts keep their order); anything else
        (a reset, a loaded state, renumbered books) replaces the table or invalidates."""
        with self.lock:
            table = self.data["sessions"]
            built = self._by_book
            index: dict[int, list[dict[str, Any]]] = {}
            seen = 0
            if built is not None and built[0] is table and built[1] <= len(table):
                _, seen, index = built
            if seen < len(table):
                for rec in itertools.islice(table.values(), seen, None):
                    index.setdefault(rec["bookId"], []).append(rec)
            self._by_book = (table, len(table), index)
            return [r for r in index.get(book_id, []) if r["userId"] == user_id]

    def invalidate(self) -> None:
        """Forget derived indexes (after any change not made through ``unique_add``)."""
        self._unique.clear()
        self._by_book = None


    # ------------------------------------------------------------------ request log

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.log_seq += 1
            entry["seq"] = self.log_seq
            if entry.get("body") is not None:
                entry["body"] = _redact(entry["body"])
            self.log.append(entry)
            if len(self.log) > LOG_LIMIT:
                del self.log[: len(self.log) - LOG_LIMIT]
            return entry


    def mark_dirty(self) -> None:
        self.dirty = True


    def _table(self, table: str, book_id: int | None = None, user_id: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            rows = [r for _k, r in sorted(self.data[table].items())]
            if book_id is not None:
                rows = [r for r in rows if r.get("bookId") == book_id]
            if user_id is not None:
                rows = [r for r in rows if r.get("userId") == user_id]
            return copy.deepcopy(rows)

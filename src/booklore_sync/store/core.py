"""The store's core: the connection, its pragmas, the migrations runner,
transactions and the small ``store_meta`` facts.  The lock is in ``lock.py``.

The feature modules (``books``, ``queues``, ``ledger``, ``server``) are mixins
over :class:`StoreCore`; :class:`booklore_sync.store.Store` combines them.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from booklore_sync.store.files import private_dir, private_file
from booklore_sync.store.migrations import LATEST, MIGRATIONS
from booklore_sync.store.types import StoreError, StoreVersionError, utcnow

S = TypeVar("S", bound="StoreCore")


class StoreCore:
    """A connection to one store file.  Not shared across threads: open one per thread."""

    def __init__(self, conn: sqlite3.Connection, path: Path, *, read_only: bool = False):
        self._conn = conn
        self.path = path
        self.read_only = read_only
        self._depth = 0
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls: type[S], path: str | Path, *, migrate: bool = True) -> S:
        """Open (creating it, 0600 in a 0700 folder, when missing) and migrate the store."""
        path = Path(path)
        try:
            private_dir(path.parent)
            private_file(path)
            conn = sqlite3.connect(str(path), timeout=30, isolation_level=None,
                                   check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store {path}: {exc}") from exc
        return cls._setup(conn, path, migrate=migrate, read_only=False)

    @classmethod
    def open_readonly(cls: type[S], path: str | Path) -> S | None:
        """The existing store for reading, or None when there is none (nothing is created).

        For ``status``, ``books`` and ``menu --dump`` (spec §3): without a store
        they report an empty state.  A store of an older schema is migrated
        first (the file exists; only its tables change); then every write is
        refused (``PRAGMA query_only``).
        """
        path = Path(path)
        if not path.is_file():
            return None
        try:
            # mode=rw: never create the file, even if it vanished since the check above
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=30,
                                   isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            if not path.exists():
                return None
            raise StoreError(f"cannot open the store {path}: {exc}") from exc
        store = cls._setup(conn, path, migrate=True, read_only=True)
        store._conn.execute("PRAGMA query_only = ON")
        return store

    @classmethod
    def _setup(cls: type[S], conn: sqlite3.Connection, path: Path, *, migrate: bool,
               read_only: bool) -> S:
        conn.row_factory = sqlite3.Row
        store = cls(conn, path, read_only=read_only)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA foreign_keys = ON")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":  # pragma: no cover - exotic filesystems
                raise StoreError(f"the store {path} cannot use WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")
            if migrate:
                store._migrate()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StoreError(
                f"the store {path} is not a readable booklore-sync database: {exc}") from exc
        except StoreError:
            conn.close()
            raise
        return store

    def close(self) -> None:
        self._conn.close()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --------------------------------------------------------------- migrations
    def schema_version(self) -> int:
        has = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='schema_migrations'"
        ).fetchone()
        if not has:
            return 0
        row = self._conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def _migrate(self, upto: int = LATEST) -> None:
        current = self.schema_version()
        if current == 0:
            # a file with tables but no migration record is not ours
            other = self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            ).fetchone()
            if other is not None:
                raise StoreError(
                    f"{self.path} is an SQLite file but not a booklore-sync store "
                    f"(it has a table {other[0]!r} and no schema record)"
                )
        if current > LATEST:
            raise StoreVersionError(
                f"the store {self.path} has schema version {current}, written by a newer "
                f"booklore-sync; this version understands up to {LATEST}. "
                "Upgrade booklore-sync (the file was left untouched)."
            )
        if current >= upto:
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            # re-read under the write lock: another process may have migrated meanwhile
            current = int(self._conn.execute(
                "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0])
            for version, description, script in MIGRATIONS:
                if version <= current or version > upto:
                    continue
                for statement in split_sql(script):
                    self._conn.execute(statement)
                self._conn.execute(
                    "INSERT INTO schema_migrations(version, description, applied_at) VALUES (?,?,?)",
                    (version, description, utcnow()),
                )
            self._conn.execute(f"PRAGMA user_version = {max(current, upto)}")
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise

    # ------------------------------------------------------------- transactions
    @contextmanager
    def transaction(self: S, rollback: bool = False) -> Iterator[S]:
        """Group writes into one transaction; nested calls use savepoints.

        ``rollback=True`` discards everything done inside (used by dry runs).
        """
        with self._lock:
            if self._depth == 0:
                self._conn.execute("BEGIN IMMEDIATE")
                name = None
            else:
                name = f"sp{self._depth}"
                self._conn.execute(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield self
            except BaseException:
                self._depth -= 1
                if name is None:
                    self._conn.execute("ROLLBACK")
                else:
                    self._conn.execute(f"ROLLBACK TO {name}")
                    self._conn.execute(f"RELEASE {name}")
                raise
            self._depth -= 1
            if name is None:
                self._conn.execute("ROLLBACK" if rollback else "COMMIT")
            else:
                if rollback:
                    self._conn.execute(f"ROLLBACK TO {name}")
                self._conn.execute(f"RELEASE {name}")

    def _execute(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    # ------------------------------------------------------------------- meta
    def _meta(self, key: str) -> str | None:
        row = self._execute("SELECT value FROM store_meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def get_meta(self, key: str) -> str | None:
        """A small fact kept in ``store_meta`` (None when unset)."""
        return self._meta(key)

    def set_meta(self, key: str, value: str | None) -> None:
        """Keep (or, with None, forget) a small fact in ``store_meta``."""
        with self.transaction():
            self._set_meta(key, value)

    def _set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._execute("DELETE FROM store_meta WHERE key = ?", (key,))
        else:
            self._execute("INSERT INTO store_meta(key, value) VALUES (?, ?)"
                          " ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))


def split_sql(script: str) -> list[str]:
    """Split a migration script into statements (our scripts have no ';' in literals)."""
    out, buf = [], []
    for line in script.splitlines():
        stripped = line.strip()
        if stripped.startswith("--"):
            continue
        buf.append(line)
        if stripped.endswith(";"):
            stmt = "\n".join(buf).strip().rstrip(";")
            if stmt:
                out.append(stmt)
            buf = []
    tail = "\n".join(buf).strip()
    if tail:
        out.append(tail)
    return out

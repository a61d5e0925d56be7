"""Console entry point.

``status`` and ``menu --dump`` are answered straight from the store file with
the standard library's ``sqlite3`` when they can be (an existing store of the
current schema in ``$BOOKLORE_SYNC_HOME``): spec §9 wants ``status --json``
to start within 2x a bare ``python -c "import sqlite3, json"``.  Anything
else — a store to create or migrate, ``--verbose``, every other command —
goes through the full library and the Typer app.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys

EXIT_OK, EXIT_USAGE = 0, 2


def _quick_connection() -> sqlite3.Connection | None:
    """The store, opened for reading, if it exists at the current schema; else None."""
    from booklore_sync.store.migrations import LATEST
    from booklore_sync.store.queries import STORE_FILE

    home = os.environ.get("BOOKLORE_SYNC_HOME")
    if not home:
        return None
    path = os.path.join(os.path.expanduser(home), STORE_FILE)
    if not os.path.isfile(path):
        return None
    try:
        conn = sqlite3.connect(path, timeout=30)
        conn.execute("PRAGMA busy_timeout = 30000")
        version = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
    except sqlite3.Error:
        return None
    if version != LATEST:
        conn.close()
        return None
    return conn


def run_status(json_out: bool, verbose: bool) -> int:
    if not verbose:
        conn = _quick_connection()
        if conn is not None:
            from booklore_sync.store.queries import summary

            try:
                data = summary(conn)
            except sqlite3.Error:
                data = None
            finally:
                conn.close()
            if data is not None:
                return _print_status(data, json_out)
    from booklore_sync.status import status_data

    store = _open_store()
    if store is None:
        return EXIT_USAGE
    try:
        data = status_data(store, verbose=verbose)
    finally:
        store.close()
    return _print_status(data, json_out)


def _open_store():  # -> Store | None
    """The full store (created or migrated as needed); None after printing the error."""
    from booklore_sync.config import Config, ConfigError
    from booklore_sync.store.db import Store, StoreError

    try:
        return Store.open(Config.load().store_path)
    except (ConfigError, StoreError) as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return None


def _print_status(data: dict, json_out: bool) -> int:
    if json_out:
        sys.stdout.write(json.dumps(data) + "\n")
    else:
        from booklore_sync.status import status_text

        sys.stdout.write(status_text(data) + "\n")
    sys.stdout.flush()
    return EXIT_OK


def run_menu_dump() -> int:
    from booklore_sync.labels import menu_entries
    from booklore_sync.store import queries

    conn = _quick_connection()
    if conn is not None:
        try:
            counts, cache = queries.queue_counts(conn), queries.cache_counts(conn)
        finally:
            conn.close()
    else:
        store = _open_store()
        if store is None:
            return EXIT_USAGE
        try:
            counts, cache = store.counts(), store.cache_counts()
        finally:
            store.close()
    sys.stdout.write("".join(e.dump() + "\n" for e in menu_entries(counts, cache)))
    return EXIT_OK


def _fast_path(argv: list[str]) -> int | None:
    if not argv:
        return None
    if argv[0] == "status" and set(argv[1:]) <= {"--json", "--verbose", "-v"}:
        return run_status("--json" in argv, bool({"--verbose", "-v"} & set(argv[1:])))
    if argv == ["menu", "--dump"]:
        return run_menu_dump()
    return None


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    code = _fast_path(args)
    if code is not None:
        sys.exit(code)
    from booklore_sync.cli import main as cli_main

    cli_main(args)

"""Console entry point.

``status`` and ``menu --dump`` are answered without importing Typer, Rich or
httpx: spec §9 wants ``status --json`` to start within 2x a bare
``python -c "import sqlite3, json"``.  Everything else goes to the Typer app.
"""

from __future__ import annotations

import json
import sys

from booklore_sync.config import Config, ConfigError
from booklore_sync.store.db import Store, StoreError

EXIT_OK, EXIT_USAGE = 0, 2


def out_json(data: dict) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def run_status(json_out: bool, verbose: bool) -> int:
    from booklore_sync.status import status_data, status_text

    try:
        cfg = Config.load()
        store = Store.open(cfg.store_path)
    except (ConfigError, StoreError) as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return EXIT_USAGE
    try:
        data = status_data(store, verbose=verbose)
    finally:
        store.close()
    if json_out:
        out_json(data)
    else:
        sys.stdout.write(status_text(data) + "\n")
    return EXIT_OK


def run_menu_dump() -> int:
    from booklore_sync.labels import menu_entries

    try:
        cfg = Config.load()
        store = Store.open(cfg.store_path)
    except (ConfigError, StoreError) as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return EXIT_USAGE
    try:
        entries = menu_entries(store.counts(), store.cache_counts())
    finally:
        store.close()
    sys.stdout.write("".join(e.dump() + "\n" for e in entries))
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

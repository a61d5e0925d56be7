"""Console entry point.

``status`` and ``menu --dump`` (spec §9: ``status --json`` within 2× a bare
``python -c "import sqlite3, json"``) are answered by the status library and
the labels without loading Typer, the client or the full store, whenever the
store is at the current schema (or absent).  Everything else, and every error,
goes through :mod:`booklore_sync.cli`.  This module imports the library; the
library and the command line never import it.
"""

from __future__ import annotations

import os
import sys

_NOT_SETTINGS = {"BOOKLORE_SYNC_HOME", "BOOKLORE_SYNC_WEB_PASSWORD", "BOOKLORE_SYNC_REALWORLD"}
_STATUS_FLAGS = {"--json", "--verbose", "-v", "-q", "--quiet"}


def _data_dir() -> str | None:
    home = os.environ.get("BOOKLORE_SYNC_HOME")
    if home:
        return os.path.expanduser(home)
    return None  # the platform directories: left to the full command line


def _setting_variables() -> bool:
    """Whether a ``BOOKLORE_SYNC_*`` variable may set a setting (spec §7)."""
    return any(k.startswith("BOOKLORE_SYNC_") and k not in _NOT_SETTINGS for k in os.environ)


def _skip_httpx_command_line() -> None:
    """Spare every start the import of httpx's own command line (``httpx._main`` loads
    click and pygments when they are installed, ~0.1 s): this program never calls it.
    ``httpx.main`` is still there and loads the real one on first use."""
    if "httpx" in sys.modules or "httpx._main" in sys.modules:
        return
    import types

    stub = types.ModuleType("httpx._main")

    def main(*args: object, **kwargs: object) -> object:
        del sys.modules["httpx._main"]
        import importlib

        return importlib.import_module("httpx._main").main(*args, **kwargs)

    stub.main = main  # type: ignore[attr-defined]
    sys.modules["httpx._main"] = stub


def _fast_path(argv: list[str]) -> int | None:
    if not argv or argv[0] not in ("status", "menu"):
        return None
    flags = set(argv[1:])
    if argv[0] == "status" and (not flags <= _STATUS_FLAGS or flags & {"--verbose", "-v"}):
        return None
    if argv[0] == "menu" and not ("--dump" in flags and flags <= {"--dump", "--json", "-q",
                                                                   "--quiet"}):
        return None
    home = _data_dir()
    if home is None or _setting_variables():
        return None  # the full command line checks BOOKLORE_SYNC_* settings (exit 2 if bad)
    from booklore_sync.status import quick_summary

    path = os.path.join(home, "booklore-sync.db")
    if os.path.isfile(path):
        data = quick_summary(path)
        if data is None:
            return None
    else:
        from booklore_sync.status import empty_status

        data = empty_status()
    import json

    if argv[0] == "status":
        if "--json" in flags:
            sys.stdout.write(json.dumps(data) + "\n")
        else:
            from booklore_sync.render import status_text

            sys.stdout.write(status_text(data) + "\n")
        return 0
    from booklore_sync.labels import menu_entries

    entries = menu_entries(data["pending"], data["book_cache"])
    if "--json" in flags:
        sys.stdout.write(json.dumps({"entries": [{"label": e.label, "disabled": not e.enabled}
                                                 for e in entries]}) + "\n")
    else:
        sys.stdout.write("".join(e.dump() + "\n" for e in entries))
    return 0


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    code = _fast_path(args)
    if code is not None:
        sys.stdout.flush()
        sys.exit(code)
    _skip_httpx_command_line()
    from booklore_sync.cli import main as cli_main

    cli_main(args)

"""The ``booklore-sync`` command line: parse, call the library, render.

Contract: the commands, exit codes and JSON of the command-line reference.  With
``--json`` stdout carries exactly one JSON object, also on errors; every message
goes to stderr; no command ever shows a traceback.
"""

from __future__ import annotations

import sys
import traceback
from datetime import datetime
from pathlib import Path

import typer
import typer.main
from typer import _click

from booklore_sync.actions.base import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    INTERNAL,
    INTERRUPTED,
    USAGE,
    ActionError,
)
from booklore_sync.cli import daily, maintenance, setup, tools  # noqa: F401  (registers)
from booklore_sync.cli.app import DAILY, MAINTENANCE, SETUP, TOOLS, advanced_app, app
from booklore_sync.cli.common import G, enable_request_log, err, out_json, split_globals

_PANELS = (SETUP, DAILY, MAINTENANCE, TOOLS)
# --help lists the groups in this order (a command's group is its first appearance)
app.registered_commands.sort(key=lambda c: _PANELS.index(c.rich_help_panel)
                             if c.rich_help_panel in _PANELS else len(_PANELS))


def _report(exc: ActionError) -> int:
    err(f"Error: {exc.message}")
    if G.json:
        out_json(exc.to_json())
    return exc.exit_code


def _log_internal(exc: BaseException) -> str:
    """Write the traceback to the log file; its path (or a note) for the message."""
    from booklore_sync.config import LOG_FILE, home_dir

    try:
        path = home_dir() / LOG_FILE
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(f"--- {datetime.now().astimezone().isoformat(timespec='seconds')} "
                     f"booklore-sync {' '.join(sys.argv[1:2])}\n")
            fh.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return f"details in {path}"
    except OSError:
        return "no log file could be written"


_COMMAND: list[_click.Command] = []


def _command() -> _click.Command:
    """The Click command Typer builds from ``app`` (every command's signature read:
    ~8 ms), built once per process.  Calling it is what ``app(...)`` does, less Typer's
    exception hook: ``run`` handles every exception itself."""
    if not _COMMAND:
        _COMMAND.append(typer.main.get_command(app))
    return _COMMAND[0]


def run(argv: list[str]) -> int:
    args = split_globals(argv)
    if G.verbose:
        enable_request_log()
    try:
        code = _command().main(args=args, prog_name="booklore-sync", standalone_mode=False)
    except _click.exceptions.NoArgsIsHelpError as exc:
        if exc.ctx is not None:
            sys.stderr.write(exc.ctx.get_help() + "\n")
        return _report(ActionError(USAGE, "a command is needed (see the list above)",
                                   EXIT_USAGE)) if G.json else EXIT_USAGE
    except _click.exceptions.UsageError as exc:
        if G.json:
            return _report(ActionError(USAGE, exc.format_message(), EXIT_USAGE))
        exc.show()
        return EXIT_USAGE
    except _click.exceptions.ClickException as exc:
        return _report(ActionError(USAGE, exc.format_message(), exc.exit_code or EXIT_USAGE))
    except (typer.Abort, KeyboardInterrupt):
        return _report(ActionError(INTERRUPTED, "interrupted", EXIT_INTERRUPTED))
    except ActionError as exc:
        return _report(exc)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception as exc:  # never a traceback on the terminal
        where = _log_internal(exc)
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return _report(ActionError(INTERNAL, f"internal error: {type(exc).__name__}: {text} "
                                   f"({where})", EXIT_FAILED))
    return code if isinstance(code, int) else 0


def main(argv: list[str] | None = None) -> None:
    sys.exit(run(sys.argv[1:] if argv is None else argv))


__all__ = ["app", "advanced_app", "main", "run", "Path"]

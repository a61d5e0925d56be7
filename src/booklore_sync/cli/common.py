"""What every command shares: the global options, output on stdout/stderr, the error
object of ``--json``, progress bars, and turning any failure into an exit code."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

import typer

from booklore_sync.actions.base import (
    CONFIG,
    EXIT_USAGE,
    USAGE,
    ActionError,
)
from booklore_sync.config import Config, ConfigError

GLOBAL_FLAGS = {"-v": "verbose", "--verbose": "verbose", "-q": "quiet", "--quiet": "quiet",
                "--json": "json"}


@dataclass
class Globals:
    verbose: bool = False
    quiet: bool = False
    json: bool = False


G = Globals()


def split_globals(argv: list[str]) -> list[str]:
    """Take -v/--verbose, -q/--quiet and --json from anywhere (before ``--``) into G."""
    G.verbose = G.quiet = G.json = False
    rest: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            rest += argv[i:]
            break
        name = GLOBAL_FLAGS.get(arg)
        if name is None:
            rest.append(arg)
        else:
            setattr(G, name, True)
    return rest


def err(message: str) -> None:
    """A message for the user, on stderr (errors and results: never silenced)."""
    typer.echo(message, err=True)


def note(message: str) -> None:
    """A notice on stderr; ``-q`` silences it."""
    if not G.quiet:
        typer.echo(message, err=True)


def out_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def say(line: str) -> None:
    """A human result line: stdout, or stderr under --json (stdout holds the object)."""
    typer.echo(line, err=G.json)


def fail(exc: ActionError, result: dict[str, Any] | None = None) -> NoReturn:
    """End the command: the message on stderr, the error object under --json."""
    err(f"Error: {exc.message}")
    if G.json:
        data = dict(result or {})
        data.update(exc.to_json())
        out_json(data)
    raise typer.Exit(exc.exit_code)


def usage(message: str) -> NoReturn:
    fail(ActionError(USAGE, message, EXIT_USAGE))


def is_interactive() -> bool:
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def load_config() -> Config:
    try:
        cfg = Config.load()
    except ConfigError as exc:
        fail(ActionError(CONFIG, str(exc), EXIT_USAGE))
    show_notices(cfg)
    return cfg


def show_notices(cfg: Config) -> None:
    while cfg.notices:
        note(cfg.notices.pop(0))


def checked_url(cfg: Config) -> str | None:
    """The configured URL, normalised (its notices shown); exit 2 when malformed."""
    try:
        url = cfg.url
    except ConfigError as exc:
        fail(ActionError(CONFIG, str(exc), EXIT_USAGE))
    show_notices(cfg)
    return url


@contextmanager
def progress_bar(label: str, *, then: str | None = None) -> Iterator[Any]:
    """A transient progress bar on stderr when it is a terminal (not under -q); yields
    ``update(done, total)``, or None without a bar.

    With ``then`` (sync: ``progress_bar("Resolving books", then="Uploading")``) it
    yields a :class:`~booklore_sync.actions.sync.SyncProgress`: its ``resolving``
    counts show as ``label n/N``, its ``uploading`` counts as ``then n/N``."""
    if G.quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        console=Console(stderr=True), transient=True)
    task = progress.add_task(label, total=None)

    def counter(description: str) -> Callable[[int, int], None]:
        def update(done: int, total: int) -> None:
            progress.update(task, description=description, completed=done,
                            total=total or None)
        return update

    with progress:
        if then is None:
            yield counter(label)
            return
        from booklore_sync.actions.sync import SyncProgress

        yield SyncProgress(resolving=counter(label), uploading=counter(then))


# ------------------------------------------------------------------ -v
class _RequestLines(logging.Filter):
    """Pass the per-request lines of ``booklore_sync.http``: ``METHOD PATH → STATUS (N ms)``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == "booklore_sync.http"


def enable_request_log() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(_RequestLines())
    for name in ("booklore_sync.http",):
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        logger.propagate = False

"""The Typer application and its top-level options."""

from __future__ import annotations

import contextlib
import sys
from typing import Optional

import typer

from booklore_sync import __version__

SETUP, DAILY, MAINTENANCE, TOOLS = "Set-up", "Daily", "Maintenance", "Tools"
JSON_HELP = "Print one JSON object on stdout (messages go to stderr)."
#: the options many commands share (one definition; Typer only reads them)
JSON_OPTION: bool = typer.Option(False, "--json", help=JSON_HELP)
YES_OPTION: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation.")

app = typer.Typer(
    no_args_is_help=False,
    invoke_without_command=True,
    add_completion=True,
    # a traceback must never show local variables: they may hold a password or a token
    pretty_exceptions_show_locals=False,
    help="Deliver KOReader reading data (sessions, highlights, notes, bookmarks, ratings, "
    "progress) to a BookLore server, exactly once.",
    epilog="Every command also takes -v/--verbose (one stderr line per request), "
    "-q/--quiet and --json, before or after its name.\n\n"
    "Examples:\n\n  booklore-sync login --url http://booklore.local:6060 --username me "
    "--koreader-username me\n\n  booklore-sync scan /media/KOBOeReader\n\n"
    "  booklore-sync sync\n\n  booklore-sync menu",
    context_settings={"help_option_names": ["-h", "--help"]},
    options_metavar="[OPTIONS]",
)
advanced_app = typer.Typer(no_args_is_help=False, invoke_without_command=True,
                           pretty_exceptions_show_locals=False,
                           help="Re-match all books; clear synced history.",
                           epilog="Examples:\n\n  booklore-sync advanced rematch-all --yes\n\n"
                           "  booklore-sync advanced clear-history --sessions --yes")
app.add_typer(advanced_app, name="advanced", rich_help_panel="Maintenance")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"booklore-sync {__version__}")
        raise typer.Exit(0)


def help_needs_command(ctx: typer.Context, what: str) -> None:
    """Without a command: the help on stderr (never on stdout), then a usage error."""
    if ctx.invoked_subcommand is not None or ctx.resilient_parsing:
        return
    with contextlib.redirect_stdout(sys.stderr):
        ctx.get_help()
    from booklore_sync.cli.common import usage

    usage(f"{what} needs a command (see the list above)")


@advanced_app.callback()
def _advanced(ctx: typer.Context) -> None:
    """Re-match all books; clear synced history."""
    help_needs_command(ctx, "advanced")


@app.callback()
def _top(
    ctx: typer.Context,
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True,
        help="Print booklore-sync and its version, then exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="One stderr line per request (method, path, status, "
                                 "time); for status, the pending items by book."),
    quiet: bool = typer.Option(False, "--quiet", "-q",
                               help="Only errors on stderr: no progress bars or notices."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Deliver KOReader reading data to a BookLore server, exactly once."""
    help_needs_command(ctx, "booklore-sync")

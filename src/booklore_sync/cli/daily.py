"""Daily commands: scan, sync, status, match, menu, watch."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from booklore_sync.actions.base import (
    CONFIG,
    EXIT_INTERRUPTED,
    EXIT_OFFLINE,
    EXIT_USAGE,
    INTERRUPTED,
    LOCKED,
    OFFLINE,
    USAGE,
    ActionError,
)
from booklore_sync.cli.app import DAILY, JSON_HELP, app
from booklore_sync.cli.common import (
    G,
    checked_url,
    err,
    fail,
    is_interactive,
    load_config,
    note,
    out_json,
    progress_bar,
    say,
    usage,
)
from booklore_sync.store import QUEUES


@app.command(rich_help_panel=DAILY, epilog="Examples:\n\n  booklore-sync status\n\n"
             "  booklore-sync status --verbose\n\n  booklore-sync status --json")
def status(json_out: bool = typer.Option(False, "--json", help=JSON_HELP)) -> None:
    """View Pending Sessions: book cache, pending uploads, progress history (read-only). With -v, the pending items grouped by book with the reason each waits."""
    from booklore_sync import render  # loads the client (httpx): only when needed
    from booklore_sync.status import read_status
    from booklore_sync.store import StoreError

    cfg = load_config()
    try:
        data = read_status(str(cfg.store_path), verbose=G.verbose)
    except StoreError as exc:
        fail(ActionError(CONFIG, str(exc), EXIT_USAGE))
    if G.json:
        out_json(data)
    else:
        typer.echo(render.status_text(data))


@app.command(rich_help_panel=DAILY, epilog="Examples:\n\n  booklore-sync scan /media/KOBOeReader"
             "\n\n  booklore-sync scan ~/koreader --dry-run --json")
def scan(
    source: Path = typer.Argument(..., help="A mounted e-reader, a synced KOReader folder, "
                                  "or KOReader's data directory."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be queued; change "
                                 "nothing."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Read KOReader's data and queue every new session, highlight, note, bookmark, rating and reading position (never writes to SOURCE, never contacts the server)."""
    from booklore_sync.actions.base import open_store
    from booklore_sync.koreader.scan import SourceError, scan_source

    cfg = load_config()
    try:
        with open_store(cfg) as store, progress_bar("Scanning") as on_progress:
            report = scan_source(store, source, cfg.settings(), dry_run=dry_run,
                                 on_progress=on_progress)
    except SourceError as exc:
        empty = {"books": 0, "queued": {q: 0 for q in QUEUES}, "errors": [], "warnings": []}
        fail(ActionError(USAGE, str(exc), EXIT_USAGE), result=empty)
    data = report.to_json()
    for problem in data.get("errors", []):
        err(f"warning: {problem['file']}: {problem['error']} (skipped)")
    for warning in report.announced():
        note(f"note: {warning.get('file', '')}: "
             f"{warning.get('warning', warning.get('error', ''))}")
    if G.json:
        out_json(data)
        return
    queued = data["queued"]
    verb = "would queue" if dry_run else "queued"
    typer.echo(f"{data['books']} books; {verb}: " + ", ".join(
        f"{queued[q]} {q}" for q in QUEUES) + (" (dry run: nothing changed)" if dry_run else ""))


@app.command(rich_help_panel=DAILY, epilog="Examples:\n\n  booklore-sync sync\n\n"
             "  booklore-sync sync --dry-run\n\n  booklore-sync -v sync --json")
def sync(
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be sent, per queue "
                                 "and book; send nothing."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Sync Pending Now: upload every queue to BookLore (ratings, annotations, bookmarks, progress, sessions), exactly once."""
    from booklore_sync import render  # loads the client (httpx): only when needed
    from booklore_sync.actions.sync import run_sync

    cfg = load_config()
    url = checked_url(cfg)
    if dry_run:
        _dry_run(cfg)
        return
    with progress_bar("Resolving books", then="Uploading") as on_progress:
        outcome = run_sync(cfg, on_progress=on_progress)
    report = outcome.report
    for line in render.sync_problems(report, outcome.url or url):
        err(line)
    code = report.exit_code
    if outcome.interrupted:
        code = EXIT_INTERRUPTED
        err(f"Interrupted: {render.toast(report)} What was confirmed stays synced; the rest "
            "stays queued.")
    if G.json:
        data = report.to_json()
        kind = _sync_error_kind(report, outcome.interrupted)
        if kind is not None:
            data.update({"error": {"type": kind, "message": _first_error(report, outcome)},
                         "exit_code": code})
        out_json(data)
    show = not (report.offline or report.locked or
                (report.config_errors and not report.synced and not report.failed))
    if show and not outcome.interrupted:
        for line in render.sync_summary(report):
            say(line)
    raise typer.Exit(code)


def _sync_error_kind(report, interrupted: bool) -> str | None:  # type: ignore[no-untyped-def]
    if interrupted:
        return INTERRUPTED
    if report.locked:
        return LOCKED
    if report.offline:
        return OFFLINE
    if report.rejected_accounts or report.sync_off:
        return "account"
    if report.missing_accounts or report.config_errors:
        return CONFIG
    return None


def _first_error(report, outcome) -> str:  # type: ignore[no-untyped-def]
    from booklore_sync import render

    lines = render.sync_problems(report, outcome.url)
    errors = [line for line in lines if line.startswith("Error: ")]
    text = (errors or lines or ["interrupted"])[0]
    return text.removeprefix("Error: ")


def _dry_run(cfg) -> None:  # type: ignore[no-untyped-def]
    from booklore_sync import render  # loads the client (httpx): only when needed
    from booklore_sync.actions.dry_run import dry_run

    result = dry_run(cfg)
    for line in result.messages:
        err(line)
    if G.json:
        data = result.to_json()
        if result.error is not None:
            data.update(result.error.to_json())
        out_json(data)
    elif result.error is None:
        for line in render.dry_run_lines(result.to_json()):
            typer.echo(line)
        for line in result.book_lines:
            typer.echo(line)
    if result.error is not None:
        err(f"Error: {result.error.message}")
        raise typer.Exit(result.error.exit_code)
    if result.offline:
        raise typer.Exit(EXIT_OFFLINE)


@app.command(rich_help_panel=DAILY, epilog="Examples:\n\n  booklore-sync match\n\n"
             "  booklore-sync match --auto-only --json")
def match(
    auto_only: bool = typer.Option(False, "--auto-only",
                                   help="Only the automatic step (fingerprint, ISBN)."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Match Unmatched Books: by fingerprint and ISBN, then (on a terminal) by hand. Pending items of newly matched books are uploaded before it returns."""
    from booklore_sync import render  # loads the client (httpx): only when needed
    from booklore_sync.actions.match import run_match

    cfg = load_config()
    checked_url(cfg)
    interactive = is_interactive() and not auto_only and not G.json
    prompter = None
    if interactive:
        from booklore_sync.interactive import TerminalPrompter

        prompter = TerminalPrompter()
    outcome = run_match(cfg, interactive=interactive, prompter=prompter,
                        hint_without_terminal=not auto_only)
    for message in outcome.messages:
        if outcome.error is not None and message == outcome.error.message:
            err(f"Error: {message}")
        else:
            note(message)
    if outcome.uploads.synced or outcome.uploads.failed:
        for line in render.sync_summary(outcome.uploads):
            note(f"uploaded: {line}")
    if G.json:
        data = outcome.to_json()
        if outcome.error is not None:
            data.update(outcome.error.to_json())
        if outcome.interrupted:
            data.update(ActionError(INTERRUPTED, outcome.messages[-1], EXIT_INTERRUPTED).to_json())
        out_json(data)
    else:
        typer.echo(render.match_summary(outcome.matched, outcome.still_unmatched))
    raise typer.Exit(outcome.exit_code)


@app.command(rich_help_panel=DAILY, epilog="Examples:\n\n  booklore-sync menu\n\n"
             "  booklore-sync menu --dump")
def menu(
    dump: bool = typer.Option(False, "--dump", help="Print the entries and their labels."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP + " (with --dump only)"),
) -> None:
    """The interactive Sync & Cache menu (needs a terminal)."""
    cfg = load_config()
    if dump:
        from booklore_sync.labels import menu_entries
        from booklore_sync.status import menu_counts
        from booklore_sync.store import StoreError

        try:
            counts, cache = menu_counts(str(cfg.store_path))
        except StoreError as exc:
            fail(ActionError(CONFIG, str(exc), EXIT_USAGE))
        entries = menu_entries(counts, cache)
        if G.json:
            out_json({"entries": [{"label": e.label, "disabled": not e.enabled}
                                  for e in entries]})
        else:
            typer.echo("\n".join(e.dump() for e in entries))
        return
    if G.json:
        usage("--json needs --dump: the interactive menu has no JSON form")
    if not is_interactive():
        usage("the menu needs a terminal; use the plain commands (see --help) or `menu --dump`")
    from booklore_sync.menu import run_menu

    raise typer.Exit(run_menu(cfg))


@app.command(rich_help_panel=DAILY, epilog="Examples:\n\n  booklore-sync watch /media/KOBOeReader"
             "\n\n  booklore-sync watch ~/koreader --interval 600 --json")
def watch(
    source: Path = typer.Argument(..., help="The KOReader folder to watch."),
    interval: float = typer.Option(300, "--interval", min=1,
                                   help="Scan + sync at least this often (seconds)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON line per cycle."),
) -> None:
    """Scan + sync whenever SOURCE changes, and at least every interval; survives the server being away; SIGINT/SIGTERM stop it cleanly (exit 0)."""
    from booklore_sync.terminal import run_watch

    cfg = load_config()
    checked_url(cfg)
    if not source.exists():
        usage(f"{source} does not exist")
    raise typer.Exit(run_watch(cfg, source, interval, json_lines=G.json, quiet=G.quiet))


@app.command(rich_help_panel=DAILY, epilog="Examples:\n\n  booklore-sync serve\n\n"
             "  booklore-sync serve ~/Sync/KOReader --host 0.0.0.0 --password-file "
             "~/.config/booklore-sync/web-password")
def serve(
    source: Optional[Path] = typer.Argument(None, help="Also watch this KOReader folder "
                                            "(as `watch` does) and show its recent cycles."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (any non-"
                             "loopback address needs a password)."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port (0 = a free one)."),
    interval: float = typer.Option(300, "--interval", min=1,
                                   help="With SOURCE: scan + sync at least this often (s)."),
    password_file: Optional[Path] = typer.Option(
        None, "--password-file", help="Read the page's password from the first line of FILE "
        "(else BOOKLORE_SYNC_WEB_PASSWORD)."),
    json_out: bool = typer.Option(False, "--json", help='First line {"url": ...}.'),
) -> None:
    """The Sync & Cache menu as a web page; its first stdout line is its URL."""
    from booklore_sync.web import run_serve

    raise typer.Exit(run_serve(source=source, host=host, port=port, interval=interval,
                               password_file=password_file, json_out=json_out or G.json))

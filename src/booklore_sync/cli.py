"""The ``booklore-sync`` command line: parse, call the library, print.

Contract: spec §6 (commands, exit codes, JSON).  With ``--json`` stdout
carries exactly one JSON object; every message goes to stderr.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

from booklore_sync.config import ACCOUNT_LABELS, Config, ConfigError
from booklore_sync.store import QUEUES, Store, StoreError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    # a traceback must never show local variables: they may hold a password or a token
    pretty_exceptions_show_locals=False,
    help="Deliver KOReader reading data (sessions, highlights, notes, bookmarks, ratings, "
    "progress) to a BookLore server, exactly once.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
advanced_app = typer.Typer(no_args_is_help=True, pretty_exceptions_show_locals=False,
                           help="Re-match all books; clear synced history.")
app.add_typer(advanced_app, name="advanced")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_OFFLINE, EXIT_LOCKED = 0, 1, 2, 3, 4


def err(message: str) -> None:
    """A message for the user, on stderr."""
    typer.echo(message, err=True)


def out_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def is_interactive() -> bool:
    try:
        return sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def load_config() -> Config:
    try:
        return Config.load()
    except ConfigError as exc:
        err(f"Error: {exc}")
        raise typer.Exit(EXIT_USAGE) from None


@contextmanager
def open_store(cfg: Config) -> Iterator[Store]:
    try:
        store = Store.open(cfg.store_path)
    except StoreError as exc:
        err(f"Error: {exc}")
        raise typer.Exit(EXIT_USAGE) from None
    try:
        yield store
    finally:
        store.close()


def _selected(flags: dict[str, bool], all_flag: bool, names: tuple[str, ...]) -> list[str]:
    if all_flag:
        return list(names)
    return [name for name in names if flags.get(name)]


# --------------------------------------------------------------------- status
@app.command()
def status(
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (spec §6.4)."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="List pending items with book, retries and last error."),
) -> None:
    """View Pending Sessions: book cache, pending uploads, progress history (read-only)."""
    from booklore_sync.entry import run_status

    raise typer.Exit(run_status(json_out, verbose))


# ----------------------------------------------------------------------- scan
@app.command()
def scan(
    source: Path = typer.Argument(..., help="A mounted e-reader, a synced KOReader folder, "
                                  "or KOReader's data directory."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be queued; change "
                                 "nothing."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (spec §6.4)."),
) -> None:
    """Read KOReader's data and queue every new session, highlight, note, bookmark,
    rating and reading position (never writes to SOURCE, never contacts the server)."""
    from booklore_sync.koreader.scan import SourceError, scan_source

    cfg = load_config()
    with open_store(cfg) as store, progress_bar("Scanning", enabled=not json_out) as on_progress:
        try:
            report = scan_source(store, source, cfg.settings(), dry_run=dry_run,
                                 on_progress=on_progress)
        except SourceError as exc:
            err(f"Error: {exc}")
            raise typer.Exit(EXIT_USAGE) from None
    data = report.to_json()
    for problem in data.get("errors", []):
        err(f"warning: {problem['file']}: {problem['error']} (skipped)")
    if json_out:
        out_json(data)
        return
    queued = data["queued"]
    verb = "would queue" if dry_run else "queued"
    typer.echo(f"{data['books']} books; {verb}: " + ", ".join(
        f"{queued[q]} {q}" for q in QUEUES) + (" (dry run: nothing changed)" if dry_run else ""))
    for warning in data.get("warnings", []):
        err(f"note: {warning.get('file', '')}: {warning.get('error', warning.get('warning', ''))}")


@contextmanager
def progress_bar(label: str, enabled: bool = True) -> Iterator[Any]:
    """A transient progress bar on stderr when it is a terminal, else nothing."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(),
                        console=Console(stderr=True), transient=True)
    task = progress.add_task(label, total=None)
    with progress:
        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


# ---------------------------------------------------------------------- watch
@app.command()
def watch(
    source: Path = typer.Argument(..., help="The KOReader folder to watch."),
    interval: float = typer.Option(300, "--interval", min=1,
                                   help="Scan + sync at least this often (seconds)."),
) -> None:
    """Scan + sync whenever SOURCE changes, and at least every interval; survives the
    server being away; SIGINT/SIGTERM stop it cleanly."""
    from booklore_sync.watch import run_watch

    cfg = load_config()
    if not source.exists():
        err(f"Error: {source} does not exist")
        raise typer.Exit(EXIT_USAGE)
    raise typer.Exit(run_watch(cfg, source, interval))


# ---------------------------------------------------------------------- serve
@app.command()
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
    """The Sync & Cache menu as a web page; first stdout line: its URL.

    Examples: `booklore-sync serve`; `booklore-sync serve ~/KOReader --host 0.0.0.0
    --password-file ~/.config/booklore-sync/web-password`."""
    from booklore_sync.web import run_serve

    raise typer.Exit(run_serve(source=source, host=host, port=port, interval=interval,
                               password_file=password_file, json_out=json_out))


# ----------------------------------------------------------------------- sync
@app.command()
def sync(
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object (spec §6.4)."),
) -> None:
    """Sync Pending Now: upload every queue to BookLore (ratings, annotations, bookmarks,
    progress, sessions), exactly once."""
    from booklore_sync.sync.runner import sync_once

    cfg = load_config()
    with progress_bar("Syncing", enabled=not json_out) as on_progress:
        report = sync_once(cfg, on_progress=on_progress)
    print_sync_report(report, json_out=json_out)
    raise typer.Exit(report.exit_code)


def print_sync_report(report: Any, *, json_out: bool) -> None:
    for message in report.messages:
        err(message)
    for problem in report.config_errors:
        err(f"Error: {problem}")
    for account in sorted(report.missing_accounts):
        var = "BOOKLORE_USERNAME / BOOKLORE_PASSWORD" if account == "booklore" else \
            "BOOKLORE_KOREADER_USERNAME / BOOKLORE_KOREADER_PASSWORD"
        err(f"Error: the {ACCOUNT_LABELS[account]} is not configured, so the items that need it stay "
            f"queued (set {var}, or run `booklore-sync login`).")
    for _account, message in sorted(report.rejected_accounts.items()):
        err(f"Error: {message}")
    if json_out:
        out_json(report.to_json())
        return
    if report.offline or report.locked:
        return
    if report.config_errors and not report.synced and not report.failed:
        return
    for line in report.summary_lines():
        typer.echo(line)


# ---------------------------------------------------------------------- match
@app.command()
def match(
    auto_only: bool = typer.Option(False, "--auto-only",
                                   help="Only the automatic step (fingerprint, ISBN)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Match Unmatched Books: by fingerprint and ISBN, then (on a terminal) by hand.
    Pending items of newly matched books are uploaded before it returns."""
    from booklore_sync.sync.matching import run_match

    cfg = load_config()
    interactive = is_interactive() and not auto_only and not json_out
    prompter = None
    if interactive:
        from booklore_sync.sync.manual import TerminalPrompter

        prompter = TerminalPrompter()
    outcome = run_match(cfg, interactive=interactive, prompter=prompter)
    for message in outcome.messages:
        err(message)
    if outcome.uploads.synced or outcome.uploads.failed:
        for line in outcome.uploads.summary_lines():
            err(f"uploaded: {line}")
    if json_out:
        out_json(outcome.to_json())
    else:
        typer.echo(f"{outcome.matched} newly matched, {outcome.still_unmatched} still unmatched.")
    raise typer.Exit(outcome.exit_code)


@app.command()
def link(
    book: str = typer.Argument(..., help="The book's file path or fingerprint (as cached)."),
    booklore_id: int = typer.Argument(..., help="The BookLore book ID."),
) -> None:
    """Match one cached book to a BookLore book ID by hand."""
    from booklore_sync.sync.matching import LinkError, run_link

    cfg = load_config()
    try:
        message = run_link(cfg, book, booklore_id)
    except LinkError as exc:
        err(f"Error: {exc}")
        raise typer.Exit(exc.code) from None
    typer.echo(message)


@advanced_app.command("rematch-all")
def rematch_all(
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Re-match All Books in Cache: forget every stored book ID and resolve them again."""
    from booklore_sync.sync.matching import run_rematch

    if not yes and not is_interactive():
        err("Error: this forgets every stored book ID (manual links included); add --yes "
            "to confirm (no terminal to ask on).")
        raise typer.Exit(EXIT_USAGE)
    cfg = load_config()

    shown: list[str] = []

    def confirm(warnings: list[str]) -> bool:
        for w in warnings:
            err(w)
        shown.extend(warnings)
        if yes:
            return True
        return typer.confirm("Forget every stored book ID (manual links included) and match "
                             "all books again?", default=False, err=True)

    code, result, messages = run_rematch(cfg, confirm=confirm)
    for m in messages:
        if m not in shown:
            err(m)
    if result is not None:
        typer.echo(f"Re-matched: {result.rematched}; changed: {result.changed}; now unmatched: "
                   f"{result.now_unmatched}; newly matched: {result.newly_matched}; "
                   f"still unmatched: {result.unmatched}.")
    raise typer.Exit(code)


# ------------------------------------------------------------- clear-pending
@app.command("clear-pending")
def clear_pending(
    sessions: bool = typer.Option(False, "--sessions", help="Clear pending_sessions."),
    annotations: bool = typer.Option(False, "--annotations", help="Clear pending_annotations."),
    ratings: bool = typer.Option(False, "--ratings", help="Clear pending_ratings."),
    bookmarks: bool = typer.Option(False, "--bookmarks", help="Clear pending_bookmarks."),
    progress: bool = typer.Option(False, "--progress", help="Clear pending_koreader_progress."),
    all_: bool = typer.Option(False, "--all", help="Clear all five queues."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Clear Pending: permanently discard queued items (no undo)."""
    cfg = load_config()
    flags = {"sessions": sessions, "annotations": annotations, "ratings": ratings,
             "bookmarks": bookmarks, "progress": progress}
    chosen = _selected(flags, all_, QUEUES)
    interactive = is_interactive()
    with open_store(cfg) as store:
        if not chosen:
            if not interactive:
                err("Error: name the queues to clear (--sessions, --annotations, --ratings, "
                    "--bookmarks, --progress or --all); the checklist needs a terminal.")
                raise typer.Exit(EXIT_USAGE)
            from booklore_sync.menu import clear_pending_dialog

            clear_pending_dialog(store)
            return
        if not yes:
            if not interactive:
                err("Error: clearing pending items cannot be undone; add --yes to confirm "
                    "(no terminal to ask on).")
                raise typer.Exit(EXIT_USAGE)
            counts = store.counts()
            what = ", ".join(f"{counts[q]} {q}" for q in chosen)
            if not typer.confirm(f"Permanently discard {what}? They will not be uploaded to "
                                 "BookLore. There is no undo.", default=False, err=True):
                err("Cancelled; nothing was cleared.")
                return
        cleared = store.clear_pending(chosen)
    for q in chosen:
        typer.echo(f"Cleared {cleared[q]} pending {q}.")


# --------------------------------------------------------------- clear-cache
@app.command("clear-cache")
def clear_cache() -> None:
    """Clear Cache: remove every book_cache entry at once (queues and history stay)."""
    cfg = load_config()
    with open_store(cfg) as store:
        removed = store.clear_cache().books
    typer.echo(f"Cleared the book cache ({removed} books). Pending items and synced history "
               "are untouched; the cache rebuilds on the next scan.")


# ---------------------------------------------------------- advanced history
HISTORY_CHOICES = ("sessions", "annotations", "bookmarks", "ratings", "progress")


@advanced_app.command("clear-history")
def clear_history(
    sessions: bool = typer.Option(False, "--sessions", help="Historical sessions."),
    annotations: bool = typer.Option(False, "--annotations", help="Synced annotations."),
    bookmarks: bool = typer.Option(False, "--bookmarks", help="Synced bookmarks."),
    ratings: bool = typer.Option(False, "--ratings", help="Rating sync history."),
    progress: bool = typer.Option(False, "--progress", help="Synced progress."),
    discarded: bool = typer.Option(False, "--discarded",
                                   help="The list of items discarded by Clear Pending."),
    all_: bool = typer.Option(False, "--all", help="The five ledgers (not --discarded)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Clear synced-history ledgers (pending queues are not touched)."""
    from booklore_sync.menu import HISTORY_WARNING, clear_history_dialog

    cfg = load_config()
    flags = {"sessions": sessions, "annotations": annotations, "bookmarks": bookmarks,
             "ratings": ratings, "progress": progress}
    chosen = _selected(flags, all_, HISTORY_CHOICES)
    if discarded:
        chosen.append("discarded")
    interactive = is_interactive()
    with open_store(cfg) as store:
        if not chosen:
            if not interactive:
                err("Error: name the ledgers to clear (--sessions, --annotations, --bookmarks, "
                    "--ratings, --progress, --discarded or --all); the dialog needs a terminal.")
                raise typer.Exit(EXIT_USAGE)
            clear_history_dialog(store)
            return
        err(HISTORY_WARNING)
        if not yes:
            if not interactive:
                err("Error: add --yes to confirm (no terminal to ask on).")
                raise typer.Exit(EXIT_USAGE)
            if not typer.confirm("Clear the selected history?", default=False, err=True):
                err("Cancelled; nothing was cleared.")
                return
        cleared = store.clear_history(chosen)
    for name in chosen:
        typer.echo(f"Cleared {cleared[name]} rows of {_ledger_name(name)}.")


def _ledger_name(name: str) -> str:
    from booklore_sync.menu import HISTORY_LABELS

    return HISTORY_LABELS[name].lower()


# ---------------------------------------------------------------------- menu
@app.command()
def menu(
    dump: bool = typer.Option(False, "--dump", help="Print the entries and their labels."),
) -> None:
    """The interactive Sync & Cache menu."""
    if dump:
        from booklore_sync.entry import run_menu_dump

        raise typer.Exit(run_menu_dump())
    if not is_interactive():
        err("Error: the menu needs a terminal; use the plain commands (see --help) or "
            "`menu --dump`.")
        raise typer.Exit(EXIT_USAGE)
    from booklore_sync.menu import run_menu

    cfg = load_config()
    raise typer.Exit(run_menu(cfg))


# ----------------------------------------------------------------------- demo
@app.command()
def demo(
    keep: Optional[Path] = typer.Option(None, "--keep", help="Keep the sample device, home and "
                                        "store in this directory (default: a temporary one, "
                                        "removed at the end)."),
) -> None:
    """Run the whole pipeline on generated sample data against the emulator."""
    from booklore_sync.demo import run_demo

    raise typer.Exit(run_demo(keep))


# ------------------------------------------------------------------- emulator
@app.command()
def emulator(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(6060, "--port", help="Port (0 = a free one)."),
    library: Optional[Path] = typer.Option(None, "--library", help="Serve the book files in DIR."),
    mode: str = typer.Option("fork", "--mode", help="fork (the KOReader-plugin fork), booklore "
                             "(stock BookLore; also 'upstream'), grimmory, or fork-2675."),
    server_version: Optional[str] = typer.Option(None, "--server-version", help="The release to "
                                                 "reproduce, X.Y.Z (default: the newest of the mode)."),
    koreader_sync: str = typer.Option("off", "--koreader-sync", help="on|off: the Sync switch of "
                                      "the KOReader accounts it creates (off, as on a real server)."),
    latency_ms: int = typer.Option(0, "--latency-ms", help="Answer every request after MS ms."),
    json_out: bool = typer.Option(False, "--json", help="First line: one JSON object (url, mode, "
                                  "server_version, accounts)."),
    state: Optional[Path] = typer.Option(None, "--state", help="Keep the state in this JSON file."),
    seed: Optional[Path] = typer.Option(None, "--seed", help="Seed books/accounts from a JSON file."),
    user: str = typer.Option("demo:demo", "--user", help="BookLore user NAME:PASSWORD."),
    koreader_user: str = typer.Option("demo:demo", "--koreader-user",
                                      help="KOReader account NAME:PASSWORD."),
    admin: str = typer.Option("admin:admin", "--admin", help="Admin user NAME:PASSWORD."),
    control: Optional[bool] = typer.Option(
        None, "--control/--no-control",
        help="Serve the /__emulator/ control API (default: only when bound to loopback)."),
    no_spa_fallback: bool = typer.Option(False, "--no-spa-fallback",
                                         help="Unknown GET paths answer 404, not the web page."),
    fixed_bugs: bool = typer.Option(False, "--fixed-bugs", help="Behave as if BookLore's known "
                                    "bugs were fixed."),
) -> None:
    """Run the BookLore emulator (first stdout line: its base URL)."""
    from booklore_sync.emulator.cli import serve_emulator

    raise typer.Exit(serve_emulator(
        host=host, port=port, library=library, mode=mode, state_file=state, user=user,
        koreader_user=koreader_user, admin=admin, control=control,
        no_spa_fallback=no_spa_fallback, fixed_bugs=fixed_bugs, seed=seed,
        server_version=server_version, koreader_sync=koreader_sync, latency_ms=latency_ms,
        json_output=json_out))


# --------------------------------------------------------------------- config
@app.command("config")
def config_cmd(
    key: Optional[str] = typer.Argument(None, help="A setting, e.g. sessions.gap_seconds."),
    value: Optional[str] = typer.Argument(None, help="New value to write to config.toml."),
) -> None:
    """Print the effective settings, one setting, or set one."""
    from booklore_sync.config import ACCOUNTS, known_keys, mask

    cfg = load_config()
    if key is not None and key not in known_keys():
        err(f"Error: unknown setting {key!r}. Known settings: {', '.join(known_keys())}")
        raise typer.Exit(EXIT_USAGE)
    if key is not None and value is not None:
        try:
            stored = cfg.set(key, value)
        except ConfigError as exc:
            err(f"Error: {exc}")
            raise typer.Exit(EXIT_USAGE) from None
        typer.echo(f"{key} = {_show(stored)}  (written to {cfg.config_path})")
        return
    if key is not None:
        typer.echo(_show(cfg.get(key)))
        return
    typer.echo(f"# home: {cfg.home}")
    for k in known_keys():
        typer.echo(f"{k} = {_show(cfg.get(k))}")
    for account in ACCOUNTS:
        source = cfg.password_source(account)
        typer.echo(f"# {ACCOUNT_LABELS[account]} password: {mask(source)}"
                   + (f" (from {source})" if source else ""))


def _show(value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


# ---------------------------------------------------------------------- login
@app.command()
def login(
    url: Optional[str] = typer.Option(None, "--url", help="BookLore base URL."),
    username: Optional[str] = typer.Option(None, "--username", help="BookLore user name."),
    koreader_username: Optional[str] = typer.Option(
        None, "--koreader-username", help="KOReader sync account name."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the passwords from stdin, one line each, "
        "BookLore first."),
    store_in_file: bool = typer.Option(
        False, "--store-in-file", help="Keep the passwords in a file readable only by you "
        "(instead of the OS keyring)."),
) -> None:
    """Store the server URL and the accounts; passwords go to the OS keyring."""
    from booklore_sync.login import run_login

    cfg = load_config()
    raise typer.Exit(run_login(cfg, url=url, username=username,
                               koreader_username=koreader_username,
                               password_stdin=password_stdin, store_in_file=store_in_file))


def main(argv: list[str] | None = None) -> None:
    app(args=sys.argv[1:] if argv is None else argv, prog_name="booklore-sync")


__all__ = ["app", "main", "Path"]

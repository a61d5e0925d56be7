"""Maintenance commands: books, link, clear-pending, clear-cache, advanced …"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import typer

from booklore_sync.actions.base import ActionError
from booklore_sync.cli.app import JSON_OPTION, MAINTENANCE, YES_OPTION, advanced_app, app
from booklore_sync.cli.common import (
    G,
    checked_url,
    err,
    fail,
    is_interactive,
    load_config,
    note,
    out_json,
    usage,
)
from booklore_sync.store import QUEUES


def _clear(run: Callable[[], Any], chosen: list[str], line: Callable[[str, int], str]) -> None:
    """Run a confirmed clear; its JSON, or a line per cleared name."""
    try:
        result = run()
    except ActionError as exc:
        fail(exc)
    if G.json:
        out_json(result.to_json())
        return
    for name in chosen:
        typer.echo(line(name, result.counts[name]))


def _ask(question: str) -> bool:
    from booklore_sync.interactive import confirm

    return confirm(question, default=False)


@app.command(rich_help_panel=MAINTENANCE, epilog="Examples:\n\n  booklore-sync books\n\n"
             "  booklore-sync books --unmatched --json")
def books(
    unmatched: bool = typer.Option(False, "--unmatched", help="Only books without a BookLore ID."),
    json_out: bool = JSON_OPTION,
) -> None:
    """List the cached books: path, fingerprint, BookLore ID (or -), how matched, pending counts."""
    from booklore_sync.actions.base import session
    from booklore_sync.actions.books import list_books

    cfg = load_config()
    found = []
    if cfg.store_path.exists():
        try:
            with session(cfg, lock=False, client=False) as s:
                found = list_books(s.store, unmatched_only=unmatched)
        except ActionError as exc:
            fail(exc)
    if G.json:
        out_json({"books": [b.to_json() for b in found]})
        return
    if not found:
        typer.echo("No books cached" + (" without a match" if unmatched else "")
                   + ". Run `booklore-sync scan SOURCE` first." if not unmatched else ".")
        return
    for b in found:
        pending = ", ".join(f"{n}{q[0].upper()}" for q, n in b.pending.items() if n)
        typer.echo(f"{b.fingerprint}  {b.book_id if b.book_id is not None else '-':>6}  "
                   f"{b.matched_by or '-':<11}  {b.path or b.title or ''}"
                   + (f"  [{pending}]" if pending else ""))


@app.command(rich_help_panel=MAINTENANCE, epilog="Examples:\n\n  booklore-sync link "
             "59d481d168cca6267322f150c5f6a2a3 42\n\n  booklore-sync link "
             "/mnt/onboard/Books/leaves.epub 42\n\n  booklore-sync link \"Leaves of Grass\" 42")
def link(
    book: str = typer.Argument(..., help="A fingerprint, a local or device path, a file name, "
                               "or a title of a cached book."),
    booklore_id: int = typer.Argument(..., help="The BookLore book ID."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Match one cached book to a BookLore book ID by hand (its items go with the next sync)."""
    from booklore_sync.actions.match import link_book

    cfg = load_config()
    checked_url(cfg)
    try:
        result = link_book(cfg, book, booklore_id)
    except ActionError as exc:
        fail(exc)
    if G.json:
        out_json(result.to_json())
    else:
        typer.echo(result.message)


def _selected(flags: dict[str, bool], all_flag: bool, names: tuple[str, ...]) -> list[str]:
    if all_flag:
        return list(names)
    return [name for name in names if flags.get(name)]


def _choose(chosen: list[str], dialog: Callable[[Any], Any], missing: str,
            ) -> tuple[Any, list[str], bool] | None:
    """The configuration, the names chosen by flag and whether a terminal may ask; None
    when no name was given and the dialog ran instead (no terminal: a usage error)."""
    cfg = load_config()
    interactive = is_interactive() and not G.json
    if not chosen:
        if not interactive:
            usage(f"name the {missing}")
        dialog(cfg)
        return None
    return cfg, chosen, interactive


@app.command("clear-pending", rich_help_panel=MAINTENANCE, epilog="Examples:\n\n"
             "  booklore-sync clear-pending\n\n  booklore-sync clear-pending --sessions --yes")
def clear_pending(
    sessions: bool = typer.Option(False, "--sessions", help="Clear pending sessions."),
    annotations: bool = typer.Option(False, "--annotations", help="Clear pending annotations."),
    ratings: bool = typer.Option(False, "--ratings", help="Clear pending ratings."),
    bookmarks: bool = typer.Option(False, "--bookmarks", help="Clear pending bookmarks."),
    progress: bool = typer.Option(False, "--progress", help="Clear pending progress updates."),
    all_: bool = typer.Option(False, "--all", help="Clear all five queues."),
    yes: bool = YES_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Clear Pending: permanently discard queued items (no undo)."""
    from booklore_sync.actions import clear
    from booklore_sync.menu import clear_pending_dialog

    flags = {"sessions": sessions, "annotations": annotations, "ratings": ratings,
             "bookmarks": bookmarks, "progress": progress}
    picked = _choose(_selected(flags, all_, QUEUES), clear_pending_dialog,
                     "queues to clear (--sessions, --annotations, --ratings, --bookmarks, "
                     "--progress or --all); the checklist needs a terminal")
    if picked is None:
        return
    cfg, chosen, interactive = picked
    if not yes:
        if not interactive:
            usage("clearing pending items cannot be undone; add --yes to confirm "
                  "(no terminal to ask on)")
        counts = clear.pending_counts(cfg)
        what = ", ".join(f"{counts[q]} {q}" for q in chosen)
        if not _ask(f"Permanently discard {what}? They will not be uploaded to BookLore. "
                    "There is no undo."):
            err("Cancelled; nothing was cleared.")
            return
    from booklore_sync import render

    _clear(lambda: clear.clear_pending(cfg, chosen), chosen, render.pending_cleared)


@app.command("clear-cache", rich_help_panel=MAINTENANCE,
             epilog="Example:\n\n  booklore-sync clear-cache")
def clear_cache(json_out: bool = JSON_OPTION) -> None:
    """Clear Cache: remove every cached book at once (queues, history and manual links stay; the next scan rebuilds it)."""
    from booklore_sync.actions import clear

    cfg = load_config()
    try:
        result = clear.clear_cache(cfg)
    except ActionError as exc:
        fail(exc)
    if G.json:
        out_json(result.to_json())
        return
    from booklore_sync import render

    typer.echo(render.cache_cleared(result.cleared, result.links_kept))


@advanced_app.command("rematch-all", epilog="Example:\n\n  booklore-sync advanced "
                      "rematch-all --yes")
def rematch_all(
    yes: bool = YES_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Re-match All Books in Cache: forget every stored book ID (manual links included) and resolve them again."""
    from booklore_sync.actions.match import run_rematch

    if not yes and (not is_interactive() or G.json):
        usage("this forgets every stored book ID (manual links included); add --yes to "
              "confirm (no terminal to ask on)")
    cfg = load_config()
    checked_url(cfg)
    shown: list[str] = []

    def confirm(warnings: list[str]) -> bool:
        for w in warnings:
            note(w)
        shown.extend(warnings)
        return yes or _ask("Forget every stored book ID (manual links included) and match "
                           "all books again?")

    code, result, messages = run_rematch(cfg, confirm=confirm)
    rest = [m for m in messages if m not in shown]
    if code != 0 and rest:
        kind = "locked" if code == 4 else ("config" if code == 2 else "offline")
        fail(ActionError(kind, rest[-1], code))
    for m in rest:
        note(m)
    if result is None:
        if G.json:
            out_json({"rematched": 0, "changed": 0, "now_unmatched": 0})
        return
    if G.json:
        out_json({"rematched": result.rematched, "changed": result.changed,
                  "now_unmatched": result.now_unmatched})
        return
    typer.echo(f"Re-matched: {result.rematched}; changed: {result.changed}; now unmatched: "
               f"{result.now_unmatched}; newly matched: {result.newly_matched}; "
               f"still unmatched: {result.unmatched}.")


@advanced_app.command("clear-history", epilog="Examples:\n\n  booklore-sync advanced "
                      "clear-history --sessions --yes\n\n  booklore-sync advanced clear-history "
                      "--discarded --yes")
def clear_history(
    sessions: bool = typer.Option(False, "--sessions", help="Historical sessions."),
    annotations: bool = typer.Option(False, "--annotations", help="Synced annotations."),
    bookmarks: bool = typer.Option(False, "--bookmarks", help="Synced bookmarks."),
    ratings: bool = typer.Option(False, "--ratings", help="Rating sync history."),
    progress: bool = typer.Option(False, "--progress", help="Synced progress."),
    discarded: bool = typer.Option(False, "--discarded",
                                   help="The list of items discarded by Clear Pending."),
    all_: bool = typer.Option(False, "--all", help="The five ledgers (not --discarded)."),
    yes: bool = YES_OPTION,
    json_out: bool = JSON_OPTION,
) -> None:
    """Clear synced-history ledgers (pending queues are not touched)."""
    from booklore_sync.actions import clear
    from booklore_sync.menu import HISTORY_WARNING, clear_history_dialog

    flags = {"sessions": sessions, "annotations": annotations, "bookmarks": bookmarks,
             "ratings": ratings, "progress": progress}
    picked = _choose(_selected(flags, all_, clear.HISTORY_CHOICES) + ["discarded"] * discarded,
                     clear_history_dialog,
                     "ledgers to clear (--sessions, --annotations, --bookmarks, --ratings, "
                     "--progress, --discarded or --all); the dialog needs a terminal")
    if picked is None:
        return
    cfg, chosen, interactive = picked
    err(HISTORY_WARNING)
    if not yes:
        if not interactive:
            usage("add --yes to confirm (no terminal to ask on)")
        if not _ask("Clear the selected history?"):
            err("Cancelled; nothing was cleared.")
            return
    from booklore_sync import render

    _clear(lambda: clear.clear_history(cfg, chosen), chosen, render.history_cleared)

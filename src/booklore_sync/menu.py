"""The interactive Sync & Cache menu and its dialogs (terminal only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from booklore_sync import render
from booklore_sync.actions.base import EXIT_INTERRUPTED, ActionError
from booklore_sync.store import QUEUE_TABLES, QUEUES

QUEUE_LABELS = {
    "sessions": "Sessions",
    "annotations": "Annotations",
    "ratings": "Ratings",
    "bookmarks": "Bookmarks",
    "progress": "Progress",
}
HISTORY_LABELS = render.HISTORY_LABELS
CLEAR_PENDING_WARNING = (
    "Warning: cleared items are permanently deleted and will not be uploaded to BookLore. "
    "There is no undo."
)
HISTORY_WARNING = (
    "Warning: synced history is what stops an item being sent twice. Clearing a ledger lets "
    "the next scan queue those items again; the next sync then settles what the server "
    "still holds and sends again what it no longer has. Clearing the discarded list lets "
    "the next scan queue items you cleared from the pending queues. Pending queues are not "
    "touched (use Clear Pending for those)."
)


def _say(text: str) -> None:
    print(text, flush=True)


def _buttons(message: str) -> bool:
    """*Clear Selected* or *Cancel*; Cancel has the pointer, so Enter alone discards nothing."""
    from booklore_sync.interactive import choice, select

    cancel = choice("Cancel", "cancel")
    action = select(message, [choice("Clear Selected", "clear"), cancel], default=cancel)
    return action == "clear"


def _clear_dialog(cfg: Any, warning: str, choices: list[Any], question: str, confirm: str,
                  run: Callable[[Any, list[str]], Any],
                  line: Callable[[str, int], str]) -> dict[str, int] | None:
    """The warning, a checklist, Clear Selected or Cancel; then ``run(cfg, selected)`` and
    ``line(name, count)`` for each cleared name."""
    from booklore_sync.interactive import checkbox

    _say(warning)
    selected = checkbox(question, choices)
    if not selected or not _buttons(confirm):
        _say("Cancelled; nothing was cleared.")
        return None
    try:
        result = run(cfg, selected)
    except ActionError as exc:
        _say(exc.message)
        return None
    for name in selected:
        _say(line(name, result.counts[name]))
    counts: dict[str, int] = result.counts
    return counts


def clear_pending_dialog(cfg: Any) -> dict[str, int] | None:
    """Checklist of the non-empty queues, all pre-selected; Clear Selected or Cancel."""
    from booklore_sync.actions import clear
    from booklore_sync.interactive import choice

    counts = clear.pending_counts(cfg)
    present = [name for name in QUEUES if counts[name] > 0]
    if not present:
        _say("Nothing is pending: all queues are empty.")
        return None
    choices = [choice(f"{QUEUE_LABELS[n]} ({counts[n]}) — {QUEUE_TABLES[n]}", n) for n in present]
    for c in choices:
        c.checked = True
    return _clear_dialog(cfg, CLEAR_PENDING_WARNING, choices, "Clear which pending queues?",
                         "Clear the checked queues?", clear.clear_pending,
                         render.pending_cleared)


def clear_history_dialog(cfg: Any) -> dict[str, int] | None:
    """Advanced → Clear…: the six ledgers, nothing pre-selected."""
    from booklore_sync.actions import clear
    from booklore_sync.interactive import choice

    history = clear.history_counts(cfg)
    choices = [choice(f"{HISTORY_LABELS[n]} ({history[n]})", n) for n in HISTORY_LABELS]
    return _clear_dialog(cfg, HISTORY_WARNING, choices, "Clear which synced-history records?",
                         "Clear the checked history?", clear.clear_history,
                         render.history_cleared)


# ------------------------------------------------------------------ the menu
def run_menu(cfg: Any) -> int:
    """Tools → BookLore Sync → Sync & Cache, in a terminal; Ctrl-C exits 130."""
    try:
        return _loop(cfg)
    except KeyboardInterrupt:
        _say("Cancelled.")
        return EXIT_INTERRUPTED


def _loop(cfg: Any) -> int:
    from booklore_sync.interactive import choice, select
    from booklore_sync.labels import (
        ADVANCED,
        CLEAR_CACHE,
        CLEAR_PENDING,
        MATCH,
        SYNC,
        VIEW,
        menu_entries,
    )
    from booklore_sync.status import menu_counts

    handlers: dict[str, Callable[[Any], Any]] = {
        SYNC: _menu_sync, VIEW: _menu_view, MATCH: _menu_match,
        CLEAR_PENDING: clear_pending_dialog, ADVANCED: _menu_advanced,
        CLEAR_CACHE: _menu_clear_cache}
    last: str | None = None
    while True:
        counts, cache = menu_counts(str(cfg.store_path))
        entries = menu_entries(counts, cache)
        choices = [choice(e.label, e.action, disabled=None if e.enabled else "greyed out")
                   for e in entries]
        choices.append(choice("Close", "close"))
        enabled = {e.action for e in entries if e.enabled}
        default = next((c for c in choices if c.value == last), None) if last in enabled else None
        action = select("Sync & Cache", choices, default=default)
        if action in (None, "close"):
            return 0
        last = action
        handler = handlers.get(action)
        if handler is not None:
            handler(cfg)


def _menu_sync(cfg: Any) -> None:
    from booklore_sync.actions.sync import run_sync

    outcome = run_sync(cfg)
    report = outcome.report
    for line in render.sync_problems(report, outcome.url):
        _say(render.for_menu(line))
    if outcome.interrupted:
        raise KeyboardInterrupt
    if not (report.offline or report.locked):
        _say(render.toast(report))
        for line in render.sync_summary(report):
            _say("  " + render.for_menu(line))


def _menu_view(cfg: Any) -> None:
    from booklore_sync.interactive import pause
    from booklore_sync.status import read_status

    _say(render.status_text(read_status(str(cfg.store_path))))
    pause()


def _menu_match(cfg: Any) -> None:
    from booklore_sync.actions.match import run_match
    from booklore_sync.interactive import TerminalPrompter

    outcome = run_match(cfg, interactive=True, prompter=TerminalPrompter())
    for message in outcome.messages:
        _say(render.for_menu(message))
    if outcome.interrupted:
        raise KeyboardInterrupt
    _say(render.match_summary(outcome.matched, outcome.still_unmatched))


def _menu_clear_cache(cfg: Any) -> None:
    from booklore_sync.actions import clear

    try:
        result = clear.clear_cache(cfg)
    except ActionError as exc:
        _say(exc.message)
        return
    _say(render.cache_cleared(result.cleared, result.links_kept))


def _menu_advanced(cfg: Any) -> None:
    from booklore_sync.interactive import choice, select

    while True:
        action = select("Advanced", [
            choice("Re-match All Books in Cache", "rematch"),
            choice("Clear...", "clear"),
            choice("Back", "back"),
        ])
        if action in (None, "back"):
            return
        if action == "clear":
            clear_history_dialog(cfg)
        elif action == "rematch":
            _menu_rematch(cfg)


def _menu_rematch(cfg: Any) -> None:
    from booklore_sync.actions.match import run_rematch
    from booklore_sync.interactive import confirm as ask

    def confirm(warnings: list[str]) -> bool:
        for w in warnings:
            _say(w)
        return ask("Forget every stored book ID (manual links included) and match all books "
                   "again?", default=False)

    code, result, messages = run_rematch(cfg, confirm=confirm)
    for m in messages:
        if not m.startswith("This server cannot"):
            _say(m)
    if result is not None:
        _say(f"Re-matched: {result.rematched}; changed: {result.changed}; now unmatched: "
             f"{result.now_unmatched}; newly matched: {result.newly_matched}.")

"""The interactive Sync & Cache menu and its dialogs (terminal only)."""

from __future__ import annotations

from typing import Any

from booklore_sync.store import QUEUE_TABLES, QUEUES, Store

QUEUE_LABELS = {
    "sessions": "Sessions",
    "annotations": "Annotations",
    "ratings": "Ratings",
    "bookmarks": "Bookmarks",
    "progress": "Progress",
}
HISTORY_LABELS = {
    "sessions": "Historical sessions",
    "annotations": "Synced annotations",
    "bookmarks": "Synced bookmarks",
    "ratings": "Rating sync history",
    "progress": "Synced progress",
    "discarded": "Discarded items (Clear Pending list)",
}
CLEAR_PENDING_WARNING = (
    "Warning: cleared items are permanently deleted and will not be uploaded to BookLore. "
    "There is no undo."
)
HISTORY_WARNING = (
    "Warning: synced history is what stops an item being sent twice. Clearing a ledger lets "
    "the next scan queue those items again and the next sync upload them again; BookLore "
    "does not deduplicate sessions or book notes, so those would appear twice. Clearing the "
    "discarded list lets the next scan queue items you cleared from the pending queues. "
    "Pending queues are not touched (use Clear Pending for those)."
)


def _q() -> Any:
    import questionary

    return questionary


def _say(text: str) -> None:
    print(text, flush=True)


def clear_pending_dialog(store: Store) -> dict[str, int] | None:
    """Checklist of the non-empty queues, all pre-selected; Clear Selected or Cancel."""
    q = _q()
    counts = store.counts()
    present = [name for name in QUEUES if counts[name] > 0]
    if not present:
        _say("Nothing is pending: all queues are empty.")
        return None
    _say(CLEAR_PENDING_WARNING)
    choices = [q.Choice(f"{QUEUE_LABELS[n]} ({counts[n]}) — {QUEUE_TABLES[n]}", value=n,
                        checked=True) for n in present]
    selected = q.checkbox("Clear which pending queues? (space toggles, enter continues)",
                          choices=choices).ask()
    if selected is None:
        _say("Cancelled; nothing was cleared.")
        return None
    action = q.select("Clear the checked queues?",
                      choices=["Clear Selected", "Cancel"]).ask()
    if action != "Clear Selected" or not selected:
        _say("Cancelled; nothing was cleared.")
        return None
    cleared = store.clear_pending(selected)
    for name in selected:
        _say(f"Cleared {cleared[name]} pending {name}.")
    return cleared


def clear_history_dialog(store: Store) -> dict[str, int] | None:
    """Advanced → Clear…: the six ledgers, nothing pre-selected."""
    q = _q()
    history = store.history_counts()
    _say(HISTORY_WARNING)
    choices = [q.Choice(f"{HISTORY_LABELS[n]} ({history[n]})", value=n, checked=False)
               for n in HISTORY_LABELS]
    selected = q.checkbox("Clear which synced-history records?", choices=choices).ask()
    if not selected:
        _say("Cancelled; nothing was cleared.")
        return None
    action = q.select("Clear the checked history?", choices=["Clear Selected", "Cancel"]).ask()
    if action != "Clear Selected":
        _say("Cancelled; nothing was cleared.")
        return None
    cleared = store.clear_history(selected)
    for name in selected:
        _say(f"Cleared {cleared[name]} rows of {HISTORY_LABELS[name].lower()}.")
    return cleared


# ------------------------------------------------------------------ the menu
def _with_back_keys(question: Any) -> Any:
    """Esc and q leave a list (answer None), as 'back'."""
    from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings

    kb = KeyBindings()

    @kb.add("escape", eager=True)
    @kb.add("q")
    def _back(event: Any) -> None:
        event.app.exit(result=None)

    app = question.application
    app.key_bindings = merge_key_bindings([app.key_bindings, kb])
    return question


def _select(message: str, choices: list[Any]) -> Any:
    q = _q()
    return _with_back_keys(q.select(message, choices=choices, instruction="(arrows, Enter; Esc/q back)")).ask()


def _pause() -> None:
    _q().press_any_key_to_continue("Press any key to close").ask()


def _open_store(cfg: Any) -> Store:
    return Store.open(cfg.store_path)


def run_menu(cfg: Any) -> int:
    """Tools → BookLore Sync → Sync & Cache, in a terminal."""
    from booklore_sync.labels import (
        ADVANCED,
        CLEAR_CACHE,
        CLEAR_PENDING,
        MATCH,
        SYNC,
        VIEW,
        menu_entries,
    )

    q = _q()
    while True:
        with _open_store(cfg) as store:
            entries = menu_entries(store.counts(), store.cache_counts())
        choices = [q.Choice(e.label, value=e.action, disabled=None if e.enabled else "greyed out")
                   for e in entries]
        choices.append(q.Choice("Close", value="close"))
        action = _select("Sync & Cache", choices)
        if action in (None, "close"):
            return 0
        if action == SYNC:
            _menu_sync(cfg)
        elif action == VIEW:
            _menu_view(cfg)
        elif action == MATCH:
            _menu_match(cfg)
        elif action == CLEAR_PENDING:
            with _open_store(cfg) as store:
                clear_pending_dialog(store)
        elif action == ADVANCED:
            _menu_advanced(cfg)
        elif action == CLEAR_CACHE:
            with _open_store(cfg) as store:
                removed = store.clear_cache().books
            _say(f"Cache cleared ({removed} books).")


def _menu_sync(cfg: Any) -> None:
    from booklore_sync.sync.runner import sync_once

    report = sync_once(cfg)
    for message in report.messages + report.config_errors:
        _say(message)
    for account in sorted(report.missing_accounts):
        _say(f"The {'BookLore' if account == 'booklore' else 'KOReader'} account is not "
             "configured; its items stay queued.")
    for message in report.rejected_accounts.values():
        _say(message)
    if not (report.offline or report.locked):
        _say(f"Synced {report.synced} items, {report.failed} failed.")
        for line in report.summary_lines():
            _say("  " + line)


def _menu_view(cfg: Any) -> None:
    from booklore_sync.status import status_data, status_text

    with _open_store(cfg) as store:
        text = status_text(status_data(store))
    _say(text)
    _pause()


def _menu_match(cfg: Any) -> None:
    from booklore_sync.sync.manual import TerminalPrompter
    from booklore_sync.sync.matching import run_match

    outcome = run_match(cfg, interactive=True, prompter=TerminalPrompter())
    for message in outcome.messages:
        _say(message)
    _say(f"{outcome.matched} newly matched, {outcome.still_unmatched} still unmatched.")


def _menu_advanced(cfg: Any) -> None:
    q = _q()
    while True:
        action = _select("Advanced", [
            q.Choice("Re-match All Books in Cache", value="rematch"),
            q.Choice("Clear...", value="clear"),
            q.Choice("Back", value="back"),
        ])
        if action in (None, "back"):
            return
        if action == "clear":
            with _open_store(cfg) as store:
                clear_history_dialog(store)
        elif action == "rematch":
            _menu_rematch(cfg)


def _menu_rematch(cfg: Any) -> None:
    from booklore_sync.sync.matching import run_rematch

    def confirm(warnings: list[str]) -> bool:
        for w in warnings:
            _say(w)
        return bool(_q().confirm("Forget every stored book ID (manual links included) and "
                                 "match all books again?", default=False).ask())

    code, result, messages = run_rematch(cfg, confirm=confirm)
    for m in messages:
        if not m.startswith("This server cannot"):
            _say(m)
    if result is not None:
        _say(f"Re-matched: {result.rematched}; changed: {result.changed}; now unmatched: "
             f"{result.now_unmatched}; newly matched: {result.newly_matched}.")

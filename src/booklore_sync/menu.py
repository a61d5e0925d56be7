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

"""The Sync & Cache menu entries and their live labels (spec §4.7).

Only the standard library and the store are imported here, so that
``menu --dump`` and ``status`` start fast.
"""

from __future__ import annotations

from collections.abc import Mapping

from booklore_sync.store.queries import LETTERS, QUEUES

SYNC = "sync"
VIEW = "view"
MATCH = "match"
CLEAR_PENDING = "clear_pending"
ADVANCED = "advanced"
CLEAR_CACHE = "clear_cache"
ORDER = (SYNC, VIEW, MATCH, CLEAR_PENDING, ADVANCED, CLEAR_CACHE)


class Entry:
    """One menu entry (a plain class: ``dataclasses`` would cost start-up time)."""

    __slots__ = ("action", "label", "enabled")

    def __init__(self, action: str, label: str, enabled: bool):
        self.action = action
        self.label = label
        self.enabled = enabled

    def __repr__(self) -> str:
        return f"Entry({self.action!r}, {self.label!r}, {self.enabled!r})"

    def dump(self) -> str:
        return self.label if self.enabled else f"{self.label} [disabled]"


def queue_summary(counts: Mapping[str, int]) -> str:
    """``3S, 1A, 2R, 1B, 4P``: non-zero counts only, in the order S A R B P."""
    return ", ".join(f"{counts[q]}{LETTERS[q]}" for q in QUEUES if counts.get(q, 0) > 0)


def with_counts(base: str, counts: Mapping[str, int]) -> str:
    summary = queue_summary(counts)
    return f"{base} ({summary})" if summary else base


def menu_entries(counts: Mapping[str, int], cache: Mapping[str, int]) -> list[Entry]:
    pending = sum(counts.get(q, 0) for q in QUEUES) > 0
    unmatched = cache.get("unmatched", 0)
    return [
        Entry(SYNC, with_counts("Sync Pending Now", counts), pending),
        Entry(VIEW, "View Pending Sessions", True),
        Entry(MATCH, f"Match Unmatched Books ({unmatched})" if unmatched > 0
              else "Match Unmatched Books", unmatched > 0),
        Entry(CLEAR_PENDING, with_counts("Clear Pending...", counts), pending),
        Entry(ADVANCED, "Advanced", True),
        Entry(CLEAR_CACHE, "Clear Cache", cache.get("total", 0) > 0),
    ]

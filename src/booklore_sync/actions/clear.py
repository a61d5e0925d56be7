"""Clear Pending, Clear Cache, and Advanced → Clear… (spec §4.4–4.6), under the lock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from booklore_sync.actions.base import session
from booklore_sync.config import Config
from booklore_sync.store import QUEUES

HISTORY_CHOICES = ("sessions", "annotations", "bookmarks", "ratings", "progress")
HISTORY_ALL = (*HISTORY_CHOICES, "discarded")


@dataclass(frozen=True)
class Cleared:
    counts: dict[str, int]

    def to_json(self) -> dict[str, dict[str, int]]:
        return {"cleared": self.counts}


@dataclass(frozen=True)
class CacheCleared:
    cleared: int
    links_kept: int

    def to_json(self) -> dict[str, int]:
        return {"cleared": self.cleared, "links_kept": self.links_kept}


def clear_pending(cfg: Config, queues: Iterable[str]) -> Cleared:
    chosen = [q for q in QUEUES if q in set(queues)]
    with session(cfg, client=False) as s:
        cleared = s.store.clear_pending(chosen)
    return Cleared({q: int(cleared.get(q, 0)) if q in chosen else 0 for q in QUEUES})


def clear_history(cfg: Config, ledgers: Iterable[str]) -> Cleared:
    chosen = [name for name in HISTORY_ALL if name in set(ledgers)]
    with session(cfg, client=False) as s:
        cleared = s.store.clear_history(chosen)
    return Cleared({n: int(cleared.get(n, 0)) if n in chosen else 0 for n in HISTORY_ALL})


def clear_cache(cfg: Config) -> CacheCleared:
    with session(cfg, client=False) as s:
        result = s.store.clear_cache()
    return CacheCleared(result.books, result.links_kept)


def pending_counts(cfg: Config) -> dict[str, int]:
    """Read-only counts for a confirmation question (no lock)."""
    if not cfg.store_path.exists():
        return {q: 0 for q in QUEUES}
    with session(cfg, lock=False, client=False) as s:
        return s.store.counts()


def history_counts(cfg: Config) -> dict[str, int]:
    if not cfg.store_path.exists():
        return {n: 0 for n in HISTORY_ALL}
    with session(cfg, lock=False, client=False) as s:
        return s.store.history_counts()

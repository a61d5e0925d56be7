"""`sync --dry-run`: what a sync would send, per queue and book; only read requests,
no lock, nothing changed (spec §6.2, §6.4).  ``already_there`` counts the reading
positions the server already holds (one KOReader progress read per book); the other
queues would need a sync's reconciliation reads to tell, so they count as to be sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from booklore_sync.actions.base import (
    EXIT_OFFLINE,
    OFFLINE,
    ActionError,
    client_error,
    session,
)
from booklore_sync.booklore import errors as E
from booklore_sync.config import Config
from booklore_sync.server_url import reason_only
from booklore_sync.store import QUEUES


@dataclass
class DryRun:
    counts: dict[str, dict[str, int]] = field(default_factory=lambda: {
        q: {"would_send": 0, "already_there": 0, "skipped": 0} for q in QUEUES})
    per_book: dict[str, dict[str, int]] = field(default_factory=dict)
    offline: bool = False
    error: ActionError | None = None
    messages: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"dry_run": True}
        data.update({q: dict(self.counts[q]) for q in QUEUES})
        data["offline"] = self.offline
        return data

    @property
    def book_lines(self) -> list[str]:
        return [f"  {name}: " + ", ".join(f"{n} {q}" for q, n in per.items())
                for name, per in self.per_book.items()]


def dry_run(cfg: Config) -> DryRun:
    out = DryRun()
    try:
        with session(cfg, lock=False) as s:
            try:
                s.client.healthcheck()
            except (E.OfflineError, E.NotBookLoreError) as exc:
                out.offline = True
                out.error = ActionError(OFFLINE, f"offline: cannot reach {s.url} "
                                        f"({reason_only(exc.message, s.url)}); nothing was "
                                        "sent", EXIT_OFFLINE)
                return out
            resolved: dict[str, bool] = {}
            for item in s.store.all_pending():
                tally = out.counts[item.queue]
                if not cfg.settings().get(f"sync.{item.queue}", True):
                    tally["skipped"] += 1
                    continue
                known = resolved.get(item.fingerprint)
                if known is None:
                    known = item.book_id is not None or _server_knows(s.client, item.fingerprint)
                    resolved[item.fingerprint] = known
                if not known:
                    tally["skipped"] += 1
                    continue
                if _already_there(s.client, item):
                    tally["already_there"] += 1
                    continue
                tally["would_send"] += 1
                per = out.per_book.setdefault(item.display_name, {})
                per[item.queue] = per.get(item.queue, 0) + 1
    except ActionError as exc:
        out.error = exc
    except E.BookLoreError as exc:
        out.error = client_error(exc, cfg.url, action="nothing was sent")
    return out


def _already_there(client: Any, item: Any) -> bool:
    """Whether one read tells that the server already holds this item.  Only a reading
    position can be told so (the KOReader progress of the book equals it); the other
    queues would need the reconciliation reads of a real sync, so they count as sent."""
    if item.queue != "progress":
        return False
    try:
        remote = client.get_progress(item.fingerprint)
    except E.BookLoreError:
        return False
    if remote is None or remote.percentage is None:
        return False
    try:
        wanted = float(item.key.get("percentage"))
    except (TypeError, ValueError):
        return False
    return bool(remote.progress == item.key.get("progress") and abs(remote.percentage - wanted) < 1e-4)


def _server_knows(client: Any, fingerprint: str) -> bool:
    try:
        return client.find_book_by_hash(fingerprint) is not None
    except (E.UnsupportedEndpointError, E.NotConfiguredError, E.AuthError, E.NotFoundError):
        return False

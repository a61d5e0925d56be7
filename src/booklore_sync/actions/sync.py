"""Sync Pending Now (spec §4.1) as a library call."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from booklore_sync.actions.base import LOCKED, ActionError, session
from booklore_sync.config import Config
from booklore_sync.sync.report import SyncReport


@dataclass
class SyncOutcome:
    report: SyncReport = field(default_factory=SyncReport)
    url: str | None = None
    interrupted: bool = False  # Ctrl-C: the report holds what was done before it


def run_sync(cfg: Config, *, only_fingerprints: Iterable[str] | None = None,
             on_progress: Callable[[int, int], None] | None = None) -> SyncOutcome:
    """Take the lock, run the engine, release the lock; never raises for a user error."""
    from booklore_sync.sync.engine import SyncEngine
    from booklore_sync.sync.runner import configured_accounts

    out = SyncOutcome()
    try:
        with session(cfg) as s:
            out.url = s.url
            engine = SyncEngine(s.store, s.client, cfg.settings(),
                                accounts=configured_accounts(cfg),
                                only_fingerprints=only_fingerprints, on_progress=on_progress)
            try:
                out.report = engine.run()
            except KeyboardInterrupt:
                out.report = engine.report
                out.interrupted = True
    except ActionError as exc:
        if exc.kind == LOCKED:
            out.report.locked = True
            out.report.messages.append(exc.message)
        else:
            out.report.config_errors.append(exc.message)
    return out

"""Sync Pending Now (spec §4.1) as a library call."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from booklore_sync.actions.base import LOCKED, ActionError, make_client, session, store_lock
from booklore_sync.config import Config
from booklore_sync.store import LockBusy
from booklore_sync.sync.report import SyncReport

if TYPE_CHECKING:
    from booklore_sync.store import Store

__all__ = ["SyncOutcome", "SyncProgress", "configured_accounts", "make_client", "run_sync",
           "sync_locked", "sync_once", "upload_lock"]

Count = Callable[[int, int], None]


@dataclass
class SyncProgress:
    """A sync run's progress, in its two counted steps (spec §4.1 "Summary"): the books
    being resolved (``resolving(done, total)``: distinct books with queued items), then
    the items being uploaded (``uploading(done, total)``: queue rows settled)."""

    resolving: Count | None = None
    uploading: Count | None = None

    @classmethod
    def of(cls, on_progress: SyncProgress | Count | None) -> SyncProgress:
        """A plain callable counts the uploads only (the older form)."""
        if on_progress is None or isinstance(on_progress, SyncProgress):
            return on_progress or cls()
        return cls(uploading=on_progress)


@dataclass
class SyncOutcome:
    report: SyncReport = field(default_factory=SyncReport)
    url: str | None = None
    interrupted: bool = False  # Ctrl-C: the report holds what was done before it


def run_sync(cfg: Config, *, only_fingerprints: Iterable[str] | None = None,
             on_progress: SyncProgress | Count | None = None) -> SyncOutcome:
    """Take the lock, run the engine, release the lock; never raises for a user error.
    ``on_progress``: a :class:`SyncProgress`, or a callable counting the uploads."""
    from booklore_sync.sync.engine import SyncEngine

    out = SyncOutcome()
    progress = SyncProgress.of(on_progress)
    try:
        with session(cfg) as s:
            out.url = s.url
            engine = SyncEngine(s.store, s.client, cfg.settings(),
                                accounts=configured_accounts(cfg),
                                only_fingerprints=only_fingerprints,
                                on_progress=progress.uploading, on_resolve=progress.resolving)
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


def configured_accounts(cfg: Config) -> set[str]:
    return {a for a in ("booklore", "koreader") if cfg.account_configured(a)}


def sync_locked(cfg: Config, store: Store, client: Any, *,
                only_fingerprints: Iterable[str] | None = None,
                on_progress: SyncProgress | Count | None = None) -> SyncReport:
    """One engine run; the caller holds the sync lock (e.g. a confirmed manual match)."""
    from booklore_sync.sync.engine import SyncEngine

    progress = SyncProgress.of(on_progress)
    engine = SyncEngine(store, client, cfg.settings(), accounts=configured_accounts(cfg),
                        only_fingerprints=only_fingerprints,
                        on_progress=progress.uploading, on_resolve=progress.resolving)
    return engine.run()


@contextmanager
def upload_lock(cfg: Config) -> Iterator[None]:
    """Hold the store's sync lock (spec §3): waits up to 5 s, then raises LockBusy."""
    try:
        with store_lock(cfg):
            yield
    except ActionError as exc:
        if exc.kind == LOCKED:
            raise LockBusy(exc.message.split(";")[0]) from None
        raise


def sync_once(cfg: Config, *, only_fingerprints: Iterable[str] | None = None,
              on_progress: SyncProgress | Count | None = None) -> SyncReport:
    """``run_sync`` for callers that want only the report (``locked`` / ``config_errors``
    say why nothing ran)."""
    return run_sync(cfg, only_fingerprints=only_fingerprints, on_progress=on_progress).report

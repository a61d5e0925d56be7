"""Glue between configuration, store, client and engine, shared by every command
that uploads (sync, match, watch, the menu)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from booklore_sync.config import Config, ConfigError, KeyringTokenStore
from booklore_sync.store import CapabilityCache, LockBusy, Store, SyncLock
from booklore_sync.sync.report import SyncReport

LOCK_WAIT_SECONDS = 2.0


def configured_accounts(cfg: Config) -> set[str]:
    return {a for a in ("booklore", "koreader") if cfg.account_configured(a)}


def make_client(cfg: Config, store: Store | None = None) -> Any:
    """A BookLore client for the configured server and accounts (ConfigError if no URL)."""
    from booklore_sync.booklore import BookLoreClient

    url = cfg.url
    if not url:
        raise ConfigError("no server URL configured: set BOOKLORE_URL or run "
                          "`booklore-sync login --url URL`")
    booklore = cfg.account_configured("booklore")
    koreader = cfg.account_configured("koreader")
    return BookLoreClient(
        url,
        booklore_user=cfg.username("booklore") if booklore else None,
        booklore_password=cfg.password("booklore") if booklore else None,
        koreader_user=cfg.username("koreader") if koreader else None,
        koreader_password=cfg.password("koreader") if koreader else None,
        connect_timeout=float(cfg.get("http.connect_timeout_seconds")),
        read_timeout=float(cfg.get("http.read_timeout_seconds")),
        capability_cache=CapabilityCache(store) if store is not None else None,
        token_store=KeyringTokenStore(),
    )


def sync_locked(cfg: Config, store: Store, client: Any, *,
                only_fingerprints: Iterable[str] | None = None,
                on_progress: Callable[[int, int], None] | None = None) -> SyncReport:
    """One engine run; the caller holds the sync lock."""
    from booklore_sync.sync.engine import SyncEngine

    engine = SyncEngine(store, client, cfg.settings(), accounts=configured_accounts(cfg),
                        only_fingerprints=only_fingerprints, on_progress=on_progress)
    return engine.run()


@contextmanager
def upload_lock(cfg: Config) -> Iterator[None]:
    """Hold the store's sync lock (spec §3): waits briefly, then raises LockBusy."""
    lock = SyncLock(cfg.lock_path)
    lock.acquire(wait_seconds=LOCK_WAIT_SECONDS)
    try:
        yield
    finally:
        lock.release()


def sync_once(cfg: Config, *, only_fingerprints: Iterable[str] | None = None,
              on_progress: Callable[[int, int], None] | None = None) -> SyncReport:
    """Take the store's sync lock, run the engine, release the lock.

    Returns a report whose ``locked`` is set when another command holds the lock,
    and whose ``config_errors`` say what is missing when nothing could start.
    """
    report = SyncReport()
    try:
        with upload_lock(cfg), Store.open(cfg.store_path) as store:
            try:
                client = make_client(cfg, store)
            except ConfigError as exc:
                report.config_errors.append(str(exc))
                return report
            with client:
                return sync_locked(cfg, store, client, only_fingerprints=only_fingerprints,
                                   on_progress=on_progress)
    except LockBusy as exc:
        report.locked = True
        report.messages.append(f"{exc}; try again when it has finished")
        return report

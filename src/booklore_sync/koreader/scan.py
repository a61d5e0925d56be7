"""``scan SOURCE``: turn a KOReader device or synced folder into queued items.

sync-and-cache.md §5; koreader-data.md throughout.  Never writes to SOURCE and
never contacts a server.  Every malformed file is reported (``errors``) and
skipped; items queued without a CFI, sidecars without a reachable book file,
sessions held back for a reason, suspicious clocks … are ``warnings``.

This module only orchestrates; the steps live in their own modules:

* ``layout`` / ``discovery`` / ``candidates``: where the data is, the sidecars per book;
* ``settings_files``: ``settings.reader.lua``, ``kosync.lua``, ``history.lua``;
* ``scan_sessions`` (over ``statistics``): reading sessions;
* ``sidecar_import``: books, fingerprints, the book cache; ``rows``: their queue rows;
* ``sink``: the rows into the store; ``report``: what the caller gets back.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from booklore_sync.koreader.cfi import CONVERTER_VERSION
from booklore_sync.koreader.context import ScanContext
from booklore_sync.koreader.discovery import SourceError, find_layout
from booklore_sync.koreader.plugin_store import apply_plugin_store
from booklore_sync.koreader.report import QUEUE_NAMES, ScanReport
from booklore_sync.koreader.scan_sessions import queue_sessions, read_statistics
from booklore_sync.koreader.settings_files import read_settings
from booklore_sync.koreader.sidecar_import import run_groups
from booklore_sync.settings_defaults import DEFAULTS

__all__ = ["ScanReport", "SourceError", "scan_source", "QUEUE_NAMES"]

SCAN_VERSION = 2


def _settings(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    cfg = dict(DEFAULTS)
    if settings:
        cfg.update({k: v for k, v in settings.items() if v is not None or k == "device.timezone"})
    return cfg


def _signature(store: Any, cfg: Mapping[str, Any]) -> str:
    keys = sorted(k for k in cfg if k.startswith(("sync.", "device.", "scan.", "annotations.")))
    # what scans skipped as synced or discarded can come back only when that history is
    # cleared: the store's history generation says when
    history = store.history_generation()
    blob = json.dumps([SCAN_VERSION, CONVERTER_VERSION, [(k, cfg[k]) for k in keys], history],
                      sort_keys=True, default=str)
    return hashlib.md5(blob.encode()).hexdigest()


def scan_source(store: Any, source: Path | str, settings: Mapping[str, Any] | None = None, *,
                dry_run: bool = False, now: int | float | None = None,
                on_progress: Callable[[int, int], None] | None = None) -> ScanReport:
    """Scan SOURCE and queue what is new.  Raises :class:`SourceError` when SOURCE
    is missing or holds no KOReader data directory."""
    layout = find_layout(source)
    cfg = _settings(settings)
    report = ScanReport(dry_run=dry_run, data_dir=str(layout.data_dir))
    ctx = ScanContext(store, layout, cfg, int(now if now is not None else time.time()), report,
                      on_progress)
    read_settings(ctx)
    read_statistics(ctx)
    with store.transaction(rollback=dry_run), _young_collections_only(ctx):
        ctx.signature = _signature(store, cfg)
        ctx.signature_bytes = ctx.signature.encode()
        run_groups(ctx)
        apply_plugin_store(ctx)
        queue_sessions(ctx)
    return report


@contextlib.contextmanager
def _young_collections_only(ctx: ScanContext) -> Iterator[None]:
    """No full garbage collections during the scan: each would walk every object the
    scan keeps (its books, groups, rows) again and again, a fifth of a rescan's time.
    The young objects are collected once per chunk (``ScanContext.collect_young``),
    so per-book cycles are freed as before."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    ctx.gc_paused = True
    try:
        yield
    finally:
        ctx.gc_paused = False
        gc.enable()

"""`watch SOURCE`: scan + sync whenever SOURCE changes, and at least every interval.

Changes are noticed two ways, because neither is enough alone: file-system
events (watchfiles: inotify, FSEvents, ReadDirectoryChangesW) react at once
on local disks, and a cheap stat signature of the KOReader files, compared
every few seconds, catches USB/FAT and network mounts where events do not
arrive.  While the server is away the sync backs off (30 s, doubling, up to
the interval).  SIGINT/SIGTERM end the loop after the current cycle; a second
signal ends it at once — the store's transactions and in-flight marks keep
everything safe either way.

This is the library side: each cycle ends in a typed :class:`Cycle` handed to
``on_cycle``; the interfaces turn it into words (``render.cycle_line`` for the
terminal's ``watch``, the web page's *Recent cycles*).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from booklore_sync.config import Config
from booklore_sync.store import Store

if TYPE_CHECKING:
    from booklore_sync.sync.report import SyncReport

POLL_SECONDS = 5.0
MIN_BACKOFF = 30.0
SETTLE_SECONDS = 2.0  # let a burst of writes (a USB copy) finish before scanning
WATCHED_SUFFIXES = (".lua", ".sqlite3", ".sqlite3-wal", ".old")


def signature(root: Path) -> tuple[tuple[str, int, int], ...]:
    """(path, size, mtime) of KOReader's data files (sidecars, settings, statistics)
    under root; the book files themselves are not looked at."""
    items = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".git", "__pycache__")]
        for name in filenames:
            if not name.endswith(WATCHED_SUFFIXES):
                continue  # book files do not change what is queued; KOReader's files do
            path = os.path.join(dirpath, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            items.append((path, st.st_size, st.st_mtime_ns))
    items.sort()
    return tuple(items)


@dataclass
class ScanOutcome:
    """The scan half of a cycle."""

    json: dict[str, Any] = field(default_factory=dict)  # ScanReport.to_json(), {} on failure
    books: int = 0
    new: int = 0                    # items the scan queued
    errors: list[dict[str, Any]] = field(default_factory=list)  # unreadable files
    problem: str | None = None      # why the scan did not run (SOURCE is not KOReader's)
    failure: str | None = None      # an unexpected error, ``Type: message``


@dataclass
class Cycle:
    """What one scan + sync cycle did (the interfaces put it into words)."""

    number: int                     # 1 for the first cycle of the loop
    time: str                       # when it ended, ISO 8601 with the local offset
    scan: ScanOutcome
    report: SyncReport              # the sync's report (offline, locked, counts, accounts)
    url: str | None = None          # the server the sync talked to
    retry_in: int | None = None     # seconds until the next try while the server is away
    eventful: bool = False          # something happened worth a line

    @property
    def worth_a_line(self) -> bool:
        """Quiet cycles are not shown, except the first."""
        return self.eventful or self.number == 1


class Watcher:
    def __init__(self, cfg: Config, source: Path, *, interval: float = 300.0,
                 poll: float = POLL_SECONDS, on_cycle: Callable[[Cycle], None] | None = None,
                 use_events: bool = True):
        self.cfg = cfg
        self.source = source
        self.interval = max(1.0, float(interval))
        self.poll = max(0.2, min(poll, self.interval))
        self.on_cycle = on_cycle or (lambda cycle: None)
        self.use_events = use_events
        self._was_offline = False
        self.stop = threading.Event()
        self.changed = threading.Event()
        self.cycles = 0
        self._backoff = 0.0
        self._signals = 0

    # ------------------------------------------------------------ signals
    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            self._signals += 1
            self.stop.set()
            self.changed.set()
            if self._signals > 1:
                raise SystemExit(0)

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    # -------------------------------------------------------------- events
    def _event_thread(self) -> None:
        try:
            from watchfiles import watch
        except ImportError:  # pragma: no cover - declared dependency
            return
        try:
            for _changes in watch(self.source, stop_event=self.stop, debounce=500,
                                  rust_timeout=1000, yield_on_timeout=False, raise_interrupt=False):
                self.changed.set()
        except Exception:
            return  # polling still runs

    # ---------------------------------------------------------------- loop
    def run(self) -> int:
        """Cycle until ``stop`` is set; 0."""
        if self.use_events:
            threading.Thread(target=self._event_thread, name="watch-events", daemon=True).start()
        last_sig: tuple[tuple[str, int, int], ...] | None = None
        next_due = 0.0  # run a first cycle at once
        while not self.stop.is_set():
            now = time.monotonic()
            sig = signature(self.source)
            if last_sig is not None and sig != last_sig:
                self.changed.set()
            if self.changed.is_set() or now >= next_due:
                if self.changed.is_set():
                    # let the writer finish
                    self.stop.wait(SETTLE_SECONDS)
                    if self.stop.is_set():
                        break
                self.changed.clear()
                offline = self.cycle().report.offline
                last_sig = signature(self.source)
                if offline:
                    self._backoff = self._next_backoff()
                    next_due = time.monotonic() + self._backoff
                else:
                    self._backoff = 0.0
                    next_due = time.monotonic() + self.interval
                continue
            last_sig = sig
            self.changed.wait(min(self.poll, max(0.0, next_due - time.monotonic())))
        return 0

    def _next_backoff(self) -> float:
        return min(self.interval, max(MIN_BACKOFF, self._backoff * 2 or MIN_BACKOFF))

    def _scan(self) -> ScanOutcome:
        from booklore_sync.koreader.scan import SourceError, scan_source

        try:
            with Store.open(self.cfg.store_path) as store:
                scan = scan_source(store, self.source, self.cfg.settings())
        except SourceError as exc:
            return ScanOutcome(problem=str(exc))
        except Exception as exc:  # keep watching: report and go on
            return ScanOutcome(failure=f"{type(exc).__name__}: {exc}")
        return ScanOutcome(scan.to_json(), scan.books, sum(scan.queued.values()),
                           list(scan.errors))

    def cycle(self) -> Cycle:
        """One scan + sync, handed to ``on_cycle`` and returned."""
        from booklore_sync.actions.sync import run_sync

        self.cycles += 1
        scan = self._scan()
        outcome = run_sync(self.cfg)
        report = outcome.report
        eventful = bool(scan.new or scan.errors or scan.problem or scan.failure)
        retry_in = None
        if report.locked:
            pass
        elif report.offline:
            retry_in = int(self._next_backoff())
            eventful |= not self._was_offline
        elif report.config_errors and not report.synced:
            eventful = True
        else:
            eventful |= bool(report.synced or report.failed or self._was_offline)
        self._was_offline = report.offline
        cycle = Cycle(self.cycles, stamp(), scan, report,
                      url=outcome.url or self.cfg.get("server.url"), retry_in=retry_in,
                      eventful=eventful)
        self.on_cycle(cycle)
        return cycle


def stamp() -> str:
    """Now, in ISO 8601 with the local offset."""
    return datetime.now().astimezone().isoformat(timespec="seconds")

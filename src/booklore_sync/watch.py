"""`watch SOURCE`: scan + sync whenever SOURCE changes, and at least every interval.

Changes are noticed two ways, because neither is enough alone: file-system
events (watchfiles: inotify, FSEvents, ReadDirectoryChangesW) react at once
on local disks, and a cheap stat signature of the KOReader files, compared
every few seconds, catches USB/FAT and network mounts where events do not
arrive.  While the server is away the sync backs off (30 s, doubling, up to
the interval).  SIGINT/SIGTERM end the loop after the current cycle; a second
signal ends it at once — the store's transactions and in-flight marks keep
everything safe either way.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from booklore_sync.config import Config
from booklore_sync.store import Store

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


class Watcher:
    def __init__(self, cfg: Config, source: Path, *, interval: float = 300.0,
                 poll: float = POLL_SECONDS, log: Callable[[str], None] | None = None,
                 use_events: bool = True, json_lines: bool = False):
        self.cfg = cfg
        self.source = source
        self.interval = max(1.0, float(interval))
        self.poll = max(0.2, min(poll, self.interval))
        self.log = log or (lambda line: print(line, flush=True))
        self.use_events = use_events
        self.json_lines = json_lines
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
                offline = self.cycle()
                last_sig = signature(self.source)
                if offline:
                    self._backoff = min(self.interval, max(MIN_BACKOFF, self._backoff * 2 or MIN_BACKOFF))
                    next_due = time.monotonic() + self._backoff
                else:
                    self._backoff = 0.0
                    next_due = time.monotonic() + self.interval
                continue
            last_sig = sig
            self.changed.wait(min(self.poll, max(0.0, next_due - time.monotonic())))
        self.log(f"{_stamp()} watch: stopped")
        return 0

    def cycle(self) -> bool:
        """One scan + sync; one log line when something happened (every cycle under
        ``json_lines``); True when the server was away."""
        from booklore_sync import render
        from booklore_sync.actions.sync import run_sync
        from booklore_sync.koreader.scan import SourceError, scan_source

        self.cycles += 1
        parts = []
        scan_json: dict[str, Any] = {}
        eventful = False
        try:
            with Store.open(self.cfg.store_path) as store:
                scan = scan_source(store, self.source, self.cfg.settings())
            scan_json = scan.to_json()
            new = sum(scan.queued.values())
            eventful |= bool(new or scan.errors)
            part = f"scan: {scan.books} books, {new} new items"
            if scan.errors:
                names = ", ".join(f"{e['file']} ({e['error']})" for e in scan.errors[:5])
                more = f" and {len(scan.errors) - 5} more" if len(scan.errors) > 5 else ""
                part += f", unreadable: {names}{more}"
            parts.append(part)
        except SourceError as exc:
            parts.append(f"scan: {exc}")
            eventful = True
        except Exception as exc:  # keep watching: report and go on
            parts.append(f"scan failed: {type(exc).__name__}: {exc}")
            eventful = True
        outcome = run_sync(self.cfg)
        report = outcome.report
        if report.locked:
            parts.append("sync: skipped (another sync is running)")
        elif report.offline:
            wait = min(self.interval, max(MIN_BACKOFF, self._backoff * 2 or MIN_BACKOFF))
            parts.append(f"sync: server away at {outcome.url or self.cfg.get('server.url')}, "
                         f"retrying in {int(wait)} s")
            eventful |= not self._was_offline
        elif report.config_errors and not report.synced:
            parts.append("sync: " + "; ".join(report.config_errors))
            eventful = True
        else:
            parts.append("sync: " + "; ".join(render.sync_summary(report)).replace("  ", " "))
            eventful |= bool(report.synced or report.failed or self._was_offline)
            if report.missing_accounts or report.rejected_accounts:
                parts.append("accounts: " + ", ".join(
                    [f"{a} not configured" for a in sorted(report.missing_accounts)]
                    + list(report.rejected_accounts.values())))
        self._was_offline = report.offline
        if self.json_lines:
            import json

            self.log(json.dumps({"time": _stamp(), "scan": scan_json, "sync": report.to_json()}))
        elif eventful or self.cycles == 1:
            self.log(f"{_stamp()} " + " | ".join(parts))
        return report.offline


def _stamp() -> str:
    """Now, in ISO 8601 with the local offset."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def run_watch(cfg: Config, source: Path, interval: float, *, json_lines: bool = False,
              quiet: bool = False) -> int:
    def out(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def note(line: str) -> None:
        if not quiet:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    watcher = Watcher(cfg, source, interval=interval, log=out, json_lines=json_lines)
    watcher.install_signal_handlers()
    start = (f"{_stamp()} watch: {source} (every {int(watcher.interval)} s and on changes; "
             "Ctrl-C stops)")
    if json_lines:
        note(start)
        watcher.log = out
        code = _run_quietly_stopping(watcher, note)
        return code
    out(start)
    return watcher.run()


def _run_quietly_stopping(watcher: Watcher, note: Callable[[str], None]) -> int:
    """Under --json the stop line goes to stderr: stdout holds only the cycle objects."""
    lines = watcher.log

    def log(line: str) -> None:
        if line.endswith("watch: stopped"):
            note(line)
        else:
            lines(line)

    watcher.log = log
    return watcher.run()

"""``watch SOURCE`` inside ``serve``: the library's loop in a thread, its last ten
cycles kept for the page's *Recent cycles* (put into words by ``render``)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from booklore_sync.config import Config

if TYPE_CHECKING:
    from booklore_sync.watch import Cycle as WatchCycle


@dataclass
class Cycle:
    time: str
    scan: str
    sync: str


class WatchLoop:
    """``watch SOURCE`` in a thread of ``serve``, keeping its last ten cycles."""

    def __init__(self, cfg: Config, source: Path, interval: float,
                 echo: Callable[[str], None] | None = None):
        from booklore_sync.watch import Watcher

        self.cycles: deque[Cycle] = deque(maxlen=10)
        self.interval = interval
        self.last_at: datetime | None = None
        self._echo = echo
        self._lock = threading.Lock()
        self.watcher = Watcher(cfg, source, interval=interval, on_cycle=self._on_cycle)
        self.thread = threading.Thread(target=self._run, name="watch", daemon=True)

    def _run(self) -> None:
        from booklore_sync.watch import stamp

        self.watcher.run()
        if self._echo is not None:
            self._echo(f"{stamp()} watch: stopped")

    def _on_cycle(self, cycle: WatchCycle) -> None:
        from booklore_sync import render

        now = datetime.now().astimezone()
        with self._lock:
            self.last_at = now  # the next run is due an interval after any cycle
        if not cycle.worth_a_line:
            return
        if self._echo is not None:
            self._echo(render.cycle_line(cycle))
        scan, rest = render.cycle_parts(cycle)
        with self._lock:
            self.cycles.appendleft(Cycle(now.isoformat(timespec="seconds"), scan,
                                         "; ".join(rest)))

    def recent(self) -> list[Cycle]:
        with self._lock:
            return list(self.cycles)

    def next_run(self) -> str | None:
        with self._lock:
            if self.last_at is None:
                return None
            due = self.last_at.timestamp() + self.interval
        return datetime.fromtimestamp(due).astimezone().isoformat(timespec="seconds")

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.watcher.stop.set()
        self.watcher.changed.set()
        self.thread.join(timeout)

"""The terminal side of ``watch``: the library's loop (:mod:`booklore_sync.watch`)
with its cycles put into lines on stdout, and the signals that stop it.

Plain ``watch`` writes the start line, one line per eventful cycle (the first
always) and the stop line to stdout; ``watch --json`` writes one JSON object per
cycle to stdout and the start and stop lines to stderr (stdout holds only the
cycle objects).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from booklore_sync import render
from booklore_sync.config import Config
from booklore_sync.watch import Cycle, Watcher, stamp


class LineWatcher(Watcher):
    """The watch loop that writes its cycles as lines to ``log`` (JSON lines with
    ``json_lines``) and, when it ends, a stop line to ``notes`` (``log`` by default)."""

    def __init__(self, cfg: Config, source: Path, *, log: Callable[[str], None],
                 notes: Callable[[str], None] | None = None, json_lines: bool = False,
                 **options: Any):
        super().__init__(cfg, source, on_cycle=self._write, **options)
        self.log = log
        self.notes = notes or log
        self.json_lines = json_lines

    def _write(self, cycle: Cycle) -> None:
        if self.json_lines:
            self.log(render.cycle_json(cycle))
        elif cycle.worth_a_line:
            self.log(render.cycle_line(cycle))

    def run(self) -> int:
        code = super().run()
        self.notes(f"{stamp()} watch: stopped")
        return code


def _writer(stream: Any) -> Callable[[str], None]:
    def write(line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

    return write


def run_watch(cfg: Config, source: Path, interval: float, *, json_lines: bool = False,
              quiet: bool = False) -> int:
    """``watch SOURCE``: loop until SIGINT/SIGTERM; 0."""
    out = _writer(sys.stdout)
    err = _writer(sys.stderr)

    def note(line: str) -> None:
        if not quiet:
            err(line)

    watcher = LineWatcher(cfg, source, interval=interval, log=out,
                          notes=note if json_lines else out, json_lines=json_lines)
    watcher.install_signal_handlers()
    (note if json_lines else out)(
        f"{stamp()} watch: {source} (every {int(watcher.interval)} s and on changes; "
        "Ctrl-C stops)")
    return watcher.run()

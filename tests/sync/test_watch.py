"""watch: a change in the source reaches the emulator; server away then back; SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from booklore_sync.actions.sync import sync_once
from booklore_sync.emulator import start_emulator
from booklore_sync.terminal import LineWatcher as Watcher  # the loop with its lines
from tests.sync.conftest import make_config, make_env, open_store

LEAVES_SIDECAR = "Books/leaves.sdr/metadata.epub.lua"


def _wait(predicate, timeout=20.0, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def _leaves_rating(emu):
    book = next(b for b in emu.state.books() if b["metadata"].get("title") == "Leaves of Grass")
    return {r["bookId"]: r["personalRating"] for r in emu.state.ratings()}.get(book["id"])


def _set_rating(kobo, stars):
    path = kobo / LEAVES_SIDECAR
    text = path.read_text(encoding="utf-8")
    import re

    text = re.sub(r'\["rating"\] = \d', f'["rating"] = {stars}', text, count=1)
    path.write_text(text, encoding="utf-8")


def test_change_reaches_server_and_offline_backoff(home, kobo, library):
    emu = start_emulator(mode="fork", port=0, library=library, state_file=home / "emu.json")
    port = int(emu.base_url.rsplit(":", 1)[1])
    cfg = make_config(home, emu.base_url)
    lines: list[str] = []
    watcher = Watcher(cfg, kobo, interval=60, poll=0.2, log=lines.append, use_events=True)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        assert _wait(lambda: _leaves_rating(emu) == 8), lines  # first cycle: 4 stars
        assert _wait(lambda: bool(lines)) and "sync:" in lines[0]
        _set_rating(kobo, 2)
        assert _wait(lambda: _leaves_rating(emu) == 4), lines
        # the server goes away: the cycle says so and waits; nothing is lost
        emu.stop()
        _set_rating(kobo, 3)
        assert _wait(lambda: any("server away" in line for line in lines)), lines
        with open_store(cfg) as store:
            assert store.counts()["ratings"] == 1
        # back on the same port and state: the next change is delivered
        emu = start_emulator(mode="fork", port=port, library=library,
                             state_file=home / "emu.json")
        watcher.changed.set()
        assert _wait(lambda: _leaves_rating(emu) == 6, timeout=30), lines
    finally:
        watcher.stop.set()
        watcher.changed.set()
        thread.join(10)
        emu.stop()
    assert not thread.is_alive()
    assert lines[-1].endswith("watch: stopped")


def _watch_until_sigterm(kobo, url: str, ready, timeout: float = 60) -> str:
    """Run `watch` in a subprocess, send SIGTERM once ``ready(proc)`` returns, and return
    its stdout after it exited 0."""
    env = dict(os.environ)
    env.update(make_env(url))
    proc = subprocess.Popen([sys.executable, "-m", "booklore_sync", "watch", str(kobo),
                             "--interval", "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert "watch:" in proc.stdout.readline()
        ready(proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, err
        assert "stopped" in out
        return out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_stops_cleanly(home, kobo, emu):
    def after_first_cycle(proc):
        cycle = proc.stdout.readline()  # one line per cycle
        assert "scan:" in cycle and "sync:" in cycle

    _watch_until_sigterm(kobo, emu.base_url, after_first_cycle)
    cfg = make_config(home, emu.base_url)
    with open_store(cfg) as store:
        assert sum(store.counts().values()) == 0  # everything was delivered
    sessions = emu.state.sessions()
    assert len({(s["bookId"], s["startTime"]) for s in sessions}) == len(sessions)


def test_watch_missing_source(home):
    from tests.conftest import run_process

    proc = run_process("watch", str(home / "nope"))
    assert proc.returncode == 2


def test_sigterm_mid_cycle_loses_nothing(home, kobo, emu):
    """SIGTERM while a cycle's sync is waiting on the server: the cycle ends, the process
    exits 0, and every item is either on the server once or still queued."""
    emu.state.inject_fault("/api/v1/reading-sessions/batch", action="delay", delay_ms=1500,
                           times=None)
    def batch_on_its_way(proc):  # SIGTERM while the first batch is being delayed
        assert _wait(lambda: any(e["path"].endswith("/batch") for e in emu.request_log()))

    _watch_until_sigterm(kobo, emu.base_url, batch_on_its_way)
    cfg = make_config(home, emu.base_url)
    with open_store(cfg) as store:
        left = store.pending("sessions")
    on_server = emu.state.sessions()
    starts = [s["startTime"] for s in on_server]
    assert len(starts) == len(set(starts))  # nothing twice
    # a queued item that is already on the server must be one the next run checks first
    assert all(i.state != "pending" for i in left if i.payload["startTime"] in starts)
    emu.state.clear_faults()
    assert sync_once(cfg).exit_code == 0
    final = [s["startTime"] for s in emu.state.sessions()]
    assert len(final) == len(set(final))
    with open_store(cfg) as store:
        assert sum(store.counts().values()) == 0

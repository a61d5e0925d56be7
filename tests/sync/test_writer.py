"""The ledger's writer thread (sync/writer.py): order, failures, draining."""

from __future__ import annotations

import threading

import pytest

from booklore_sync.sync.writer import Writer


def test_outside_overlap_writes_run_at_once_on_the_callers_thread():
    w = Writer()
    seen: list[str] = []
    w.submit(lambda: seen.append(threading.current_thread().name))
    assert seen == [threading.current_thread().name]
    w.close()


def test_writes_run_in_order_on_another_thread_and_are_done_when_overlap_ends():
    w = Writer()
    seen: list[tuple[int, str]] = []
    gate = threading.Event()

    def write(n: int) -> None:
        if n == 0:
            gate.wait(5)  # the first write is still running while the others queue
        seen.append((n, threading.current_thread().name))

    with w.overlap():
        for n in range(50):
            w.submit(write, n)
        assert len(seen) < 50
        gate.set()
    assert [n for n, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"sync-ledger"}
    w.close()


def test_a_failed_write_stops_the_later_ones_and_is_raised_when_draining():
    w = Writer()
    seen: list[int] = []

    def write(n: int) -> None:
        if n == 3:
            raise OSError("disk full")
        seen.append(n)

    with pytest.raises(OSError, match="disk full"), w.overlap():
        for n in range(10):
            w.submit(write, n)
    assert seen == [0, 1, 2]
    # the writer is usable again afterwards
    with w.overlap():
        w.submit(seen.append, 99)
    assert seen[-1] == 99
    w.close()


def test_a_failure_is_raised_on_the_next_submit_too():
    w = Writer()
    seen: list[int] = []

    def boom() -> None:
        raise ValueError("bad row")

    with w.overlap():
        w.submit(boom)
        while not w.idle:  # the failed job has ended
            threading.Event().wait(0.001)
        with pytest.raises(ValueError, match="bad row"):
            w.submit(seen.append, 1)
    assert seen == []  # neither written nor raised a second time
    w.close()


def test_writes_queued_before_a_crash_still_run_when_overlap_is_left():
    class Crash(BaseException):
        pass

    w = Writer()
    seen: list[int] = []
    with pytest.raises(Crash), w.overlap():
        for n in range(20):
            w.submit(seen.append, n)
        raise Crash
    assert seen == list(range(20))
    w.close()


def test_disabled_overlap_writes_inline():
    w = Writer()
    seen: list[str] = []
    with w.overlap(enabled=False):
        w.submit(lambda: seen.append(threading.current_thread().name))
        assert seen == [threading.current_thread().name]
    w.close()

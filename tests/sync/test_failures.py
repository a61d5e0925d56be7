"""Sync Pending Now on the failure paths (spec §4.1 "Exactly once", "Failures";
booklore-api.md §5): real HTTP against the emulator, faults injected with its hooks
(§7.7).  Every test ends with the same check: each scanned item is on the server
exactly once and nothing is left queued."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from booklore_sync.actions.sync import make_client, sync_locked, sync_once
from booklore_sync.emulator import start_emulator
from booklore_sync.store import QUEUES, QueueItem
from tests.sync.conftest import make_config, make_env, open_store, scan_into

BATCH = "/api/v1/reading-sessions/batch"
SESSIONS = "/api/v1/reading-sessions"
ANNOTATIONS = "/api/v1/annotations"
NOTES_V1 = "/api/v1/book-notes"
BOOKMARKS = "/api/v1/bookmarks"
KO_PROGRESS = "/api/koreader/syncs/progress"
REFRESH = "/api/v1/auth/refresh"


# ------------------------------------------------------------------ helpers
def snapshot(cfg) -> dict[str, list[QueueItem]]:
    with open_store(cfg) as store:
        return {q: store.pending(q) for q in QUEUES}


def book_ids(cfg) -> dict[str, int | None]:
    with open_store(cfg) as store:
        return {b.file_hash: b.book_id for b in store.books()}


def is_paged(item: QueueItem) -> bool:
    return bool(item.payload.get("paged"))


def cfi_highlights(queued) -> list[QueueItem]:
    return [i for i in queued["annotations"]
            if not is_paged(i) and i.key["kind"] == "highlight" and i.payload.get("cfi")]


def posts(entries, path: str, *, prefix: bool = False) -> list[dict]:
    return [e for e in entries if e["method"] == "POST"
            and (e["path"].startswith(path) if prefix else e["path"] == path)]


def writes(entries) -> list[dict]:
    """The data writes of a log (token requests left out)."""
    return [e for e in entries if e["method"] in ("POST", "PUT", "PATCH", "DELETE")
            and not e["path"].startswith("/api/v1/auth/")]


def gets(entries, prefix: str) -> list[dict]:
    return [e for e in entries if e["method"] == "GET" and e["path"].startswith(prefix)]


def last_seq(emu) -> int:
    log = emu.request_log()
    return log[-1]["seq"] if log else 0


def assert_sessions_once(emu, cfg, queued) -> None:
    """Server session count == local session count; each (book, start second) once."""
    ids = book_ids(cfg)
    want = Counter((ids[i.fingerprint], i.payload["startTime"][:19]) for i in queued["sessions"])
    got = Counter((s["bookId"], s["startTime"][:19]) for s in emu.state.sessions())
    assert sum(got.values()) == len(queued["sessions"])
    assert got == want


def assert_exactly_once(emu, cfg, queued) -> None:
    """Every item of the snapshot is on the server exactly once; every queue is empty."""
    with open_store(cfg) as store:
        assert store.counts() == {q: 0 for q in QUEUES}, store.all_pending()
    ids = book_ids(cfg)
    state = emu.state
    assert_sessions_once(emu, cfg, queued)

    # in-book annotations (highlights) and in-book notes: one per CFI
    want_hl = Counter((ids[i.fingerprint], i.payload["cfi"]) for i in cfi_highlights(queued))
    assert Counter((a["bookId"], a["cfi"]) for a in state.annotations()) == want_hl
    want_v2 = Counter((ids[i.fingerprint], i.payload["cfi"]) for i in queued["annotations"]
                      if not is_paged(i) and i.key["kind"] == "note")
    assert Counter((n["bookId"], n["cfi"]) for n in state.notes_v2()) == want_v2

    # v1 book notes (not deduplicated by the server): one per paged annotation
    notes = state.book_notes()
    by_content = Counter((n["bookId"], n["title"], n["content"]) for n in notes)
    assert all(v == 1 for v in by_content.values()), by_content
    assert Counter(n["bookId"] for n in notes) == Counter(
        ids[i.fingerprint] for i in queued["annotations"] if is_paged(i))

    # bookmarks: with a CFI (deduplicated) and without (PDF, not deduplicated)
    want_bm = Counter((ids[i.fingerprint], i.payload.get("cfi") or None, i.payload["title"])
                      for i in queued["bookmarks"])
    got_bm = Counter((b["bookId"], b.get("cfi") or None, b["title"]) for b in state.bookmarks())
    assert got_bm == want_bm

    # ratings (x2) and progress: idempotent, one row per book
    assert {r["bookId"]: r["personalRating"] for r in state.ratings()} == {
        ids[i.fingerprint]: i.key["rating"] for i in queued["ratings"]}
    pushed = {p["bookId"] for p in state.progress() if p.get("koreaderPercent") is not None}
    assert pushed == {ids[i.fingerprint] for i in queued["progress"]}


def assert_clean_rerun(emu, cfg) -> None:
    """One more sync sends no write at all."""
    since = last_seq(emu)
    report = sync_once(cfg)
    assert report.exit_code == 0 and report.synced == 0
    assert writes(emu.request_log(since)) == []


@pytest.fixture
def setup(home, kobo, emu):
    """A scanned fixture device and a config with a short read timeout."""
    cfg = make_config(home, emu.base_url, read_timeout=0.5)
    # these tests check unknown outcomes on the very next run: no settle wait (§4.1)
    cfg.file_values["sync.settle_seconds"] = 0
    scan = scan_into(cfg, kobo)
    assert sum(scan.queued.values()) > 0
    queued = snapshot(cfg)
    assert all(queued[q] for q in QUEUES)
    return cfg, queued


# ------------------------------------------------------------------ 1. a 5xx on one phase
def test_5xx_on_one_phase_fails_only_that_phase(setup, emu):
    cfg, queued = setup
    highlights = cfi_highlights(queued)
    assert highlights
    emu.state.inject_fault(ANNOTATIONS, action="status", status=500, method="POST", times=None)

    for attempt in (1, 2):
        report = sync_once(cfg)
        assert report.exit_code == 1, report.messages
        assert report.to_json()["offline"] is False
        tally = report.queues["annotations"]
        assert tally.failed == len(highlights)
        if attempt == 1:
            # the other annotation kinds use other endpoints: they went through
            assert tally.synced == len(queued["annotations"]) - len(highlights)
            for q in ("ratings", "bookmarks", "progress", "sessions"):
                assert report.queues[q].synced == len(queued[q]), q
                assert report.queues[q].failed == 0, q
        with open_store(cfg) as store:
            left = store.pending("annotations")
            assert {q: n for q, n in store.counts().items() if n} == {"annotations": len(highlights)}
        assert {i.id for i in left} == {i.id for i in highlights}
        for item in left:
            assert item.retry_count == attempt
            assert item.last_status == 500
            assert "500" in item.last_error
            assert item.last_attempt_at is not None
            assert item.state == "pending"
    assert emu.state.annotations() == []
    assert_sessions_once(emu, cfg, queued)

    emu.state.clear_faults()
    since = last_seq(emu)
    report = sync_once(cfg)
    assert report.exit_code == 0, report.messages
    assert report.queues["annotations"].synced == len(highlights)
    assert report.synced == len(highlights)
    # nothing but the failed highlights was written again
    assert [e["path"] for e in writes(emu.request_log(since))] == [ANNOTATIONS] * len(highlights)
    assert_exactly_once(emu, cfg, queued)


# ------------------------------------------------------------------ 2./3. ambiguous batches
@pytest.mark.parametrize("action", ["commit_then_hang", "commit_then_drop", "commit_then_status"])
def test_ambiguous_batch_is_verified_not_resent(setup, emu, action):
    """The server stored the batch but the answer was lost (read timeout, dropped
    connection, a proxy's 502): the sessions end uncertain; the next run reads the
    paged sessions list and sends nothing twice."""
    cfg, queued = setup
    spec = {"status": 502} if action == "commit_then_status" else {}
    emu.state.inject_fault(BATCH, action=action, method="POST", times=None, **spec)

    started = time.monotonic()
    report = sync_once(cfg)
    assert time.monotonic() - started < 15  # the short read timeout applies
    assert report.exit_code == 1, report.messages
    assert report.queues["sessions"].failed == len(queued["sessions"])
    assert report.queues["sessions"].synced == 0
    for q in ("ratings", "annotations", "bookmarks", "progress"):
        assert report.queues[q].synced == len(queued[q]), q
    with open_store(cfg) as store:
        left = store.pending("sessions")
    assert len(left) == len(queued["sessions"])
    for item in left:
        assert item.state == "uncertain"
        assert item.retry_count == 1
        assert "outcome unknown" in item.last_error
    # the server did commit every batch
    assert_sessions_once(emu, cfg, queued)

    emu.state.clear_faults()
    since = last_seq(emu)
    report = sync_once(cfg)
    assert report.exit_code == 0, report.messages
    assert report.queues["sessions"].synced == len(queued["sessions"])
    log = emu.request_log(since)
    assert posts(log, SESSIONS, prefix=True) == []  # verified, not resent
    assert gets(log, SESSIONS + "/book/")  # the paged sessions list was read
    assert_exactly_once(emu, cfg, queued)
    assert_clean_rerun(emu, cfg)


def test_commit_then_drop_on_v1_note_and_pdf_bookmark(setup, emu):
    """The writes the server does not deduplicate (v1 book notes, bookmarks without a
    CFI) are stored but unacknowledged: verified by the next run, never doubled."""
    cfg, queued = setup
    emu.state.inject_fault(NOTES_V1, action="commit_then_drop", method="POST", times=None)
    emu.state.inject_fault(BOOKMARKS, action="commit_then_drop", method="POST", times=None)
    v1_items = [i for i in queued["annotations"] if is_paged(i)]
    pdf_marks = [i for i in queued["bookmarks"] if is_paged(i)]
    cfi_marks = [i for i in queued["bookmarks"] if not is_paged(i)]
    assert v1_items and pdf_marks and cfi_marks

    report = sync_once(cfg)
    assert report.exit_code == 1
    assert report.queues["sessions"].synced == len(queued["sessions"])
    with open_store(cfg) as store:
        notes_left = {i.id: i for i in store.pending("annotations")}
        marks_left = {i.id: i for i in store.pending("bookmarks")}
    assert set(notes_left) == {i.id for i in v1_items}
    assert all(i.state == "uncertain" and i.retry_count == 1 for i in notes_left.values())
    assert set(marks_left) == {i.id for i in queued["bookmarks"]}
    for item in pdf_marks:
        assert marks_left[item.id].state == "uncertain"
    for item in cfi_marks:  # deduplicated by the server: a plain retry is safe
        assert marks_left[item.id].state == "pending"
    # each was stored once (the client never resent a non-deduplicated write)
    assert len(emu.state.book_notes()) == len(v1_items)
    assert len([b for b in emu.state.bookmarks() if not b.get("cfi")]) == len(pdf_marks)

    emu.state.clear_faults()
    since = last_seq(emu)
    report = sync_once(cfg)
    assert report.exit_code == 0, report.messages
    log = emu.request_log(since)
    assert posts(log, NOTES_V1) == []  # found by the check
    assert gets(log, NOTES_V1 + "/book/")
    assert gets(log, BOOKMARKS + "/book/")
    sent_marks = posts(log, BOOKMARKS)
    assert all(e["body"].get("cfi") for e in sent_marks)  # only the deduplicated ones
    assert all(e["status"] == 409 for e in sent_marks)  # already there: success
    assert_exactly_once(emu, cfg, queued)
    assert_clean_rerun(emu, cfg)


def test_drop_before_commit_is_resent_once(setup, emu):
    """A connection dropped before processing: nothing was stored; the next run checks,
    finds nothing and sends each item once."""
    cfg, queued = setup
    for path in (BATCH, NOTES_V1, BOOKMARKS):
        emu.state.inject_fault(path, action="drop", method="POST", times=None)
    v1_items = [i for i in queued["annotations"] if is_paged(i)]
    pdf_marks = [i for i in queued["bookmarks"] if is_paged(i)]

    report = sync_once(cfg)
    assert report.exit_code == 1
    assert report.queues["sessions"].failed == len(queued["sessions"])
    state = emu.state
    assert state.sessions() == [] and state.book_notes() == [] and state.bookmarks() == []
    with open_store(cfg) as store:
        assert all(i.state == "uncertain" for i in store.pending("sessions"))
        assert {i.id for i in store.pending("annotations") if i.state == "uncertain"} == {
            i.id for i in v1_items}
        assert {i.id for i in store.pending("bookmarks") if i.state == "uncertain"} == {
            i.id for i in pdf_marks}

    emu.state.clear_faults()
    since = last_seq(emu)
    report = sync_once(cfg)
    assert report.exit_code == 0, report.messages
    log = emu.request_log(since)
    assert gets(log, SESSIONS + "/book/")  # checked first
    assert posts(log, BATCH)  # then resent
    assert len(posts(log, NOTES_V1)) == len(v1_items)
    assert_exactly_once(emu, cfg, queued)
    assert_clean_rerun(emu, cfg)


# ------------------------------------------------------------------ 4. expired tokens
class _ExpireOnce:
    """A client proxy that expires every access token on the server right before the
    first call of ``method`` (an access token that expires mid-run)."""

    def __init__(self, client, emu, method: str) -> None:
        self._client, self._emu, self._method, self.fired = client, emu, method, False

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if name != self._method:
            return attr

        def call(*args, **kwargs):
            if not self.fired:
                self.fired = True
                assert self._emu.state.expire_access_tokens() > 0
            return attr(*args, **kwargs)

        return call


@pytest.mark.parametrize("concurrency", [1, 4])
def test_access_token_expires_mid_run(setup, emu, concurrency):
    cfg, queued = setup
    cfg.file_values["http.max_concurrency"] = concurrency
    with open_store(cfg) as store, make_client(cfg, store) as client:
        proxy = _ExpireOnce(client, emu, "post_sessions_batch")
        report = sync_locked(cfg, store, proxy)
    assert proxy.fired
    assert report.exit_code == 0, report.messages
    log = emu.request_log()
    refresh = [e for e in log if e["path"] == REFRESH]
    assert [e["status"] for e in refresh] == [200]
    first_batch = posts(log, BATCH)[0]
    assert first_batch["status"] == 401 and first_batch["seq"] < refresh[0]["seq"]
    if concurrency == 1:
        assert all(e["status"] == 200 for e in posts(log, BATCH)[1:])
    else:
        # the batches already on their way carried the expired token too: each was
        # refused, then sent again with the one renewed token
        statuses = Counter(e["status"] for e in posts(log, BATCH))
        assert set(statuses) == {200, 401}
        assert statuses[401] <= concurrency
    assert_exactly_once(emu, cfg, queued)


def test_access_token_expired_between_runs(setup, emu, fake_keyring):
    """The refresh token kept in the keyring renews the session of the next run."""
    cfg, queued = setup
    emu.state.inject_fault(BATCH, action="status", status=400, method="POST", times=None)
    assert sync_once(cfg).exit_code == 1  # the sessions wait for the next run
    assert json.loads(fake_keyring.read_text())  # a refresh token was kept
    assert emu.state.expire_access_tokens() > 0
    emu.state.clear_faults()
    since = last_seq(emu)
    report = sync_once(cfg)
    assert report.exit_code == 0, report.messages
    log = emu.request_log(since)
    assert [e["status"] for e in log if e["path"] == REFRESH] == [200]
    assert [e for e in log if e["path"] == "/api/v1/auth/login"] == []
    assert_exactly_once(emu, cfg, queued)


# ------------------------------------------------------------------ 5. server down -> up
def test_server_down_then_up(home, kobo, emulator_factory, library, tmp_path):
    state_file = tmp_path / "emulator-state.json"
    emu = emulator_factory("fork", state_file=state_file)
    port = emu.port
    cfg = make_config(home, emu.base_url, read_timeout=0.5)
    scan_into(cfg, kobo)
    queued = snapshot(cfg)
    emu.stop()

    report = sync_once(cfg)
    assert report.exit_code == 3
    assert report.offline and report.to_json()["offline"] is True
    assert all(t.synced == t.failed == t.skipped == 0 for t in report.queues.values())
    with open_store(cfg) as store:
        items = store.all_pending()
    assert len(items) == sum(len(v) for v in queued.values())
    assert all(i.retry_count == 0 and i.last_attempt_at is None and i.state == "pending"
               for i in items)

    # the same server comes back (same address, same stored state)
    with start_emulator(mode="fork", port=port, library=library, state_file=state_file) as emu2:
        assert emu2.base_url == emu.base_url
        report = sync_once(cfg)
        assert report.exit_code == 0, report.messages
        assert report.synced == len(items)
        assert_exactly_once(emu2, cfg, queued)
        assert_clean_rerun(emu2, cfg)


# ------------------------------------------------------------------ 6. server lost mid-run
def test_server_lost_mid_run(setup, emu):
    """The progress phase meets a 503 (a proxy in front of a stopped server): the run
    stops there; ratings, annotations and bookmarks stay synced; progress and sessions
    stay queued, counted failed, with no attempt counted against them."""
    cfg, queued = setup
    emu.state.inject_fault(KO_PROGRESS, action="status", status=503, method="PUT", times=None)
    report = sync_once(cfg)
    assert report.exit_code == 1, report.messages
    assert report.server_lost and report.to_json()["offline"] is False
    for q in ("ratings", "annotations", "bookmarks"):
        assert report.queues[q].synced == len(queued[q]), q
    for q in ("progress", "sessions"):
        assert report.queues[q].failed == len(queued[q]), q
        assert report.queues[q].synced == 0, q
    with open_store(cfg) as store:
        assert {q: n for q, n in store.counts().items() if n} == {
            "progress": len(queued["progress"]), "sessions": len(queued["sessions"])}
        for item in store.pending("progress") + store.pending("sessions"):
            assert item.retry_count == 0 and item.state == "pending"
            assert item.last_attempt_at is None
            assert item.last_error
    log = emu.request_log()
    lost = next(e for e in log if e["path"] == KO_PROGRESS and e["status"] == 503)
    assert [e for e in log if e["seq"] > lost["seq"] and e["path"].startswith(SESSIONS)] == []
    assert emu.state.sessions() == []

    emu.state.clear_faults()
    report = sync_once(cfg)
    assert report.exit_code == 0, report.messages
    assert report.synced == len(queued["progress"]) + len(queued["sessions"])
    assert_exactly_once(emu, cfg, queued)


# ------------------------------------------------------------------ 7. SIGKILL mid-sync
def _wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _sync_process(home: Path, url: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(make_env(url), BOOKLORE_SYNC_HOME=str(home))
    return subprocess.Popen([sys.executable, "-m", "booklore_sync", "sync", *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_sigkill_while_batch_in_flight(home, kobo, emu, concurrency):
    cfg = make_config(home, emu.base_url)
    cfg.set("http.max_concurrency", str(concurrency))
    cfg.set("sync.settle_seconds", "0")
    cfg.save()
    scan_into(cfg, kobo)
    queued = snapshot(cfg)
    emu.state.inject_fault(BATCH, action="commit_then_hang", method="POST", times=1)
    proc = _sync_process(home, emu.base_url)
    try:
        hung = _wait_for(lambda: [e for e in emu.request_log()
                                  if e["path"] == BATCH and e["outcome"] == "hung"],
                         what="the batch request to reach the server")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    stored_batch = hung[0]["body"]["sessions"]
    with open_store(cfg) as store:
        in_flight = {i.payload["startTime"] for i in store.pending("sessions")
                     if i.state == "in_flight"}
        queued_now = {i.payload["startTime"][:19]: i.state for i in store.pending("sessions")}
    on_server = [s["startTime"][:19] for s in emu.state.sessions()]
    assert set(on_server) & set(queued_now)  # the same form on both sides
    if concurrency == 1:
        assert len(on_server) == len(stored_batch)  # committed, never acknowledged
    else:
        # the other books' batches went on meanwhile: each session on the server is
        # either confirmed (out of the queue) or still marked in flight, never pending
        assert len(on_server) >= len(stored_batch)
        assert all(queued_now.get(start, "in_flight") == "in_flight" for start in on_server)
    # the request's sessions were durably in flight (the engine marks every session it
    # may send before the first request of the phase)
    assert {s["startTime"] for s in stored_batch} <= in_flight

    since = last_seq(emu)
    report = sync_once(cfg)
    assert report.exit_code == 0, report.messages
    log = emu.request_log(since)
    resent = {s["startTime"] for e in posts(log, SESSIONS, prefix=True)
              for s in (e["body"].get("sessions") or [e["body"]])}
    assert not resent & {s["startTime"] for s in stored_batch}
    assert_exactly_once(emu, cfg, queued)


# ------------------------------------------------------------------ 8. two syncs at once
def test_two_concurrent_syncs(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    queued = snapshot(cfg)
    total = sum(len(v) for v in queued.values())
    emu.state.inject_fault(BATCH, action="delay", delay_ms=4000, method="POST", times=1)
    procs = [_sync_process(home, emu.base_url, "--json") for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        results.append((proc.returncode, json.loads(out), err))
    codes = sorted(code for code, _, _ in results)
    assert codes in ([0, 4], [0, 0]), results
    synced = sum(data[q]["synced"] for _, data, _ in results for q in QUEUES)
    assert synced == total
    for code, data, err in results:
        assert data["offline"] is False
        if code == 4:
            assert all(data[q] == {"synced": 0, "failed": 0, "skipped": 0} for q in QUEUES)
            assert "sync already in progress" in err
    assert_exactly_once(emu, cfg, queued)


# ------------------------------------------------------------------ uncertain stays uncertain
def _uncertain_states(cfg) -> dict[str, set[str]]:
    with open_store(cfg) as store:
        return {q: {i.state for i in store.pending(q)} for q in ("sessions", "annotations",
                                                                  "bookmarks")}


def test_uncertain_items_stay_uncertain_when_the_server_is_lost(setup, emu):
    """Sessions whose batch outcome is unknown, then a run that loses the server before
    the sessions phase: they were not checked, so they must still be checked (not
    blindly resent) by the run after."""
    cfg, queued = setup
    emu.state.inject_fault(BATCH, action="commit_then_drop", method="POST", times=None)
    emu.state.inject_fault(ANNOTATIONS, action="status", status=500, method="POST", times=None)
    assert sync_once(cfg).exit_code == 1
    assert _uncertain_states(cfg)["sessions"] == {"uncertain"}

    emu.state.clear_faults()
    emu.state.inject_fault(ANNOTATIONS, action="status", status=503, method="POST", times=None)
    report = sync_once(cfg)
    assert report.server_lost and report.exit_code == 1
    with open_store(cfg) as store:
        sessions = store.pending("sessions")
    assert len(sessions) == len(queued["sessions"])
    assert all(i.state == "uncertain" and i.retry_count == 1 for i in sessions)

    emu.state.clear_faults()
    since = last_seq(emu)
    report = sync_once(cfg)
    assert report.exit_code == 0, report.messages
    assert posts(emu.request_log(since), SESSIONS, prefix=True) == []
    assert_exactly_once(emu, cfg, queued)


def test_uncertain_items_stay_uncertain_when_the_check_fails(setup, emu):
    """The check itself (the list GETs) fails with a 500: the items stay uncertain and
    the next run checks again instead of resending."""
    cfg, queued = setup
    for path in (BATCH, NOTES_V1, BOOKMARKS):
        emu.state.inject_fault(path, action="commit_then_drop", method="POST", times=None)
    assert sync_once(cfg).exit_code == 1
    before = _uncertain_states(cfg)
    assert before["sessions"] == {"uncertain"} and "uncertain" in before["annotations"]
    assert "uncertain" in before["bookmarks"]

    emu.state.clear_faults()
    for path in (SESSIONS + "/book/", NOTES_V1 + "/book/", BOOKMARKS + "/book/"):
        emu.state.inject_fault(path, action="status", status=500, method="GET", match="prefix",
                               times=None)
    report = sync_once(cfg)
    assert report.exit_code == 1
    with open_store(cfg) as store:
        for q in ("sessions", "annotations", "bookmarks"):
            for item in store.pending(q):
                if item.queue == "bookmarks" and not is_paged(item):
                    continue  # deduplicated by the server: retried plainly
                assert item.state == "uncertain", (q, item.id, item.last_error)

    emu.state.clear_faults()
    since = last_seq(emu)
    report = sync_once(cfg)
    assert report.exit_code == 0, report.messages
    log = emu.request_log(since)
    assert posts(log, SESSIONS, prefix=True) == [] and posts(log, NOTES_V1) == []
    assert all(e["body"].get("cfi") for e in posts(log, BOOKMARKS))
    assert_exactly_once(emu, cfg, queued)


def test_no_answer_to_a_capability_probe_is_server_trouble(setup, emu):
    """The health probe answers, a later probe's connection drops every time: the
    server is in trouble (exit 1, nothing attempted), not a configuration error."""
    cfg, queued = setup
    emu.state.inject_fault("/api/koreader/books/by-hash/", action="drop", method="GET",
                           match="prefix", times=None)
    report = sync_once(cfg)
    assert report.exit_code == 1, (report.config_errors, report.messages)
    assert report.server_lost and not report.config_errors
    for q in QUEUES:
        assert report.queues[q].failed == len(queued[q]), q
    with open_store(cfg) as store:
        items = store.all_pending()
    assert len(items) == sum(len(v) for v in queued.values())
    assert all(i.retry_count == 0 and i.last_attempt_at is None for i in items)
    assert writes(emu.request_log()) == []

    emu.state.clear_faults()
    assert sync_once(cfg).exit_code == 0
    assert_exactly_once(emu, cfg, queued)


# --------------------------------------------------------------------------- same titles
PDF_FP = "d" * 32


def _two_bookmarks_same_page(home, emu):
    """A PDF book with two bookmarks on one page: same title, no CFI."""
    book = emu.state.add_book(title="Scanned Manual", file_hash=PDF_FP, book_type="PDF")
    cfg = make_config(home, emu.base_url)
    cfg.file_values["sync.settle_seconds"] = 0
    with open_store(cfg) as store:
        store.upsert_book(PDF_FP, title="Scanned Manual", book_type="PDF")
        for stamp in ("2024-03-01 10:00:00", "2024-03-01 11:00:00"):
            store.enqueue_bookmark(PDF_FP, stamp, {
                "paged": True, "cfi": None, "title": "p. 2 — Setup", "page": 2,
                "chapter": "Setup", "text": None, "datetime": stamp})
    return cfg, book["id"]


def test_lost_bookmark_is_not_mistaken_for_its_same_titled_sibling(home, emu):
    cfg, book_id = _two_bookmarks_same_page(home, emu)
    # the first bookmark goes through; the second is dropped before the server stores it
    emu.state.inject_fault("/api/v1/bookmarks", action="drop", method="POST", skip=1, times=1)
    first = sync_once(cfg)
    assert first.queues["bookmarks"].synced == 1 and first.queues["bookmarks"].failed == 1
    assert len(emu.state.bookmarks(book_id=book_id)) == 1
    second = sync_once(cfg)
    assert second.exit_code == 0, second.messages
    # the second bookmark was checked, not found (the one there is the first's), and sent
    assert len(emu.state.bookmarks(book_id=book_id)) == 2
    with open_store(cfg) as store:
        assert store.counts()["bookmarks"] == 0


def test_committed_bookmark_with_lost_answer_is_not_sent_twice(home, emu):
    cfg, book_id = _two_bookmarks_same_page(home, emu)
    emu.state.inject_fault("/api/v1/bookmarks", action="commit_then_drop", method="POST",
                           skip=1, times=1)
    sync_once(cfg)
    assert len(emu.state.bookmarks(book_id=book_id)) == 2
    assert sync_once(cfg).exit_code == 0
    assert len(emu.state.bookmarks(book_id=book_id)) == 2
    with open_store(cfg) as store:
        assert store.counts()["bookmarks"] == 0

"""Sync Pending Now end to end: scanned fixture device → engine → emulator over HTTP."""

from __future__ import annotations

from collections import Counter

from booklore_sync.actions.sync import sync_once
from booklore_sync.store import QUEUES
from tests.sync.conftest import make_config, open_store, scan_into

PHASE_PATHS = [
    ("ratings", "/api/v1/books/personal-rating"),
    ("annotations", "/api/v1/annotations"),
    ("annotations", "/api/v2/book-notes"),
    ("annotations", "/api/v1/book-notes"),
    ("bookmarks", "/api/v1/bookmarks"),
    ("progress", "/api/koreader/syncs/progress"),
    ("sessions", "/api/v1/reading-sessions"),
]


def _phase_of(entry) -> str | None:
    if entry["method"] not in ("POST", "PUT"):
        return None
    path = entry["path"].split("?")[0]
    for phase, prefix in PHASE_PATHS:
        if path == prefix or path.startswith(prefix + "/"):
            return phase
    return None


def test_fork_end_to_end(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan = scan_into(cfg, kobo)
    assert sum(scan.queued.values()) > 0
    with open_store(cfg) as store:
        queued = {q: store.pending(q) for q in QUEUES}
    report = sync_once(cfg)
    assert report.exit_code == 0, (report.messages, report.to_json())
    assert report.to_json()["offline"] is False
    for q in QUEUES:
        assert report.queues[q].synced == len(queued[q]), q
    with open_store(cfg) as store:
        assert all(v == 0 for v in store.counts().values())
        books = {b.file_hash: b.book_id for b in store.books()}

    state = emu.state
    # sessions: every local session once, on the right book, in batches of <= 100
    assert len(state.sessions()) == len(queued["sessions"])
    stored = Counter((s["bookId"], s["startTime"][:19]) for s in state.sessions())
    for item in queued["sessions"]:
        key = (books[item.fingerprint], item.payload["startTime"][:19])
        assert stored[key] == 1
    # ratings: KOReader stars x2, on the right books
    got = {r["bookId"]: r["personalRating"] for r in state.ratings()}
    assert got == {books[i.fingerprint]: i.key["rating"] for i in queued["ratings"]}
    assert all(2 <= v <= 10 and v % 2 == 0 for v in got.values())
    # progress: fractions 0-1 by fingerprint
    pushed = {p["bookId"]: p["koreaderPercent"] for p in state.progress()
              if p.get("koreaderPercent") is not None}
    for item in queued["progress"]:
        assert abs(pushed[books[item.fingerprint]] - item.key["percentage"]) < 1e-9
        assert 0 < item.key["percentage"] <= 1
    # highlights carry the CFI computed from the XPointer
    cfis = {a["cfi"] for a in state.annotations()}
    for item in queued["annotations"]:
        if item.key["kind"] == "highlight" and item.payload.get("cfi"):
            assert item.payload["cfi"] in cfis

    # order of the phases: ratings, annotations, bookmarks, progress, sessions
    phases = [p for p in (_phase_of(e) for e in emu.request_log()) if p]
    order = ["ratings", "annotations", "bookmarks", "progress", "sessions"]
    ranks = [order.index(p) for p in phases]
    assert ranks == sorted(ranks)
    batches = [e for e in emu.request_log() if e["path"].endswith("/reading-sessions/batch")]
    assert batches and all(len(e["body"]["sessions"]) <= 100 for e in batches)

    # a second run sends nothing and doubles nothing
    before = len(emu.request_log())
    again = sync_once(cfg)
    assert again.exit_code == 0 and again.synced == 0
    writes = [e for e in emu.request_log()[before:] if e["method"] in ("POST", "PUT")]
    assert writes == []
    assert len(state.sessions()) == len(queued["sessions"])


def test_rescan_after_sync_queues_nothing(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    assert sync_once(cfg).exit_code == 0
    again = scan_into(cfg, kobo)
    assert sum(again.queued.values()) == 0


def test_upstream_without_by_hash(home, kobo, emulator_factory):
    emu = emulator_factory("upstream")
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    report = sync_once(cfg)
    # no fingerprint lookup on upstream: book items wait (skipped), progress goes by hash
    assert report.exit_code == 0, report.messages
    assert report.queues["sessions"].skipped > 0 and report.queues["sessions"].failed == 0
    assert report.queues["progress"].synced > 0
    assert emu.state.sessions() == []
    # the html fallback of upstream was never taken for a found book
    with open_store(cfg) as store:
        assert all(b.book_id is None for b in store.books())
    with open_store(cfg) as store:
        items = store.pending("sessions")
        assert items and all("match" in (i.last_error or "") for i in items)
        assert all(i.retry_count == 0 for i in items)


def test_offline_exit_3_counts_no_attempt(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    emu.stop()
    report = sync_once(cfg)
    assert report.exit_code == 3 and report.offline
    assert report.to_json()["offline"] is True
    assert all(v == {"synced": 0, "failed": 0, "skipped": 0}
               for k, v in report.to_json().items() if k != "offline")
    with open_store(cfg) as store:
        assert all(i.retry_count == 0 and i.last_attempt_at is None for i in store.all_pending())


def test_missing_account_skips_and_exits_2(home, kobo, emu):
    cfg = make_config(home, emu.base_url, booklore=False)
    scan_into(cfg, kobo)
    report = sync_once(cfg)
    assert report.exit_code == 2
    assert "booklore" in report.missing_accounts
    assert report.queues["ratings"].skipped > 0 and report.queues["ratings"].failed == 0
    assert report.queues["progress"].synced > 0  # the KOReader account's part went through


def test_rejected_account_names_it(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    cfg.env["BOOKLORE_PASSWORD"] = "wrong"
    scan_into(cfg, kobo)
    report = sync_once(cfg)
    assert report.exit_code == 2
    assert "booklore" in report.rejected_accounts
    assert "BookLore account" in report.rejected_accounts["booklore"]
    assert report.queues["progress"].synced > 0
    with open_store(cfg) as store:
        ratings = store.pending("ratings")
        assert ratings and all(i.retry_count == 0 for i in ratings)

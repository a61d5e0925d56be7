"""Progress phase against the emulator: newest wins across every server source, status
protection, positions by book id, KOReader's status, Sync switched off (spec §4.1)."""

from __future__ import annotations

import time
import weakref

import pytest

from booklore_sync.actions.sync import sync_once
from booklore_sync.booklore import BookLoreClient
from booklore_sync.sync.progress import SYNC_OFF
from tests.sync.conftest import make_config, open_store

XP = "/body/DocFragment[3]/body/p[4]/text().0"
HOUR = 3600


def fp(n: int) -> str:
    return f"{n:032x}"


@pytest.fixture
def server(emulator_factory):
    return emulator_factory("fork", library=None)


def client(emu) -> BookLoreClient:
    return BookLoreClient(emu.base_url, booklore_user="demo", booklore_password="demo",
                          koreader_user="demo", koreader_password="demo")


def at(emu, seconds_ago: float, action) -> None:
    """Do ``action`` on the server as if ``seconds_ago`` seconds ago (its clock)."""
    emu.state.set_clock(time.time() - seconds_ago)
    try:
        action()
    finally:
        emu.state.real_clock()


def local_book(cfg, n: int, book_id: int | None, *, book_type: str = "EPUB",
               progress: str = XP, pct: float = 0.4, position_time: float | None = None,
               **payload) -> None:
    with open_store(cfg) as store:
        cache_id = store.upsert_book(fp(n), title=f"Book {n}", book_type=book_type)
        if book_id is not None:
            store.set_book_id(cache_id, book_id, "manual")
        payload.setdefault("device", "Kobo")
        payload.setdefault("device_id", "d" * 32)
        payload["position_time"] = int(position_time) if position_time is not None else None
        store.enqueue_progress(fp(n), progress, pct, payload)


def puts(emu) -> list[dict]:
    return [e for e in emu.request_log() if e["method"] == "PUT"
            and e["path"].startswith("/api/koreader/syncs/progress")]


_READERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def book(emu, book_id: int) -> dict:
    # one reading client per emulator: a new client per look-up would log in each time,
    # and logins are spaced a second apart
    reader = _READERS.get(emu)
    if reader is None:
        reader = _READERS[emu] = client(emu)
    return reader.get_book(book_id).raw


def history(cfg) -> list[tuple[str, str]]:
    with open_store(cfg) as store:
        rows = store._execute("SELECT fingerprint, settled FROM synced_koreader_progress"
                              " ORDER BY id").fetchall()
    return [(r[0], r[1]) for r in rows]


def test_read_on_server_later_than_device_is_kept(home, server):
    b = server.state.add_book(title="Dune", file_hash=fp(1))
    with client(server) as c:
        at(server, 600, lambda: c.set_read_status(b["id"], "READ"))
    cfg = make_config(home, server.base_url)
    local_book(cfg, 1, b["id"], position_time=time.time() - 2 * HOUR)
    report = sync_once(cfg)
    assert report.exit_code == 0, report.summary_lines()
    assert report.queues["progress"].synced == 1
    assert puts(server) == []
    assert book(server, b["id"])["readStatus"] == "READ"
    assert history(cfg) == [(fp(1), "server_newer")]


def test_web_reader_newer_than_device_not_pushed(home, server):
    b = server.state.add_book(title="Web", file_hash=fp(2))
    with client(server) as c:
        c.post_book_progress(b["id"], book_type="EPUB", percentage=70.0,
                             cfi="epubcfi(/6/4!/4/2/1:0)")
    cfg = make_config(home, server.base_url)
    local_book(cfg, 2, b["id"], pct=0.3, position_time=time.time() - HOUR)
    report = sync_once(cfg)
    assert report.queues["progress"].synced == 1
    assert puts(server) == []
    assert book(server, b["id"])["epubProgress"]["percentage"] == 70.0


def test_device_newer_is_pushed_and_rerun_leaves_it(home, server):
    b = server.state.add_book(title="Old", file_hash=fp(3))
    with client(server) as c:
        at(server, 3 * HOUR, lambda: c.post_book_progress(
            b["id"], book_type="EPUB", percentage=10.0, cfi="epubcfi(/6/4!/4/2/1:0)"))
    cfg = make_config(home, server.base_url)
    local_book(cfg, 3, b["id"], pct=0.55, position_time=time.time() - 60)
    report = sync_once(cfg)
    assert report.exit_code == 0 and report.queues["progress"].synced == 1
    assert len(puts(server)) == 1
    assert book(server, b["id"])["koreaderProgress"]["percentage"] == pytest.approx(55.0)
    assert history(cfg) == [(fp(3), "uploaded")]


def test_hand_matched_book_gets_position_by_id(home, server):
    # the server holds another file of the book: kosync does not know our fingerprint
    b = server.state.add_book(title="Tall", file_hash=fp(90), book_type="PDF")
    other = server.state.add_book(title="Leaves", file_hash=fp(91), book_type="PDF")
    cfg = make_config(home, server.base_url)
    local_book(cfg, 4, b["id"], book_type="PDF", progress="12", pct=0.25,
               position_time=time.time() - 60, page=12)
    local_book(cfg, 5, other["id"], book_type="EPUB", pct=0.5,
               position_time=time.time() - 60)
    report = sync_once(cfg)
    got = book(server, b["id"])
    assert got["pdfProgress"]["page"] == 12 and got["pdfProgress"]["percentage"] == 25.0
    tally = report.queues["progress"]
    assert tally.synced == 1 and tally.skipped == 1
    reason = "the server holds this book as PDF; positions carry over only within one format"
    assert tally.skip_reasons == {reason: 1}
    with open_store(cfg) as store:
        (left,) = store.pending("progress")
        assert left.last_error == reason and left.retry_count == 0
        assert store.get_book_by_hash(fp(5)).book_id == other["id"]  # the ID stays


def test_finished_book_gets_status_read_after_the_push(home, server):
    b = server.state.add_book(title="Done", file_hash=fp(6))
    with client(server) as c:
        at(server, 3 * 86400, lambda: c.post_book_progress(
            b["id"], book_type="EPUB", percentage=50.0, cfi="epubcfi(/6/4!/4/2/1:0)"))
    cfg = make_config(home, server.base_url)
    local_book(cfg, 6, b["id"], pct=0.9, position_time=time.time() - 60,
               status="complete", status_modified="2026-01-01",
               status_time=int(time.time() - HOUR))
    report = sync_once(cfg)
    assert report.exit_code == 0, report.summary_lines()
    got = book(server, b["id"])
    assert got["readStatus"] == "READ"
    log = [e["path"] for e in server.request_log() if e["method"] in ("PUT", "POST")]
    assert log.index("/api/v1/books/status") > log.index("/api/koreader/syncs/progress")
    # a rescan of the same values queues nothing; the status is settled
    with open_store(cfg) as store:
        assert store.enqueue_progress(fp(6), XP, 0.9, {
            "status": "complete", "status_modified": "2026-01-01"}) == "already_synced"


def test_first_run_of_large_history_pushes_only_newer(home, server):
    now = time.time()
    newer, older = [], []
    cfg = make_config(home, server.base_url)
    with client(server) as c:
        for n in range(10, 30):
            b = server.state.add_book(title=f"B{n}", file_hash=fp(n))
            at(server, 2 * HOUR, lambda bid=b["id"]: c.post_book_progress(
                bid, book_type="EPUB", percentage=20.0, cfi="epubcfi(/6/4!/4/2/1:0)"))
            device_newer = n % 2 == 0
            local_book(cfg, n, b["id"], pct=0.6,
                       position_time=now - (60 if device_newer else 5 * HOUR))
            (newer if device_newer else older).append(b["id"])
        # finished on the server long ago, read on the device since: protected on the
        # first sight of the status, so the first run does not undo it
        prot = server.state.add_book(title="Protected", file_hash=fp(40))
        at(server, 30 * 86400, lambda: c.set_read_status(prot["id"], "READ"))
    local_book(cfg, 40, prot["id"], pct=0.3, position_time=now - 60)
    report = sync_once(cfg)
    assert report.exit_code == 0
    assert report.queues["progress"].synced == 21
    assert len(puts(server)) == len(newer) == 10
    for bid in newer:
        assert book(server, bid)["readStatus"] == "READING"
        assert book(server, bid)["koreaderProgress"]["percentage"] == pytest.approx(60.0)
    for bid in older:
        assert "koreaderProgress" not in book(server, bid)
    assert book(server, prot["id"])["readStatus"] == "READ"


def test_sync_switched_off_skips_progress_exit_2(home, emulator_factory):
    emu = emulator_factory("fork", library=None, koreader_sync=False)
    b = emu.state.add_book(title="Off", file_hash=fp(50))
    cfg = make_config(home, emu.base_url)
    local_book(cfg, 50, b["id"], position_time=time.time())
    with open_store(cfg) as store:
        store.enqueue_session(fp(50), int(time.time()) - 600, {
            "bookType": "EPUB", "startTime": "2026-01-01T10:00:00Z",
            "endTime": "2026-01-01T10:10:00Z", "durationSeconds": 600,
            "startProgress": 10.0, "endProgress": 20.0, "progressDelta": 10.0,
            "startLocation": "1", "endLocation": "2", "durationFormatted": "10m 0s"})
    report = sync_once(cfg)
    assert report.exit_code == 2
    assert report.queues["progress"].skip_reasons == {SYNC_OFF: 1}
    assert report.queues["sessions"].synced == 1
    assert not report.rejected_accounts
    assert len(emu.state.sessions(book_id=b["id"])) == 1
    with open_store(cfg) as store:
        (item,) = store.pending("progress")
        assert item.last_error == SYNC_OFF and item.retry_count == 0

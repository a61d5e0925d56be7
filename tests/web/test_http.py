"""`serve` over real HTTP (spec §10): the menu, every action, the jobs, the lock."""

from __future__ import annotations

import os
import re

from booklore_sync.labels import menu_entries
from booklore_sync.store import QUEUES, SyncLock
from tests.sync.conftest import make_config, make_env, open_store, scan_into
from tests.web.conftest import Page, csrf, home_path, run_job, wait_for

FP_A = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
FP_B = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
SESSION = {"bookType": "EPUB", "startTime": "2023-11-14T22:13:20Z",
           "endTime": "2023-11-14T22:43:20Z", "durationSeconds": 1800,
           "durationFormatted": "30m 0s", "startProgress": 1.0, "endProgress": 5.0,
           "progressDelta": 4.0, "startLocation": "1", "endLocation": "9"}
MENU = ["Sync Pending Now", "View Pending Sessions", "Match Unmatched Books", "Clear Pending...",
        "Advanced", "Clear Cache"]


def _menu_buttons(html: str) -> list[tuple[str, bool]]:
    return [(b["name"], b["disabled"]) for b in Page(html).buttons if b["name"] != "Log out"]


def _expected(cfg) -> list[tuple[str, bool]]:
    with open_store(cfg) as store:
        return [(e.label, not e.enabled)
                for e in menu_entries(store.counts(), store.cache_counts())]


def _seed_unknown(cfg, title_a="Leaves of Grass"):
    with open_store(cfg) as store:
        store.upsert_book(FP_A, file_path="/dev/Books/leaves-copy.epub", title=title_a,
                          author="Walt Whitman")
        store.upsert_book(FP_B, file_path="/dev/Books/unknown-book.epub")
        for fp in (FP_A, FP_B):
            store.enqueue_session(fp, 1_700_000_000, SESSION)


def test_empty_menu_creates_no_store(serve_factory):
    s = serve_factory()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", s.url)
    with s.client() as c:
        r = c.get("/")
        assert r.status_code == 200
        page = Page(r.text)
        assert page.headings[0] == "Sync & Cache"
        assert _menu_buttons(r.text) == [(n, n in ("Sync Pending Now", "Match Unmatched Books",
                                                   "Clear Pending...", "Clear Cache"))
                                         for n in MENU]
        assert 'name="viewport"' in r.text
        cookie = r.headers["set-cookie"]
        for flag in ("HttpOnly", "SameSite=Strict", "Path=/"):
            assert flag in cookie
        assert c.get("/pending").status_code == 200
        assert c.get("/clear-pending").status_code == 200
        assert c.get("/advanced/clear").status_code == 200
    assert not (home_path() / "booklore-sync.db").exists()


def test_sync_job_and_counts(home, kobo, emulator_factory, serve_factory):
    emu = emulator_factory("fork")
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    with open_store(cfg) as store:
        before = store.counts()
    s = serve_factory(env=make_env(emu.base_url))
    with s.client() as c:
        menu = c.get("/").text
        assert _menu_buttons(menu) == _expected(cfg)
        assert any(n.startswith("Sync Pending Now (") for n, _ in _menu_buttons(menu))
        job_url, final, page = run_job(c, "/sync")
        assert final["state"] == "done" and final["total"] == sum(before.values())
        summary = final["summary"]
        assert set(QUEUES) <= set(summary) and summary["offline"] is False
        synced = sum(summary[q]["synced"] for q in QUEUES)
        skipped = sum(summary[q]["skipped"] for q in QUEUES)
        failed = sum(summary[q]["failed"] for q in QUEUES)
        assert synced > 0
        assert f"Synced {synced} items, {failed} failed, {skipped} skipped." in Page(page).text
        assert "S: " in page
        assert ("Back to Sync & Cache", "/") in Page(page).links
        assert 'http-equiv="refresh"' not in page  # done: no more reloads
        # the menu shows the new counts
        assert _menu_buttons(c.get("/").text) == _expected(cfg)
    assert len(emu.state.sessions()) == summary["sessions"]["synced"]


def test_running_job_page_refreshes(home, kobo, emulator_factory, serve_factory):
    emu = emulator_factory("fork")
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    # the first health probe answers after 3 s: the job is running while we look
    emu.state.inject_fault("/api/v1/healthcheck", action="delay", delay_ms=3000, times=1)
    s = serve_factory(env=make_env(emu.base_url))
    with s.client() as c:
        token = csrf(c.get("/").text)
        r = c.post("/sync", data={"csrf_token": token})
        job_url = r.headers["location"]
        running = c.get(job_url + ".json").json()
        assert running["state"] == "running" and running["summary"] is None
        assert running["phase"] in ("resolve", "ratings", "annotations", "bookmarks",
                                    "progress", "sessions")
        page = c.get(job_url).text
        assert '<meta http-equiv="refresh" content="2">' in page
        assert "Syncing…" in page
        wait_for(lambda: c.get(job_url + ".json").json()["state"] == "done", timeout=60)
        assert 'http-equiv="refresh"' not in c.get(job_url).text


def test_view_pending_escapes_and_lists_books(home, serve_factory):
    cfg = make_config(home, "http://127.0.0.1:9")
    _seed_unknown(cfg, title_a="<script>alert(1)</script> & Co")
    s = serve_factory()
    with s.client() as c:
        r = c.get("/pending")
    assert "<script>alert(1)</script>" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in r.text
    page = Page(r.text)
    for heading in ("Book cache", "Pending uploads", "Progress history"):
        assert heading in page.text
    assert "aaaaaaaa" in page.text and "unmatched" in page.text
    assert ("Close", "/") in page.links


def test_csrf_refused_and_nothing_changes(home, serve_factory):
    cfg = make_config(home, "http://127.0.0.1:9")
    _seed_unknown(cfg)
    s = serve_factory()
    with s.client() as c, s.client() as other:
        c.get("/")
        foreign = csrf(other.get("/").text)
        for data in ({}, {"csrf_token": "forged"}, {"csrf_token": foreign}):
            r = c.post("/clear-cache", data=data)
            assert r.status_code == 403, data
            r = c.post("/clear-pending", data={**data, "queue": "sessions"})
            assert r.status_code == 403, data
    with open_store(cfg) as store:
        assert store.cache_counts()["total"] == 2 and store.counts()["sessions"] == 2


def test_clear_pending_cache_and_history(home, serve_factory):
    cfg = make_config(home, "http://127.0.0.1:9")
    _seed_unknown(cfg)
    with open_store(cfg) as store:
        store.enqueue_rating(FP_A, 4)
    s = serve_factory()
    with s.client() as c:
        page = Page(c.get("/clear-pending").text)
        assert ("Cleared items are permanently deleted and will not be uploaded to BookLore. "
                "There is no undo.") in page.text
        assert [cb["label"] for cb in page.checkboxes] == ["Sessions (2)", "Ratings (1)"]
        assert all("checked" in cb for cb in page.checkboxes)
        page.button("Clear Selected"), page.button("Cancel")
        token = csrf(c.get("/").text)
        r = c.post("/clear-pending", data={"csrf_token": token})
        assert r.status_code == 303
        assert "Nothing was selected; nothing was cleared." in c.get("/").text
        r = c.post("/clear-pending", data={"csrf_token": token, "queue": "sessions"})
        assert r.status_code == 303 and r.headers["location"] == "/"
        menu = c.get("/").text
        assert "Cleared 2 pending sessions." in menu
        assert ("Sync Pending Now (1R)", False) in _menu_buttons(menu)
        assert "Cleared 2 pending sessions." not in c.get("/").text  # shown once

        page = Page(c.get("/advanced/clear").text)
        assert [cb["label"] for cb in page.checkboxes] == [
            "Historical sessions", "Synced annotations", "Synced bookmarks",
            "Rating sync history", "Synced progress", "Discarded items (Clear Pending list)"]
        assert not any("checked" in cb for cb in page.checkboxes)
        r = c.post("/advanced/clear", data={"csrf_token": token, "ledger": "discarded"})
        assert r.status_code == 303
        assert "Cleared 2 rows of discarded items (clear pending list)." in c.get("/").text

        r = c.post("/clear-cache", data={"csrf_token": token})
        assert r.status_code == 303 and r.headers["location"] == "/"
        menu = c.get("/").text
        assert "Cleared the book cache (2 books);" in menu
        assert ("Clear Cache", True) in _menu_buttons(menu)
    with open_store(cfg) as store:
        assert store.cache_counts()["total"] == 0
        assert store.counts()["ratings"] == 1 and store.counts()["sessions"] == 0


def test_lock_held_by_another_process(home, serve_factory):
    cfg = make_config(home, "http://127.0.0.1:9")
    _seed_unknown(cfg)
    s = serve_factory()
    lock = SyncLock(cfg.lock_path)
    lock.acquire()
    try:
        with s.client() as c:
            menu = c.get("/").text
            assert f"A sync is running (process {os.getpid()})." in menu
            token = csrf(menu)
            r = c.post("/clear-cache", data={"csrf_token": token})
            assert r.status_code == 409
            assert (f"Busy: process {os.getpid()} holds the store; nothing was changed."
                    in Page(r.text).text)
            assert ("Back to Sync & Cache", "/") in Page(r.text).links
    finally:
        lock.release()
    with open_store(cfg) as store:
        assert store.cache_counts()["total"] == 2
    with s.client() as c:
        assert "A sync is running" not in c.get("/").text


def test_match_then_manual(home, emulator_factory, serve_factory):
    emu = emulator_factory("fork")
    cfg = make_config(home, emu.base_url)
    _seed_unknown(cfg)
    leaves = next(b for b in emu.state.books() if b["metadata"].get("title") == "Leaves of Grass")
    s = serve_factory(env=make_env(emu.base_url))
    with s.client() as c:
        assert ("Match Unmatched Books (2)", False) in _menu_buttons(c.get("/").text)
        _job, final, page = run_job(c, "/match")
        assert final["state"] == "done"
        text = Page(page).text
        assert "0 newly matched, 2 still unmatched." in text
        assert "No new matches found (2 still unmatched). Match them manually?" in text
        Page(page).button("Yes"), Page(page).button("No")

        r = c.get("/match/manual")
        page = Page(r.text)
        assert page.headings[0] == "[1/2] Leaves of Grass (leaves-copy.epub)"
        names = [b["name"] for b in page.buttons]
        for name in ("Skip this book", "Search again", "Enter a BookLore ID", "Stop"):
            assert name in names
        candidates = [b for b in page.buttons if re.fullmatch(r".+ — .+ \(\d+%\)", b["name"])]
        assert 1 <= len(candidates) <= 5
        assert candidates[0]["name"].startswith("Leaves of Grass — ")
        assert "autofocus" in candidates[0]  # best >= 50 %: the best candidate has the focus
        assert names.index(candidates[0]["name"]) < names.index("Skip this book")
        token = csrf(r.text)

        # an unknown ID is refused; nothing changes
        c.post("/match/manual", data={"csrf_token": token, "cache_id": page.inputs[1]["value"],
                                      "action": "enter_id", "book_id": "999999"})
        r = c.get("/match/manual")
        assert "BookLore has no book with ID 999999." in r.text
        cache_id = [i for i in Page(r.text).inputs if i.get("name") == "cache_id"][0]["value"]
        # pick the best candidate: linked and its session uploaded at once
        r = c.post("/match/manual", data={"csrf_token": token, "cache_id": cache_id,
                                          "pick": candidates[0]["value"]})
        assert r.status_code == 303
        r = c.get("/match/manual")
        page = Page(r.text)
        assert page.headings[0] == "[2/2] unknown-book.epub"
        assert f"Matched Leaves of Grass to BookLore book {leaves['id']}." in page.text
        skip = page.button("Skip this book")
        names = [b["name"] for b in page.buttons]
        cands = [n for n in names if re.fullmatch(r".+ — .+ \(\d+%\)", n)]
        if not cands or all(int(re.search(r"\((\d+)%\)$", n).group(1)) < 50 for n in cands):
            assert names[0] == "Skip this book" and "autofocus" in skip
        cache_id = [i for i in page.inputs if i.get("name") == "cache_id"][0]["value"]
        c.post("/match/manual", data={"csrf_token": token, "cache_id": cache_id,
                                      "action": "search", "term": "Romeo"})
        page = Page(c.get("/match/manual").text)
        assert "Romeo" in page.text
        r = c.post("/match/manual", data={"csrf_token": token, "action": "stop"})
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert "1 newly matched, 1 still unmatched." in c.get("/").text
    with open_store(cfg) as store:
        assert store.get_book_by_hash(FP_A).book_id == leaves["id"]
        assert store.get_book_by_hash(FP_A).match_method == "manual"
        assert store.counts()["sessions"] == 1
    assert [x["bookId"] for x in emu.state.sessions()] == [leaves["id"]]


def test_rematch_job(home, emulator_factory, serve_factory):
    emu = emulator_factory("fork")
    cfg = make_config(home, emu.base_url)
    _seed_unknown(cfg)
    s = serve_factory(env=make_env(emu.base_url))
    with s.client() as c:
        page = Page(c.get("/advanced").text)
        page.button("Re-match All Books in Cache"), page.button("Clear...")
        page = Page(c.get("/advanced/rematch").text)
        page.button("Re-match"), page.button("Cancel")
        assert "manual links" in page.text
        _job, final, html = run_job(c, "/advanced/rematch")
        assert final["state"] == "done"
        assert final["summary"] == {"rematched": 0, "changed": 0, "now_unmatched": 0}
        assert "Re-matched: 0; changed: 0; now unmatched: 0;" in Page(html).text


def test_unknown_job_and_host(serve_factory):
    s = serve_factory()
    with s.client() as c:
        assert c.get("/jobs/nothing").status_code == 404
        assert c.get("/jobs/nothing.json").status_code == 404
        assert c.get("/", headers={"host": "evil.example:80"}).status_code == 400
        assert c.get("/", headers={"host": "localhost"}).status_code == 200


def test_serve_with_source_runs_watch(home, kobo, emulator_factory, serve_factory):
    emu = emulator_factory("fork")
    s = serve_factory(str(kobo), "--interval", "300", env=make_env(emu.base_url))
    with s.client() as c:
        def cycles():
            page = Page(c.get("/").text)
            return "Recent cycles" in page.headings and "scan: " in page.text and page
        page = wait_for(cycles, timeout=60, step=0.3)
        assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", page.text)
        assert "next run by" in page.text
    wait_for(lambda: len(emu.state.sessions()) > 0, timeout=60)


def test_a_damaged_store_is_named_not_a_traceback(home, serve_factory):
    """A store file that is not SQLite: every page names the file (never a bare 500 or a
    traceback), a clear is refused, and the file is left as it was."""
    cfg = make_config(home, "http://127.0.0.1:9")
    s = serve_factory()
    with s.client() as c:
        token = csrf(c.get("/").text)  # no store yet: the menu creates none
        cfg.store_path.parent.mkdir(parents=True, exist_ok=True)
        junk = b"not a database" * 100
        cfg.store_path.write_bytes(junk)
        menu = c.get("/")
        assert menu.status_code == 500 and cfg.store_path.name in menu.text
        assert "Traceback" not in menu.text and "Internal Server Error" not in menu.text
        for path in ("/clear-cache", "/clear-pending"):
            r = c.post(path, data={"csrf_token": token, "queue": "sessions"},
                       follow_redirects=True)
            assert cfg.store_path.name in r.text and "Cleared" not in r.text
    assert cfg.store_path.read_bytes() == junk

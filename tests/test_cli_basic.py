"""The commands that need no server, through the real entry point (spec §6)."""

from __future__ import annotations

import json
import os
import stat

from booklore_sync.store import Store
from tests.conftest import cli_json, run_cli

FP = "59d481d168cca6267322f150c5f6a2a3"
FP2 = "41cce710f34e5ec21315e19c99821415"

EMPTY_STATUS = {
    "book_cache": {"total": 0, "matched": 0, "unmatched": 0},
    "pending": {"sessions": 0, "annotations": 0, "ratings": 0, "bookmarks": 0, "progress": 0},
    "progress_history": 0,
}


def fill(home, sessions=3, annotations=1, ratings=2, bookmarks=1, progress=4):
    s = Store.open(home / "booklore-sync.db")
    fps = [f"{i:032x}" for i in range(10)]
    for i in range(sessions):
        s.enqueue_session(FP, 1000 + i, {})
    for i in range(annotations):
        s.enqueue_annotation(FP, f"2024-01-0{i + 1} 10:00:00", "highlight", "/p", {},
                             last_error="no CFI: the book file is missing")
    for i in range(ratings):
        s.enqueue_rating(fps[i], 8)
    for i in range(bookmarks):
        s.enqueue_bookmark(FP, f"2024-02-0{i + 1} 10:00:00", {})
    for i in range(progress):
        s.enqueue_progress(fps[i], "/body", 0.5, {})
    cid = s.upsert_book(FP, title="Leaves of Grass", file_path="/b/leaves.epub")
    s.set_book_id(cid, 1, "hash")
    s.upsert_book(FP2, title="Tall")
    s.close()


def test_status_json_empty_home():
    code, data = cli_json("status", "--json")
    assert code == 0
    assert data == EMPTY_STATUS


def test_status_json_counts(home):
    fill(home)
    code, data = cli_json("status", "--json")
    assert code == 0
    assert data == {
        "book_cache": {"total": 2, "matched": 1, "unmatched": 1},
        "pending": {"sessions": 3, "annotations": 1, "ratings": 2, "bookmarks": 1, "progress": 4},
        "progress_history": 0,
    }


def test_status_verbose_json_lists_items(home):
    fill(home, sessions=1, annotations=1, ratings=0, bookmarks=0, progress=0)
    code, data = cli_json("status", "--json", "--verbose")
    assert code == 0
    assert {k for k in data} == {"book_cache", "pending", "progress_history", "items", "books"}
    (book,) = data["books"]  # grouped by book (spec §4.2, §6.4)
    assert book["fingerprint"] == FP and book["title"] == "Leaves of Grass" and book["book_id"] == 1
    assert book["pending"]["sessions"] == 1 and book["pending"]["annotations"] == 1
    assert {"queue": "sessions", "reason": "not tried yet", "count": 1} in book["reasons"]
    items = data["items"]
    assert [i["queue"] for i in items] == ["sessions", "annotations"]
    for item in items:
        assert {"queue", "fingerprint", "title", "retry_count", "last_error",
                "last_status"} <= set(item)
    assert items[1]["last_error"] == "no CFI: the book file is missing"
    assert items[0]["title"] == "Leaves of Grass"


def test_status_text(home):
    fill(home)
    proc = run_cli("status")
    assert proc.returncode == 0
    for line in ("Book cache", "Total books seen: 2", "Pending uploads", "Sessions:",
                 "Progress updates: 4", "Progress history"):
        assert line in proc.stdout
    verbose = run_cli("status", "--verbose")
    assert "no CFI: the book file is missing" in verbose.stdout
    assert "Leaves of Grass" in verbose.stdout


def test_status_is_read_only(home):
    fill(home)
    db = home / "booklore-sync.db"
    before = Store.open(db)
    snapshot = (before.counts(), before.cache_counts())
    before.close()
    run_cli("status", "--verbose")
    after = Store.open(db)
    assert (after.counts(), after.cache_counts()) == snapshot
    after.close()


def test_status_refuses_newer_store(home):
    Store.open(home / "booklore-sync.db").close()
    import sqlite3

    conn = sqlite3.connect(home / "booklore-sync.db")
    conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 'x')")
    conn.commit()
    conn.close()
    proc = run_cli("status", "--json")
    assert proc.returncode == 2
    # stdout carries only the error object (spec §6.4)
    assert json.loads(proc.stdout) == {"error": {"type": "config", "message": json.loads(
        proc.stdout)["error"]["message"]}, "exit_code": 2}
    assert "newer" in proc.stderr and "booklore-sync.db" in proc.stderr


def test_menu_dump_empty():
    proc = run_cli("menu", "--dump")
    assert proc.returncode == 0
    assert proc.stdout.splitlines() == [
        "Sync Pending Now [disabled]",
        "View Pending Sessions",
        "Match Unmatched Books [disabled]",
        "Clear Pending... [disabled]",
        "Advanced",
        "Clear Cache [disabled]",
    ]


def test_menu_dump_with_items(home):
    fill(home)
    proc = run_cli("menu", "--dump")
    assert proc.stdout.splitlines() == [
        "Sync Pending Now (3S, 1A, 2R, 1B, 4P)",
        "View Pending Sessions",
        "Match Unmatched Books (1)",
        "Clear Pending... (3S, 1A, 2R, 1B, 4P)",
        "Advanced",
        "Clear Cache",
    ]


def test_menu_without_terminal_exits_2():
    proc = run_cli("menu")
    assert proc.returncode == 2
    assert "terminal" in proc.stderr


def test_clear_pending_needs_flags_without_terminal(home):
    fill(home)
    proc = run_cli("clear-pending")
    assert proc.returncode == 2 and "--all" in proc.stderr
    proc = run_cli("clear-pending", "--sessions")
    assert proc.returncode == 2 and "--yes" in proc.stderr
    assert cli_json("status", "--json")[1]["pending"]["sessions"] == 3


def test_clear_pending_flags(home):
    fill(home)
    proc = run_cli("clear-pending", "--sessions", "--ratings", "--yes")
    assert proc.returncode == 0, proc.stderr
    _, data = cli_json("status", "--json")
    assert data["pending"] == {"sessions": 0, "annotations": 1, "ratings": 0, "bookmarks": 1,
                               "progress": 4}
    assert data["book_cache"]["total"] == 2
    proc = run_cli("clear-pending", "--all", "--yes")
    assert proc.returncode == 0
    assert cli_json("status", "--json")[1]["pending"] == EMPTY_STATUS["pending"]


def test_clear_pending_bad_flag():
    proc = run_cli("clear-pending", "--everything")
    assert proc.returncode == 2


def test_clear_cache_is_immediate_and_keeps_queues(home):
    fill(home)
    proc = run_cli("clear-cache")
    assert proc.returncode == 0
    _, data = cli_json("status", "--json")
    assert data["book_cache"] == {"total": 0, "matched": 0, "unmatched": 0}
    assert data["pending"]["sessions"] == 3
    assert run_cli("menu", "--dump").stdout.splitlines()[5] == "Clear Cache [disabled]"
    assert run_cli("clear-cache").returncode == 0  # never fails, even when empty


def test_clear_history(home):
    s = Store.open(home / "booklore-sync.db")
    s.enqueue_session(FP, 1, {})
    s.enqueue_progress(FP, "/x", 0.5, {})
    s.move_to_history("sessions", [s.pending("sessions")[0].id])
    s.move_to_history("progress", [s.pending("progress")[0].id])
    s.enqueue_session(FP, 2, {})
    s.close()
    proc = run_cli("advanced", "clear-history")
    assert proc.returncode == 2
    proc = run_cli("advanced", "clear-history", "--sessions")
    assert proc.returncode == 2 and "--yes" in proc.stderr
    proc = run_cli("advanced", "clear-history", "--sessions", "--yes")
    assert proc.returncode == 0
    assert "twice" in proc.stderr  # the warning
    _, data = cli_json("status", "--json")
    assert data["progress_history"] == 1 and data["pending"]["sessions"] == 1
    run_cli("advanced", "clear-history", "--all", "--yes")
    assert cli_json("status", "--json")[1]["progress_history"] == 0


def test_clear_history_all_keeps_discarded(home):
    s = Store.open(home / "booklore-sync.db")
    s.enqueue_session(FP, 1, {})
    s.clear_pending(["sessions"])
    s.close()
    run_cli("advanced", "clear-history", "--all", "--yes")
    s = Store.open(home / "booklore-sync.db")
    assert s.enqueue_session(FP, 1, {}) == "discarded"
    s.close()
    run_cli("advanced", "clear-history", "--discarded", "--yes")
    s = Store.open(home / "booklore-sync.db")
    assert s.enqueue_session(FP, 1, {}) == "queued"
    s.close()


def test_config_get_set(home):
    assert run_cli("config", "sessions.gap_seconds").stdout.strip() == "300"
    assert run_cli("config", "sessions.gap_seconds", "600").returncode == 0
    assert run_cli("config", "sessions.gap_seconds").stdout.strip() == "600"
    assert run_cli("config", "sync.ratings", "false").returncode == 0
    assert run_cli("config", "sync.ratings").stdout.strip() == "false"
    assert run_cli("config", "server.url", "http://127.0.0.1:6060").returncode == 0
    assert run_cli("config", "server.url").stdout.strip() == "http://127.0.0.1:6060"
    proc = run_cli("config", "server.url", env={"BOOKLORE_URL": "http://other:1"})
    assert proc.stdout.strip() == "http://other:1"  # env wins
    bad = run_cli("config", "nope.key", "1")
    assert bad.returncode == 2 and "unknown setting" in bad.stderr
    assert run_cli("config", "sessions.gap_seconds", "soon").returncode == 2
    assert run_cli("config", "annotations.notes_destination", "nowhere").returncode == 2
    assert run_cli("config", "device.timezone", "Mars/Olympus").returncode == 2
    assert run_cli("config", "scan.path_map", '{"/mnt/sd/": "/media/sd/"}').returncode == 0
    full = run_cli("config")
    assert "scan.path_map = {\"/mnt/sd/\": \"/media/sd/\"}" in full.stdout


def test_config_masks_passwords(home):
    proc = run_cli("config", env={"BOOKLORE_PASSWORD": "hunter2-secret"})
    assert "hunter2-secret" not in proc.stdout + proc.stderr
    assert "BOOKLORE_PASSWORD" in proc.stdout


def test_python_dash_m_and_help():
    proc = run_cli("--help")
    assert proc.returncode == 0
    for command in ("status", "clear-pending", "clear-cache", "advanced", "menu", "config",
                    "login"):
        assert command in proc.stdout


def test_config_file_permissions_and_content(home):
    run_cli("config", "server.username", "alice")
    text = (home / "config.toml").read_text()
    assert 'username = "alice"' in text
    mode = stat.S_IMODE(os.stat(home / "config.toml").st_mode)
    assert mode & 0o002 == 0
    json.dumps(text)


def test_tracebacks_never_show_locals():
    from booklore_sync.cli import advanced_app, app

    assert app.pretty_exceptions_show_locals is False
    assert advanced_app.pretty_exceptions_show_locals is False

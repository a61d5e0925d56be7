"""The plugin's store through the real entry point: ``scan --json``, ``books``, ``status
--verbose``, ``clear-cache`` (sync-and-cache.md §4.6, §5, §6.4; plugin-database.md)."""

from __future__ import annotations

import json

import pytest

from booklore_sync.emulator import start_emulator
from tests.conftest import FIXTURES, cli_json, run_cli

from .plugindb import LEAVES, SECRETS, install_plugin, kobo, make_plugin_db, plugin_db_path

SAME = {"BOOKLORE_URL": "http://Nas:6060/"}
UPLOADS = "the BookLore Sync plugin also uploads from this device"


def _no_secrets(*procs) -> None:
    for proc in procs:
        for secret in SECRETS:
            assert secret not in proc.stdout and secret not in proc.stderr


def _book(fingerprint: str, env=SAME) -> dict:
    code, data = cli_json("books", "--json", env=env)
    assert code == 0
    found = [b for b in data["books"] if b["fingerprint"] == fingerprint]
    assert len(found) == 1
    return found[0]


def test_scan_adopts_and_clear_cache_keeps_the_match(tmp_path):
    root, data = kobo(tmp_path)
    make_plugin_db(plugin_db_path(data))
    proc = run_cli("scan", str(root), "--json", env=SAME)
    assert proc.returncode == 0
    result = json.loads(proc.stdout)
    texts = [w["warning"] for w in result["warnings"]]
    assert any("adopted 1 book match from the BookLore Sync plugin's store" in t for t in texts)
    assert "adopted 1 book match" in proc.stderr
    assert result["errors"] == [] and result["books"] == 4
    book = _book(LEAVES)
    assert book["book_id"] == 42 and book["matched_by"] == "plugin"
    code, status = cli_json("status", "--json", env=SAME)
    assert status["book_cache"]["matched"] == 1
    # Clear Cache keeps the adopted match; the next scan puts it back by fingerprint
    code, cleared = cli_json("clear-cache", "--json", env=SAME)
    assert code == 0 and cleared == {"cleared": 4, "links_kept": 1} | {
        k: v for k, v in cleared.items() if k not in ("cleared", "links_kept")}
    code, listed = cli_json("books", "--json", env=SAME)
    assert listed["books"] == []
    rescan = run_cli("scan", str(root), "--json", env=SAME)
    assert rescan.returncode == 0
    book = _book(LEAVES)
    assert book["book_id"] == 42 and book["matched_by"] == "plugin"
    assert "adopted 1" not in rescan.stderr                   # kept, not adopted again
    _no_secrets(proc, rescan)


@pytest.fixture
def emu():
    server = start_emulator(mode="fork", port=0, library=FIXTURES / "books")
    yield server
    server.stop()


def test_manual_link_survives_clear_cache(tmp_path, emu):
    env = {"BOOKLORE_URL": emu.base_url, "BOOKLORE_USERNAME": "demo",
           "BOOKLORE_PASSWORD": "demo"}
    root, _ = kobo(tmp_path)
    assert run_cli("scan", str(root), env=env).returncode == 0
    code, linked = cli_json("link", LEAVES, "2", "--json", env=env)
    assert code == 0 and linked["book_id"] == 2
    proc = run_cli("clear-cache", env=env)
    assert proc.returncode == 0 and "1 manual link is kept" in proc.stdout
    assert run_cli("scan", str(root), env=env).returncode == 0
    book = _book(LEAVES, env)
    assert book["book_id"] == 2 and book["matched_by"] == "manual"


def test_other_server_adopts_nothing_and_says_why(tmp_path):
    root, data = kobo(tmp_path)
    make_plugin_db(plugin_db_path(data), server_url="http://nas:6060")
    env = {"BOOKLORE_URL": "http://booklore.lan:6060"}
    proc = run_cli("scan", str(root), "--json", env=env)
    assert proc.returncode == 0
    why = ("the BookLore Sync plugin syncs to http://nas:6060, booklore-sync to "
           "http://booklore.lan:6060: its matches are not used")
    assert [w for w in json.loads(proc.stdout)["warnings"] if w["warning"] == why]
    assert proc.stderr.count(why) == 1
    assert _book(LEAVES, env)["book_id"] is None
    # no server configured at all
    bare = run_cli("scan", str(root), "--json")
    assert "no server configured yet: run booklore-sync login, then scan again to adopt " \
           "the plugin's 1 match" in bare.stderr
    _no_secrets(proc, bare)


def test_damaged_store_is_a_warning_not_an_error(tmp_path):
    root, data = kobo(tmp_path)
    plugin_db_path(data).write_bytes(b"SQLite format 3\x00" + b"\xff" * 2000)
    code, result = cli_json("scan", str(root), "--json", env=SAME)
    assert code == 0 and result["errors"] == []
    hits = [w for w in result["warnings"] if w["file"].endswith("booklore-sync.sqlite")]
    assert len(hits) == 1 and "cannot be used" in hits[0]["warning"]
    assert sum(result["queued"].values()) > 0


def test_two_uploaders_printed_once_listed_always(tmp_path):
    root, data = kobo(tmp_path)
    install_plugin(data, "bookloresync", "main.lua")
    first = run_cli("scan", str(root), "--json", env=SAME)
    assert first.returncode == 0 and UPLOADS in first.stderr
    assert any(UPLOADS in w["warning"] for w in json.loads(first.stdout)["warnings"])
    second = run_cli("scan", str(root), "--json", env=SAME)
    assert UPLOADS not in second.stderr
    assert any(UPLOADS in w["warning"] for w in json.loads(second.stdout)["warnings"])
    verbose = run_cli("status", "--verbose", env=SAME)
    assert verbose.returncode == 0 and UPLOADS in verbose.stdout
    code, data_v = cli_json("status", "--verbose", "--json", env=SAME)
    assert code == 0 and any(UPLOADS in t for t in data_v["uploaders"])
    plain = run_cli("status", env=SAME)
    assert UPLOADS not in plain.stdout


def test_hints_after_clear_cache_point_to_scan(tmp_path, emu, home):
    from booklore_sync.store import Store

    env = {"BOOKLORE_URL": emu.base_url, "BOOKLORE_USERNAME": "demo",
           "BOOKLORE_PASSWORD": "demo", "BOOKLORE_KOREADER_USERNAME": "demo",
           "BOOKLORE_KOREADER_PASSWORD": "demo"}
    unknown = "ab" * 16                                    # no such book on the server
    with Store.open(home / "booklore-sync.db") as s:
        s.upsert_book(unknown, title="Nowhere", file_path=str(tmp_path / "nowhere.epub"))
        s.enqueue_session(unknown, 1000, {})
    code, _ = cli_json("sync", "--json", env=env)
    before = run_cli("status", "--verbose", env=env)
    assert "booklore-sync match" in before.stdout           # the cache has the book: match
    assert run_cli("clear-cache", env=env).returncode == 0
    after = run_cli("status", "--verbose", env=env)
    assert after.returncode == 0
    assert "booklore-sync match" not in after.stdout and "booklore-sync scan" in after.stdout
    code, data = cli_json("status", "--verbose", "--json", env=env)
    assert all("booklore-sync match" not in (i["last_error"] or "") + i["reason"]
               for i in data["items"])
    proc = run_cli("match", "--json", env=env)
    assert json.loads(proc.stdout) == {"matched": 0, "still_unmatched": 0}
    assert "run `booklore-sync scan SOURCE`" in proc.stderr
    assert "run `booklore-sync match`" not in proc.stderr

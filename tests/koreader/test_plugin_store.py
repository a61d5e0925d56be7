"""The BookLore Sync plugin's store and the two-uploader warning, in process
(plugin-database.md §4, §5; sync-and-cache.md §5)."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from booklore_sync.common.vocab import LinkKind, MatchedBy
from booklore_sync.koreader.plugin_store import (
    PluginStoreError,
    read_plugin_store,
    server_key,
)
from booklore_sync.koreader.scan import scan_source

from .plugindb import (
    JULIET,
    LEAVES,
    SECRETS,
    TALL,
    TWO_COL,
    disable_plugins,
    install_plugin,
    kobo,
    make_plugin_db,
    plugin_db_path,
)

SAME = {"server.url": "HTTP://NAS:6060/api/koreader"}


def _texts(report) -> list[str]:
    return [w["warning"] for w in report.warnings]


def _files(data_dir) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (data_dir / "settings").iterdir()}


def test_reads_candidates_by_name_and_never_the_secrets(tmp_path):
    db = make_plugin_db(tmp_path / "booklore-sync.sqlite")
    plugin = read_plugin_store(db)
    # upper-case hash lower-cased, the pseudo path counted, the ambiguous hash left out,
    # NULL / 0 IDs and an empty hash are no candidates
    assert plugin.matches == {LEAVES: 42}
    assert plugin.ambiguous == {TALL: [7, 8]}
    assert TWO_COL not in plugin.matches and JULIET not in plugin.matches
    assert plugin.server_url == "http://nas:6060" and plugin.is_enabled is True
    assert not any(s in repr(plugin) for s in SECRETS)


def test_columns_found_by_name_in_any_order(tmp_path):
    db = tmp_path / "booklore-sync.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE book_cache (book_id, extra BLOB, file_hash TEXT)")
    conn.executemany("INSERT INTO book_cache VALUES (?,?,?)",
                     [(" 12 ", b"x", LEAVES), (3.0, None, TALL), (-4, None, TWO_COL),
                      ("x7", None, JULIET), (2.5, None, "0" * 32), (9, None, "z" * 32)])
    conn.commit()
    conn.close()
    plugin = read_plugin_store(db)
    assert plugin.matches == {LEAVES: 12, TALL: 3}
    assert plugin.server_url is None


@pytest.mark.parametrize("damage, why", [
    (lambda p: p.write_bytes(b"this is not a database at all" * 100), "not a SQLite database"),
    (lambda p: _drop(p, "DROP TABLE book_cache"), "no book_cache table"),
    (lambda p: _drop(p, "ALTER TABLE book_cache DROP COLUMN book_id"), "no book_id column"),
    (lambda p: (p.unlink(), p.mkdir()), "directory"),
])
def test_unusable_store_raises_with_the_reason(tmp_path, damage, why):
    db = make_plugin_db(tmp_path / "booklore-sync.sqlite")
    damage(db)
    with pytest.raises(PluginStoreError, match=why):
        read_plugin_store(db)


def _drop(path, sql):
    conn = sqlite3.connect(path)
    conn.execute(sql)
    conn.commit()
    conn.close()


def test_server_key_normalises():
    assert server_key("HTTP://NAS:80/")[0] == server_key("nas")[0] == "http://nas:80"
    assert server_key("https://Books.Example/api/v1")[0] == "https://books.example:443"
    assert server_key("http://nas:6060")[0] != server_key("http://nas:6061")[0]
    assert server_key("") is None and server_key(None) is None
    assert server_key("ftp://x") is None


def test_scan_adopts_matches_for_unmatched_books(tmp_path, store):
    root, data = kobo(tmp_path)
    make_plugin_db(plugin_db_path(data))
    before = _files(data)
    report = scan_source(store, root, SAME)
    assert _files(data) == before                      # never written, no side files left
    assert report.errors == []
    book = store.get_book_by_hash(LEAVES)
    assert book.book_id == 42 and book.matched_by == MatchedBy.PLUGIN
    link = store.get_kept_link(LEAVES)
    assert link.kind is LinkKind.PLUGIN and link.book_id == 42
    assert store.get_book_by_hash(TALL).book_id is None         # ambiguous: not adopted
    assert store.get_book_by_hash(TWO_COL).book_id is None
    texts = _texts(report)
    assert any("adopted 1 book match from the BookLore Sync plugin's store" in t for t in texts)
    assert any("different BookLore IDs" in t and "Tall" in t for t in texts)
    assert not any(s in json.dumps(report.to_json()) for s in SECRETS)
    again = scan_source(store, root, SAME)
    assert not any("adopted 1" in t for t in _texts(again))


def test_existing_match_is_never_overridden(tmp_path, store):
    root, data = kobo(tmp_path)
    scan_source(store, root, SAME)
    store.link(store.get_book_by_hash(LEAVES).id, 5)
    make_plugin_db(plugin_db_path(data))
    report = scan_source(store, root, SAME)
    assert store.get_book_by_hash(LEAVES).book_id == 5
    assert store.get_kept_link(LEAVES).kind is LinkKind.MANUAL
    assert not any("adopted 1" in t for t in _texts(report))


def test_replaced_pair_not_adopted_again_but_a_new_id_is(tmp_path, store):
    root, data = kobo(tmp_path)
    db = make_plugin_db(plugin_db_path(data))
    scan_source(store, root, SAME)
    assert store.get_book_by_hash(LEAVES).book_id == 42
    store.forget_all_matches()                         # Re-match All
    scan_source(store, root, SAME)
    assert store.get_book_by_hash(LEAVES).book_id is None
    _drop(db, "UPDATE book_cache SET book_id = 43 WHERE file_hash IN"
              f" ('{LEAVES}', '{LEAVES.upper()}')")    # re-matched on the device
    report = scan_source(store, root, SAME)
    assert store.get_book_by_hash(LEAVES).book_id == 43
    assert any("adopted 1 book match" in t for t in _texts(report))
    store.book_not_found(43)                           # the server says the ID is stale
    scan_source(store, root, SAME)
    assert store.get_book_by_hash(LEAVES).book_id is None


@pytest.mark.parametrize("ours, theirs, expected", [
    ("http://booklore.lan:6060", "http://nas:6060",
     "the BookLore Sync plugin syncs to http://nas:6060, booklore-sync to "
     "http://booklore.lan:6060: its matches are not used"),
    (None, "http://nas:6060", "no server configured yet: run booklore-sync login, then scan "
                              "again to adopt the plugin's 1 match"),
    ("http://nas:6060", None, "the BookLore Sync plugin's server URL is unknown"),
])
def test_other_or_unknown_server_adopts_nothing(tmp_path, store, ours, theirs, expected):
    root, data = kobo(tmp_path)
    make_plugin_db(plugin_db_path(data), server_url=theirs)
    report = scan_source(store, root, {"server.url": ours})
    assert store.get_book_by_hash(LEAVES).book_id is None
    assert store.kept_links() == []
    hits = [t for t in _texts(report) if expected in t]
    assert len(hits) == 1


def test_legacy_lua_settings_give_the_server(tmp_path, store):
    root, data = kobo(tmp_path)
    make_plugin_db(plugin_db_path(data), server_url=None)
    (data / "settings" / "booklore.lua").write_text(
        '-- /mnt/onboard/.adds/koreader/settings/booklore.lua\nreturn {\n'
        '    ["server_url"] = "http://NAS:6060/",\n'
        f'    ["password"] = "{SECRETS[0]}",\n}}\n')
    report = scan_source(store, root, SAME)
    assert store.get_book_by_hash(LEAVES).book_id == 42
    assert not any(s in json.dumps(report.to_json()) for s in SECRETS)


def test_hot_journal_is_rolled_back_on_the_copy(tmp_path, store):
    root, data = kobo(tmp_path)
    db = make_plugin_db(plugin_db_path(data), journal="DELETE")
    work = tmp_path / "work.sqlite"
    shutil.copyfile(db, work)
    conn = sqlite3.connect(work, isolation_level=None)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("PRAGMA cache_size = 1")
    conn.execute("BEGIN")
    conn.execute("UPDATE book_cache SET book_id = 777")     # never committed
    for i in range(400):
        conn.execute("INSERT INTO updater_cache VALUES (?, ?, 0)", (f"k{i}", "v" * 200))
    shutil.copyfile(work, db)
    shutil.copyfile(str(work) + "-journal", str(db) + "-journal")
    conn.execute("ROLLBACK")
    conn.close()
    raw = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
    assert raw.execute("SELECT count(*) FROM book_cache WHERE book_id = 777").fetchone()[0] > 0
    raw.close()
    before = _files(data)
    scan_source(store, root, SAME)
    assert _files(data) == before
    assert store.get_book_by_hash(LEAVES).book_id == 42


def test_wal_store_is_read_with_its_wal(tmp_path, store):
    root, data = kobo(tmp_path)
    db = make_plugin_db(plugin_db_path(data), journal="WAL")
    keep = sqlite3.connect(db, isolation_level=None)       # holds the WAL open
    keep.execute("PRAGMA wal_autocheckpoint = 0")
    keep.execute(f"UPDATE book_cache SET book_id = 44 WHERE file_hash = '{LEAVES}'")
    keep.execute(f"UPDATE book_cache SET book_id = 44 WHERE file_hash = '{LEAVES.upper()}'")
    try:
        assert (data / "settings" / "booklore-sync.sqlite-wal").stat().st_size > 0
        scan_source(store, root, SAME)
    finally:
        keep.close()
    assert store.get_book_by_hash(LEAVES).book_id == 44


def test_damaged_store_is_one_warning_and_the_scan_goes_on(tmp_path, store):
    root, data = kobo(tmp_path)
    plugin_db_path(data).write_bytes(b"\x00garbage" * 512)
    report = scan_source(store, root, SAME)
    hits = [w for w in report.warnings if "booklore-sync.sqlite" in w["file"]]
    assert len(hits) == 1 and "cannot be used" in hits[0]["warning"]
    assert report.errors == [] and report.books == 4
    assert sum(report.queued.values()) > 0


def test_two_uploaders_warned_once_per_change(tmp_path, store):
    root, data = kobo(tmp_path)
    first = scan_source(store, root, SAME)
    assert not any("also uploads" in t for t in _texts(first))
    install_plugin(data, "bookloresync", "main.lua")
    r1 = scan_source(store, root, SAME)
    msg = ("the BookLore Sync plugin also uploads from this device; booklore-sync checks what "
           "the server already has before its first upload of each book, so the reading is not "
           "doubled; switch one of them off to avoid surprises")
    assert msg in _texts(r1) and any(w["warning"] == msg for w in r1.announced())
    r2 = scan_source(store, root, SAME)                 # listed again, not printed again
    assert msg in _texts(r2) and not any(w["warning"] == msg for w in r2.announced())
    install_plugin(data, "grimmory")
    r3 = scan_source(store, root, SAME)                 # the set changed: printed again
    texts = [w["warning"] for w in r3.announced()]
    assert msg in texts and any(t.startswith("grimmory.koplugin also uploads") for t in texts)
    disable_plugins(data, bookloresync=True, grimmory=False)
    r4 = scan_source(store, root, SAME)
    assert msg not in _texts(r4)
    assert [w["warning"] for w in r4.announced() if "uploads" in w["warning"]] == [
        t for t in texts if t.startswith("grimmory")]


def test_empty_plugin_folder_and_disabled_plugin_are_not_uploaders(tmp_path, store):
    root, data = kobo(tmp_path)
    (data / "plugins" / "bookloresync.koplugin").mkdir(parents=True)
    install_plugin(data, "grimmory")
    disable_plugins(data, grimmory=True)
    report = scan_source(store, root, SAME)
    assert not any("uploads" in t for t in _texts(report))


def test_switched_off_plugin_is_said_so(tmp_path, store):
    root, data = kobo(tmp_path)
    make_plugin_db(plugin_db_path(data), is_enabled="false")
    install_plugin(data, "bookloresync")
    report = scan_source(store, root, SAME)
    hits = [t for t in _texts(report) if "installed on this device but switched off" in t]
    assert len(hits) == 1 and not any("also uploads" in t for t in _texts(report))


def test_dry_run_adopts_nothing(tmp_path, store):
    root, data = kobo(tmp_path)
    make_plugin_db(plugin_db_path(data))
    report = scan_source(store, root, SAME, dry_run=True)
    assert any("would adopt 1 book match" in t for t in _texts(report))
    assert store.kept_links() == [] and store.books() == []

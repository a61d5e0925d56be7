"""The store's files are private, and read-only commands never create a store (spec §3)."""

from __future__ import annotations

import os
import stat
import sys

import pytest

from booklore_sync.store import Store, StoreError, SyncLock
from booklore_sync.store.queries import empty_summary, summary

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_store_files_and_folders_are_private(tmp_path):
    old = os.umask(0o022)  # the usual umask: without care, files would be 0644
    try:
        data = tmp_path / "deep" / "data"
        s = Store.open(data / "booklore-sync.db")
        s.enqueue_session("f" * 32, 1, {})  # makes SQLite write its -wal and -shm
        for name in ("booklore-sync.db", "booklore-sync.db-wal", "booklore-sync.db-shm"):
            assert (data / name).exists(), name
            assert _mode(data / name) == 0o600, name
        s.close()
        assert _mode(data) == 0o700 and _mode(data.parent) == 0o700
        lock_dir = tmp_path / "other" / "home"
        with SyncLock(lock_dir / "sync.lock"):
            assert _mode(lock_dir / "sync.lock") == 0o600
        assert _mode(lock_dir) == 0o700 and _mode(lock_dir.parent) == 0o700
    finally:
        os.umask(old)


def test_existing_folder_modes_are_left_alone(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)
    Store.open(shared / "booklore-sync.db").close()
    assert _mode(shared) == 0o755
    assert _mode(shared / "booklore-sync.db") == 0o600


def test_readonly_open_never_creates_a_store(tmp_path):
    path = tmp_path / "data" / "booklore-sync.db"
    assert Store.open_readonly(path) is None
    assert not path.exists() and not path.parent.exists()
    (tmp_path / "data").mkdir()
    assert Store.open_readonly(path) is None
    assert list((tmp_path / "data").iterdir()) == []
    assert empty_summary()["pending"] == {"sessions": 0, "annotations": 0, "ratings": 0,
                                          "bookmarks": 0, "progress": 0}


def test_readonly_open_reads_an_existing_store_and_refuses_writes(tmp_path):
    path = tmp_path / "booklore-sync.db"
    with Store.open(path) as s:
        s.enqueue_session("f" * 32, 1, {})
        s.upsert_book("f" * 32, title="T")
    ro = Store.open_readonly(path)
    assert ro is not None
    try:
        assert ro.read_only
        assert ro.counts()["sessions"] == 1 and ro.cache_counts()["total"] == 1
        assert summary(ro._conn)["pending"]["sessions"] == 1
        with pytest.raises(Exception, match="readonly|read-only|query_only"):
            ro.enqueue_session("f" * 32, 2, {})
        assert ro.counts()["sessions"] == 1
    finally:
        ro.close()


def test_readonly_open_of_a_foreign_file_is_a_store_error(tmp_path):
    path = tmp_path / "booklore-sync.db"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match=str(path.name)):
        Store.open_readonly(path)

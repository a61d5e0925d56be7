"""sync / match / link / rematch-all through the real entry point: JSON and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.conftest import cli_json, json_of, run_cli, run_many
from tests.sync.conftest import make_config, make_env, open_store, scan_into

ZERO = {"synced": 0, "failed": 0, "skipped": 0}
QUEUES = ("sessions", "annotations", "ratings", "bookmarks", "progress")


def test_sync_json_success_and_summary(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    code, data = cli_json("sync", "--json", env=make_env(emu.base_url))
    assert code == 0
    assert set(data) == {"sessions", "annotations", "ratings", "bookmarks", "progress", "offline"}
    assert data["offline"] is False and data["sessions"]["synced"] > 0
    proc = run_cli("sync", env=make_env(emu.base_url))
    assert proc.returncode == 0
    assert "Nothing to sync" in proc.stdout


def test_sync_text_summary_lines(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    proc = run_cli("sync", env=make_env(emu.base_url))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert any(line.startswith("S: ") and "synced" in line for line in lines)
    assert any(line.startswith("R: ") for line in lines)


def test_sync_offline_json(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    url = emu.base_url
    emu.stop()
    code, data = cli_json("sync", "--json", env=make_env(url))
    assert code == 3
    assert data["offline"] is True
    assert all(data[q] == ZERO for q in QUEUES)


def test_sync_without_url_is_usage_error(home):
    code, data = cli_json("sync", "--json")
    assert code == 2 and data["offline"] is False


def test_sync_lock_held_exit_4(home, emu):
    script = textwrap.dedent(f"""
        import sys
        from booklore_sync.store import SyncLock
        SyncLock({str(home / 'sync.lock')!r}).acquire()
        print("held", flush=True)
        sys.stdin.read()  # held until the test closes our stdin (or kills us)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ))
    try:
        assert holder.stdout.readline().strip() == "held"
        # each waits the lock's 5 s: all at once while it is held
        sync_json, sync_text, match_json = run_many(
            ("sync", "--json"), ("sync",), ("match", "--json"), env=make_env(emu.base_url))
        code, data = json_of(sync_json)
        assert code == 4
        assert data["offline"] is False and all(data[q] == ZERO for q in QUEUES)
        proc = sync_text
        assert proc.returncode == 4 and "sync already in progress" in proc.stderr
        code, data = json_of(match_json)
        assert code == 4 and data["matched"] == 0 and data["still_unmatched"] == 0
        assert data["error"]["type"] == "locked" and data["exit_code"] == 4
    finally:
        holder.kill()
        holder.wait()


def test_match_json_and_link(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    code, data = cli_json("match", "--json", env=make_env(emu.base_url))
    assert code == 0 and data["matched"] >= 3 and set(data) == {"matched", "still_unmatched"}
    with open_store(cfg) as store:
        book = store.books()[0]
    proc = run_cli("link", book.file_hash, "2", env=make_env(emu.base_url))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("link", "0" * 32, "2", env=make_env(emu.base_url))
    assert proc.returncode == 2
    proc = run_cli("link", book.file_hash, "98765", env=make_env(emu.base_url))
    assert proc.returncode == 2 and "98765" in proc.stderr


def test_match_offline(home, emu):
    url = emu.base_url
    emu.stop()
    code, data = cli_json("match", "--json", env=make_env(url))
    assert code == 1 and data["matched"] == 0 and data["still_unmatched"] == 0
    assert data["error"]["type"] == "offline" and url in data["error"]["message"]


def test_rematch_needs_yes_without_terminal(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    proc = run_cli("advanced", "rematch-all", env=make_env(emu.base_url))
    assert proc.returncode == 2 and "--yes" in proc.stderr
    proc = run_cli("advanced", "rematch-all", "--yes", env=make_env(emu.base_url))
    assert proc.returncode == 0, proc.stderr
    assert "Re-matched" in proc.stdout


def test_rematch_upstream_warns(home, kobo, emulator_factory):
    emu = emulator_factory("upstream")
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    proc = run_cli("advanced", "rematch-all", "--yes", env=make_env(emu.base_url))
    assert proc.returncode == 0
    assert "fingerprint" in proc.stderr


def test_secrets_never_printed(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    env = make_env(emu.base_url)
    env["BOOKLORE_PASSWORD"] = "s3cret-Passw0rd"
    env["BOOKLORE_KOREADER_PASSWORD"] = "k0reader-Secret"
    for args in (("sync",), ("sync", "--json"), ("match", "--json"), ("config",),
                 ("status", "--verbose")):
        proc = run_cli(*args, env=env)
        for secret in ("s3cret-Passw0rd", "k0reader-Secret"):
            assert secret not in proc.stdout + proc.stderr, args


def test_emulator_command_prints_its_url_first_and_stops_on_sigterm(library):
    import signal

    import httpx

    proc = subprocess.Popen([sys.executable, "-m", "booklore_sync", "emulator", "--port", "0",
                             "--library", str(library), "--mode", "upstream"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and not url.endswith("/")
        assert "demo" in proc.stdout.readline()  # then the accounts
        health = httpx.get(url + "/api/v1/healthcheck", timeout=10)
        assert health.status_code == 200 and health.json()["data"]
        # upstream: no lookup by fingerprint, the web page instead
        page = httpx.get(url + "/api/koreader/books/by-hash/59d481d168cca6267322f150c5f6a2a3",
                         headers={"x-auth-user": "demo",
                                  "x-auth-key": "fe01ce2a7fbac8fafaed7c982a04e229"}, timeout=10)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    bad = run_cli("emulator", "--mode", "sideways")
    assert bad.returncode == 2

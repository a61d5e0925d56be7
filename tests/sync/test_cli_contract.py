"""The command-line contract of the installed command, over real HTTP: URLs, login
checks, the --json error object, exit codes, books/link, -v/-q/--version, the lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from booklore_sync.store import Store
from tests.conftest import cli_json, json_of, run_cli, run_many
from tests.sync.conftest import make_config, make_env, open_store, scan_into

FP_A = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
FP_B = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"


def test_version_and_help_groups():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip().startswith("booklore-sync 0.")
    help_text = run_cli("--help").stdout
    for group in ("Set-up", "Daily", "Maintenance", "Tools"):
        assert group in help_text
    assert "<bool>" not in help_text and "§" not in help_text
    assert "--install-completion" in help_text
    sync_help = run_cli("sync", "--help").stdout
    assert "Examples" in sync_help and "<bool>" not in sync_help


def test_url_without_scheme_is_normalised_everywhere(home, kobo, emu):
    hostport = emu.base_url.removeprefix("http://")
    proc = run_cli("config", "server.url", hostport + "/api/v1/")
    assert proc.returncode == 0, proc.stderr
    assert run_cli("config", "server.url").stdout.strip() == emu.base_url
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    env = make_env(hostport)
    code, data = cli_json("sync", "--json", env=env)
    assert code == 0 and data["sessions"]["synced"] > 0
    proc = run_cli("sync", env=env)
    assert "Traceback" not in proc.stderr
    assert f"no scheme given; using {emu.base_url}" in proc.stderr


def test_bad_url_refused_naming_it(home):
    proc = run_cli("config", "server.url", "ftp://nowhere")
    assert proc.returncode == 2 and "ftp://nowhere" in proc.stderr
    assert not (home / "config.toml").exists()
    code, data = cli_json("sync", "--json", env={"BOOKLORE_URL": "http://bad host"})
    assert code == 2 and data["error"]["type"] == "config" and "bad host" in data["error"]["message"]
    for args in (("match", "--json"), ("link", FP_A, "1", "--json")):
        code, data = cli_json(*args, env={"BOOKLORE_URL": "http://:x"})
        assert code == 2 and data["exit_code"] == 2, args
    proc = run_cli("login", "--url", "ht tp://x", "--username", "u", "--password-stdin",
                   "--store-in-file", input="p\n")
    assert proc.returncode == 2 and "ht tp://x" in proc.stderr and "Traceback" not in proc.stderr


def test_usage_errors_carry_the_error_object():
    code, data = cli_json("sync", "--no-such-flag", "--json")
    assert code == 2 and data["error"]["type"] == "usage" and data["exit_code"] == 2
    code, data = cli_json("--json", "clear-pending")  # global flag before the command
    assert code == 2 and data["error"]["type"] == "usage"
    code, data = cli_json("menu", "--json")
    assert code == 2 and data["error"]["type"] == "usage"


def test_login_checks_before_saving(home, emu, fake_keyring):
    bad_port = "http://127.0.0.1:9"
    code, data = cli_json("login", "--url", bad_port, "--username", "demo", "--password-stdin",
                          "--json", input="demo\n")
    assert code == 2 and data["error"]["type"] == "unreachable"
    assert bad_port in data["error"]["message"]
    assert not (home / "config.toml").exists()
    # https against a plain-HTTP server: the hint names http://
    https = emu.base_url.replace("http://", "https://")
    proc = run_cli("login", "--url", https, "--username", "demo", "--password-stdin",
                   input="demo\n")
    assert proc.returncode == 2 and "did you mean http://" in proc.stderr
    code, data = cli_json("login", "--url", emu.base_url.removeprefix("http://"), "--username",
                          "demo", "--koreader-username", "demo", "--password-stdin", "--json",
                          input="demo\ndemo\n")
    assert code == 0
    assert data == {"url": emu.base_url, "accounts": {"booklore": "ok", "koreader": "ok"},
                    "stored_in": "keyring", "koreader_sync": True}


def test_login_sync_off_warns_and_exits_0(home, emu, fake_keyring):
    emu.state.set_koreader_account("demo", syncEnabled=False)
    code, data = cli_json("login", "--url", emu.base_url, "--koreader-username", "demo",
                          "--password-stdin", "--json", input="demo\n")
    assert code == 0
    assert data["koreader_sync"] is False and data["accounts"]["koreader"] == "sync_off"


def test_verbose_lists_requests_without_secrets(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    proc = run_cli("-v", "sync", env=make_env(emu.base_url))
    assert proc.returncode == 0
    assert "GET /api/v1/healthcheck → 200 (" in proc.stderr
    assert "demo" not in proc.stderr.replace("/api/koreader", "")
    quiet = run_cli("sync", "-q", "--json", env=make_env(emu.base_url))
    assert quiet.returncode == 0 and json.loads(quiet.stdout)["offline"] is False


def test_match_maps_a_500_on_login(home, emu):
    cfg = make_config(home, emu.base_url)
    with open_store(cfg) as store:
        store.upsert_book(FP_A, title="Nothing like it")
    emu.state.inject_fault("/api/v1/auth/login", "status", status=500, times=None)
    env = make_env(emu.base_url, koreader=False)
    code, data = cli_json("match", "--auto-only", "--json", env=env)
    assert code in (1, 2)
    assert data["exit_code"] == code and data["error"]["type"] in ("offline", "account")
    assert data["matched"] == 0 and data["still_unmatched"] == 1
    proc = run_cli("match", env=env)
    assert "Traceback" not in proc.stderr


def test_match_without_terminal_says_what_to_do(home, emu):
    cfg = make_config(home, emu.base_url)
    with open_store(cfg) as store:
        store.upsert_book(FP_A, title="Nothing like it", file_path="/x/nothing.epub")
    proc = run_cli("match", env=make_env(emu.base_url))
    assert proc.returncode == 0
    assert "1 still unmatched; run `booklore-sync match` on a terminal, or `link BOOK ID`" \
        in proc.stderr


def test_books_and_link_by_name_title_and_ambiguity(home, emu, tmp_path):
    assert cli_json("books", "--json") == (0, {"books": []})
    assert not (home / "booklore-sync.db").exists()  # read-only commands create nothing
    s = Store.open(home / "booklore-sync.db")
    s.upsert_book(FP_A, title="Leaves of Grass", file_path=str(tmp_path / "Books/leaves.epub"))
    s.upsert_book(FP_B, title="Leaves of Absence", file_path=str(tmp_path / "Books/absence.epub"))
    s.enqueue_session(FP_A, 1000, {})
    s.close()
    code, data = cli_json("books", "--json")
    assert code == 0 and len(data["books"]) == 2
    first = data["books"][0]
    assert first["fingerprint"] == FP_A and first["book_id"] is None
    assert first["matched_by"] is None and first["pending"]["sessions"] == 1
    env = make_env(emu.base_url)
    code, data = cli_json("link", "leaves", "1", "--json", env=env)  # two titles match
    assert code == 2 and data["error"]["type"] == "not_found"
    assert FP_A in data["error"]["message"] and FP_B in data["error"]["message"]
    code, data = cli_json("link", "leaves.epub", "1", "--json", env=env)
    assert code == 0 and data["fingerprint"] == FP_A and data["previous_book_id"] is None
    code, data = cli_json("link", "/mnt/onboard/Books/absence.epub", "2", "--json", env=env)
    assert code == 0 and data["fingerprint"] == FP_B
    code, data = cli_json("link", "Leaves of Grass", "3", "--json", env=env)
    assert code == 0 and data["previous_book_id"] == 1
    code, data = cli_json("link", FP_A, "987654", "--json", env=env)
    assert code == 2 and data["error"]["type"] == "not_found" and "987654" in data["error"]["message"]
    code, data = cli_json("books", "--unmatched", "--json")
    assert data == {"books": []}
    rows = cli_json("books", "--json")[1]["books"]
    assert {r["matched_by"] for r in rows} == {"manual"}


def _hold_lock(home):
    script = textwrap.dedent(f"""
        import time
        from booklore_sync.store import SyncLock
        SyncLock({str(home / 'sync.lock')!r}).acquire()
        print("held", flush=True)
        time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ))
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_changing_commands_take_the_lock(home, emu):
    s = Store.open(home / "booklore-sync.db")
    s.upsert_book(FP_A, title="Leaves", file_path="/x/leaves.epub")
    s.enqueue_session(FP_A, 1000, {})
    s.close()
    holder = _hold_lock(home)
    try:
        commands = (("clear-pending", "--all", "--yes"), ("clear-cache",),
                    ("advanced", "clear-history", "--all", "--yes"), ("link", FP_A, "1"))
        # each waits the lock's 5 s: all at once while it is held
        procs = run_many(*((*args, "--json") for args in commands), env=make_env(emu.base_url))
        for args, proc in zip(commands, procs, strict=True):
            code, data = json_of(proc)
            assert code == 4, args
            assert data["error"]["type"] == "locked"
            assert f"(process {holder.pid})" in data["error"]["message"]
    finally:
        holder.kill()
        holder.wait()
    code, data = cli_json("status", "--json")
    assert data["pending"]["sessions"] == 1 and data["book_cache"]["total"] == 1
    code, data = cli_json("clear-pending", "--sessions", "--yes", "--json")
    assert code == 0 and data["cleared"]["sessions"] == 1
    code, data = cli_json("clear-cache", "--json")
    assert code == 0 and data == {"cleared": 1, "links_kept": 0}


def test_internal_error_is_one_line_with_the_log(home):
    # a store file that is not SQLite at all is a configuration error, not a traceback
    (home / "booklore-sync.db").write_bytes(b"not a database" * 100)
    proc = run_cli("clear-cache")
    assert proc.returncode in (1, 2)
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("Error: ")


def test_status_verbose_groups_by_book(home):
    s = Store.open(home / "booklore-sync.db")
    s.upsert_book(FP_A, title="Leaves", file_path="/x/leaves.epub")
    for i in range(40):
        s.enqueue_session(FP_A, 1000 + i, {})
    s.enqueue_rating(FP_A, 8)
    s.close()
    proc = run_cli("status", "--verbose")
    section = proc.stdout.split("Pending items", 1)[1].strip().splitlines()
    assert len(section) == 3  # header + sessions + ratings
    assert "Leaves" in section[0] and "aaaaaaaa" in section[0] and "unmatched" in section[0]
    assert "sessions: 40" in section[1] and "not tried yet" in section[1]


def test_dry_run_sends_nothing(home, kobo, emu):
    cfg = make_config(home, emu.base_url)
    scan_into(cfg, kobo)
    code, data = cli_json("sync", "--dry-run", "--json", env=make_env(emu.base_url))
    assert code == 0 and data["dry_run"] is True and data["offline"] is False
    assert data["sessions"]["would_send"] > 0
    assert emu.state.sessions() == [] and emu.state.ratings() == []
    assert all(e["method"] == "GET" for e in emu.request_log() if not e["path"].endswith("/login"))
    url = emu.base_url
    emu.stop()
    code, data = cli_json("sync", "--dry-run", "--json", env=make_env(url))
    assert code == 3 and data["offline"] is True and data["error"]["type"] == "offline"

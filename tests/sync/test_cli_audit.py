"""An audit of the command-line contract (spec sync-and-cache.md §6), line by line, on
the entry point (called in this process as a fresh process would run it; in real
processes where a process matters: exit codes seen from outside, the lock, the emulator,
the platform directories), with an isolated home and the emulator on a free port: commands and flags, global options on either side of the command, every JSON
shape and the error object, exit codes, URL normalisation, the §7 variables, the config
directory, the lock, confirmations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from booklore_sync.store import Store
from tests.conftest import cli_in_process, cli_json, json_of, run_cli, run_many
from tests.sync.conftest import make_env

FP_A = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
QUEUES = ("sessions", "annotations", "ratings", "bookmarks", "progress")
ERROR_TYPES = {"usage", "config", "account", "not_found", "unreachable", "offline", "locked",
               "interrupted", "internal"}
LOCK_MESSAGE = "sync already in progress (process {pid}); try again when it has finished"
DEAD_URL = "http://127.0.0.1:9"  # the discard port: nothing listens there


def _error_object(data: dict, code: int) -> None:
    assert set(data["error"]) >= {"type", "message"}, data
    assert data["error"]["type"] in ERROR_TYPES, data
    assert isinstance(data["error"]["message"], str) and data["error"]["message"]
    assert data["exit_code"] == code


def _seed(home: Path) -> None:
    s = Store.open(home / "booklore-sync.db")
    s.upsert_book(FP_A, title="Leaves", file_path="/x/leaves.epub")
    s.enqueue_session(FP_A, 1000, {})
    s.close()


# ----------------------------------------------------------------- §6.2 commands, flags
SPEC_FLAGS = {
    ("login",): ["--url", "--username", "--koreader-username", "--password-stdin",
                 "--store-in-file", "--no-check"],
    ("config",): [],
    ("scan",): ["--dry-run"],
    ("sync",): ["--dry-run"],
    ("status",): [],
    ("match",): ["--auto-only"],
    ("menu",): ["--dump"],
    ("watch",): ["--interval"],
    ("serve",): ["--host", "--port", "--interval", "--password-file"],
    ("books",): ["--unmatched"],
    ("link",): [],
    ("clear-pending",): ["--sessions", "--annotations", "--ratings", "--bookmarks",
                        "--progress", "--all", "--yes"],
    ("advanced", "rematch-all"): ["--yes"],
    ("advanced", "clear-history"): ["--sessions", "--annotations", "--bookmarks", "--ratings",
                                    "--progress", "--discarded", "--all", "--yes"],
    ("clear-cache",): [],
    ("emulator",): ["--host", "--port", "--library", "--mode", "--server-version",
                    "--koreader-sync"],
    ("demo",): [],
}


@pytest.mark.parametrize("command", list(SPEC_FLAGS), ids=" ".join)
def test_every_command_and_flag_of_the_spec_exists_with_examples(command):
    proc = run_cli(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for flag in [*SPEC_FLAGS[command], "--json"]:
        assert flag in text, (command, flag)
    assert "Example" in text and "§" not in text and "<bool>" not in text


def test_top_level_help_version_and_completion():
    text = run_cli("--help").stdout
    groups = [text.index(f"─ {g} ") for g in ("Set-up", "Daily", "Maintenance", "Tools")]
    assert groups == sorted(groups), "groups in the spec's order"
    for flag in ("--verbose", "-v", "--quiet", "-q", "--json", "--version",
                 "--install-completion", "--show-completion"):
        assert flag in text
    assert "Examples" in text and "§" not in text
    proc = run_cli("--version")
    from booklore_sync import __version__
    assert proc.returncode == 0 and proc.stdout == f"booklore-sync {__version__}\n"
    # no command: the help goes to stderr, stdout holds only the error object
    code, data = cli_json("--json")
    assert code == 2 and data["error"]["type"] == "usage"
    code, data = cli_json("advanced", "--json")
    assert code == 2 and data["error"]["type"] == "usage"


def test_emulator_accepts_every_mode_name():
    for mode in ("fork", "booklore", "grimmory", "upstream"):
        proc = subprocess.Popen([sys.executable, "-m", "booklore_sync", "emulator", "--port",
                                 "0", "--mode", mode, "--koreader-sync", "on", "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            first = json.loads(proc.stdout.readline())
        finally:
            proc.terminate()
            proc.wait(timeout=20)
        assert proc.returncode == 0
        assert set(first) >= {"url", "mode", "server_version", "accounts"}
        assert first["url"].startswith("http://127.0.0.1:")
        assert set(first["accounts"]) >= {"user", "koreader", "admin"}
        assert set(first["accounts"]["user"]) >= {"username", "password"}


# ----------------------------------------------------------------- global options
@pytest.mark.parametrize("args", [
    ("status",), ("books",), ("books", "--unmatched"), ("config",),
    ("config", "sessions.gap_seconds"), ("menu", "--dump"), ("clear-cache",),
    ("clear-pending", "--all", "--yes"), ("advanced", "clear-history", "--all", "--yes"),
], ids=" ".join)
def test_global_options_before_or_after_the_command(home, args):
    n = len(args) if args[0] != "advanced" else 2
    before = cli_json("-q", "--json", "-v", *args)
    after = cli_json(*args[:n], "--json", "-v", *args[n:], "-q")
    assert before[0] == after[0] == 0
    assert before[1] == after[1]


def test_unknown_flag_with_json_gives_the_error_object_for_every_command(home):
    calls = [args for command in SPEC_FLAGS
             for args in (("--json", *command, "--no-such-flag"),
                          (*command, "--no-such-flag", "--json"))]
    # a few through the real entry point in a process, the rest called in this process
    real = {calls[0], calls[1], calls[-1]}
    answers = dict(zip(real, map(json_of, run_many(*real)), strict=True))
    for args in calls:
        if args in real:
            code, data = answers[args]
        else:
            code, out, err = cli_in_process(*args)
            assert "Traceback" not in err, args
            data = json.loads(out)
        assert code == 2, args
        _error_object(data, 2)
        assert data["error"]["type"] == "usage"
        assert set(data) == {"error", "exit_code"}, args


# ----------------------------------------------------------------- §3, §6.1 files
def test_read_only_commands_create_nothing_and_report_an_empty_state(home):
    code, data = cli_json("status", "--json")
    assert code == 0 and data == {
        "book_cache": {"total": 0, "matched": 0, "unmatched": 0},
        "pending": {q: 0 for q in QUEUES}, "progress_history": 0}
    assert cli_json("--json", "books") == (0, {"books": []})
    code, data = cli_json("menu", "--dump", "--json")
    assert code == 0 and len(data["entries"]) == 6
    assert all(set(e) == {"label", "disabled"} and isinstance(e["disabled"], bool)
               for e in data["entries"])
    assert run_cli("config").returncode == 0
    assert run_cli("-v", "status").returncode == 0
    assert list(home.iterdir()) == []


def _env_without_home(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BOOKLORE_SYNC_HOME"}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "conf"),
               XDG_DATA_HOME=str(tmp_path / "data"))
    return env


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "booklore_sync", *args], env=env, text=True,
                          capture_output=True, input="", timeout=60)


def test_config_lives_in_the_config_dir_and_moves_there_once(tmp_path):
    env = _env_without_home(tmp_path)
    old = tmp_path / "data" / "booklore-sync" / "config.toml"
    old.parent.mkdir(parents=True)
    old.write_text('[sessions]\ngap_seconds = 120\n', encoding="utf-8")
    proc = _run(env, "config", "sessions.gap_seconds")
    new = tmp_path / "conf" / "booklore-sync" / "config.toml"
    assert proc.returncode == 0 and proc.stdout.strip() == "120"
    assert new.is_file() and not old.exists()
    assert proc.stderr.count("moved ") == 1 and str(new) in proc.stderr
    again = _run(env, "config", "sessions.gap_seconds")
    assert again.stdout.strip() == "120" and "moved" not in again.stderr
    proc = _run(env, "config", "sessions.min_pages", "7", "--json")
    assert json.loads(proc.stdout) == {"key": "sessions.min_pages", "value": 7,
                                       "written_to": str(new)}
    assert not (tmp_path / "data" / "booklore-sync" / "config.toml").exists()


# ----------------------------------------------------------------- §6.1 URLs
@pytest.mark.parametrize(("given", "saved", "notice"), [
    ("booklore.local:6060", "http://booklore.local:6060",
     "no scheme given; using http://booklore.local:6060"),
    (":6060", "http://localhost:6060", "no scheme given; using http://localhost:6060"),
    ("http://b.local:6060/api/v1/", "http://b.local:6060", "removed the trailing /api/v1"),
    ("https://b.local/sub/api/koreader", "https://b.local/sub", "/api/koreader"),
    ("http://b.local/api", "http://b.local", "/api"),
])
def test_config_server_url_is_normalised_with_a_notice(home, given, saved, notice):
    proc = run_cli("config", "server.url", given, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["value"] == saved
    assert notice in proc.stderr
    assert run_cli("config", "server.url").stdout.strip() == saved
    # the same value from the environment
    proc = run_cli("config", "server.url", env={"BOOKLORE_URL": given})
    assert proc.stdout.strip() == saved and notice in proc.stderr


@pytest.mark.parametrize("bad", ["ftp://x", "http://", "http://bad host", "http://h:99999",
                                 "://x"])
def test_an_invalid_url_is_refused_naming_it_and_nothing_is_saved(home, bad):
    code, data = cli_json("config", "server.url", bad, "--json")
    assert code == 2 and bad in data["error"]["message"]
    _error_object(data, 2)
    assert not (home / "config.toml").exists()
    code, data = cli_json("login", "--url", bad, "--username", "u", "--password-stdin",
                          "--store-in-file", "--json", input="p\n")
    assert code == 2 and bad in data["error"]["message"]
    assert not (home / "config.toml").exists() and not (home / "credentials.toml").exists()
    for args in (("sync",), ("match",), ("sync", "--dry-run")):
        code, data = cli_json(*args, "--json", env={"BOOKLORE_URL": bad})
        assert code == 2 and bad in data["error"]["message"], args
        assert data["error"]["type"] == "config"


# ----------------------------------------------------------------- §6.1 config command
def test_config_shapes_and_values(home):
    code, data = cli_json("config", "--json")
    assert code == 0
    settings = data["settings"]
    for key in ("server.url", "server.username", "server.koreader_username",
                "http.max_concurrency", "sync.settle_seconds", "sessions.gap_seconds"):
        assert set(settings[key]) == {"value", "source"}
        assert settings[key]["source"] in ("env", "file", "default")
    assert settings["sync.settle_seconds"] == {"value": 60, "source": "default"}
    assert settings["http.max_concurrency"] == {"value": 4, "source": "default"}
    # `config KEY -5` takes -5 as the value (not as an option)
    code, data = cli_json("config", "device.name", "-5", "--json")
    assert code == 0 and data["value"] == "-5"
    code, data = cli_json("config", "sessions.gap_seconds", "-5", "--json")
    assert code == 0 and data["value"] == -5
    assert cli_json("config", "sessions.gap_seconds", "--json")[1] == {
        "key": "sessions.gap_seconds", "value": -5, "source": "file"}
    for key, value in (("sessions.gap_seconds", "soon"), ("no.such.key", "1"),
                       ("sync.ratings", "perhaps"), ("http.max_concurrency", "0")):
        code, data = cli_json("config", key, value, "--json")
        assert code == 2 and data["error"]["type"] == "usage", key
    assert cli_json("config", "no.such.key", "--json")[0] == 2


def test_setting_variables_override_the_file(home):
    assert run_cli("config", "http.max_concurrency", "2").returncode == 0
    env = {"BOOKLORE_SYNC_HTTP_MAX_CONCURRENCY": "8", "BOOKLORE_SYNC_SYNC_SETTLE_SECONDS": "0",
           "BOOKLORE_SYNC_SYNC_RATINGS": "false", "BOOKLORE_SYNC_NO_SUCH_THING": "x"}
    code, data = cli_json("config", "--json", env=env)
    assert code == 0
    settings = data["settings"]
    assert settings["http.max_concurrency"] == {"value": 8, "source": "env"}
    assert settings["sync.settle_seconds"] == {"value": 0, "source": "env"}
    assert settings["sync.ratings"] == {"value": False, "source": "env"}
    assert "BOOKLORE_SYNC_HTTP_MAX_CONCURRENCY" in run_cli("config", env=env).stdout
    bad = {"BOOKLORE_SYNC_SESSIONS_GAP_SECONDS": "soon"}
    for args in (("config",), ("status",), ("sync",), ("scan", str(home))):
        code, data = cli_json(*args, "--json", env=bad)
        assert code == 2, args
        assert data["error"]["type"] == "config"
        assert "BOOKLORE_SYNC_SESSIONS_GAP_SECONDS" in data["error"]["message"]


# ----------------------------------------------------------------- §6.1 login
def test_login_json_shape_and_a_failed_check_writes_nothing(home, emulator_factory):
    emu = emulator_factory("fork", koreader_sync=False)
    code, data = cli_json("login", "--url", emu.base_url, "--username", "demo",
                          "--koreader-username", "demo", "--password-stdin", "--store-in-file",
                          "--json", input="demo\ndemo\n")
    assert code == 0, data
    assert data == {"url": emu.base_url, "accounts": {"booklore": "ok", "koreader": "sync_off"},
                    "stored_in": "file", "koreader_sync": False}
    config = (home / "config.toml").read_bytes()
    credentials = (home / "credentials.toml").read_bytes()
    other = emulator_factory("fork")
    for stdin, account in (("wrong\ndemo\n", "BookLore account"),
                           ("demo\nwrong\n", "KOReader account")):
        code, data = cli_json("login", "--url", other.base_url, "--username", "demo",
                              "--koreader-username", "demo", "--password-stdin",
                              "--store-in-file", "--json", input=stdin)
        assert code == 2 and data["error"]["type"] == "account"
        assert account in data["error"]["message"]
        assert (home / "config.toml").read_bytes() == config
        assert (home / "credentials.toml").read_bytes() == credentials
    code, data = cli_json("login", "--url", DEAD_URL, "--username", "demo",
                          "--password-stdin", "--store-in-file", "--json", input="demo\n")
    assert code == 2 and data["error"]["type"] == "unreachable"
    assert data["error"]["message"].count(DEAD_URL) == 1
    assert (home / "config.toml").read_bytes() == config
    code, data = cli_json("login", "--url", "127.0.0.1:9", "--username", "x", "--no-check",
                          "--store-in-file", "--json")
    assert code == 0 and data["accounts"] == {"booklore": "not_checked",
                                              "koreader": "not_configured"}
    assert data["koreader_sync"] is None and data["url"] == "http://127.0.0.1:9"


# ----------------------------------------------------------------- §6.3/§6.4 sync
def test_sync_json_offline_and_locked_have_zero_counts(home):
    _seed(home)
    env = make_env(DEAD_URL)
    code, data = cli_json("sync", "--json", env=env)
    assert code == 3 and data["offline"] is True
    assert all(data[q] == {"synced": 0, "failed": 0, "skipped": 0} for q in QUEUES)
    _error_object(data, 3)
    assert data["error"]["type"] == "offline"
    proc = run_cli("sync", env=env)
    assert proc.returncode == 3 and proc.stderr.count(DEAD_URL) == 1, proc.stderr
    code, data = cli_json("sync", "--dry-run", "--json", env=env)
    assert code == 3 and data["dry_run"] is True and data["offline"] is True
    assert all(set(data[q]) == {"would_send", "already_there", "skipped"} for q in QUEUES)
    assert data["error"]["message"].count(DEAD_URL) == 1
    code, data = cli_json("match", "--json", env=env)
    assert code == 1 and data["matched"] == 0 and data["still_unmatched"] == 1
    assert data["error"]["type"] == "offline" and data["error"]["message"].count(DEAD_URL) == 1
    code, data = cli_json("advanced", "rematch-all", "--yes", "--json", env=env)
    assert code == 1 and data["error"]["message"].count(DEAD_URL) == 1


def test_one_account_rejected_after_the_other_uploaded_gives_2(home, kobo, emulator_factory):
    emu = emulator_factory("fork", koreader_sync=True)
    assert run_cli("scan", str(kobo)).returncode == 0
    env = make_env(emu.base_url)
    env["BOOKLORE_KOREADER_PASSWORD"] = "wrong"
    code, data = cli_json("sync", "--json", env=env)
    assert code == 2
    assert data["sessions"]["synced"] > 0 and data["offline"] is False
    assert data["error"]["type"] == "account" and "KOReader account" in data["error"]["message"]


def _hold_lock(home: Path) -> subprocess.Popen[str]:
    script = textwrap.dedent(f"""
        import sys
        from booklore_sync.store import SyncLock
        SyncLock({str(home / 'sync.lock')!r}).acquire()
        print("held", flush=True)
        sys.stdin.read()
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              stdin=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_every_changing_command_meets_the_lock_with_exit_4(home, emu):
    _seed(home)
    holder = _hold_lock(home)
    commands = [("sync",), ("match", "--auto-only"), ("link", FP_A, "1"),
                ("clear-pending", "--all", "--yes"), ("clear-cache",),
                ("advanced", "clear-history", "--all", "--yes"),
                ("advanced", "rematch-all", "--yes")]
    env = dict(os.environ, **make_env(emu.base_url))
    try:
        procs = [subprocess.Popen([sys.executable, "-m", "booklore_sync", *args, "--json"],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, text=True) for args in commands]
        results = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read())  # type: ignore[union-attr]
                   for p in procs]
    finally:
        holder.communicate("")
    message = LOCK_MESSAGE.format(pid=holder.pid)
    for args, (code, out, err) in zip(commands, results, strict=True):
        assert code == 4, (args, out, err)
        data = json.loads(out)
        assert data["error"] == {"type": "locked", "message": message}, args
        assert data["exit_code"] == 4
        assert message in err
        if args == ("sync",):
            assert data["offline"] is False
            assert all(data[q] == {"synced": 0, "failed": 0, "skipped": 0} for q in QUEUES)
    assert cli_json("status", "--json")[1]["pending"]["sessions"] == 1


# ----------------------------------------------------------------- confirmations, menu
def test_destructive_commands_need_yes_without_a_terminal(home):
    _seed(home)
    for args in (("clear-pending", "--all"), ("advanced", "clear-history", "--all"),
                 ("advanced", "rematch-all"), ("clear-pending",),
                 ("advanced", "clear-history")):
        code, data = cli_json(*args, "--json")
        assert code == 2 and data["error"]["type"] == "usage", args
        if len(args) > 1 and args[-1] in ("--all", "rematch-all"):
            assert "--yes" in data["error"]["message"], args
    assert cli_json("status", "--json")[1]["pending"]["sessions"] == 1
    code, data = cli_json("clear-cache", "--json")
    assert (code, data) == (0, {"cleared": 1, "links_kept": 0})
    code, data = cli_json("clear-pending", "--sessions", "--yes", "--json")
    assert code == 0 and data == {"cleared": {q: int(q == "sessions") for q in QUEUES}}
    code, data = cli_json("advanced", "clear-history", "--all", "--discarded", "--yes", "--json")
    assert code == 0 and set(data["cleared"]) == {"sessions", "annotations", "bookmarks",
                                                  "ratings", "progress", "discarded"}


def test_menu_needs_a_terminal_and_json_needs_dump(home):
    code, data = cli_json("menu", "--json")
    assert code == 2 and data["error"]["type"] == "usage"
    proc = run_cli("menu")
    assert proc.returncode == 2 and "terminal" in proc.stderr and proc.stdout == ""


# ----------------------------------------------------------------- books, link, demo
def test_books_and_link_shapes(home, emu):
    _seed(home)
    code, data = cli_json("books", "--json")
    assert code == 0 and len(data["books"]) == 1
    assert set(data["books"][0]) >= {"path", "device_path", "fingerprint", "title", "author",
                                     "book_id", "matched_by"}
    assert data["books"][0]["book_id"] is None and data["books"][0]["matched_by"] is None
    book_id = emu.state.books()[0]["id"] if isinstance(emu.state.books()[0], dict) else 1
    code, data = cli_json("link", "leaves.epub", str(book_id), "--json",
                          env=make_env(emu.base_url))
    assert code == 0, data
    assert set(data) >= {"fingerprint", "path", "title", "book_id", "previous_book_id"}
    assert data["book_id"] == book_id and data["previous_book_id"] is None
    code, data = cli_json("books", "--unmatched", "--json")
    assert code == 0 and data == {"books": []}
    code, data = cli_json("link", "nothing-like-this", "1", "--json",
                          env=make_env(emu.base_url))
    assert code == 2 and data["error"]["type"] == "not_found"
    code, data = cli_json("link", FP_A, "999999", "--json", env=make_env(emu.base_url))
    assert code == 2 and data["error"]["type"] == "not_found"


def test_demo_json_shape_and_sync_switched_on(home):
    proc = run_cli("demo", "--json", timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert set(data) >= {"scan", "sync", "server"}
    assert set(data["server"]) == {"sessions", "annotations", "book_notes", "notes",
                                   "bookmarks", "ratings", "positions"}
    assert data["server"]["positions"] > 0 and data["sync"]["offline"] is False
    assert set(data["scan"]) >= {"books", "queued", "errors", "warnings"}
    assert "Sync switched on" in proc.stderr


def test_dry_run_counts_positions_the_server_already_holds(home, kobo, emulator_factory):
    emu = emulator_factory("fork", koreader_sync=True)
    env = make_env(emu.base_url)
    assert run_cli("scan", str(kobo)).returncode == 0
    code, before = cli_json("sync", "--dry-run", "--json", env=env)
    assert code == 0 and before["progress"]["would_send"] > 0
    assert before["progress"]["already_there"] == 0
    code, synced = cli_json("sync", "--json", env=env)
    assert code == 0 and synced["progress"]["synced"] == before["progress"]["would_send"]
    code, _ = cli_json("advanced", "clear-history", "--progress", "--yes", "--json")
    assert code == 0
    code, rescan = cli_json("scan", str(kobo), "--json")
    assert rescan["queued"]["progress"] == synced["progress"]["synced"]
    code, after = cli_json("sync", "--dry-run", "--json", env=env)
    assert code == 0
    assert after["progress"] == {"would_send": 0, "skipped": 0,
                                 "already_there": rescan["queued"]["progress"]}
    assert cli_json("status", "--json")[1]["pending"]["progress"] == rescan["queued"]["progress"]

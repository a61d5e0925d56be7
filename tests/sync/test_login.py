"""login: URL and accounts to config.toml, passwords to the keyring (or an owner-only file)."""

from __future__ import annotations

import json
import os
import stat

from tests.conftest import cli_json, run_cli


def _all_files_text(home) -> str:
    text = []
    for root, _dirs, files in os.walk(home):
        for name in files:
            with open(os.path.join(root, name), "rb") as fh:
                text.append(fh.read().decode("latin-1"))
    return "\n".join(text)


def test_login_without_keyring_refuses(home, emu):
    proc = run_cli("login", "--url", emu.base_url, "--username", "demo",
                   "--koreader-username", "demo", "--password-stdin", input="demo\ndemo\n")
    assert proc.returncode == 2
    assert "BOOKLORE_PASSWORD" in proc.stderr and "--store-in-file" in proc.stderr
    assert not (home / "credentials.toml").exists()


def test_login_store_in_file(home, emu, kobo):
    proc = run_cli("login", "--url", emu.base_url, "--username", "demo",
                   "--koreader-username", "demo", "--password-stdin", "--store-in-file",
                   input="demo\ndemo\n")
    assert proc.returncode == 0, proc.stderr
    cred = home / "credentials.toml"
    assert stat.S_IMODE(os.stat(cred).st_mode) == 0o600
    config = (home / "config.toml").read_text()
    assert emu.base_url in config and "demo" in config and "password" not in config.lower()
    # the stored passwords work for a sync
    assert run_cli("scan", str(kobo)).returncode == 0
    code, data = cli_json("sync", "--json")
    assert code == 0 and data["sessions"]["synced"] > 0


def test_login_keyring(home, emulator_factory, fake_keyring, kobo):
    emu = emulator_factory(user=("alice", "Zq9pw-unique"), koreader_user=("kalice", "Kq9pw-unique"))
    proc = run_cli("login", "--url", emu.base_url, "--username", "alice",
                   "--koreader-username", "kalice", "--password-stdin",
                   input="Zq9pw-unique\nKq9pw-unique\n")
    assert proc.returncode == 0, proc.stderr
    assert not (home / "credentials.toml").exists()
    stored = json.loads(fake_keyring.read_text())
    assert sorted(stored.values()) == ["Kq9pw-unique", "Zq9pw-unique"]
    assert "OS keyring" in run_cli("config").stdout
    # a full scan + sync with the keyring's passwords, then no secret in any file of the home
    assert run_cli("scan", str(kobo)).returncode == 0
    code, data = cli_json("sync", "--json")
    assert code == 0 and data["progress"]["synced"] > 0
    everything = _all_files_text(home)
    assert "Zq9pw-unique" not in everything and "Kq9pw-unique" not in everything


def test_login_rejected_stores_nothing(home, emu, fake_keyring):
    proc = run_cli("login", "--url", emu.base_url, "--username", "demo", "--password-stdin",
                   input="wrong-password\n")
    assert proc.returncode == 2
    assert "BookLore account" in proc.stderr
    assert "wrong-password" not in proc.stderr + proc.stdout
    assert not (home / "config.toml").exists()
    assert not fake_keyring.exists() or json.loads(fake_keyring.read_text()) == {}
    proc = run_cli("login", "--url", emu.base_url, "--koreader-username", "demo",
                   "--password-stdin", input="nope\n")
    assert proc.returncode == 2 and "KOReader account" in proc.stderr


def test_login_needs_url_and_account(home):
    assert run_cli("login", "--password-stdin", input="x\n").returncode == 2
    assert run_cli("login", "--url", "http://127.0.0.1:1", "--password-stdin",
                   input="x\n").returncode == 2


def test_login_server_unreachable_stores_nothing_unless_no_check(home, fake_keyring):
    proc = run_cli("login", "--url", "http://127.0.0.1:9", "--username", "demo",
                   "--password-stdin", input="pw\n")
    assert proc.returncode == 2
    assert "http://127.0.0.1:9" in proc.stderr and "refused" in proc.stderr
    assert not (home / "config.toml").exists()
    proc = run_cli("login", "--url", "http://127.0.0.1:9", "--username", "demo",
                   "--password-stdin", "--no-check", input="pw\n")
    assert proc.returncode == 0
    assert "Nothing was checked" in proc.stderr

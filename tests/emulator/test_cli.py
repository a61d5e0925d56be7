"""The CLI process (§7.1): the first stdout line is the base URL, then the accounts; it
serves until SIGTERM/SIGINT and exits 0."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import httpx
import pytest

from .conftest import FIXTURE_BOOKS, KO, LEAVES_HASH


def spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "booklore_sync.emulator", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_url_first_and_exits_0_on_signal(sig):
    proc = spawn()
    try:
        first = proc.stdout.readline().rstrip("\n")
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", first), first
        lines = [proc.stdout.readline().rstrip("\n") for _ in range(3)]
        assert lines == ["BookLore user: demo / demo", "KOReader account: demo / demo", "Admin user: admin / admin"]
        r = httpx.get(first + "/api/v1/healthcheck", timeout=5)
        assert r.status_code == 200
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.skipif(not FIXTURE_BOOKS.is_dir(), reason="fixture books not available")
def test_cli_library_and_accounts(tmp_path):
    state = tmp_path / "state.json"
    proc = spawn("--library", str(FIXTURE_BOOKS), "--mode", "fork", "--user", "ann:a:b",
                 "--koreader-user", "demo:demo", "--admin", "root:r", "--state", str(state))
    try:
        url = proc.stdout.readline().strip()
        assert proc.stdout.readline().strip() == "BookLore user: ann / a:b"  # split at the first ':'
        r = httpx.get(f"{url}/api/koreader/books/by-hash/{LEAVES_HASH}", headers=KO, timeout=5)
        assert r.status_code == 200 and r.json()["metadata"]["title"] == "Leaves of Grass"
        assert httpx.post(f"{url}/api/v1/auth/login", json={"username": "ann", "password": "a:b"}).status_code == 200
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        assert state.exists()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cli_usage_errors_exit_2():
    proc = subprocess.run([sys.executable, "-m", "booklore_sync.emulator", "--port", "0", "--user", "nocolon"],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2 and "NAME:PASSWORD" in proc.stderr and proc.stdout == ""
    proc = subprocess.run([sys.executable, "-m", "booklore_sync.emulator", "--port", "0", "--library", "/nonexistent"],
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 2


def test_run_emulator_cli_signature():
    import inspect

    from booklore_sync.emulator.cli import run_emulator_cli

    assert list(inspect.signature(run_emulator_cli).parameters) == [
        "host", "port", "library", "mode", "state_file", "user", "koreader_user", "admin", "control",
        "no_spa_fallback", "fixed_bugs", "seed"]
    assert inspect.signature(run_emulator_cli).parameters["port"].default == 6060


def test_cli_no_control_hides_the_control_api():
    proc = spawn("--no-control")
    try:
        url = proc.stdout.readline().strip()
        r = httpx.get(url + "/__emulator/state", timeout=5)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()

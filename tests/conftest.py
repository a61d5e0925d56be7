"""Shared fixtures: an isolated home per test, the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
# The fixture files the suite needs live in the repository (tests/fixtures/README.md).
FIXTURES = TESTS / "fixtures"
KOBO = FIXTURES / "kobo"
BOOKS = FIXTURES / "books"
# The real-world corpus stays outside the repository: beside the clone, or where
# BOOKLORE_SYNC_REALWORLD points.  Tests needing it skip when it is absent.
REALWORLD = Path(os.environ.get("BOOKLORE_SYNC_REALWORLD")
                 or ROOT.parent / "shared" / "fixtures" / "realworld")


@pytest.fixture(scope="session")
def realworld() -> Path:
    """The real-world KOReader corpus (read-only); skips the test when it is absent."""
    if not REALWORLD.is_dir():
        pytest.skip(f"real-world corpus not found: {REALWORLD} (kept outside the repository)")
    return REALWORLD


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    """No test sees the user's home, config, keyring or BookLore variables."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("BOOKLORE_SYNC_HOME", str(home))
    # Platform directories too (config, data, cache, state), so that no test — nor a
    # parallel worker — reads or writes the user's real ones.
    xdg = tmp_path_factory.mktemp("xdg")
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(var, str(xdg / var.lower()))
    for var in ("BOOKLORE_URL", "BOOKLORE_USERNAME", "BOOKLORE_PASSWORD",
                "BOOKLORE_KOREADER_USERNAME", "BOOKLORE_KOREADER_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    import keyring.core

    keyring.core._keyring_backend = None  # re-read the backend from the environment
    yield home
    keyring.core._keyring_backend = None


@pytest.fixture
def home(isolated_env: Path) -> Path:
    return isolated_env


@pytest.fixture
def store(home):
    from booklore_sync.store import Store

    s = Store.open(home / "booklore-sync.db")
    yield s
    s.close()


@pytest.fixture
def fake_keyring(monkeypatch, tmp_path):
    """A file-backed keyring (tests/keyring_backend.py) standing in for the OS one."""
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring_backend.FileKeyring")
    monkeypatch.setenv("TEST_KEYRING_FILE", str(tmp_path / "keyring.json"))
    monkeypatch.setenv("PYTHONPATH", str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    import keyring.core

    keyring.core._keyring_backend = None
    return tmp_path / "keyring.json"


def run_cli(*args: str, input: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real entry point in a subprocess (stdin is not a terminal)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "booklore_sync", *args],
        input=input if input is not None else "",
        capture_output=True, text=True, env=full_env, timeout=timeout,
    )


def cli_json(*args: str, **kw: Any) -> tuple[int, dict]:
    proc = run_cli(*args, **kw)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"not one JSON object on stdout: {proc.stdout!r}\n{proc.stderr}") from exc
    return proc.returncode, data


def run_many(*calls: tuple[str, ...], max_workers: int = 8,
             **kw: Any) -> list[subprocess.CompletedProcess[str]]:
    """``run_cli`` for each argument tuple, the processes running at the same time (for
    tests that wait, e.g. each command meeting the 5 s lock); results in call order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        return list(pool.map(lambda args: run_cli(*args, **kw), calls))


def json_of(proc: subprocess.CompletedProcess[str]) -> tuple[int, dict]:
    """``cli_json``'s answer for a process already run (see ``run_many``)."""
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"not one JSON object on stdout: {proc.stdout!r}\n{proc.stderr}") from exc
    return proc.returncode, data


def cli_in_process(*args: str) -> tuple[int, str, str]:
    """The entry point called in this process: (exit code, stdout, stderr).  For the
    many cheap calls of a test that needs no real process (usage errors, help); each such
    test keeps some real ``run_cli`` calls too."""
    import contextlib
    import io

    from booklore_sync.entry import main

    out, err = io.StringIO(), io.StringIO()
    code: int = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return code, out.getvalue(), err.getvalue()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Never end with pytest's exit code 5 ("no tests collected"): a run narrowed by the
    caller (paths, -k, -m) that matched nothing is a clean, empty run (0); the whole suite
    collecting nothing means it is broken (1)."""
    if exitstatus != pytest.ExitCode.NO_TESTS_COLLECTED:
        return
    opt = session.config.option
    narrowed = bool(getattr(opt, "keyword", "") or getattr(opt, "markexpr", "")
                    or session.config.args_source == pytest.Config.ArgsSource.ARGS)
    session.exitstatus = pytest.ExitCode.OK if narrowed else pytest.ExitCode.TESTS_FAILED

"""Shared fixtures: an isolated home per test; the CLI run in this process (``run_cli``)
or in a real one (``run_process``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from booklore_sync.store import Store

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


def _share_the_default_ssl_context() -> None:
    """Every httpx client made in the test process with the default verification gets
    one shared SSL context: httpx loads certifi's CA bundle for each client (~40 ms of
    CPU), and the suite makes some 500 (a client per sync, check, job).  The
    verification is the same; only the loading is shared.  Real processes (``run_process``)
    are not affected."""
    try:
        from httpx._transports import default
    except ImportError:  # pragma: no cover - another httpx layout: nothing shared
        return
    original = default.create_ssl_context
    shared: dict[tuple[str | None, ...], Any] = {}

    def create_ssl_context(verify: Any = True, cert: Any = None, trust_env: bool = True) -> Any:
        if verify is not True or cert is not None:
            return original(verify=verify, cert=cert, trust_env=trust_env)
        # the same bundle for the same variables (httpx reads them for each client)
        key = ((os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))
               if trust_env else (None, None))
        if key not in shared:
            shared[key] = original(verify=True, cert=None, trust_env=trust_env)
        return shared[key]

    default.create_ssl_context = create_ssl_context


_share_the_default_ssl_context()


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


_EMPTY_STORE: list[Path] = []  # an empty store at the current schema, made once per process


def new_store(path: str | Path) -> Store:
    """``Store.open`` of a new file, as a copy of an empty store at the current schema:
    opening a new file runs every migration (~13 ms of CPU), and the suite opens
    hundreds (hypothesis examples).  The copy is what ``Store.open`` would have made,
    up to the times in ``schema_migrations``; an existing ``path`` is simply opened."""
    import atexit
    import shutil
    import tempfile

    from booklore_sync.store import Store
    from booklore_sync.store.files import private_dir

    path = Path(path)
    if not _EMPTY_STORE:
        folder = Path(tempfile.mkdtemp(prefix="booklore-sync-empty-store-"))
        atexit.register(shutil.rmtree, folder, True)
        Store.open(folder / "empty.db").close()
        _EMPTY_STORE.append(folder / "empty.db")
    if not path.exists():
        private_dir(path.parent)
        shutil.copyfile(_EMPTY_STORE[0], path)
    return Store.open(path)


@pytest.fixture
def store(home):
    s = new_store(home / "booklore-sync.db")
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


def run_process(*args: str, input: str | None = None, env: dict[str, str] | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real entry point in a subprocess (stdin is not a terminal): for what only a
    real process shows (its exit code seen from outside, start-up, signals, a lock held by
    another process, commands running at the same time)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "booklore_sync", *args],
        input=input if input is not None else "",
        capture_output=True, text=True, env=full_env, timeout=timeout,
    )


def run_cli(*args: str, input: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The entry point called in this process as a fresh process would run it: the same
    (exit code, stdout, stderr) as ``run_process``, without a Python start-up per call.

    What a process would not share is set up and undone around the call: the
    environment (``env``), ``sys.argv``, stdin (``input``; never a terminal), stdout and
    stderr (bytes decoded as a pipe's would be), the keyring backend, the per-server token
    gates, ``tempfile``'s folder and the loggers' handlers.  ``timeout`` is accepted for the same signature."""
    del timeout
    import io
    import logging
    import tempfile

    import keyring.core

    from booklore_sync.booklore import auth
    from booklore_sync.entry import main

    saved_env = {k: os.environ.get(k) for k in (env or {})}
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_argv = sys.argv
    saved_tempdir = tempfile.tempdir
    loggers = [logging.getLogger()] + [
        lg for name, lg in logging.root.manager.loggerDict.items()
        if name.startswith("booklore_sync") and isinstance(lg, logging.Logger)]
    saved_logging = [(lg, list(lg.handlers), lg.level, lg.propagate) for lg in loggers]
    out, err = io.BytesIO(), io.BytesIO()
    streams = [io.TextIOWrapper(io.BytesIO((input or "").encode()), encoding="utf-8"),
               io.TextIOWrapper(out, encoding="utf-8", write_through=True),
               io.TextIOWrapper(err, encoding="utf-8", write_through=True)]
    code = 0
    try:
        os.environ.update(env or {})
        sys.argv = ["booklore-sync", *args]
        sys.stdin, sys.stdout, sys.stderr = streams
        keyring.core._keyring_backend = None  # a process reads the backend afresh
        tempfile.tempdir = None  # ... and TMPDIR
        with auth._gates_lock:
            auth._gates.clear()  # no token request of an earlier "process" to space from
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        for stream in streams:
            stream.flush()
            stream.detach()  # (collecting the wrapper would close the buffer)
        sys.argv = saved_argv
        for lg, handlers, level, propagate in saved_logging:
            lg.handlers[:] = handlers
            lg.setLevel(level)
            lg.propagate = propagate
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        keyring.core._keyring_backend = None
        tempfile.tempdir = saved_tempdir

    def text(data: bytes) -> str:  # as ``subprocess.run(text=True)`` reads a pipe
        return data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")

    return subprocess.CompletedProcess(["booklore-sync", *args], code,
                                       text(out.getvalue()), text(err.getvalue()))


def cli_json(*args: str, **kw: Any) -> tuple[int, dict]:
    """``run_cli``'s exit code and its one JSON object on stdout."""
    return json_of(run_cli(*args, **kw))


def process_json(*args: str, **kw: Any) -> tuple[int, dict]:
    """``run_process``'s exit code and its one JSON object on stdout."""
    return json_of(run_process(*args, **kw))


def run_many(*calls: tuple[str, ...], max_workers: int = 8,
             **kw: Any) -> list[subprocess.CompletedProcess[str]]:
    """``run_process`` for each argument tuple, the processes running at the same time (for
    tests that wait, e.g. each command meeting the 5 s lock); results in call order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        return list(pool.map(lambda args: run_process(*args, **kw), calls))


def json_of(proc: subprocess.CompletedProcess[str]) -> tuple[int, dict]:
    """The exit code and the one JSON object on stdout of a command already run."""
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"not one JSON object on stdout: {proc.stdout!r}\n{proc.stderr}") from exc
    return proc.returncode, data


def cli_in_process(*args: str) -> tuple[int, str, str]:
    """``run_cli`` as a tuple: (exit code, stdout, stderr)."""
    proc = run_cli(*args)
    return proc.returncode, proc.stdout, proc.stderr


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

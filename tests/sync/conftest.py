"""Fixtures for end-to-end tests: the emulator on an ephemeral port, a copy of the
fixture Kobo device, a Config pointing at both."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from booklore_sync.config import Config
from booklore_sync.emulator import start_emulator
from booklore_sync.store import Store
from tests.conftest import FIXTURES


@pytest.fixture
def kobo(tmp_path) -> Path:
    dst = tmp_path / "kobo"
    shutil.copytree(FIXTURES / "kobo", dst)
    return dst


@pytest.fixture
def library() -> Path:
    return FIXTURES / "books"


@pytest.fixture
def emulator_factory(library):
    started = []

    def make(mode: str = "fork", **kw):
        kw.setdefault("library", library)
        emu = start_emulator(mode=mode, port=0, **kw)
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()


@pytest.fixture
def emu(emulator_factory):
    return emulator_factory("fork")


def make_env(base_url: str, *, booklore: bool = True, koreader: bool = True) -> dict[str, str]:
    env = {"BOOKLORE_URL": base_url}
    if booklore:
        env.update(BOOKLORE_USERNAME="demo", BOOKLORE_PASSWORD="demo")
    if koreader:
        env.update(BOOKLORE_KOREADER_USERNAME="demo", BOOKLORE_KOREADER_PASSWORD="demo")
    return env


def make_config(home: Path, base_url: str, *, read_timeout: float | None = None,
                **accounts: bool) -> Config:
    cfg = Config.load(home=home, env=make_env(base_url, **accounts))
    if read_timeout is not None:
        cfg.file_values["http.read_timeout_seconds"] = read_timeout
    return cfg


def scan_into(cfg: Config, source: Path):
    from booklore_sync.koreader.scan import scan_source

    with Store.open(cfg.store_path) as store:
        return scan_source(store, source, cfg.settings())


def open_store(cfg: Config) -> Store:
    return Store.open(cfg.store_path)

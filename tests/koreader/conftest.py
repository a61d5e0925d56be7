from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import BOOKS, FIXTURES, KOBO  # noqa: F401  (re-exported for the tests here)


@pytest.fixture
def kobo_copy(tmp_path: Path) -> Path:
    """A private copy of the Kobo fixture (tests may modify it)."""
    dst = tmp_path / "kobo"
    shutil.copytree(KOBO, dst)
    return dst


def empty_kobo(tmp_path: Path) -> tuple[Path, Path]:
    """An empty Kobo (device root, KOReader data directory) for tests to fill."""
    root = tmp_path / "device"
    data = root / ".adds" / "koreader"
    (data / "settings").mkdir(parents=True)
    (data / "settings.reader.lua").write_text("return {}\n")
    (root / "Books").mkdir()
    return root, data

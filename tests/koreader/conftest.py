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

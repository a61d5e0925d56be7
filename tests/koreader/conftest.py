from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# shared/ lies beside the repository (in development and in CI)
SHARED = Path(__file__).resolve().parents[3] / "shared"
FIXTURES = SHARED / "fixtures"
KOBO = FIXTURES / "kobo"
BOOKS = FIXTURES / "books"


@pytest.fixture
def kobo_copy(tmp_path: Path) -> Path:
    """A private copy of the Kobo fixture (tests may modify it)."""
    dst = tmp_path / "kobo"
    shutil.copytree(KOBO, dst)
    return dst

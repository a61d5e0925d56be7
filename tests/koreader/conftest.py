from __future__ import annotations

import shutil
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared"
if not SHARED.is_dir():  # CI lays shared/ beside the clone
    SHARED = Path(__file__).resolve().parents[2].parent / "shared"
FIXTURES = SHARED / "fixtures"
KOBO = FIXTURES / "kobo"
BOOKS = FIXTURES / "books"


@pytest.fixture
def kobo_copy(tmp_path: Path) -> Path:
    """A private copy of the Kobo fixture (tests may modify it)."""
    dst = tmp_path / "kobo"
    shutil.copytree(KOBO, dst)
    return dst

"""The real-world corpus (``../shared/fixtures/realworld``, koreader-data §12) for tests.

Tests that need it call :func:`corpus`, which skips them with one line naming the
folder when it is absent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from booklore_sync.koreader.luatable import as_list, parse_file
from tests.conftest import REALWORLD  # noqa: E402  (one place says where the corpus is)


def corpus() -> Path:
    if not (REALWORLD / "real").is_dir():
        pytest.skip(f"real-world corpus not found: {REALWORLD}")
    return REALWORLD


def expected_items(sidecar: Path) -> dict[str, int]:
    """What a sidecar holds, counted from its table: annotations (highlights and
    notes) and bookmarks, by KOReader's own rules (§6.4, §6.5)."""
    data: Any = parse_file(sidecar)
    out = {"annotations": 0, "bookmarks": 0}
    if "annotations" in data:
        for a in as_list(data["annotations"]):
            out["bookmarks" if not a.get("drawer") else "annotations"] += 1
    else:
        for b in as_list(data.get("bookmarks")):
            out["annotations" if b.get("highlighted") else "bookmarks"] += 1
    return out

"""What a scan tells its caller: counts, ``errors`` and ``warnings`` (sync-and-cache §5, §6.4).

File names are kept losslessly inside the scan (non-UTF-8 bytes as surrogate escapes);
here, on their way out, they are shown with U+FFFD replacement characters.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ScanReport", "QUEUE_NAMES", "NEW", "display_path", "display_text"]

QUEUE_NAMES = ("sessions", "annotations", "ratings", "bookmarks", "progress")
NEW = frozenset({"queued", "updated"})


def display_path(file: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> str:
    """A path for messages and JSON: undecodable bytes become U+FFFD."""
    raw = os.fspath(file)
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    return display_text(raw)


def display_text(text: str) -> str:
    """A text that may hold surrogate escapes (undecodable bytes), made printable."""
    if text.isascii():
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        return text.encode("utf-8", "replace").decode("utf-8")


@dataclass
class ScanReport:
    books: int = 0
    queued: dict[str, int] = field(default_factory=lambda: {q: 0 for q in QUEUE_NAMES})
    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    dry_run: bool = False
    data_dir: str | None = None
    # warnings already shown by an earlier scan: in ``warnings``, not printed again
    repeated: list[dict[str, str]] = field(default_factory=list)

    def error(self, file: str | os.PathLike[str], message: str) -> None:
        """A file that could not be read (or whose backup was used instead)."""
        self.errors.append({"file": display_path(file), "error": display_text(message)})

    def warn(self, file: str | os.PathLike[str], message: str, *, announce: bool = True) -> None:
        """Anything else the user should know about a file.  ``warning`` is the key of
        spec §6.4; ``error`` holds the same text for older readers of the shape.  A
        warning with ``announce=False`` was shown before: it is listed, not printed."""
        text = display_text(message)
        entry = {"file": display_path(file), "warning": text, "error": text}
        self.warnings.append(entry)
        if not announce:
            self.repeated.append(entry)

    def announced(self) -> list[dict[str, str]]:
        """The warnings to print (those not shown by an earlier scan)."""
        return [w for w in self.warnings if not any(w is r for r in self.repeated)]

    def count(self, queue: str, outcome: str) -> None:
        if outcome in NEW:
            self.queued[queue] += 1

    def to_json(self) -> dict[str, Any]:
        """Spec §6.4's ``scan --json`` shape."""
        return {"books": self.books, "queued": dict(self.queued),
                "errors": list(self.errors), "warnings": list(self.warnings)}

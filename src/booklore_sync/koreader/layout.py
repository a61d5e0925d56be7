"""Where KOReader's data is: the data directory, the device root, and the mapping of
device paths onto local ones (sync-and-cache §5, koreader-data §2.1).

* data directory: SOURCE itself when it holds ``settings.reader.lua``, else
  ``.adds/koreader``, ``koreader``, ``applications/koreader`` inside it;
* device paths: ``scan.path_map`` first; then paths under the data directory's own
  device path (and relative paths) → the local data directory; then ``/mnt/onboard/``,
  ``/mnt/us/``, ``/mnt/ext1/`` → the device root.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SourceError", "Layout", "find_layout", "PathMapper", "PLATFORM_PLACES",
           "BUILTIN_PREFIXES", "PLATFORM_DATA_DIRS"]

PLATFORM_PLACES = (".adds/koreader", "koreader", "applications/koreader")
BUILTIN_PREFIXES = ("/mnt/onboard/", "/mnt/us/", "/mnt/ext1/")
#: the data directory's device path per platform prefix (§2.1)
PLATFORM_DATA_DIRS = {"/mnt/onboard/": "/mnt/onboard/.adds/koreader",
                      "/mnt/us/": "/mnt/us/koreader",
                      "/mnt/ext1/": "/mnt/ext1/applications/koreader"}


class SourceError(Exception):
    """SOURCE is missing or holds no KOReader data directory (CLI exit 2)."""


@dataclass(frozen=True)
class Layout:
    source: Path
    data_dir: Path
    device_root: Path | None


def find_layout(source: str | os.PathLike[str]) -> Layout:
    src = Path(source)
    shown = os.fsencode(src).decode("utf-8", "replace")
    try:
        exists, is_dir = src.exists(), src.is_dir()
    except (OSError, ValueError):
        exists = is_dir = False
    if not exists:
        raise SourceError(f"{shown}: no such file or directory")
    if not is_dir:
        raise SourceError(f"{shown}: not a directory")
    src = src.resolve()
    if _is_file(src / "settings.reader.lua"):
        root = None
        for place in sorted(PLATFORM_PLACES, key=lambda p: -len(Path(p).parts)):
            parts = Path(place).parts
            if len(src.parts) > len(parts) and tuple(src.parts[-len(parts):]) == parts:
                root = src.parents[len(parts) - 1]
                break
        return Layout(src, src, root)
    for place in PLATFORM_PLACES:
        cand = src / place
        if _is_file(cand / "settings.reader.lua"):
            return Layout(src, cand, src)
    raise SourceError(
        f"{shown}: no KOReader data directory found (looked for settings.reader.lua in the "
        f"folder itself and in {', '.join(PLATFORM_PLACES)})")


def _is_file(p: Path) -> bool:
    """Something named so (a damaged file, a broken link: reading it reports it)."""
    try:
        return os.path.lexists(p)
    except (OSError, ValueError):
        return False


def _nfc(s: str) -> str:
    return s if s.isascii() else unicodedata.normalize("NFC", s)  # ASCII is NFC already


class PathMapper:
    """Device paths (``doc_path``, ``history.lua``) → local paths."""

    def __init__(self, device_root: Path | None, path_map: Mapping[str, str] | None = None):
        self.rules: list[tuple[str, Path]] = []
        for prefix, target in (path_map or {}).items():
            p = str(prefix)
            self.rules.append((p if p.endswith("/") else p + "/", Path(str(target))))
        self._user = len(path_map or {})
        self.device_root = device_root
        if device_root is not None:
            for prefix in BUILTIN_PREFIXES:
                self.rules.append((prefix, device_root))
        self.data_dir: Path | None = None
        self.device_data_dirs: list[str] = []

    def set_data_dir(self, data_dir: Path, device_data_dir: str | None,
                     sample_paths: Iterable[str] = ()) -> None:
        """Map the data directory's device path, and relative paths, into ``data_dir``.

        ``device_data_dir`` comes from a ``-- <path>`` header; without one, the
        platform place of each prefix the device paths use is taken (§2.1).
        """
        self.data_dir = data_dir
        dirs: list[str] = []
        if device_data_dir:
            dirs.append(device_data_dir.rstrip("/") + "/")
        else:
            for prefix, place in PLATFORM_DATA_DIRS.items():
                if any(isinstance(p, str) and p.startswith(prefix) for p in sample_paths):
                    dirs.append(place + "/")
        self.device_data_dirs = dirs

    def _fallback_rules(self) -> list[tuple[str, Path]]:
        """The device-root rules, longest prefix first (sorted once per rule list)."""
        rest = self.rules[self._user:]
        cached = getattr(self, "_sorted", None)
        if cached is None or cached[0] != rest:
            cached = (rest, sorted(rest, key=lambda r: -len(r[0])))
            self._sorted = cached
        return cached[1]

    def to_local(self, device_path: str | None) -> Path | None:
        if not isinstance(device_path, str) or not device_path or "\x00" in device_path:
            return None
        best = None
        for i, (prefix, target) in enumerate(self.rules):
            if i < self._user and device_path.startswith(prefix):
                key = -len(prefix)
                if best is None or key < best[0]:
                    best = (key, prefix, target)
        if best is not None:
            _, prefix, target = best
            return target / device_path[len(prefix):]
        if self.data_dir is not None:
            for dd in self.device_data_dirs:
                if device_path.startswith(dd) or device_path == dd[:-1]:
                    return self.data_dir / device_path[len(dd):]
            if not device_path.startswith("/"):
                rel = device_path[2:] if device_path.startswith("./") else device_path
                return self.data_dir / rel
        for prefix, target in self._fallback_rules():
            if device_path.startswith(prefix):
                return target / device_path[len(prefix):]
        if device_path.startswith("/"):
            # a desktop KOReader stores real local paths
            return Path(device_path)
        return None

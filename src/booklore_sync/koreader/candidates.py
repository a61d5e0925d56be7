"""Sidecar candidates of one book and KOReader's newest-valid rule (koreader-data §4.2),
with the ``.old`` fallback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from booklore_sync.koreader.luatable import LuaParseError, parse
from booklore_sync.koreader.safeio import UnreadableFile, read_regular

__all__ = ["KIND_ORDER", "Candidate", "SidecarGroup", "Chosen", "order_candidates",
           "choose_sidecar", "read_lua_file", "stat_signature", "SETTLE_NS"]


def read_lua_file(path: Path) -> tuple[Any, bytes]:
    data = read_regular(path)
    return parse(data, file=str(path)), data


KIND_ORDER = {"doc": 0, "doc.old": 1, "legacy": 2, "dir": 3, "dir.old": 4, "hash": 5,
              "hash.old": 6, "history": 7, "history.old": 8, "kpdfview": 9}


@dataclass
class Candidate:
    kind: str
    path: Path
    mtime: float
    primary: Path | None = None      # for ``.old``: the main file it backs up
    # size, mtime, ctime, inode and device as discovery saw them, when the file had
    # been left alone for a while (``stat_signature``): an exact match on a later scan
    # means the same content; None when in doubt
    stat_sig: str | None = None


#: a file changed less than this before it was looked at may change again without a
#: visible mark (coarse file times: FAT, the e-readers' own file system, keeps the
#: modification time in 2-second steps): its stat is no proof of its content
SETTLE_NS = 3_000_000_000
#: the same on a file system whose times carry sub-second digits (ext4, btrfs, APFS…):
#: the kernel's clock for file times ticks in milliseconds, so a later change shows
FINE_SETTLE_NS = 500_000_000


def stat_signature(st: Any, now_ns: int) -> str | None:
    """``Candidate.stat_sig`` of a stat taken at ``now_ns`` (or after).  A rewrite
    (KOReader writes a new file and renames it over the old one) changes the inode
    and the ctime, an edit in place the ctime at least; only a change within the
    file system's time granularity could hide, so a file changed within
    :data:`SETTLE_NS` of the look gets no signature (it is read next time) —
    :data:`FINE_SETTLE_NS` when its times show sub-second precision."""
    changed = max(st.st_mtime_ns, st.st_ctime_ns)
    fine = st.st_mtime_ns % 1_000_000_000 or st.st_ctime_ns % 1_000_000_000
    if changed > now_ns - (FINE_SETTLE_NS if fine else SETTLE_NS):
        return None
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}:{st.st_dev}"


@dataclass
class SidecarGroup:
    """All sidecar candidates of one book."""
    key: str
    book_path: Path | None = None         # local book file (may not exist)
    device_path: str | None = None
    hash: str | None = None               # hash-mode directory name
    candidates: list[Candidate] = field(default_factory=list)
    sdr_dir: Path | None = None           # for custom_metadata.lua


@dataclass
class Chosen:
    candidate: Candidate | None           # None: no candidate was valid
    data: dict[str, Any] | None
    raw: bytes
    errors: list[tuple[str, str]]         # (file, reason) of candidates tried and rejected
    skipped: list[tuple[str, str]] = field(default_factory=list)  # empty ones (warnings)




def order_candidates(cands: list[Candidate], file_times: bool) -> list[Candidate]:
    """KOReader's order, then newest first (when mtimes mean something); a ``.old``
    never wins over its own primary."""
    if len(cands) == 1:
        return list(cands)
    base = sorted(cands, key=lambda c: KIND_ORDER.get(c.kind, 99))
    if not file_times:
        return base
    primaries = {str(c.path): c for c in base if c.primary is None}

    def eff(c: Candidate) -> float:
        if c.primary is not None and str(c.primary) in primaries:
            return min(c.mtime, primaries[str(c.primary)].mtime)
        return c.mtime

    indexed = list(enumerate(base))
    indexed.sort(key=lambda ic: (-eff(ic[1]), ic[0]))
    return [c for _, c in indexed]


def choose_sidecar(group: SidecarGroup, file_times: bool,
                   read: Callable[[Path], bytes] | None = None) -> Chosen | None:
    """The newest valid candidate (§4.2); rejected ones are listed in ``errors``."""
    errors: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    failed_primary: dict[str, str] = {}
    for cand in order_candidates(group.candidates, file_times):
        try:
            raw = read(cand.path) if read is not None else read_regular(cand.path)
        except UnreadableFile as exc:
            errors.append((str(cand.path), str(exc)))
            failed_primary[str(cand.path)] = "unreadable"
            continue
        except OSError as exc:
            errors.append((str(cand.path), f"cannot read: {exc.strerror or exc}"))
            failed_primary[str(cand.path)] = "unreadable"
            continue
        if not raw.strip():
            skipped.append((str(cand.path), "empty file: skipped (KOReader ignores it)"))
            continue
        try:
            data = parse(raw, file=str(cand.path))
        except LuaParseError as exc:
            reason = f"not a valid KOReader Lua file: {exc.message} (line {exc.line}, column {exc.column})"
            errors.append((str(cand.path), reason))
            failed_primary[str(cand.path)] = reason
            continue
        if not isinstance(data, dict) or not data:
            if not isinstance(data, dict) and data is not None:
                reason = f"not a KOReader settings table (a {_lua_type(data)})"
                errors.append((str(cand.path), reason))
                failed_primary[str(cand.path)] = reason
            else:
                skipped.append((str(cand.path), "an empty table: skipped (KOReader ignores it)"))
            continue
        if cand.primary is not None and str(cand.primary) in failed_primary:
            for i, (f, reason) in enumerate(errors):
                if f == str(cand.primary):
                    errors[i] = (f, f"{reason}; used the backup {cand.path.name} instead")
        return Chosen(cand, data, raw, errors, skipped)
    if errors:
        return Chosen(None, None, b"", errors, skipped)
    return None  # only empty candidates: KOReader ignores them


def _lua_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return type(value).__name__

"""Finding KOReader's data directory, the books and their sidecars.

* data directory (sync-and-cache §5, koreader-data §2.1): SOURCE itself when it
  holds ``settings.reader.lua``, else ``.adds/koreader``, ``koreader``,
  ``applications/koreader`` inside it;
* device root and device-path mapping (``scan.path_map`` first, then
  ``/mnt/onboard/``, ``/mnt/us/``, ``/mnt/ext1/`` → the root);
* sidecar candidates in every location (§4.1) grouped per book, and the
  newest-valid rule (§4.2) with the ``.old`` fallback.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from booklore_sync.koreader.luatable import LuaParseError, parse

__all__ = ["SourceError", "Layout", "find_layout", "PathMapper", "Candidate", "SidecarGroup",
           "collect_groups", "choose_sidecar", "Chosen", "BOOK_EXTENSIONS", "read_lua_file",
           "BUILTIN_PREFIXES"]

PLATFORM_PLACES = (".adds/koreader", "koreader", "applications/koreader")
BUILTIN_PREFIXES = ("/mnt/onboard/", "/mnt/us/", "/mnt/ext1/")
BOOK_EXTENSIONS = frozenset("""
epub pdf djvu djv cbz cbr cb7 cbt fb2 fbz mobi prc azw azw3 txt html htm xhtml docx doc rtf
odt chm xps oxps
""".split())
_META = re.compile(r"^metadata\.([^/]+)\.lua(\.old)?$")
_HASH_DIR = re.compile(r"^([0-9a-f]{32})\.sdr$")
_SKIP_DIRS = frozenset({".git", "$RECYCLE.BIN", "System Volume Information", ".Trashes",
                        ".Spotlight-V100", ".fseventsd"})


class SourceError(Exception):
    """SOURCE is missing or holds no KOReader data directory (CLI exit 2)."""


@dataclass(frozen=True)
class Layout:
    source: Path
    data_dir: Path
    device_root: Path | None


def find_layout(source: str | os.PathLike[str]) -> Layout:
    src = Path(source)
    if not src.exists():
        raise SourceError(f"{src}: no such file or directory")
    if not src.is_dir():
        raise SourceError(f"{src}: not a directory")
    src = src.resolve()
    if (src / "settings.reader.lua").is_file():
        root = None
        for place in sorted(PLATFORM_PLACES, key=lambda p: -len(Path(p).parts)):
            parts = Path(place).parts
            if len(src.parts) > len(parts) and tuple(src.parts[-len(parts):]) == parts:
                root = src.parents[len(parts) - 1]
                break
        return Layout(src, src, root)
    for place in PLATFORM_PLACES:
        cand = src / place
        if (cand / "settings.reader.lua").is_file():
            return Layout(src, cand, src)
    raise SourceError(
        f"{src}: no KOReader data directory found (looked for settings.reader.lua in the "
        f"folder itself and in {', '.join(PLATFORM_PLACES)})")


def _nfc(s: str) -> str:
    return s if s.isascii() else unicodedata.normalize("NFC", s)  # ASCII is NFC already


# pathlib's own shortcut for dir walking (CPython 3.11/3.12): a child path without
# re-parsing the parent.  Elsewhere, or for a name it does not suit, plain `/`.
_MAKE_CHILD = getattr(Path, "_make_child_relpath", None)


def _child(parent: Path, name: str) -> Path:
    """``parent / name`` for a directory entry's name (one plain component)."""
    if _MAKE_CHILD is not None and name not in ("", ".", "..") and "/" not in name \
            and os.sep not in name and (os.altsep is None or os.altsep not in name):
        return _MAKE_CHILD(parent, name)
    return parent / name


class PathMapper:
    """Device paths (``doc_path``, ``history.lua``) → local paths."""

    def __init__(self, device_root: Path | None, path_map: Mapping[str, str] | None = None):
        self.rules: list[tuple[str, Path]] = []
        for prefix, target in (path_map or {}).items():
            p = str(prefix)
            self.rules.append((p if p.endswith("/") else p + "/", Path(str(target))))
        if device_root is not None:
            for prefix in BUILTIN_PREFIXES:
                self.rules.append((prefix, device_root))
        self._user = len(path_map or {})

    def to_local(self, device_path: str | None) -> Path | None:
        if not isinstance(device_path, str) or not device_path:
            return None
        best = None
        for i, (prefix, target) in enumerate(self.rules):
            if device_path.startswith(prefix):
                # user mappings first; then the longest built-in prefix
                key = (0 if i < self._user else 1, -len(prefix))
                if best is None or key < best[0]:
                    best = (key, prefix, target)
        if best is not None:
            _, prefix, target = best
            return target / device_path[len(prefix):]
        if device_path.startswith("/"):
            # a desktop KOReader stores real local paths
            return Path(device_path)
        return None


def read_lua_file(path: Path) -> tuple[Any, bytes]:
    data = path.read_bytes()
    return parse(data, file=str(path)), data


# ------------------------------------------------------------------ sidecars
KIND_ORDER = {"doc": 0, "doc.old": 1, "legacy": 2, "dir": 3, "dir.old": 4, "hash": 5,
              "hash.old": 6, "history": 7, "history.old": 8, "kpdfview": 9}


@dataclass
class Candidate:
    kind: str
    path: Path
    mtime: float
    primary: Path | None = None      # for ``.old``: the main file it backs up


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


def _mtime(st: os.stat_result) -> float:
    return st.st_mtime


def _group(groups: dict[str, SidecarGroup], key: str, **kw: Any) -> SidecarGroup:
    g = groups.get(key)
    if g is None:
        g = groups[key] = SidecarGroup(key=key, **kw)
    return g


def _scan_sdr(sdr: Path, entries: Iterable[os.DirEntry[str]], kind: str, book_of: Callable[[str], Path | None],
              groups: dict[str, SidecarGroup], key_of: Callable[[Path | None, str], str],
              device_of: Callable[[str], str | None], hash_value: str | None = None,
              listings: dict[str, frozenset[str]] | None = None) -> None:
    if listings is not None:
        listings[str(sdr)] = frozenset(e.name for e in entries)
    for e in entries:
        name = e.name
        m = _META.match(name)
        if m:
            ext, old = m.group(1), m.group(2)
            book = book_of(ext)
            key = key_of(book, ext)
            g = _group(groups, key, book_path=book, device_path=device_of(ext), hash=hash_value)
            g.sdr_dir = sdr
            try:
                st = e.stat()
            except OSError:
                continue
            # sdr / name: the Path of e.path (scandir(sdr) joined them), built cheaper
            if old:
                g.candidates.append(Candidate(f"{kind}.old", _child(sdr, name), _mtime(st),
                                              primary=_child(sdr, name[:-4])))
            else:
                g.candidates.append(Candidate(kind, _child(sdr, name), _mtime(st)))
        elif (kind == "doc" and name.endswith(".lua") and name != "custom_metadata.lua"
              and not name.endswith(".annotations.lua") and not name.startswith("metadata.")):
            book = sdr.parent / name[:-4]
            g = _group(groups, key_of(book, ""), book_path=book)
            g.sdr_dir = g.sdr_dir or sdr
            try:
                st = e.stat()
            except OSError:
                continue
            g.candidates.append(Candidate("legacy", _child(sdr, name), _mtime(st)))


def collect_groups(layout: Layout, mapper: PathMapper,
                   history_paths: Iterable[str] = (),
                   listings: dict[str, frozenset[str]] | None = None,
                   ) -> tuple[list[SidecarGroup], list[str]]:
    """Walk the device root, ``docsettings``, ``hashdocsettings`` and ``history``.

    Returns the sidecar groups and the path of every book-like file seen (strings,
    for hash matching).  ``listings``, when given, receives the names in each
    ``.sdr`` directory read (keyed by ``str`` of its path).
    """
    groups: dict[str, SidecarGroup] = {}
    data_dir = layout.data_dir

    def path_key(book: Path | None, _ext: str) -> str:
        return "path:" + _nfc(str(book))

    # 1. the book tree (doc mode, legacy names, kpdfview)
    roots: list[Path] = []
    if layout.device_root is not None:
        roots.append(layout.device_root)
    for hp in history_paths:
        local = mapper.to_local(hp)
        if local is not None and local.parent.is_dir() and not any(
                _is_within(local.parent, r) for r in roots):
            roots.append(local.parent)
    seen_dirs: set[str] = set()
    data_dir_str = str(data_dir)
    book_names: list[str] = []
    for root in roots:
        stack = [str(root)]
        while stack:
            d = stack.pop()
            if d in seen_dirs:
                continue
            seen_dirs.add(d)
            try:
                with os.scandir(d) as it:
                    entries = list(it)
            except OSError:
                continue
            dpath: Path | None = None  # Path(d), made when a .sdr needs it
            for e in entries:
                try:
                    is_dir = e.is_dir(follow_symlinks=False)
                except OSError:
                    continue
                if is_dir:
                    if e.name in _SKIP_DIRS or e.path == data_dir_str:
                        continue
                    if e.name.endswith(".sdr"):
                        try:
                            with os.scandir(e.path) as it2:
                                sub = list(it2)
                        except OSError:
                            continue
                        if dpath is None:
                            dpath = Path(d)
                        # dpath / name is Path(e.path); the book beside it likewise
                        _scan_sdr(_child(dpath, e.name), sub, "doc",
                                  lambda ext, d=dpath, b=e.name[:-4]: _child(
                                      d, b if ext == "_" else f"{b}.{ext}"),
                                  groups, path_key, lambda ext: None, listings=listings)
                    else:
                        stack.append(e.path)
                    continue
                name = e.name
                if name.endswith(".kpdfview.lua"):
                    book = Path(e.path[: -len(".kpdfview.lua")])
                    g = _group(groups, path_key(book, ""), book_path=book)
                    try:
                        g.candidates.append(Candidate("kpdfview", Path(e.path), e.stat().st_mtime))
                    except OSError:
                        pass
                    continue
                dot = name.rfind(".")
                if dot > 0 and name[dot + 1:].lower() in BOOK_EXTENSIONS:
                    book_names.append(e.path)

    # 2. dir mode: <datadir>/docsettings/<device path>.sdr/
    ds = data_dir / "docsettings"
    if ds.is_dir():
        for dirpath, dirnames, _files in os.walk(ds):
            for dn in list(dirnames):
                if not dn.endswith(".sdr"):
                    continue
                dirnames.remove(dn)
                sdr = Path(dirpath) / dn
                rel = sdr.relative_to(ds).as_posix()
                dev_dir = "/" + rel[:-4]

                def dev_of(ext: str, dev_dir: str = dev_dir) -> str:
                    return dev_dir if ext == "_" else f"{dev_dir}.{ext}"

                def book_of(ext: str, dev_of: Callable[[str], str] = dev_of) -> Path | None:
                    return mapper.to_local(dev_of(ext))

                def key_of(book: Path | None, ext: str, dev_of: Callable[[str], str] = dev_of) -> str:
                    return "path:" + _nfc(str(book)) if book is not None else "dev:" + dev_of(ext)

                try:
                    with os.scandir(sdr) as it:
                        sub = list(it)
                except OSError:
                    continue
                _scan_sdr(sdr, sub, "dir", book_of, groups, key_of, dev_of, listings=listings)

    # 3. hash mode: <datadir>/hashdocsettings/xx/<md5>.sdr/
    hs = data_dir / "hashdocsettings"
    if hs.is_dir():
        try:
            prefixes = [p for p in hs.iterdir() if p.is_dir()]
        except OSError:
            prefixes = []
        for pre in prefixes:
            try:
                sdrs = list(pre.iterdir())
            except OSError:
                continue
            for sdr in sdrs:
                m = _HASH_DIR.match(sdr.name.lower())
                if not m or not sdr.is_dir():
                    continue
                h = m.group(1)
                try:
                    with os.scandir(sdr) as it:
                        sub = list(it)
                except OSError:
                    continue
                _scan_sdr(sdr, sub, "hash", lambda ext: None, groups,
                          lambda book, ext, h=h: "hash:" + h, lambda ext: None, hash_value=h,
                          listings=listings)

    # 4. very old: <datadir>/history/[<dir with / → #>] <name>.lua
    hist = data_dir / "history"
    if hist.is_dir():
        try:
            files = list(hist.iterdir())
        except OSError:
            files = []
        for f in files:
            m = re.match(r"^\[(.*)\] (.+?)\.lua(\.old)?$", f.name)
            if not m:
                continue
            dev = m.group(1).replace("#", "/").rstrip("/") + "/" + m.group(2)
            book = mapper.to_local(dev)
            key = "path:" + _nfc(str(book)) if book is not None else "dev:" + dev
            g = _group(groups, key, book_path=book, device_path=dev)
            try:
                mt = f.stat().st_mtime
            except OSError:
                continue
            if m.group(3):
                g.candidates.append(Candidate("history.old", f, mt,
                                              primary=f.with_name(f.name[:-4])))
            else:
                g.candidates.append(Candidate("history", f, mt))
    return [g for g in groups.values() if g.candidates], book_names


def _is_within(p: Path, root: Path) -> bool:
    try:
        p.relative_to(root)
        return True
    except ValueError:
        return False


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
    failed_primary: dict[str, str] = {}
    for cand in order_candidates(group.candidates, file_times):
        try:
            raw = read(cand.path) if read is not None else cand.path.read_bytes()
        except OSError as exc:
            errors.append((str(cand.path), f"cannot read: {exc.strerror or exc}"))
            failed_primary[str(cand.path)] = "unreadable"
            continue
        if not raw.strip():
            continue
        try:
            data = parse(raw, file=str(cand.path))
        except LuaParseError as exc:
            reason = f"not a valid KOReader Lua file: {exc.message} (line {exc.line}, column {exc.column})"
            errors.append((str(cand.path), reason))
            failed_primary[str(cand.path)] = reason
            continue
        if not isinstance(data, dict) or not data:
            continue
        if cand.primary is not None and str(cand.primary) in failed_primary:
            for i, (f, reason) in enumerate(errors):
                if f == str(cand.primary):
                    errors[i] = (f, f"{reason}; used the backup {cand.path.name} instead")
        return Chosen(cand, data, raw, errors)
    if errors:
        return Chosen(None, None, b"", errors)
    return None

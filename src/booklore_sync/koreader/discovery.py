"""Finding the books and their sidecars (koreader-data §4.1, §4.2).

:func:`collect_groups` walks, in four numbered steps, every place KOReader keeps
sidecars, and groups the candidates per book:

1. the book tree (doc mode, legacy ``<book>.lua`` names, ``.kpdfview.lua``): the device
   root, the folders ``history.lua`` names, and the data directory itself;
2. dir mode: ``<datadir>/docsettings/<device path>.sdr/``;
3. hash mode: ``<datadir>/hashdocsettings/xx/<md5>.sdr/``;
4. very old: ``<datadir>/history/[<dir with / → #>] <name>.lua``.

The walk follows symbolic links to files and directories but enters each directory
(by device and inode) once; a dangling or looping link, and a special file where a
sidecar or book should be, are reported through ``warn`` and never opened.

The layout, the path mapper and the candidate rules live in ``layout.py`` and
``candidates.py``; they are re-exported here.
"""

from __future__ import annotations

import os
import re
import stat as stat_mod
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from booklore_sync.koreader.candidates import (
    KIND_ORDER,
    Candidate,
    Chosen,
    SidecarGroup,
    choose_sidecar,
    order_candidates,
    read_lua_file,
    stat_signature,
)
from booklore_sync.koreader.layout import (
    BUILTIN_PREFIXES,
    PLATFORM_PLACES,
    Layout,
    PathMapper,
    SourceError,
    _nfc,
    find_layout,
)
from booklore_sync.koreader.safeio import link_problem

__all__ = ["SourceError", "Layout", "find_layout", "PathMapper", "Candidate", "SidecarGroup",
           "collect_groups", "choose_sidecar", "Chosen", "BOOK_EXTENSIONS", "read_lua_file",
           "BUILTIN_PREFIXES", "PLATFORM_PLACES", "KIND_ORDER", "order_candidates"]

BOOK_EXTENSIONS = frozenset("""
epub pdf djvu djv cbz cbr cb7 cbt fb2 fbz mobi prc azw azw3 txt html htm xhtml docx doc rtf
odt chm xps oxps
""".split())
_META = re.compile(r"^metadata\.([^/]+)\.lua(\.old)?$")
_HASH_DIR = re.compile(r"^([0-9a-f]{32})\.sdr$")
_HISTORY_NAME = re.compile(r"^\[(.*)\] (.+?)\.lua(\.old)?$", re.S)
_SKIP_DIRS = frozenset({".git", "$RECYCLE.BIN", "System Volume Information", ".Trashes",
                        ".Spotlight-V100", ".fseventsd"})
#: folders of the data directory that hold no books (or are walked by steps 2–4)
_DATA_DIR_SKIP = frozenset({"docsettings", "hashdocsettings", "history", "settings", "plugins",
                            "cache", "fonts", "resources", "data", "l10n", "frontend", "ffi",
                            "common", "libs", "rocks", "patches", "spec", "tools", "scripts",
                            "statistics", "screenshots", "clipboard"})

Warn = Callable[[str, str], None]


def _no_warn(_file: str, _message: str) -> None:
    return None


# pathlib's own shortcut for dir walking (CPython 3.11/3.12): a child path without
# re-parsing the parent.  Elsewhere, or for a name it does not suit, plain `/`.
_MAKE_CHILD = getattr(Path, "_make_child_relpath", None)


# and its cached string form, when it has one (CPython 3.11/3.12 on POSIX): the walk
# knows it already, and the scan asks every path for it
_SEED_STR = os.name == "posix" and "_str" in getattr(PurePath, "__slots__", ())


def _child(parent: Path, name: str) -> Path:
    """``parent / name`` for a directory entry's name (one plain component)."""
    if _MAKE_CHILD is not None and name not in ("", ".", "..") and "/" not in name \
            and os.sep not in name and (os.altsep is None or os.altsep not in name):
        child: Path = _MAKE_CHILD(parent, name)
        if _SEED_STR:
            base = str(parent)
            if base != "." and not base.endswith("/"):
                object.__setattr__(child, "_str", base + "/" + name)
        return child
    return parent / name


@dataclass
class _Walk:
    """What the four steps share."""
    layout: Layout
    mapper: PathMapper
    warn: Warn
    listings: dict[str, frozenset[str]] | None
    groups: dict[str, SidecarGroup] = field(default_factory=dict)
    book_names: list[str] = field(default_factory=list)
    seen_dirs: set[tuple[int, int]] = field(default_factory=set)
    started_ns: int = field(default_factory=time.time_ns)  # before any stat of the walk

    def group(self, key: str, **kw: Any) -> SidecarGroup:
        g = self.groups.get(key)
        if g is None:
            g = self.groups[key] = SidecarGroup(key=key, **kw)
        return g

    def enter(self, path: str, key: tuple[int, int] | None = None
              ) -> list[os.DirEntry[str]] | None:
        """The entries of a directory not entered before (by device and inode);
        ``key``: that pair when the caller knows it without a ``stat``."""
        try:
            if key is None:
                st = os.stat(path)
                key = (st.st_dev, st.st_ino)
            if key in self.seen_dirs:
                return None
            self.seen_dirs.add(key)
            with os.scandir(path) as it:
                return list(it)
        except OSError as exc:
            self.warn(path, f"cannot list the folder: {exc.strerror or exc}")
            return None

    def regular(self, e: os.DirEntry[str]) -> os.stat_result | None:
        """The stat of a sidecar-like entry when it is a regular file (links
        followed), else None with a warning."""
        try:
            st = e.stat()
        except OSError:
            self.warn(e.path, link_problem(e.path) or "cannot read: unreachable")
            return None
        if not stat_mod.S_ISREG(st.st_mode):
            kind = "a folder" if stat_mod.S_ISDIR(st.st_mode) else "a special file"
            self.warn(e.path, f"{kind} where a sidecar file belongs: skipped")
            return None
        return st

    def scan_sdr(self, sdr: Path, entries: Iterable[os.DirEntry[str]], kind: str,
                 book_of: Callable[[str], Path | None], key_of: Callable[[Path | None, str], str],
                 device_of: Callable[[str], str | None], hash_value: str | None = None) -> None:
        entries = list(entries)
        if self.listings is not None:
            self.listings[str(sdr)] = frozenset(e.name for e in entries)
        for e in entries:
            name = e.name
            m = _META.match(name)
            if m:
                ext, old = m.group(1), m.group(2)
                book = book_of(ext)
                g = self.group(key_of(book, ext), book_path=book, device_path=device_of(ext),
                               hash=hash_value)
                g.sdr_dir = sdr
                st = self.regular(e)
                if st is None:
                    continue
                # sdr / name: the Path of e.path (scandir(sdr) joined them), built cheaper
                if old:
                    g.candidates.append(Candidate(f"{kind}.old", _child(sdr, name), st.st_mtime,
                                                  primary=_child(sdr, name[:-4])))
                else:
                    g.candidates.append(Candidate(kind, _child(sdr, name), st.st_mtime,
                                                  stat_sig=stat_signature(st, self.started_ns)))
            elif (kind == "doc" and name.endswith(".lua") and name != "custom_metadata.lua"
                  and not name.endswith(".annotations.lua") and not name.startswith("metadata.")):
                book = sdr.parent / name[:-4]
                st = self.regular(e)
                if st is None:
                    continue
                g = self.group(_path_key(book, ""), book_path=book)
                g.sdr_dir = g.sdr_dir or sdr
                g.candidates.append(Candidate("legacy", _child(sdr, name), st.st_mtime))


def _none(_ext: str) -> None:
    return None


def _book_beside(folder: Path, base: str) -> Callable[[str], Path | None]:
    """Doc mode: ``Foo.sdr`` + ``metadata.<ext>.lua`` → ``Foo.<ext>`` beside it."""
    def book_of(ext: str) -> Path | None:
        return _child(folder, base if ext == "_" else f"{base}.{ext}")
    return book_of


def _hash_key(h: str) -> Callable[[Path | None, str], str]:
    def key_of(_book: Path | None, _ext: str) -> str:
        return "hash:" + h
    return key_of


def _path_key(book: Path | None, _ext: str) -> str:
    return "path:" + _nfc(str(book))


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False


def _is_within(p: Path, root: Path) -> bool:
    try:
        p.relative_to(root)
        return True
    except ValueError:
        return False


# ------------------------------------------------------------------ step 1
def _walk_book_tree(w: _Walk, history_paths: Iterable[str]) -> None:
    """Doc mode, legacy names and ``.kpdfview.lua`` in the book tree (step 1)."""
    data_dir = w.layout.data_dir
    roots: list[Path] = []
    if w.layout.device_root is not None:
        roots.append(w.layout.device_root)
    for hp in history_paths:
        local = w.mapper.to_local(hp)
        if local is not None and not _is_within(local.parent, data_dir) \
                and _is_dir(local.parent) and not any(_is_within(local.parent, r) for r in roots):
            roots.append(local.parent)
    data_dir_str = str(data_dir)
    for root in roots:
        _walk_tree(w, str(root), skip=data_dir_str)
    # books kept inside the data directory (Kindle's koreader/epubs/, help/) (§2.1)
    _walk_tree(w, data_dir_str, skip=None, top_skip=_DATA_DIR_SKIP)


def _walk_tree(w: _Walk, root: str, skip: str | None,
               top_skip: frozenset[str] = frozenset()) -> None:
    stack = [(root, True)]
    while stack:
        d, top = stack.pop()
        dev: int | None = None
        try:
            dst = os.stat(d)
            dev = dst.st_dev
            entries = w.enter(d, (dst.st_dev, dst.st_ino))
        except OSError:
            entries = w.enter(d)  # reports the folder
        if entries is None:
            continue
        dpath: Path | None = None  # Path(d), made when a .sdr needs it
        for e in entries:
            name = e.name
            try:
                is_dir = e.is_dir(follow_symlinks=False)
                is_link = not is_dir and e.is_symlink()
            except OSError:
                continue
            if is_link:
                problem = link_problem(e.path)
                if problem is not None:
                    w.warn(e.path, problem)
                    continue
                is_dir = _is_dir(Path(e.path))
            if is_dir:
                if name in _SKIP_DIRS or e.path == skip or (top and name in top_skip):
                    continue
                if name.endswith(".sdr"):
                    # a plain sub-folder: the device of its parent, the inode of its
                    # entry (a mount point's is that of the folder under it: still unique)
                    sub = w.enter(e.path, None if is_link or dev is None
                                  else (dev, e.inode()))
                    if sub is None:
                        continue
                    if dpath is None:
                        dpath = Path(d)
                    # dpath / name is Path(e.path); the book beside it likewise
                    w.scan_sdr(_child(dpath, name), sub, "doc", _book_beside(dpath, name[:-4]),
                               _path_key, _none)
                else:
                    stack.append((e.path, False))
                continue
            if name.endswith(".kpdfview.lua"):
                st = w.regular(e)
                if st is None:
                    continue
                book = Path(e.path[: -len(".kpdfview.lua")])
                g = w.group(_path_key(book, ""), book_path=book)
                g.candidates.append(Candidate("kpdfview", Path(e.path), st.st_mtime))
                continue
            dot = name.rfind(".")
            if dot > 0 and name[dot + 1:].lower() in BOOK_EXTENSIONS:
                w.book_names.append(e.path)


# ------------------------------------------------------------------ step 2
def _walk_docsettings(w: _Walk) -> None:
    """Dir mode: ``<datadir>/docsettings/<device path>.sdr/`` (step 2)."""
    ds = w.layout.data_dir / "docsettings"
    if not _is_dir(ds):
        return
    stack = [str(ds)]
    while stack:
        d = stack.pop()
        entries = w.enter(d)
        if entries is None:
            continue
        for e in entries:
            try:
                is_dir = e.is_dir()
            except OSError:
                continue
            if not is_dir:
                if e.is_symlink() and (problem := link_problem(e.path)) is not None:
                    w.warn(e.path, problem)
                continue
            if not e.name.endswith(".sdr"):
                stack.append(e.path)
                continue
            sdr = Path(e.path)
            dev_dir = "/" + sdr.relative_to(ds).as_posix()[:-4]

            def dev_of(ext: str, dev_dir: str = dev_dir) -> str:
                return dev_dir if ext == "_" else f"{dev_dir}.{ext}"

            def book_of(ext: str, dev_of: Callable[[str], str] = dev_of) -> Path | None:
                return w.mapper.to_local(dev_of(ext))

            def key_of(book: Path | None, ext: str, dev_of: Callable[[str], str] = dev_of) -> str:
                return "path:" + _nfc(str(book)) if book is not None else "dev:" + dev_of(ext)

            sub = w.enter(e.path)
            if sub is not None:
                w.scan_sdr(sdr, sub, "dir", book_of, key_of, dev_of)


# ------------------------------------------------------------------ step 3
def _walk_hashdocsettings(w: _Walk) -> None:
    """Hash mode: ``<datadir>/hashdocsettings/xx/<md5>.sdr/`` (step 3)."""
    hs = w.layout.data_dir / "hashdocsettings"
    if not _is_dir(hs):
        return
    for pre in w.enter(str(hs)) or []:
        if not _is_dir(Path(pre.path)):
            continue
        for sdr_entry in w.enter(pre.path) or []:
            m = _HASH_DIR.match(sdr_entry.name.lower())
            if not m or not _is_dir(Path(sdr_entry.path)):
                continue
            h = m.group(1)
            sub = w.enter(sdr_entry.path)
            if sub is not None:
                w.scan_sdr(Path(sdr_entry.path), sub, "hash", _none, _hash_key(h), _none,
                           hash_value=h)


# ------------------------------------------------------------------ step 4
def _walk_history(w: _Walk) -> None:
    """Very old per-book files: ``<datadir>/history/[<dir>] <name>.lua`` (step 4)."""
    hist = w.layout.data_dir / "history"
    if not _is_dir(hist):
        return
    for e in w.enter(str(hist)) or []:
        m = _HISTORY_NAME.match(e.name)
        if not m:
            continue
        st = w.regular(e)
        if st is None:
            continue
        f = Path(e.path)
        dev = m.group(1).replace("#", "/").rstrip("/") + "/" + m.group(2)
        book = w.mapper.to_local(dev)
        key = "path:" + _nfc(str(book)) if book is not None else "dev:" + dev
        g = w.group(key, book_path=book, device_path=dev)
        if m.group(3):
            g.candidates.append(Candidate("history.old", f, st.st_mtime,
                                          primary=f.with_name(f.name[:-4])))
        else:
            g.candidates.append(Candidate("history", f, st.st_mtime))


def collect_groups(layout: Layout, mapper: PathMapper,
                   history_paths: Iterable[str] = (),
                   listings: dict[str, frozenset[str]] | None = None,
                   warn: Warn | None = None,
                   ) -> tuple[list[SidecarGroup], list[str]]:
    """Walk the four places (module docstring) and group the candidates per book.

    Returns the sidecar groups and the path of every book-like file seen (strings,
    for hash matching).  ``listings``, when given, receives the names in each
    ``.sdr`` directory read (keyed by ``str`` of its path); ``warn(path, message)``
    receives the links and special files skipped.
    """
    w = _Walk(layout, mapper, warn or _no_warn, listings)
    _walk_book_tree(w, history_paths)     # 1.
    _walk_docsettings(w)                  # 2.
    _walk_hashdocsettings(w)              # 3.
    _walk_history(w)                      # 4.
    return [g for g in w.groups.values() if g.candidates], w.book_names

"""The data directory's own Lua files: ``settings.reader.lua`` (+ ``.old``),
``settings/kosync.lua`` and ``history.lua`` (koreader-data §2.2, §4.3).

Every problem is reported for its file and the scan goes on with what it has.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from booklore_sync.koreader.context import ScanContext
from booklore_sync.koreader.discovery import Candidate, SidecarGroup, choose_sidecar
from booklore_sync.koreader.luatable import LuaParseError, as_list, parse
from booklore_sync.koreader.paths import decode_device_path
from booklore_sync.koreader.safeio import UnreadableFile, read_regular

__all__ = ["read_settings", "read_lua_with_backup", "header_path"]

_HEADER = re.compile(rb"\A(?:\xef\xbb\xbf)?--[ \t]*(/[^\r\n]*?)[ \t]*\r?\n")


def header_path(raw: bytes) -> str | None:
    """The absolute path of a ``-- <path>`` first line, else None (§2.1)."""
    m = _HEADER.match(raw)
    if not m:
        return None
    return decode_device_path(m.group(1))


def read_lua_with_backup(ctx: ScanContext, path: Path) -> tuple[Any, bytes]:
    """A data-dir Lua file with its ``.old`` backup (newest-valid rule): (data, raw)."""
    cands = []
    for p, kind, primary in ((path, "main", None), (Path(str(path) + ".old"), "main.old", path)):
        st = ctx.stat(p)
        if not isinstance(st, Exception):
            cands.append(Candidate(kind, p, st.st_mtime, primary))
    if not cands:
        return None, b""
    group = SidecarGroup(key=str(path), candidates=cands)
    chosen = choose_sidecar(group, ctx.file_times)
    if chosen is None:
        return None, b""
    for f, reason in chosen.errors:
        ctx.report.error(f, reason)
    return chosen.data, chosen.raw


def read_settings(ctx: ScanContext) -> None:
    dd = ctx.layout.data_dir
    settings, raw = read_lua_with_backup(ctx, dd / "settings.reader.lua")
    if not isinstance(settings, Mapping):
        settings = {}
    ctx.reader_settings = settings
    dev = settings.get("device_id")
    if isinstance(dev, str) and dev.strip():
        ctx.device_id = dev.strip()
    colors = settings.get("highlight_custom_colors")
    if isinstance(colors, Mapping):
        ctx.custom_colors = colors
    header = header_path(raw)
    kosync, _ = read_lua_with_backup(ctx, dd / "settings" / "kosync.lua")
    if isinstance(kosync, Mapping):
        inner = kosync.get("settings")
        ks: Mapping[str, Any] = inner if isinstance(inner, Mapping) else kosync
        host = ks.get("kosync_hostname")
        if isinstance(host, str) and host.strip():
            ctx.device_name = host.strip()
    hist_raw = _read_history(ctx, dd / "history.lua")
    if header is None and hist_raw:
        header = header_path(hist_raw)
    if header is not None:
        ctx.device_data_dir = posixpath.dirname(header)
    ctx.mapper.set_data_dir(dd, ctx.device_data_dir, ctx.history_paths)


def _read_history(ctx: ScanContext, path: Path) -> bytes:
    if not ctx.exists(path) and not path.is_symlink():
        return b""
    try:
        raw = read_regular(path)
        hist = parse(raw, file=str(path))
    except UnreadableFile as exc:
        ctx.report.error(path, str(exc))
        return b""
    except LuaParseError as exc:
        ctx.report.error(path, f"not a valid KOReader Lua file: {exc.message} "
                               f"(line {exc.line}, column {exc.column})")
        return b""
    bad = 0
    for h in as_list(hist):
        if isinstance(h, Mapping) and isinstance(h.get("file"), str) and h["file"]:
            ctx.history_paths.append(h["file"])
        else:
            bad += 1
    if bad:
        ctx.report.warn(path, f"{bad} entries without a file path ignored")
    return raw

"""The BookLore Sync plugin's store and the other uploaders on the device
(plugin-database.md §4, §5; sync-and-cache.md §5).

``read_plugin_store`` reads the plugin's ``settings/booklore-sync.sqlite`` from a private
copy (with its ``-wal``/``-shm``/``-journal``; a hot journal is rolled back on the copy,
the device's files are never opened for writing) by table and column names: the
fingerprint → BookLore ID pairs of ``book_cache`` and, from ``plugin_settings``, only
``server_url`` and ``is_enabled`` — never a password and never ``bearer_tokens``.

``apply_plugin_store`` (called by the scan, inside its transaction) adopts those matches
as kept links marked ``plugin`` for the scan's books that have none, when the plugin
synced to booklore-sync's server, and warns about a second uploader on the device.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from booklore_sync.booklore.transport import normalize_server_url
from booklore_sync.koreader.context import ScanContext
from booklore_sync.koreader.luatable import LuaParseError, parse
from booklore_sync.koreader.safeio import UnreadableFile, read_regular

__all__ = [
    "PluginStore",
    "PluginStoreError",
    "Uploader",
    "read_plugin_store",
    "server_key",
    "detect_uploaders",
    "apply_plugin_store",
    "UPLOADERS_META",
]

STORE_NAME = "booklore-sync.sqlite"
LEGACY_SETTINGS = "booklore.lua"
PLUGIN = "the BookLore Sync plugin"
UPLOADERS_META = "plugin_uploaders"
_SIDE_FILES = ("-wal", "-shm", "-journal")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# the plugin folders that upload reading data: (folder name, how to name it)
_UPLOADER_PLUGINS = (("bookloresync", PLUGIN), ("grimmory", "grimmory.koplugin"))
_REASSURE = ("booklore-sync checks what the server already has before its first upload of "
             "each book, so the reading is not doubled")


class PluginStoreError(Exception):
    """The plugin's store cannot be used; ``str()`` says why."""


@dataclass
class PluginStore:
    """What booklore-sync takes from the plugin's store."""

    matches: dict[str, int] = field(default_factory=dict)   # fingerprint -> BookLore ID
    ambiguous: dict[str, list[int]] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)    # fingerprint -> title
    server_url: str | None = None
    is_enabled: bool | None = None


@dataclass(frozen=True)
class Uploader:
    """An active uploading plugin on the device: its folder name, folder and warning."""

    key: str
    path: Path
    message: str


# ------------------------------------------------------------------ values
def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return None


def _fingerprint(value: Any) -> str | None:
    text = _text(value)
    if text is None:
        return None
    text = text.strip().lower()
    return text if _HEX32.match(text) else None


def _book_id(value: Any) -> int | None:
    """A positive integer BookLore ID, read defensively (integer, integral real, digits)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        text = _text(value)
        if text is None or not text.strip().isdigit():
            return None
        number = int(text.strip())
    return number if number > 0 else None


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = _text(value)
    if text is None:
        return None
    text = text.strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    return None


def server_key(url: Any) -> tuple[str, str] | None:
    """``(comparison key, URL to show)`` of a server URL, or None when it is none.

    The URL goes through the client's normaliser (spec §6.1); the key then compares
    scheme and host case-insensitively and makes the default port explicit.
    """
    if not isinstance(url, str) or not url.strip():
        return None
    try:
        shown = normalize_server_url(url).url
        parts = urlsplit(shown)
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}{parts.path.rstrip('/')}", shown


# ------------------------------------------------------------------ reading
def _copy(path: Path, tmp: str) -> Path:
    """The DB and its side files (those that exist) copied into ``tmp`` under their names."""
    copy = Path(tmp) / STORE_NAME
    try:
        copy.write_bytes(read_regular(path, limit=1 << 40))
        for suffix in _SIDE_FILES:
            side = Path(str(path) + suffix)
            if side.exists() or side.is_symlink():
                Path(str(copy) + suffix).write_bytes(read_regular(side, limit=1 << 40))
    except UnreadableFile as exc:
        raise PluginStoreError(str(exc)) from None
    except OSError as exc:
        raise PluginStoreError(f"cannot copy it: {exc.strerror or exc}") from None
    return copy


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {_text(r[1]) or "" for r in conn.execute(f'PRAGMA table_info("{table}")')}


def _read(conn: sqlite3.Connection, out: PluginStore) -> None:
    tables = {_text(r[0]) for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "book_cache" not in tables:
        raise PluginStoreError("no book_cache table")
    cols = _columns(conn, "book_cache")
    missing = [c for c in ("file_hash", "book_id") if c not in cols]
    if missing:
        raise PluginStoreError(f"book_cache has no {' or '.join(missing)} column")
    title = ", title" if "title" in cols else ", NULL"
    ids: dict[str, set[int]] = {}
    for raw_hash, raw_id, raw_title in conn.execute(
            f"SELECT file_hash, book_id{title} FROM book_cache"):
        fp, book_id = _fingerprint(raw_hash), _book_id(raw_id)
        if fp is None or book_id is None:
            continue
        ids.setdefault(fp, set()).add(book_id)
        name = _text(raw_title)
        if name and name.strip():
            out.titles.setdefault(fp, name.strip())
    for fp, found in ids.items():
        if len(found) == 1:
            out.matches[fp] = next(iter(found))
        else:
            out.ambiguous[fp] = sorted(found)
    if "plugin_settings" in tables and {"key", "value"} <= _columns(conn, "plugin_settings"):
        # only these two keys are ever selected: the passwords stay where they are
        for key, value in conn.execute("SELECT key, value FROM plugin_settings"
                                       " WHERE key IN ('server_url', 'is_enabled')"):
            if _text(key) == "server_url":
                url = _text(value)
                out.server_url = url.strip() if url and url.strip() else None
            else:
                out.is_enabled = _flag(value)


def read_plugin_store(path: Path) -> PluginStore:
    """The plugin's matches and two settings; :class:`PluginStoreError` when unusable."""
    out = PluginStore()
    tmp = tempfile.mkdtemp(prefix="booklore-sync-plugin-")
    try:
        copy = _copy(path, tmp)
        try:
            # read-write on the private copy, so that a hot journal is rolled back there
            conn = sqlite3.connect(str(copy), isolation_level=None)
        except sqlite3.Error as exc:
            raise PluginStoreError(f"cannot open it ({exc})") from None
        try:
            conn.text_factory = bytes
            _read(conn, out)
        except sqlite3.DatabaseError as exc:
            text = str(exc)
            if "not a database" in text or "encrypted" in text:
                raise PluginStoreError("not a SQLite database") from None
            raise PluginStoreError(f"cannot read it ({text})") from None
        finally:
            conn.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def read_legacy_settings(path: Path) -> dict[str, Any]:
    """``server_url`` and ``is_enabled`` from ``settings/booklore.lua`` (before v10)."""
    try:
        data = parse(read_regular(path), file=str(path))
    except (UnreadableFile, LuaParseError):
        return {}
    if not isinstance(data, Mapping):
        return {}
    return {k: data.get(k) for k in ("server_url", "is_enabled") if k in data}


# ------------------------------------------------------------------ uploaders
def _installed(folder: Path) -> bool:
    return any((folder / name).is_file() for name in ("main.lua", "_meta.lua"))


def detect_uploaders(data_dir: Path, reader_settings: Mapping[str, Any],
                     is_enabled: bool | None) -> list[Uploader]:
    """The uploading plugins installed and not disabled in ``plugins_disabled`` (§5)."""
    disabled = reader_settings.get("plugins_disabled")
    if not isinstance(disabled, Mapping):
        disabled = {}
    found = []
    for key, name in _UPLOADER_PLUGINS:
        folder = data_dir / "plugins" / f"{key}.koplugin"
        try:
            if not _installed(folder) or disabled.get(key) is True:
                continue
        except OSError:
            continue
        if key == "bookloresync" and is_enabled is False:
            found.append(Uploader(f"{key}:off", folder, (
                f"{name} is installed on this device but switched off in its own settings; "
                f"if it is switched on, {_REASSURE}")))
        else:
            found.append(Uploader(key, folder, (
                f"{name} also uploads from this device; {_REASSURE}; switch one of them off "
                "to avoid surprises")))
    return found


def _announce_uploaders(ctx: ScanContext, uploaders: list[Uploader]) -> None:
    """Always among the warnings; printed only when the set of uploaders changed."""
    keys = sorted(u.key for u in uploaders)
    try:
        seen = json.loads(ctx.store.get_meta(UPLOADERS_META) or "{}")
    except ValueError:
        seen = {}
    before = seen.get("keys") if isinstance(seen, dict) else None
    changed = (before or []) != keys
    for u in uploaders:
        ctx.report.warn(u.path, u.message, announce=changed)
    if changed:
        ctx.store.set_meta(UPLOADERS_META, json.dumps(
            {"keys": keys, "warnings": [u.message for u in uploaders]}))


# ------------------------------------------------------------------ adoption
def _unmatched(ctx: ScanContext, candidates: list[str]) -> bool:
    store = ctx.store
    for fp in candidates:
        if store.get_kept_link(fp) is not None:
            return False
        row = store.get_book_by_hash(fp)
        if row is not None and row.book_id is not None:
            return False
    return True


def _wanted(ctx: ScanContext, plugin: PluginStore) -> list[tuple[str, int]]:
    """(fingerprint, BookLore ID) for each book of the scan the plugin's store can match."""
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    for book in ctx.books:
        hits = [fp for fp in book.candidates if fp in plugin.matches]
        if not hits or book.primary in seen or not _unmatched(ctx, book.candidates):
            continue
        seen.add(book.primary)
        for fp in hits:
            if not ctx.store.plugin_match_replaced(fp, plugin.matches[fp]):
                out.append((fp, plugin.matches[fp]))
                break
    return out


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "es" if word.endswith("ch") else "s")


def _adopt(ctx: ScanContext, path: Path, plugin: PluginStore) -> None:
    report = ctx.report
    if plugin.ambiguous:
        fps = sorted(plugin.ambiguous)
        named = ", ".join(plugin.titles.get(fp, fp) for fp in fps[:3])
        more = f" and {len(fps) - 3} more" if len(fps) > 3 else ""
        report.warn(path, f"{_plural(len(fps), 'book')} with different BookLore IDs for the "
                          f"same fingerprint in {PLUGIN}'s store ({named}{more}): not adopted")
    wanted = _wanted(ctx, plugin)
    if not wanted:
        return
    ours = server_key(ctx.cfg.get("server.url"))
    theirs = server_key(plugin.server_url)
    matches = _plural(len(wanted), "match")
    if ours is None:
        report.warn(path, "no server configured yet: run booklore-sync login, then scan again "
                          f"to adopt the plugin's {matches}")
        return
    if theirs is None:
        report.warn(path, f"{PLUGIN}'s server URL is unknown: its {matches} are not used"
                    if len(wanted) != 1 else
                    f"{PLUGIN}'s server URL is unknown: its match is not used")
        return
    if ours[0] != theirs[0]:
        report.warn(path, f"{PLUGIN} syncs to {theirs[1]}, booklore-sync to {ours[1]}: "
                          "its matches are not used")
        return
    adopted = sum(1 for fp, book_id in wanted if ctx.store.adopt_plugin_match(fp, book_id))
    if adopted:
        verb = "would adopt" if report.dry_run else "adopted"
        report.warn(path, f"{verb} {_plural(adopted, 'book match')} from {PLUGIN}'s store")


def apply_plugin_store(ctx: ScanContext) -> None:
    """The scan's plugin step: adopt the store's matches, warn about other uploaders."""
    settings_dir = ctx.layout.data_dir / "settings"
    path = settings_dir / STORE_NAME
    plugin: PluginStore | None = None
    if path.exists() or path.is_symlink():
        try:
            plugin = read_plugin_store(path)
        except PluginStoreError as exc:
            ctx.report.warn(path, f"{PLUGIN}'s store cannot be used ({exc}); its book matches "
                                  "are not adopted")
    legacy_path = settings_dir / LEGACY_SETTINGS
    legacy = read_legacy_settings(legacy_path) if (
        (plugin is None or plugin.server_url is None or plugin.is_enabled is None)
        and legacy_path.is_file()) else {}
    if plugin is not None:
        if plugin.server_url is None and isinstance(legacy.get("server_url"), str):
            plugin.server_url = legacy["server_url"].strip() or None
        if plugin.is_enabled is None:
            plugin.is_enabled = _flag(legacy.get("is_enabled"))
        _adopt(ctx, path, plugin)
    enabled = plugin.is_enabled if plugin is not None else _flag(legacy.get("is_enabled"))
    _announce_uploaders(ctx, detect_uploaders(ctx.layout.data_dir, ctx.reader_settings,
                                              enabled))

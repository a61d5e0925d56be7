"""Annotations and bookmarks from a sidecar, current and legacy formats
(koreader-data.md §6.4–6.8), plus the small conversions their payloads need.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from booklore_sync.koreader.luatable import as_list

__all__ = ["Item", "extract_items", "color_hex", "style_for", "position_key",
           "bookmark_title", "plain_note", "COLOR_HEX", "DEFAULT_COLOR"]

DEFAULT_COLOR = "#FFC107"
COLOR_HEX = {
    "yellow": "#FFC107", "green": "#4ADE80", "cyan": "#38BDF8", "blue": "#38BDF8",
    "pink": "#F472B6", "purple": "#F472B6", "orange": "#FB923C", "red": "#FB923C",
    "gray": "#FFC107", "white": "#FFC107",
}
STYLES = {"lighten": "highlight", "underscore": "underline", "strikeout": "strikethrough",
          "invert": "highlight"}
_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")
_AUTO_TEXT = re.compile(r"^Page \S+ .* @ \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$", re.S)


@dataclass
class Item:
    kind: str                   # "highlight", "note" or "bookmark"
    datetime: str
    text: str | None = None
    note: str | None = None
    chapter: str | None = None
    color: str | None = None    # KOReader colour name
    drawer: str | None = None
    page: Any = None            # XPointer (crengine) or page number (paging)
    pos0: Any = None
    pos1: Any = None
    paged: bool = False
    note_format: str | None = None
    legacy: bool = False
    datetime_updated: str | None = None  # the last edit (note, text, style, colour)

    @property
    def page_number(self) -> int | None:
        if self.paged:
            p = self.page
            if _is_mapping(self.pos0) and isinstance(self.pos0.get("page"), (int, float)):
                p = p if isinstance(p, (int, float)) else self.pos0["page"]
            if isinstance(p, (int, float)) and not isinstance(p, bool):
                return int(p)
        return None


def _is_mapping(v: Any) -> bool:
    """``isinstance(v, Mapping)``, quick for the parser's dicts."""
    return type(v) is dict or isinstance(v, Mapping)


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _nonempty(v: Any) -> str | None:
    return v if isinstance(v, str) and v != "" else None


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _paged(page: Any, pos0: Any) -> bool:
    return _is_mapping(pos0) or (_is_number(page) and not isinstance(pos0, str))


#: the keys a sidecar's items come from, and the Lua type each must have (§6)
_TYPES: dict[str, tuple[str, tuple[type, ...]]] = {
    "annotations": ("table", (dict, list)), "bookmarks": ("table", (dict, list)),
    "highlight": ("table", (dict, list)), "summary": ("table", (dict,)),
    "doc_props": ("table", (dict,)), "percent_finished": ("number", (int, float)),
    "last_percent": ("number", (int, float)), "last_page": ("number", (int, float)),
    "last_xpointer": ("string", (str,)), "partial_md5_checksum": ("string", (str,)),
    "doc_path": ("string", (str,)), "cre_dom_version": ("number", (int, float)),
}
_SUMMARY_TYPES = {"rating": ("number", (int, float)), "status": ("string", (str,)),
                  "modified": ("string", (str,))}


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    return "table" if isinstance(v, (dict, list)) else type(v).__name__


def type_problems(sidecar: Mapping[str, Any]) -> list[str]:
    """Keys whose value has the wrong type (a damaged or hand-edited file): each is
    ignored, and said so."""
    out = []
    for table, types in ((sidecar, _TYPES), (sidecar.get("summary"), _SUMMARY_TYPES)):
        if not isinstance(table, Mapping):
            continue
        prefix = "" if table is sidecar else "summary."
        for key, (want, kinds) in types.items():
            v = table.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, kinds)):
                out.append(f"{prefix}{key} is a {_type_name(v)}, not a {want}: ignored")
    return out


def extract_items(sidecar: Mapping[str, Any]) -> tuple[list[Item], list[str]]:
    """All annotations/bookmarks of a sidecar, and a list of problems (skipped entries)."""
    if "annotations" in sidecar:
        return _current(sidecar.get("annotations"))
    if "bookmarks" in sidecar or "highlight" in sidecar:
        return _legacy(sidecar.get("bookmarks"), sidecar.get("highlight"),
                       sidecar.get("highlights_imported") is True)
    return [], []


def _current(raw: Any) -> tuple[list[Item], list[str]]:
    items: list[Item] = []
    problems: list[str] = []
    for i, a in enumerate(as_list(raw), 1):
        if not _is_mapping(a):
            problems.append(f"annotation {i} is not a table")
            continue
        get = a.get
        dt = get("datetime")
        if not isinstance(dt, str) or not dt:
            problems.append(f"annotation {i} has no datetime")
            continue
        drawer = _nonempty(get("drawer"))
        note = _nonempty(get("note"))
        if drawer is None:
            kind = "bookmark"
        elif note is not None:
            kind = "note"
        else:
            kind = "highlight"
        page = get("page")
        pos0 = get("pos0")
        pos1 = get("pos1")
        if kind != "bookmark" and pos0 is None:
            pos0 = page
        text = get("text")
        items.append(Item(
            kind, dt, text if isinstance(text, str) else None, note,
            _nonempty(get("chapter")), _nonempty(get("color")), drawer,
            page, pos0, pos1 if pos1 is not None else pos0,
            _paged(page, pos0), _nonempty(get("note_format")),
            datetime_updated=_nonempty(get("datetime_updated")),
        ))
    return items, problems


def _highlight_pages(highlight: Any) -> list[tuple[Any, Any]]:
    if isinstance(highlight, Mapping):
        return list(highlight.items())
    if isinstance(highlight, list):
        return list(enumerate(highlight, 1))
    return []


def _legacy(bookmarks: Any, highlight: Any,
            highlights_imported: bool = True) -> tuple[list[Item], list[str]]:
    items: list[Item] = []
    problems: list[str] = []
    # highlight: page → list of entries; index by datetime
    hl_by_dt: dict[str, list[Mapping[str, Any]]] = {}
    pages = _highlight_pages(highlight)
    for _page, entries in pages:
        for h in as_list(entries):
            if isinstance(h, Mapping) and isinstance(h.get("datetime"), str):
                hl_by_dt.setdefault(h["datetime"], []).append(h)
    for i, b in enumerate(as_list(bookmarks), 1):
        if not isinstance(b, Mapping):
            problems.append(f"bookmark {i} is not a table")
            continue
        dt = _str(b.get("datetime"))
        if not dt:
            problems.append(f"bookmark {i} has no datetime")
            continue
        page = b.get("page")
        pos0 = b.get("pos0")
        pos1 = b.get("pos1")
        notes = _str(b.get("notes"))      # the highlighted text (or "in <chapter>")
        text = _str(b.get("text"))        # the note, or KOReader's automatic text
        if b.get("highlighted"):
            match = None
            for h in hl_by_dt.get(dt, []):
                if match is None or (h.get("pos0") == pos0 and h.get("pos1") == pos1):
                    match = h
            note = text
            if not note or note == notes or _AUTO_TEXT.match(note):
                note = None
            h = match or {}
            if pos0 is None:
                pos0 = h.get("pos0", page)
            if pos1 is None:
                pos1 = h.get("pos1", pos0)
            items.append(Item(
                kind="note" if note else "highlight", datetime=dt,
                text=notes if notes is not None else _str(h.get("text")), note=note,
                chapter=_nonempty(b.get("chapter")) or _nonempty(h.get("chapter")),
                color=_nonempty(h.get("color")), drawer=_nonempty(h.get("drawer")) or "lighten",
                page=page, pos0=pos0, pos1=pos1, paged=_paged(page, pos0), legacy=True,
            ))
        else:
            items.append(Item(
                kind="bookmark", datetime=dt, text=_nonempty(notes), note=None,
                chapter=_nonempty(b.get("chapter")), page=page, pos0=None, pos1=None,
                paged=_paged(page, pos0), legacy=True,
            ))
    if not highlights_imported:
        known = {it.datetime for it in items}
        items.extend(_pre2014(pages, known, problems))
    return items, problems


def _pre2014(pages: list[tuple[Any, Any]], known: set[str],
             problems: list[str]) -> list[Item]:
    """Highlights kept only in ``highlight`` (before 2014), imported as KOReader's
    ``ReaderAnnotation`` imports them when ``highlights_imported`` is absent (§6.5)."""
    items: list[Item] = []
    for page_key, entries in pages:
        for h in as_list(entries):
            if not isinstance(h, Mapping):
                continue
            dt = _str(h.get("datetime"))
            if not dt or dt in known:
                continue
            pos0, pos1 = h.get("pos0"), h.get("pos1")
            if isinstance(pos0, str):
                page: Any = pos0
            elif isinstance(pos0, Mapping):
                page = page_key
                pos0 = {**pos0, "page": pos0.get("page", page_key)}
                if isinstance(pos1, Mapping):
                    pos1 = {**pos1, "page": pos1.get("page", page_key)}
            else:
                problems.append(f"highlight of {dt} has no position: skipped, as KOReader "
                                "skips it")
                continue
            known.add(dt)
            items.append(Item(
                kind="highlight", datetime=dt, text=_str(h.get("text")), note=None,
                chapter=_nonempty(h.get("chapter")), color=_nonempty(h.get("color")),
                drawer=_nonempty(h.get("drawer")) or "lighten", page=page, pos0=pos0,
                pos1=pos1 if pos1 is not None else pos0, paged=_paged(page, pos0),
                legacy=True,
            ))
    return items


# --------------------------------------------------------------- conversions
def color_hex(name: str | None, custom: Mapping[str, Any] | None = None) -> str:
    """BookLore ``#RRGGBB`` for a KOReader colour (§6.8; custom codes win)."""
    if not name:
        return DEFAULT_COLOR
    if custom:
        entry = custom.get(name)
        if isinstance(entry, Mapping):
            m = _HEX.match(str(entry.get("code") or ""))
            if m:
                return "#" + m.group(1).upper()
    return COLOR_HEX.get(name.lower(), DEFAULT_COLOR)


def style_for(drawer: str | None) -> str:
    return STYLES.get((drawer or "").lower(), "highlight")


def _num(v: Any) -> str:
    if isinstance(v, float):
        return "%.14g" % v
    return str(v)


def position_key(item: Item) -> str:
    """Start position for the queue key (§6.4): ``pos0`` as written (crengine), or
    ``<page>@<x>,<y>`` (paging); bookmarks use their ``page``."""
    pos = item.page if item.kind == "bookmark" else item.pos0
    if isinstance(pos, str):
        return pos
    if _is_mapping(pos):
        page = pos.get("page", item.page)
        x, y = pos.get("x"), pos.get("y")
        if x is not None and y is not None:
            return f"{_num(page)}@{_num(x)},{_num(y)}"
        return _num(page)
    if pos is None:
        return "" if item.page is None else _num(item.page)
    return _num(pos)


def _limit(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def bookmark_title(item: Item) -> str:
    """§6.7 (EPUB: chapter, else text) and §7.6 (paged: ``p. <page> — <chapter>``)."""
    if item.paged:
        page = item.page_number
        title = f"p. {page}" if page is not None else "p. ?"
        if item.chapter:
            title += f" — {item.chapter}"
        return _limit(title, 255)
    return _limit(item.chapter or item.text or "Bookmark", 255)


_TAG_BREAK = re.compile(r"<\s*(br|/p|/div|/li|/h[1-6])\b[^>]*>", re.I)
_TAG = re.compile(r"<[^>]*>")


def plain_note(note: str | None, note_format: str | None) -> str | None:
    """HTML notes → plain text (tags stripped, line breaks kept); others as is."""
    if note is None or (note_format or "").lower() != "html":
        return note
    text = _TAG_BREAK.sub("\n", note)
    text = _TAG.sub("", text)
    return html.unescape(text).strip("\n")

"""Building the queue rows of one book: highlights, notes and bookmarks (with their
CFI), its rating and its reading position (koreader-data §6, §7, §8.3).

An item whose position cannot be converted is queued without a CFI and with the
reason, and reported as a warning: never dropped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from booklore_sync.koreader import annotations as ann
from booklore_sync.koreader.books import book_type_for, is_paging_type
from booklore_sync.koreader.candidates import Candidate
from booklore_sync.koreader.cfi import CONVERTER_VERSION, CfiConverter, is_epub_xpointer
from booklore_sync.koreader.context import ScanContext
from booklore_sync.koreader.epub import EpubPackage
from booklore_sync.koreader.statistics import CLOCK_MIN_EPOCH

__all__ = ["queue_items", "check_clock", "queue_rating", "queue_progress", "convert"]

_NAIVE_EPOCH = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)


def _number(v: Any) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return v
    return None


def convert(conv: CfiConverter, it: ann.Item) -> tuple[str | None, str | None]:
    """(CFI, reason) for one item; any failure of the converter is a reason."""
    try:
        if it.kind == "bookmark":
            res = conv.point(it.page) if isinstance(it.page, str) else None
        else:
            res = conv.range(it.pos0, it.pos1, it.text)
    except RecursionError:
        return None, "the EPUB document is nested too deeply"
    except Exception as exc:  # noqa: BLE001 - a damaged EPUB member: this item waits, reported
        return None, f"the EPUB could not be read ({type(exc).__name__}: {exc})"
    if res is None:
        return None, "the bookmark has no position"
    return res.cfi, res.reason


def queue_items(ctx: ScanContext, items: list[ann.Item], fp: str, book_type: str | None,
                data: Mapping[str, Any], pkg: EpubPackage | None, book_path: Path | None,
                file_exists: bool, sidecar_path: Path, name: str | None) -> None:
    report = ctx.report
    dom = _number(data.get("cre_dom_version"))
    dom_version = int(dom) if dom is not None else None
    conv: CfiConverter | None = None
    if pkg is not None:
        conv = CfiConverter(pkg, dom_version)
    paging_book = is_paging_type(name)
    for it in items:
        queue = "bookmarks" if it.kind == "bookmark" else "annotations"
        if not ctx.on(queue):
            continue
        check_clock(ctx, it.datetime, sidecar_path)
        paged = it.paged or (paging_book and not isinstance(it.pos0 or it.page, str))
        cfi = None
        reason = None
        if not paged:
            if conv is not None:
                cfi, reason = convert(conv, it)
            elif not file_exists:
                reason = f"book file not found ({book_path or 'unknown path'}): no CFI yet"
            elif not (name or "").lower().endswith(".epub"):
                reason = (f"no EPUB CFI for a {book_type_for(name)} book in a reflowable "
                          f"format ({name})")
            elif not is_epub_xpointer(it.pos0 if it.kind != "bookmark" else it.page):
                reason = "not an EPUB position"
            else:
                reason = "the EPUB could not be read"
            if cfi is None:
                reason = reason or "not convertible"
                report.warn(sidecar_path, f"{it.kind} of {it.datetime}: no CFI — {reason}")
        position = ann.position_key(it)
        if it.kind == "bookmark":
            payload: dict[str, Any] = {
                "paged": paged, "cfi": cfi, "title": ann.bookmark_title(it),
                "page": it.page_number if paged else None, "chapter": it.chapter,
                "text": it.text, "datetime": it.datetime,
            }
            if not paged:
                payload["xpointer"] = it.page if isinstance(it.page, str) else None
                payload["cfi_converter"] = CONVERTER_VERSION
            ctx.enqueue("bookmarks", (fp, it.datetime, payload,
                                       None if paged else reason))
        else:
            payload = {
                "kind": it.kind, "paged": paged, "book_type": book_type, "cfi": cfi,
                "text": it.text, "note": ann.plain_note(it.note, it.note_format),
                "chapter": it.chapter,
                "color": ann.color_hex(it.color, ctx.custom_colors),
                "style": ann.style_for(it.drawer),
                "page": it.page_number if paged else None, "datetime": it.datetime,
                # what an edit is judged by once the item is synced (spec §4.1 "Edits")
                "datetime_updated": it.datetime_updated,
            }
            if not paged:
                payload["pos0"] = it.pos0 if isinstance(it.pos0, str) else None
                payload["pos1"] = it.pos1 if isinstance(it.pos1, str) else None
                payload["cfi_converter"] = CONVERTER_VERSION
            ctx.enqueue("annotations", (fp, it.datetime, it.kind, position, payload,
                                         None if paged else reason))


def check_clock(ctx: ScanContext, dt: str, file: Path) -> None:
    try:
        parsed = datetime.fromisoformat(dt.strip()[:19])
    except (ValueError, AttributeError, TypeError):
        return
    if parsed.tzinfo is None:
        # a zone moves local time by less than a day: well inside the window, the
        # exact epoch cannot be out of it
        naive = (parsed - _NAIVE_EPOCH) // _SECOND
        if CLOCK_MIN_EPOCH + 86400 <= naive <= ctx.now:
            return
    epoch = _local_epoch(dt, ctx.tz)
    if epoch is None:
        return
    if epoch < CLOCK_MIN_EPOCH or epoch > ctx.now + 86400:
        ctx.report.warn(file, f"suspicious device clock: datetime {dt!r} (queued as is)")


def queue_rating(ctx: ScanContext, data: Mapping[str, Any], fp: str) -> None:
    if not ctx.on("ratings"):
        return
    summary = data.get("summary")
    if not isinstance(summary, Mapping):
        return
    r = _number(summary.get("rating"))
    if r is None:
        return
    stars = min(5, max(1, math.floor(r)))
    ctx.enqueue("ratings", (fp, stars * 2))


def queue_progress(ctx: ScanContext, data: Mapping[str, Any], fp: str, candidates: list[str],
                   cand: Candidate) -> None:
    if not ctx.on("progress"):
        return
    pf = _number(data.get("percent_finished"))
    if pf is None:
        pf = _number(data.get("last_percent"))
    if pf is None:
        return
    xp = data.get("last_xpointer")
    lp = data.get("last_page")
    if isinstance(xp, str) and xp:
        progress = xp
    elif (page := _number(lp)) is not None:
        progress = str(int(page))
    else:
        if pf > 0:
            ctx.report.warn(cand.path, "percent_finished without a position (no last_xpointer "
                                       "or last_page): progress not queued")
        return
    pct = math.floor(float(pf) * 10000) / 10000
    if pct <= 0:
        return
    pct = min(pct, 1.0)
    times = [ctx.stats_last_end[h] for h in candidates if h in ctx.stats_last_end]
    if ctx.file_times:
        times.append(int(cand.mtime))
    payload: dict[str, Any] = {"device": ctx.device_name, "device_id": ctx.device_id,
                               "position_time": max(times) if times else None}
    if not (isinstance(xp, str) and xp):
        payload["page"] = int(progress)
    summary = data.get("summary")
    if isinstance(summary, Mapping):
        status = summary.get("status")
        if isinstance(status, str) and status.strip():
            modified = summary.get("modified")
            payload["status"] = status.strip().lower()
            payload["status_modified"] = modified if isinstance(modified, str) else None
            payload["status_time"] = _status_time(ctx, payload["status_modified"])
    ctx.enqueue("progress", (fp, progress, pct, payload))


def _status_time(ctx: ScanContext, modified: str | None) -> int | None:
    """The start of the ``summary.modified`` day in device.timezone (koreader-data §6.3);
    None when it cannot be read or fails the clock check."""
    if not modified:
        return None
    for fmt in ("%Y-%m-%d", "%d.%m.%Y"):
        try:
            day = datetime.strptime(modified.strip(), fmt)
            break
        except ValueError:
            continue
    else:
        return None
    epoch = _local_epoch(day.isoformat(), ctx.tz)
    if epoch is None or epoch < CLOCK_MIN_EPOCH or epoch > ctx.now + 86400:
        return None
    return epoch


def _local_epoch(dt: str, tz: Any) -> int | None:
    try:
        parsed = datetime.fromisoformat(dt.strip()[:19])
    except (ValueError, AttributeError, TypeError):
        return None
    try:
        if tz is None:
            return int(parsed.timestamp())
        return int(parsed.replace(tzinfo=tz).timestamp())
    except (OverflowError, OSError, ValueError):
        return None

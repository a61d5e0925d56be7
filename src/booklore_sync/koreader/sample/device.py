"""The sample device: statistics, sidecars, settings, and the whole folder."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from booklore_sync.koreader.fingerprint import partial_md5
from booklore_sync.koreader.luatable import dump
from booklore_sync.koreader.sample.content import (
    ALMANAC,
    BIRDS_AUTHOR,
    BIRDS_FILE,
    BIRDS_MARKS,
    BIRDS_PAGES,
    BIRDS_RATING,
    BIRDS_SESSIONS,
    BIRDS_TITLE,
    CRE_DOM_VERSION,
    DATA_DIR,
    DEVICE_ID,
    DEVICE_PREFIX,
    MAX_SEC,
    MIN_SEC,
    ORCHARD,
    STATISTICS_VERSION,
    SampleDevice,
    _Epub,
    _Mark,
)
from booklore_sync.koreader.sample.epubgen import (
    _date,
    _EpubLayout,
    _isbn13,
    _local,
    _plain,
    _write_epub,
)
from booklore_sync.koreader.sample.pdfgen import (
    PDF_WRAP,
    _pdf_position,
    _wrap,
    _write_pdf,
)
from booklore_sync.koreader.statistics import SCHEMA_DDL

# ================================================================== statistics


@dataclass
class _Reading:
    """One book's reading history: page_stat_data rows (page, start, duration)."""
    rows: list[tuple[int, int, int]] = field(default_factory=list)
    sessions: int = 0
    stopped: int = 1                        # the page on screen at the end

    def when(self, page: int) -> int:
        """When the page was first on screen (else the last row's time)."""
        for p, start, _d in self.rows:
            if p == page:
                return start
        return self.rows[-1][1]

    @property
    def end(self) -> int:
        return max(s + d for _p, s, d in self.rows)


def _read(rng: random.Random, anchor: int, plan: list[tuple[int, int, int | None]],
          pages: int) -> _Reading:
    """Page views for a list of sessions (day, minute of day, page reached).  Each
    session starts on the page the previous one ended on; a page stays on screen
    25–230 s (KOReader records at most ``max_sec`` of it, and nothing under
    ``min_sec``), so the gaps inside a session stay well under five minutes."""
    reading = _Reading()
    page = 1
    for day, minute, reached in plan:
        t = anchor + day * 86400 + minute * 60
        target = pages if reached is None else min(pages, reached)
        while True:
            shown = rng.randint(25, 230)
            if shown >= MIN_SEC:
                reading.rows.append((page, t, min(shown, MAX_SEC)))
            t += shown
            if page >= target:
                break
            page += 1
        reading.sessions += 1
    reading.stopped = page
    return reading


def _write_statistics(path: Path, books: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        stale.unlink(missing_ok=True)        # a rebuilt sample replaces the old one
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        for sql in SCHEMA_DDL:
            conn.execute(sql)
        conn.executemany("INSERT INTO numbers VALUES (?)", [(i,) for i in range(1, 1001)])
        for b in books:
            rows = b["reading"].rows
            cur = conn.execute(
                "INSERT INTO book (title, authors, notes, last_open, highlights, pages, series,"
                " language, md5, total_read_time, total_read_pages)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (b["title"], b["authors"], b["notes"], b["reading"].end, b["highlights"],
                 b["pages"], "N/A", b["language"], b["md5"], sum(r[2] for r in rows),
                 len({r[0] for r in rows})))
            conn.executemany(
                "INSERT OR IGNORE INTO page_stat_data VALUES (?, ?, ?, ?, ?)",
                [(cur.lastrowid, p, s, d, b["pages"]) for p, s, d in rows])
        conn.execute(f"PRAGMA user_version = {STATISTICS_VERSION}")
        conn.commit()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


# ==================================================================== sidecars
def _write_sidecar(books_dir: Path, file_name: str, data: dict[str, Any], mtime: int) -> Path:
    stem, ext = file_name.rsplit(".", 1)
    sdr = books_dir / f"{stem}.sdr"
    sdr.mkdir(parents=True, exist_ok=True)
    path = sdr / f"metadata.{ext}.lua"
    path.write_bytes(dump(data, f"{DEVICE_PREFIX}/Books/{stem}.sdr/metadata.{ext}.lua"))
    os.utime(path, (mtime, mtime))
    return path


def _tally(marks: Sequence[_Mark]) -> tuple[int, int]:
    """(notes, plain highlights) among the marks (bookmarks are neither)."""
    shown = [m for m in marks if m.kind != "bookmark"]
    notes = sum(1 for m in shown if m.note)
    return notes, len(shown) - notes


def _epub_annotations(spec: _Epub, layout: _EpubLayout, reading: _Reading
                      ) -> tuple[list[dict[str, Any]], int, int]:
    """The sidecar's ``annotations`` (reading order) and (notes, plain highlights)."""
    items: list[tuple[tuple[int, int, int], dict[str, Any]]] = []
    for k, m in enumerate(spec.marks):
        ch = spec.chapters[m.chapter - 1]
        if m.kind == "bookmark":
            assert m.page is not None
            c, b, o = layout.pages[m.page - 1]
            title = layout.chapter_title(m.page)
            when = reading.when(m.page) + 20 + k
            items.append(((c, b, o), {
                "chapter": title, "datetime": _local(when), "page": layout.page_top(m.page),
                "pageno": m.page, "text": f"in {title}",
            }))
            continue
        assert m.start is not None
        sb, sphrase = m.start
        eb, ephrase = m.end or m.start
        stext, etext = _plain(ch.paras[sb - 1]), _plain(ch.paras[eb - 1])
        s0 = stext.index(sphrase)
        e1 = etext.index(ephrase, s0 if eb == sb else 0) + len(ephrase)
        if sb == eb:
            text = stext[s0:e1]
        else:
            text = "\n".join([stext[s0:]] + [_plain(ch.paras[i - 1]) for i in range(sb + 1, eb)]
                             + [etext[:e1]])
        pos0 = layout.xpointer(m.chapter, sb, s0)
        pos1 = layout.xpointer(m.chapter, eb, e1, end=True)
        page = layout.page_of(m.chapter, sb, s0)
        when = reading.when(page) + 45 + 7 * k
        entry: dict[str, Any] = {
            "chapter": ch.title, "color": m.color, "datetime": _local(when),
            "drawer": m.drawer, "page": pos0, "pageno": page, "pos0": pos0, "pos1": pos1,
            "text": text,
        }
        if m.note:
            entry["note"] = m.note
        if m.edited:
            entry["datetime_updated"] = _local(reading.end - 60)
        items.append(((m.chapter, sb, s0), entry))
    items.sort(key=lambda it: it[0])
    return [e for _k, e in items], *_tally(spec.marks)


def _epub_book(spec: _Epub, books_dir: Path, rng: random.Random, anchor: int
               ) -> tuple[Path, dict[str, Any], _Reading]:
    path = books_dir / spec.file
    _write_epub(path, spec)
    layout = _EpubLayout(spec)
    pages = len(layout.pages)
    reading = _read(rng, anchor, spec.sessions, pages)
    current = reading.stopped
    annotations, notes, highlights = _epub_annotations(spec, layout, reading)
    md5 = partial_md5(path)
    close = reading.end + 40
    first_day = _date(reading.rows[0][1])
    isbn = _isbn13(spec.isbn12)
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:booklore-sync:sample:{spec.file}"))
    sidecar = {
        "annotations": annotations,
        "cre_dom_version": CRE_DOM_VERSION,
        "copt_font_size": 22,
        "copt_line_spacing": 100,
        "copt_view_mode": 0,
        "doc_pages": pages,
        "doc_path": f"{DEVICE_PREFIX}/Books/{spec.file}",
        "doc_props": {
            "authors": "\n".join(spec.authors),
            "description": spec.description,
            "identifiers": f"UUID:{uid}\nISBN:{isbn}",
            "keywords": "\n".join(spec.subjects),
            "language": spec.language,
            "title": spec.title,
        },
        "font_face": "Noto Serif",
        "highlight_drawer": "lighten",
        "inverse_reading_order": False,
        "last_xpointer": layout.page_top(current),
        "partial_md5_checksum": md5,
        "percent_finished": current / pages,
        "summary": {
            "modified": _date(close) if spec.status == "complete" else first_day,
            "rating": spec.rating,
            "status": spec.status,
        },
    }
    _write_sidecar(books_dir, spec.file, sidecar, close)
    stats = {"title": spec.title, "authors": "\n".join(spec.authors), "notes": notes,
             "highlights": highlights, "pages": pages, "language": spec.language, "md5": md5,
             "reading": reading}
    return path, stats, reading


def _pdf_book(books_dir: Path, rng: random.Random, anchor: int
              ) -> tuple[Path, dict[str, Any], _Reading]:
    path = books_dir / BIRDS_FILE
    pages = [(heading, _wrap(text, PDF_WRAP)) for heading, text in BIRDS_PAGES]
    _write_pdf(path, BIRDS_TITLE, BIRDS_AUTHOR, pages)
    n = len(pages)
    reading = _read(rng, anchor, BIRDS_SESSIONS, n)
    current = reading.stopped
    annotations = []
    for k, m in enumerate(BIRDS_MARKS):
        if m.kind == "bookmark":
            assert m.page is not None
            annotations.append((m.page, 0.0, {
                "chapter": pages[m.page - 1][0],
                "datetime": _local(reading.when(m.page) + 15 + k),
                "page": m.page, "pageno": m.page,
            }))
            continue
        assert m.start is not None
        page = m.chapter
        heading, lines = pages[page - 1]
        text = m.start[1]
        pos0, pos1, boxes = _pdf_position(lines, text, page)
        entry: dict[str, Any] = {
            "chapter": heading, "color": m.color,
            "datetime": _local(reading.when(page) + 50 + 9 * k), "drawer": m.drawer,
            "page": page, "pageno": page, "pboxes": boxes, "pos0": pos0, "pos1": pos1,
            "text": text,
        }
        if m.note:
            entry["note"] = m.note
        annotations.append((page, pos0["y"], entry))
    annotations.sort(key=lambda a: (a[0], a[1]))
    notes, highlights = _tally(BIRDS_MARKS)
    md5 = partial_md5(path)
    close = reading.end + 30
    sidecar = {
        "annotations": [a[2] for a in annotations],
        "doc_pages": n,
        "doc_path": f"{DEVICE_PREFIX}/Books/{BIRDS_FILE}",
        "doc_props": {"authors": BIRDS_AUTHOR, "title": BIRDS_TITLE},
        "highlight_drawer": "lighten",
        "inverse_reading_order": False,
        "kopt_contrast": 1,
        "kopt_page_opt": 0,
        "kopt_text_wrap": 0,
        "kopt_trim_page": 1,
        "kopt_zoom_mode_genus": 4,
        "kopt_zoom_mode_type": 2,
        "last_page": current,
        "partial_md5_checksum": md5,
        "percent_finished": current / n,
        "render_mode": 0,
        "rotation_mode": 0,
        "summary": {"modified": _date(reading.rows[0][1]), "rating": BIRDS_RATING,
                    "status": "reading"},
    }
    _write_sidecar(books_dir, BIRDS_FILE, sidecar, close)
    stats = {"title": BIRDS_TITLE, "authors": BIRDS_AUTHOR, "notes": notes,
             "highlights": highlights, "pages": n, "language": "N/A", "md5": md5,
             "reading": reading}
    return path, stats, reading


# ======================================================================== main
def build_sample_device(root: Path, *, library: Path | None = None,
                        now: float | None = None) -> SampleDevice:
    """Write the sample device under ``root`` (created if needed) and the library
    copy under ``library`` (default: ``<root>-library`` next to it, outside the
    device).  The reading happened 14 to 5 days before ``now`` (default: the
    current time), on a device whose clock runs on UTC."""
    root = Path(root)
    library = Path(library) if library is not None else root.with_name(root.name + "-library")
    now = int(now if now is not None else datetime.now(timezone.utc).timestamp())
    anchor = (now // 86400 - 14) * 86400              # midnight UTC, two weeks ago
    books_dir = root / "Books"
    data_dir = root / DATA_DIR
    books_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "settings").mkdir(parents=True, exist_ok=True)
    library.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20250101)

    files: list[Path] = []
    stats: list[dict[str, Any]] = []
    expected = {"sessions": 0, "annotations": 0, "ratings": 0, "bookmarks": 0, "progress": 0}
    last_open: list[tuple[int, str]] = []
    for spec in (ALMANAC, ORCHARD):
        path, st, reading = _epub_book(spec, books_dir, rng, anchor)
        files.append(path)
        stats.append(st)
        last_open.append((reading.end + 40, spec.file))
        expected["sessions"] += reading.sessions
        expected["annotations"] += sum(m.kind != "bookmark" for m in spec.marks)
        expected["bookmarks"] += sum(m.kind == "bookmark" for m in spec.marks)
    path, st, reading = _pdf_book(books_dir, rng, anchor)
    files.append(path)
    stats.append(st)
    last_open.append((reading.end + 30, BIRDS_FILE))
    expected["sessions"] += reading.sessions
    expected["annotations"] += sum(m.kind != "bookmark" for m in BIRDS_MARKS)
    expected["bookmarks"] += sum(m.kind == "bookmark" for m in BIRDS_MARKS)
    expected["ratings"] = expected["progress"] = len(files)

    # KOReader's statistics table lists books in the order they were first opened
    stats.sort(key=lambda b: b["reading"].rows[0][1])
    _write_statistics(data_dir / "settings" / "statistics.sqlite3", stats)

    last_open.sort()
    settings = {
        "device_id": DEVICE_ID,
        "document_metadata_folder": "doc",
        "home_dir": DEVICE_PREFIX,
        "language": "en",
        "lastdir": f"{DEVICE_PREFIX}/Books",
        "lastfile": f"{DEVICE_PREFIX}/Books/{last_open[-1][1]}",
        "statistics": {"is_enabled": True, "max_sec": MAX_SEC, "min_sec": MIN_SEC,
                       "convert_to_db": True, "freeze_finished_books": False},
        "time_format": "24",
    }
    settings_path = data_dir / "settings.reader.lua"
    settings_path.write_bytes(dump(settings, f"{DEVICE_PREFIX}/{DATA_DIR.as_posix()}"
                                             "/settings.reader.lua"))
    history = [{"file": f"{DEVICE_PREFIX}/Books/{name}", "time": t}
               for t, name in sorted(last_open, reverse=True)]
    (data_dir / "history.lua").write_bytes(
        dump(history, f"{DEVICE_PREFIX}/{DATA_DIR.as_posix()}/history.lua"))

    # the books were copied onto the device before any reading; the library holds
    # the same bytes (and times) as the server's copy
    copied = anchor - 3 * 86400
    fingerprints = {}
    for f in files:
        os.utime(f, (copied, copied))
        shutil.copy2(f, library / f.name)
        fingerprints[f.name] = partial_md5(f)
    return SampleDevice(root=root, books=files, library=library, data_dir=data_dir,
                        fingerprints=fingerprints, expected=expected)

"""Reading sessions from KOReader's ``statistics.sqlite3`` (koreader-data.md §3).

The database is copied (with its ``-wal``/``-shm``/``-journal``) into a private
temporary directory and opened read-only there (read-write only to roll a hot
journal back, on the copy); the source is never touched.  Rows of
``page_stat_data`` are streamed in global time order and grouped into sessions
on the fly, so memory does not grow with the number of rows.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from booklore_sync.koreader.safeio import UnreadableFile, read_regular

__all__ = ["StatisticsError", "StatsBook", "Session", "open_statistics", "read_books",
           "iter_sessions", "derive_sessions", "round_half_up", "format_duration",
           "session_payload", "keep_session", "SCHEMA_VERSION", "CLOCK_MIN_EPOCH",
           "utc_iso", "SCHEMA_DDL", "WINDOW_GROUPING_SQL"]

SCHEMA_VERSION = 20221111
CLOCK_MIN_EPOCH = 1167609600  # 2007-01-01T00:00:00Z
_FETCH = 20000
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


class StatisticsError(Exception):
    """The statistics database cannot be used (message names the file)."""


@dataclass(frozen=True)
class StatsBook:
    id: int
    title: str
    authors: str
    md5: str | None


@dataclass
class Session:
    id_book: int
    start: int
    end: int
    duration: int
    first_page: int
    first_total: int
    last_page: int
    last_total: int
    rows: int
    final: bool = False

    @property
    def start_progress(self) -> float:
        return self.first_page / self.first_total * 100

    @property
    def end_progress(self) -> float:
        return self.last_page / self.last_total * 100

    @property
    def pages_moved(self) -> int:
        return abs(math.floor(self.last_page * self.first_total / self.last_total + 0.5)
                   - self.first_page)


# ------------------------------------------------------------------ formatting
def round_half_up(v: float, dp: int) -> float:
    """§9.3: ``floor(v × 10^dp + 0.5) / 10^dp`` in IEEE doubles."""
    scale = 10.0 ** dp
    return math.floor(v * scale + 0.5) / scale


def format_duration(seconds: Any) -> str:
    """§9.2: ``1h 5m 9s``; zero units omitted; ``0s`` for zero/negative/invalid."""
    try:
        total = int(seconds)
    except (TypeError, ValueError, OverflowError):
        return "0s"
    if total <= 0:
        return "0s"
    h, rem = divmod(total, 3600)
    m, s = divmod(rem, 60)
    parts = []
    if h:
        parts.append(f"{h}h")
    if m:
        parts.append(f"{m}m")
    if s or not parts:
        parts.append(f"{s}s")
    return " ".join(parts)


def utc_iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def session_payload(s: Session, book_type: str | None, decimal_places: int) -> dict[str, Any]:
    """BookLore single-session fields minus ``bookId`` (§3.6)."""
    sp, ep = s.start_progress, s.end_progress
    return {
        "bookType": book_type,
        "startTime": utc_iso(s.start),
        "endTime": utc_iso(s.end),
        "durationSeconds": s.duration,
        "durationFormatted": format_duration(s.duration),
        "startProgress": round_half_up(sp, decimal_places),
        "endProgress": round_half_up(ep, decimal_places),
        "progressDelta": round_half_up(ep - sp, decimal_places),
        "startLocation": str(s.first_page),
        "endLocation": str(s.last_page),
    }


def keep_session(s: Session, settings: Mapping[str, Any], now: int) -> str | None:
    """``None`` when the session may be queued, else why not (§3.5 step 4)."""
    if s.start < CLOCK_MIN_EPOCH or s.end < CLOCK_MIN_EPOCH:
        return "clock: time before 2007-01-01"
    if s.start > now + 86400 or s.end > now + 86400:
        return "clock: time more than a day after the scan"
    mode = str(settings.get("sessions.detection_mode", "duration")).lower()
    if mode == "pages":
        if s.pages_moved < int(settings.get("sessions.min_pages", 5)):
            return "fewer pages than sessions.min_pages"
        return None
    if s.duration < int(settings.get("sessions.min_duration_seconds", 30)):
        return "shorter than sessions.min_duration_seconds"
    if s.pages_moved <= 0:
        return "the position did not move"
    return None


# --------------------------------------------------------------------- opening
_SIDE_FILES = ("-wal", "-shm", "-journal")


def _copy_database(path: Path, tmp: str) -> tuple[Path, bool]:
    """Copy the DB and its ``-wal``/``-shm``/``-journal`` (those that exist, regular
    files only) into ``tmp``, keeping their names.  Returns (copy, hot journal?)."""
    copy = Path(tmp) / "statistics.sqlite3"
    try:
        copy.write_bytes(read_regular(path, limit=1 << 40))
    except UnreadableFile as exc:
        raise StatisticsError(f"{path}: {exc}") from None
    hot = False
    for suffix in _SIDE_FILES:
        side = Path(str(path) + suffix)
        if not os.path.lexists(side):
            continue
        try:
            data = read_regular(side, limit=1 << 40)
        except UnreadableFile as exc:
            raise StatisticsError(f"{side}: {exc}") from None
        Path(str(copy) + suffix).write_bytes(data)
        if suffix == "-journal" and data.strip(b"\x00"):
            hot = True
    return copy, hot


def _connect(copy: Path, path: Path, hot: bool) -> sqlite3.Connection:
    """Read-only, except that a hot rollback journal is rolled back on the copy (§3.1)."""
    try:
        if hot:
            conn = sqlite3.connect(str(copy), isolation_level=None)
            conn.text_factory = bytes
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # rolls back
            conn.close()
        conn = sqlite3.connect(f"{copy.as_uri()}?mode=ro", uri=True)
        conn.text_factory = bytes
        return conn
    except sqlite3.Error as exc:
        raise StatisticsError(f"{path}: cannot open the statistics database: {exc}") from None


@contextmanager
def open_statistics(path: str | os.PathLike[str],
                    problems: list[tuple[str, str]] | None = None,
                    ) -> Iterator[sqlite3.Connection]:
    """A read-only connection to a private copy of the database (+ -wal/-shm/-journal).

    Text comes back as bytes (``text_factory = bytes``): decode with :func:`_text`.
    ``problems`` receives ("warning", message) for a newer schema or a damaged schema
    text; anything that makes the DB unusable raises :class:`StatisticsError`.
    """
    path = Path(path)
    tmp = tempfile.mkdtemp(prefix="booklore-sync-stats-")
    try:
        copy, hot = _copy_database(path, tmp)
        conn = _connect(copy, path, hot)
        try:
            damaged = None
            try:
                version, names = _schema(conn)
            except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
                # a schema SQLite cannot parse (or whose error message is not UTF-8):
                # read what can be read, without checking the schema (on the copy)
                damaged = _error_text(exc)
                try:
                    conn.execute("PRAGMA writable_schema = ON")
                    version, names = _schema(conn)
                except (sqlite3.DatabaseError, UnicodeDecodeError) as exc2:
                    raise StatisticsError(
                        f"{path}: not a readable SQLite database ({_error_text(exc2)})") from None
            tables = {_text(r[0]) for r in names}
            if not isinstance(version, int):
                version = 0
            if version < SCHEMA_VERSION:
                raise StatisticsError(
                    f"{path}: statistics database too old (schema {version}) — open KOReader "
                    "once to upgrade it")
            if not {"book", "page_stat_data"} <= tables:
                raise StatisticsError(
                    f"{path}: not a KOReader statistics database (tables book/page_stat_data "
                    "missing)")
            if problems is not None:
                if damaged is not None:
                    problems.append(("warning", f"the database schema is damaged ({damaged}); "
                                                "the tables that can still be read are used"))
                elif any("\ufffd" in t for t in tables):
                    problems.append(("warning", "the schema text is not valid UTF-8 "
                                                "(a damaged page?); the known tables are read"))
                if version > SCHEMA_VERSION:
                    problems.append(("warning", f"statistics database schema {version} is newer "
                                                f"than this program knows; read as {SCHEMA_VERSION}"))
                if hot:
                    problems.append(("warning", "an unfinished write (hot -journal) was rolled "
                                                "back on a copy, as KOReader would"))
            yield conn
        finally:
            conn.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _schema(conn: sqlite3.Connection) -> tuple[Any, list[Any]]:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    names = conn.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')").fetchall()
    return version, names


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return exc.object.decode("utf-8", "replace") if isinstance(exc.object, bytes) \
            else str(exc)
    return str(exc)


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    return ""


def schema_warning(conn: sqlite3.Connection, path: str | os.PathLike[str]) -> str | None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if isinstance(version, int) and version > SCHEMA_VERSION:
        return (f"{path}: statistics database schema {version} is newer than this program "
                f"knows; read as {SCHEMA_VERSION}")
    return None


def read_books(conn: sqlite3.Connection, path: str = "statistics.sqlite3") -> dict[int, StatsBook]:
    try:
        rows = conn.execute("SELECT id, title, authors, md5 FROM book").fetchall()
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        raise StatisticsError(f"{path}: cannot read table book ({_error_text(exc)})") from None
    out = {}
    for bid, title, authors, md5 in rows:
        if type(bid) is not int:
            continue
        title = _text(title).rstrip("\x00")
        authors = _text(authors).rstrip("\x00")
        digest = _text(md5).strip().lower()
        out[bid] = StatsBook(bid, title, authors, digest if _HEX32.match(digest) else None)
    return out


def _whole(col: str) -> str:
    return (f"(typeof({col}) = 'integer' OR (typeof({col}) = 'real'"
            f" AND {col} = CAST({col} AS INTEGER)))")


_COLUMNS = ("id_book", "page", "start_time", "duration", "total_pages")
_USABLE = " AND ".join(_whole(c) for c in _COLUMNS)
_ROWS_SQL = (
    "SELECT id_book, CAST(page AS INTEGER), CAST(start_time AS INTEGER),"
    " CAST(duration AS INTEGER), CAST(total_pages AS INTEGER) FROM page_stat_data"
    f" WHERE duration > 0 AND page > 0 AND total_pages > 0 AND {_USABLE}"
    " ORDER BY start_time, id_book, page")
_BAD_ROWS_SQL = f"SELECT count(*) FROM page_stat_data WHERE NOT ({_USABLE})"


def iter_sessions(conn: sqlite3.Connection, gap: int, now: int,
                  path: str = "statistics.sqlite3") -> Iterator[Session]:
    """Group the rows into sessions (§3.5 steps 1–3, 5); streams the rows.

    Every session is yielded, with ``final`` telling whether it has cooled down.
    """
    try:
        cur = conn.execute(_ROWS_SQL)
        fetch = cur.fetchmany
        batch = fetch(_FETCH)
        s: Session | None = None
        cur_book = None
        max_end = 0
        dur = 0
        rows = 0
        last_start = 0
        last_page = last_total = 0
        while batch:
            for b, p, st, d, t in batch:
                if b != cur_book or st - max_end > gap:
                    if s is not None:
                        s.end, s.duration, s.rows = max_end, dur, rows
                        s.last_page, s.last_total = last_page, last_total
                        s.final = b != cur_book or now - max_end > gap
                        yield s
                    s = Session(b, st, 0, 0, p, t, p, t, 0)
                    cur_book = b
                    max_end = st + d
                    dur = d
                    rows = 1
                    last_start, last_page, last_total = st, p, t
                    continue
                dur += d
                rows += 1
                e = st + d
                if e > max_end:
                    max_end = e
                if st >= last_start:
                    last_start, last_page, last_total = st, p, t
            batch = fetch(_FETCH)
        if s is not None:
            s.end, s.duration, s.rows = max_end, dur, rows
            s.last_page, s.last_total = last_page, last_total
            s.final = now - max_end > gap
            yield s
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        raise StatisticsError(f"{path}: cannot read page_stat_data ({_error_text(exc)})") from None
    except (TypeError, ValueError) as exc:
        raise StatisticsError(f"{path}: unexpected values in page_stat_data ({exc})") from None


def derive_sessions(path: str | os.PathLike[str], settings: Mapping[str, Any], now: int,
                    on_session: Callable[[StatsBook, Session], None] | None = None,
                    problems: list[tuple[str, str]] | None = None,
                    ) -> tuple[dict[int, StatsBook], list[Session], dict[int, int]]:
    """Open, read and group.  Returns (books, every session, last row end per book id).

    With ``problems``, what is wrong with the file but not fatal is appended there as
    ("warning" | "error", message), and a read that fails half way keeps the sessions
    read so far (the last one not final); without it such a failure raises.
    """
    gap = int(settings.get("sessions.gap_seconds", 300))
    with open_statistics(path, problems) as conn:
        books = read_books(conn, str(path))
        sessions: list[Session] = []
        last_end: dict[int, int] = {}
        if problems is not None:
            try:
                bad = conn.execute(_BAD_ROWS_SQL).fetchone()[0]
            except (sqlite3.DatabaseError, UnicodeDecodeError):
                bad = 0
            if bad:
                problems.append(("warning", f"{bad} rows with non-numeric values skipped"))
        try:
            for s in iter_sessions(conn, gap, now, str(path)):
                sessions.append(s)
                if s.end > last_end.get(s.id_book, 0):
                    last_end[s.id_book] = s.end
                if on_session is not None and s.id_book in books:
                    on_session(books[s.id_book], s)
        except StatisticsError as exc:
            if problems is None:
                raise
            problems.append(("error", str(exc).removeprefix(f"{path}: ")
                             + "; the sessions read before it are kept"))
            if sessions:
                sessions[-1].final = False
    return books, sessions, last_end


from booklore_sync.koreader.statistics_schema import SCHEMA_DDL, WINDOW_GROUPING_SQL  # noqa: E402

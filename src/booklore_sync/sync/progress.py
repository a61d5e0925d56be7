"""The progress phase's work unit (HTTP only): one book's position and KOReader status
(spec §4.1 "Progress", koreader-data.md §8.3, booklore-api.md §3.18, §3.23, §3.24).

Newest wins: a position is pushed only when its time is later than every server time
for the book that is not this client's own push; a status the reader set on the server
(``READ``, ``ABANDONED``, ``WONT_READ``, ``PAUSED``) is changed only by a position later
than the moment this client first saw it.  The server's state comes from the book's
``Book`` (which the engine holds or read once); only without one, from the kosync GET.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Any

from booklore_sync.booklore import errors as E
from booklore_sync.sync.outcomes import UNKNOWN_TO_SERVER, Skipped, Synced
from booklore_sync.sync.plan import ProgressUnit
from booklore_sync.sync.uploads import Worker

PROTECTED = frozenset({"READ", "ABANDONED", "WONT_READ", "PAUSED"})
KO_TO_SERVER = {"complete": "READ", "abandoned": "ABANDONED"}
OWN_WINDOW = 2.0  # seconds: a server time this close to our last push is our own
SERVER_NEWER = "server_ahead"  # history outcome: settled as "server newer"
SYNC_OFF = E.SyncDisabledError.REASON
NO_ACCOUNT_BY_ID = ("the server knows this book only by its BookLore ID; sending the "
                    "position that way needs the BookLore account, which is not configured")
NO_ACCOUNT_STATUS = ("KOReader's read status needs the BookLore account, which is not "
                     "configured")
NO_BOOK_STATE = "the server's copy of this book could not be read (its format is unknown)"
ONE_FORMAT = "the server holds this book as {}; positions carry over only within one format"
NO_POSITION_ROUTE = ("positions by book ID are sent only for EPUB, PDF and CBX books "
                     "(this one is {})")
NO_PROGRESS_CFI = "no EPUB CFI for this position ({}); it cannot be sent by book ID"
EPUB_LIKE = frozenset({"EPUB", "FB2", "MOBI", "AZW3"})


class _Settled(Exception):
    """The unit's item was settled (an outcome was added): stop working on it."""


def parse_time(value: Any) -> float | None:
    """An ``Instant`` (ISO 8601) or epoch number as epoch seconds; None if unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def kosync_status(fraction: float) -> str:
    """The status a kosync push leaves (booklore-api.md §3.18 step 3)."""
    pct = fraction * 100
    return "READ" if pct >= 99.5 else "READING" if pct >= 0.25 else "UNREAD"


def by_id_status(fraction: float, current: str | None) -> str | None:
    """The status a push by book id leaves (§3.23 step 3)."""
    pct = fraction * 100
    if pct >= 99.5:
        return "READ"
    if pct > 0.1:
        return "READING"
    keep = {"READING", "RE_READING", "READ", "PARTIALLY_READ", "PAUSED", "ABANDONED",
            "WONT_READ"}
    return current if current in keep else "UNREAD"


class Verdict:
    """What the newest-wins rule decided for one position."""

    def __init__(self, push: bool, reason: str = "") -> None:
        self.push = push
        self.reason = reason


def _own(t: float | None, pushed_at: float | None) -> bool:
    return t is not None and pushed_at is not None and abs(t - pushed_at) <= OWN_WINDOW


def book_times(raw: dict[str, Any], pushed_at: float | None) -> float | None:
    """The newest of the Book's lastReadTime and dateFinished that is not our own push."""
    times = [parse_time(raw.get("lastReadTime")), parse_time(raw.get("dateFinished"))]
    left = [t for t in times if t is not None and not _own(t, pushed_at)]
    return max(left) if left else None


def protection_blocks(unit: ProgressUnit, after: str | None) -> bool:
    """Status protection: a push that would change a status the reader set must be
    later than the moment this client first saw that status."""
    raw = unit.book_raw
    status = raw.get("readStatus") if raw is not None else None
    if status not in PROTECTED or after == status:
        return False
    pos_time = unit.item.payload.get("position_time")
    return pos_time is None or unit.status_seen is None or float(pos_time) <= unit.status_seen


def verdict(w: Worker, unit: ProgressUnit, fraction: float) -> Verdict:
    """Push or "server newer", by koreader-data.md §8.3."""
    item = unit.item
    pos_time = item.payload.get("position_time")
    if unit.book_raw is not None:
        server = book_times(unit.book_raw, unit.pushed_at)
        if protection_blocks(unit, kosync_status(fraction)):
            return Verdict(False, "status protected")
    else:
        w.state.check()
        kp = w.client.get_progress(item.fingerprint)  # 404 "Book not found…" propagates
        server = None
        if kp is not None and kp.timestamp is not None:
            ours = unit.own_push
            own_value = (ours is not None and kp.progress == ours[0]
                         and kp.percentage is not None
                         and abs(float(kp.percentage) - ours[1]) <= 0.00005)
            if not own_value and not _own(float(kp.timestamp), unit.pushed_at):
                server = float(kp.timestamp)
    if server is None:
        return Verdict(True)
    if pos_time is None or float(pos_time) <= server:
        return Verdict(False, "server newer")
    return Verdict(True)


def _server_time(w: Worker) -> float:
    got = getattr(w.client, "last_push_server_time", None)
    t = got() if callable(got) else None
    return float(t) if isinstance(t, (int, float)) else time.time()


def _epub_cfi(unit: ProgressUnit) -> tuple[str | None, str]:
    """The point CFI of the position (the EPUB at hand), or (None, why not)."""
    item = unit.item
    cfi = item.payload.get("cfi")
    if isinstance(cfi, str) and cfi:
        return cfi, ""
    path = item.file_path
    if not path or not str(path).lower().endswith(".epub"):
        return None, "the EPUB file is not at hand"
    from booklore_sync.koreader.cfi import CfiConverter

    try:
        conv = CfiConverter.open(path, None)
    except Exception as exc:  # noqa: BLE001 - a missing or damaged file: skipped with why
        return None, f"the EPUB could not be read: {type(exc).__name__}"
    try:
        res = conv.point(str(item.key["progress"]))
    except Exception as exc:  # noqa: BLE001
        return None, f"the position could not be converted: {type(exc).__name__}"
    finally:
        conv.close()
    return res.cfi, res.reason or "not convertible"


def _skip(w: Worker, unit: ProgressUnit, reason: str, missing: str | None = None) -> None:
    w.add(Skipped("progress", [unit.item], reason=reason, missing_account=missing))
    raise _Settled


def push_by_id(w: Worker, unit: ProgressUnit, fraction: float) -> str | None:
    """The position by book id (§3.23) for a book whose fingerprint the server does
    not know; the status it leaves.  Settles the item (raises _Settled) when it cannot
    go."""
    item = unit.item
    if "booklore" not in w.state.accounts:
        _skip(w, unit, NO_ACCOUNT_BY_ID)
    if unit.book_raw is None:
        _skip(w, unit, NO_BOOK_STATE)
    assert unit.book_raw is not None and item.book_id is not None
    primary = unit.book_raw.get("primaryFile")
    server_type = primary.get("bookType") if isinstance(primary, dict) else None
    local = item.book_type or item.payload.get("book_type")
    if not server_type:
        _skip(w, unit, NO_BOOK_STATE)
    if local and local != server_type:
        _skip(w, unit, ONE_FORMAT.format(server_type))
    cfi = None
    page = None
    if server_type in EPUB_LIKE:
        if server_type != "EPUB":
            _skip(w, unit, NO_POSITION_ROUTE.format(server_type))
        cfi, why = _epub_cfi(unit)
        if cfi is None:
            _skip(w, unit, NO_PROGRESS_CFI.format(why))
    elif server_type in ("PDF", "CBX"):
        raw_page = item.payload.get("page", item.key["progress"])
        try:
            page = int(raw_page)
        except (TypeError, ValueError):
            _skip(w, unit, f"no page number for this {server_type} position")
    else:
        _skip(w, unit, NO_POSITION_ROUTE.format(server_type))
    after = by_id_status(fraction, unit.book_raw.get("readStatus"))
    if protection_blocks(unit, after):
        return None  # settled as server newer by the caller
    if not w.ready("progress", [item], "booklore"):
        raise _Settled
    try:
        w.client.post_book_progress(item.book_id, book_type=str(server_type),
                                    percentage=min(100.0, fraction * 100), cfi=cfi, page=page)
    except E.BookLoreError as exc:
        w.error("progress", [item], exc)
        raise _Settled from None
    return after


def progress_unit(w: Worker, unit: ProgressUnit, device_default: str,
                  sync_off: threading.Event | None = None) -> None:
    """One book: its position (unless already settled), then its KOReader status."""
    try:
        _progress_unit(w, unit, device_default, sync_off or threading.Event())
    except _Settled:
        pass


def _progress_unit(w: Worker, unit: ProgressUnit, device_default: str,
                   sync_off: threading.Event) -> None:
    item = unit.item
    if not w.ready("progress", [item], "koreader"):
        return
    progress = str(item.key["progress"])
    fraction = float(item.key["percentage"])
    sent: dict[str, Any] = dict(item.payload)
    history: dict[str, Any] = {"outcome": SERVER_NEWER, "sent": sent,
                               "expected": {item.id: (progress, fraction)}}
    raw = unit.book_raw
    after: str | None = raw.get("readStatus") if raw is not None else None
    pushed_at = unit.pushed_at
    if not unit.position_settled:
        if sync_off.is_set():
            _skip(w, unit, SYNC_OFF)
        try:
            decided = verdict(w, unit, fraction)
            if decided.push:
                w.state.check()
                w.client.put_progress(
                    item.fingerprint, progress=progress, percentage=fraction,
                    device=item.payload.get("device") or device_default,
                    device_id=item.payload.get("device_id") or device_default)
                pushed_at = sent["pushed_at"] = _server_time(w)
                history["outcome"] = "pushed"
                after = kosync_status(fraction)
        except E.SyncDisabledError:
            sync_off.set()
            _skip(w, unit, SYNC_OFF)
        except E.NotFoundError as exc:
            if isinstance(exc, E.BookNotFoundError) or exc.route_missing \
                    or not exc.message.startswith("Book not found for hash"):
                w.error("progress", [item], exc, not_found="fingerprint")
                return
            if item.book_id is None:
                _skip(w, unit, f"{UNKNOWN_TO_SERVER} ({exc.message[:60]})")
            by_id = push_by_id(w, unit, fraction)
            if by_id is not None:
                pushed_at = sent["pushed_at"] = _server_time(w)
                sent["pushed_by"] = "book_id"
                history["outcome"] = "pushed"
                after = by_id
        except E.BookLoreError as exc:
            w.error("progress", [item], exc, not_found="fingerprint")
            return
    status_part(w, unit, after, pushed_at, sent, history)
    w.add(Synced("progress", [item], defer=True, history=history))


def status_part(w: Worker, unit: ProgressUnit, after: str | None, pushed_at: float | None,
                sent: dict[str, Any], history: dict[str, Any]) -> None:
    """KOReader's complete/abandoned → the server's read status, after the position
    (spec §4.1 "KOReader status").  Records in ``sent`` what was settled."""
    item = unit.item
    target = KO_TO_SERVER.get(str(item.payload.get("status") or ""))
    if target is None or after == target:
        return
    pushed = history["outcome"] == "pushed" and not unit.position_settled
    if item.book_id is None or unit.book_raw is None:
        if pushed:
            sent["status"] = None  # not settled: a later scan queues it again
            return
        _skip(w, unit, "the server's read status of this book could not be read")
    assert unit.book_raw is not None and item.book_id is not None
    times = [book_times(unit.book_raw, pushed_at)]
    if after in PROTECTED and after == unit.book_raw.get("readStatus"):
        times.append(unit.status_seen)
    known = [t for t in times if t is not None]
    server_time = max(known) if known else None
    status_time = item.payload.get("status_time")
    if status_time is None or (server_time is not None and float(status_time) <= server_time):
        return  # the server's status is newer: settled as such
    if "booklore" not in w.state.accounts:
        if pushed:
            sent["status"] = None
            return
        _skip(w, unit, NO_ACCOUNT_STATUS)
    w.state.check()
    try:
        result = w.client.set_read_status(item.book_id, target)
    except E.SkipError as exc:  # no such route on this release
        if pushed:
            sent["status"] = None
            return
        _skip(w, unit, exc.reason)
    except E.BookLoreError as exc:
        if pushed:
            sent["status"] = None
            return
        w.error("progress", [item], exc)
        raise _Settled from None
    stamp = result.date_finished or result.read_status_modified_time
    sent["status_pushed_at"] = stamp.timestamp() if stamp is not None else time.time()
    history["outcome"] = "pushed"

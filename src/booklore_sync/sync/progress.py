"""The progress phase's work unit (HTTP only): the position push of one book
(spec §4.1 "Progress", koreader-data.md §8.3)."""

from __future__ import annotations

from booklore_sync.booklore import errors as E
from booklore_sync.sync.outcomes import Synced
from booklore_sync.sync.plan import ProgressUnit
from booklore_sync.sync.uploads import Worker


# ---------------------------------------------------------------- progress
def progress_unit(w: Worker, unit: ProgressUnit, device_default: str) -> None:
    item = unit.item
    if not w.ready("progress", [item], "koreader"):
        return
    progress = item.key["progress"]
    fraction = float(item.key["percentage"])
    expected = {item.id: (progress, fraction)}
    try:
        if progress_verdict(w, unit, progress, fraction) == "server_ahead":
            w.add(Synced("progress", [item], defer=True,
                         history={"outcome": "server_ahead", "expected": expected}))
            return
        w.state.check()
        w.client.put_progress(
            item.fingerprint, progress=progress, percentage=fraction,
            device=item.payload.get("device") or device_default,
            device_id=item.payload.get("device_id") or device_default)
    except E.BookLoreError as exc:
        w.error("progress", [item], exc, not_found="fingerprint")
        return
    w.add(Synced("progress", [item], defer=True,
                 history={"outcome": "pushed", "expected": expected}))


def progress_verdict(w: Worker, unit: ProgressUnit, progress: str, fraction: float) -> str:
    """'push' or 'server_ahead', by koreader-data.md §8.3."""
    item = unit.item
    if unit.book_raw is not None:
        kp = unit.book_raw.get("koreaderProgress")
        server_pct = kp.get("percentage") if isinstance(kp, dict) else None
        if server_pct is None or float(server_pct) <= fraction * 100 - 0.05:
            return "push"  # settled by this run's lookup: no read needed
    w.state.check()
    server = w.client.get_progress(item.fingerprint)
    if server is None or server.timestamp is None or server.percentage is None:
        return "push"
    ours = unit.own_push
    if ours is not None and server.progress == ours[0] \
            and abs(float(server.percentage) - ours[1]) <= 0.00005:
        return "push"  # the server holds our own last push
    local_time = item.payload.get("position_time")
    newer = local_time is None or server.timestamp > int(local_time)
    if newer and float(server.percentage) > fraction:
        return "server_ahead"
    return "push"

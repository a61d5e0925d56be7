"""Words for results: the one place that turns reports into lines for a person
(the command line, the terminal menu, `watch` and `demo` all use it)."""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from booklore_sync.server_url import reason_only
from booklore_sync.store.queries import LETTERS, QUEUES
from booklore_sync.sync.report import SyncReport

if TYPE_CHECKING:
    from booklore_sync.watch import Cycle

ACCOUNT_LABELS = {"booklore": "BookLore account", "koreader": "KOReader account"}
ACCOUNT_VARS = {"booklore": "BOOKLORE_USERNAME / BOOKLORE_PASSWORD",
                "koreader": "BOOKLORE_KOREADER_USERNAME / BOOKLORE_KOREADER_PASSWORD"}
LOGIN_FIX = "run `booklore-sync login`"
MENU_MATCH_FIX = "use Match Unmatched Books"
QUEUE_NAMES = {"sessions": "Sessions", "annotations": "Annotations", "ratings": "Ratings",
               "bookmarks": "Bookmarks", "progress": "Progress updates"}
_NOTHING_SENT = re.compile(r"\s*\(nothing was sent\)", re.I)


def for_menu(line: str) -> str:
    """In the menu, point to its own entry instead of the command."""
    return line.replace("run `booklore-sync match`", MENU_MATCH_FIX)


def _offline_detail(report: SyncReport) -> str:
    for m in report.messages:
        if m.startswith("offline — nothing sent (") and m.endswith(")"):
            return _NOTHING_SENT.sub("", m[len("offline — nothing sent ("):-1])
    return ""


def sync_problems(report: SyncReport, url: str | None) -> list[str]:
    """One line per problem class that stopped items, each with its fix (stderr)."""
    lines: list[str] = []
    if report.locked:
        return [f"Error: {m}" if not m.startswith("Error") else m for m in report.messages]
    if report.offline:
        detail = reason_only(_offline_detail(report), url)
        where = url or "the server"
        lines.append(f"Offline: cannot reach {where}" + (f" ({detail})" if detail else "")
                     + "; nothing was sent.")
    for m in report.messages:
        if m.startswith("offline — "):
            continue
        lines.append(m)
    lines += [f"Error: {e}" for e in report.config_errors]
    for account in sorted(report.missing_accounts):
        lines.append(f"Error: the {ACCOUNT_LABELS[account]} is not configured, so the items "
                     f"that need it stay queued; {LOGIN_FIX} (or set {ACCOUNT_VARS[account]}).")
    for _account, message in sorted(report.rejected_accounts.items()):
        text = message.rstrip(".")
        lines.append(f"Error: {text}; {LOGIN_FIX}." if LOGIN_FIX not in text else f"Error: {text}")
    return lines


def queue_lines(report: SyncReport) -> list[str]:
    """``S: 12 synced, 1 failed, 2 skipped`` for each queue that had anything."""
    return [f"{LETTERS[q]}: {counts}" for q in QUEUES
            if (counts := report.queues[q].counts_text()) is not None]


def reason_lines(report: SyncReport) -> list[str]:
    """Each distinct failure or skip reason once, over all queues, with its count."""
    failed: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    for q in QUEUES:
        failed.update(report.queues[q].fail_reasons)
        skipped.update(report.queues[q].skip_reasons)
    rejected = {a for a in report.rejected_accounts}
    lines = []
    for why, n in failed.most_common():
        if rejected and any(ACCOUNT_LABELS[a].split()[0] in why for a in rejected):
            continue  # said once above, with its fix
        lines.append(f"  {n} failed: {why}")
    for why, n in skipped.most_common():
        lines.append(f"  {n} skipped: {why}")
    return lines


def sync_summary(report: SyncReport) -> list[str]:
    lines = queue_lines(report)
    if not lines:
        return ["Nothing to sync: all queues are empty."]
    return lines + reason_lines(report)


def toast(report: SyncReport) -> str:
    skipped = sum(report.queues[q].skipped for q in QUEUES)
    return f"Synced {report.synced} items, {report.failed} failed, {skipped} skipped."


def dry_run_lines(data: dict[str, Any]) -> list[str]:
    lines = []
    for q in QUEUES:
        c = data[q]
        if c["would_send"] or c["already_there"] or c["skipped"]:
            lines.append(f"{LETTERS[q]}: would send {c['would_send']}, already there "
                         f"{c['already_there']}, skipped {c['skipped']}")
    return lines or ["Nothing would be sent: all queues are empty."]


# ------------------------------------------------------------------ status
def status_text(data: dict[str, Any]) -> str:
    cache = data["book_cache"]
    lines = [
        "Book cache",
        f"  Total books seen: {cache['total']}",
        f"  Matched:          {cache['matched']}",
        f"  Unmatched:        {cache['unmatched']}",
        "Pending uploads",
    ]
    width = max(len(n) for n in QUEUE_NAMES.values()) + 1
    for q in QUEUES:
        lines.append(f"  {(QUEUE_NAMES[q] + ':').ljust(width)} {data['pending'][q]}")
    lines += ["Progress history", f"  Synced progress rows: {data['progress_history']}"]
    if not cache["total"] and any(data["pending"].values()):
        lines.append("The book cache is empty: run `booklore-sync scan SOURCE` to rebuild it.")
    books = data.get("books")
    if books is not None:
        lines.append("Pending items")
        if not books:
            lines.append("  (none)")
        for book in books:
            lines += book_lines(book)
    uploaders = data.get("uploaders")
    if uploaders:
        lines.append("Other uploaders on the device")
        lines += [f"  {text}" for text in uploaders]
    return "\n".join(lines)


def book_lines(book: dict[str, Any]) -> list[str]:
    """At most 6 lines: a header, then one line per non-empty queue."""
    where = f"BookLore {book['book_id']}" if book.get("book_id") is not None else "unmatched"
    out = [f"  {book['title'] or book['fingerprint']}  [{book['fingerprint'][:8]}]  {where}"]
    for q in QUEUES:
        n = book["pending"].get(q, 0)
        if not n:
            continue
        reasons = [r for r in book["reasons"] if r["queue"] == q]
        why = "; ".join(f"{r['reason']} ({r['count']})" if len(reasons) > 1 or r["count"] > 1
                        else r["reason"] for r in reasons)
        retries = book.get("max_retries", {}).get(q, 0)
        out.append(f"    {q}: {n}, retries up to {retries} — {why}")
    return out


def match_summary(matched: int, still_unmatched: int) -> str:
    return f"{matched} newly matched, {still_unmatched} still unmatched."


# ------------------------------------------------------------------ clearing
HISTORY_LABELS = {  # Advanced → Clear…'s ledgers, in the menu's order
    "sessions": "Historical sessions",
    "annotations": "Synced annotations",
    "bookmarks": "Synced bookmarks",
    "ratings": "Rating sync history",
    "progress": "Synced progress",
    "discarded": "Discarded items (Clear Pending list)",
}


def pending_cleared(queue: str, count: int) -> str:
    """Clear Pending's line for one queue (§4.4)."""
    return f"Cleared {count} pending {queue}."


def history_cleared(ledger: str, count: int) -> str:
    """Advanced → Clear…'s line for one ledger (§4.5)."""
    return f"Cleared {count} rows of {HISTORY_LABELS[ledger].lower()}."


def cache_cleared(books: int, links_kept: int) -> str:
    """Clear Cache's message (§4.6), the same in the terminal, the menu and the page."""
    what = "1 book" if books == 1 else f"{books} books"
    kept = "1 manual link is" if links_kept == 1 else f"{links_kept} manual links are"
    return f"Cleared the book cache ({what}); {kept} kept. Run `booklore-sync scan` to rebuild it."


# ------------------------------------------------------------------ watch cycles
def cycle_parts(cycle: Cycle) -> tuple[str, list[str]]:
    """(the scan part, the sync and accounts parts) of one watch cycle."""
    scan = cycle.scan
    if scan.failure is not None:
        scan_part = f"scan failed: {scan.failure}"
    elif scan.problem is not None:
        scan_part = f"scan: {scan.problem}"
    else:
        scan_part = f"scan: {scan.books} books, {scan.new} new items"
        if scan.errors:
            names = ", ".join(f"{e['file']} ({e['error']})" for e in scan.errors[:5])
            more = f" and {len(scan.errors) - 5} more" if len(scan.errors) > 5 else ""
            scan_part += f", unreadable: {names}{more}"
    report = cycle.report
    if report.locked:
        return scan_part, ["sync: skipped (another sync is running)"]
    if report.offline:
        return scan_part, [f"sync: server away at {cycle.url}, retrying in {cycle.retry_in} s"]
    if report.config_errors and not report.synced:
        return scan_part, ["sync: " + "; ".join(report.config_errors)]
    rest = ["sync: " + "; ".join(sync_summary(report)).replace("  ", " ")]
    if report.missing_accounts or report.rejected_accounts:
        rest.append("accounts: " + ", ".join(
            [f"{a} not configured" for a in sorted(report.missing_accounts)]
            + list(report.rejected_accounts.values())))
    return scan_part, rest


def cycle_line(cycle: Cycle) -> str:
    """``watch``'s line for a cycle: the time, then the parts joined by `` | ``."""
    scan, rest = cycle_parts(cycle)
    return f"{cycle.time} " + " | ".join([scan, *rest])


def cycle_json(cycle: Cycle) -> str:
    """``watch --json``'s line for a cycle."""
    import json

    return json.dumps({"time": cycle.time, "scan": cycle.scan.json,
                       "sync": cycle.report.to_json()})

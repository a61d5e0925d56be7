"""The outcome of a sync run: per-queue counts, reasons, exit code (spec §4.1, §6.3, §6.4)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from booklore_sync.booklore.errors import SyncDisabledError
from booklore_sync.booklore.texts import TEXT_COLUMN_BYTES
from booklore_sync.store.queries import LETTERS, QUEUES

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_OFFLINE, EXIT_LOCKED = 0, 1, 2, 3, 4


@dataclass
class QueueTally:
    synced: int = 0
    failed: int = 0
    skipped: int = 0
    fail_reasons: Counter[str] = field(default_factory=Counter)
    skip_reasons: Counter[str] = field(default_factory=Counter)

    def counts_text(self) -> str | None:
        """``12 synced, 1 failed, 2 skipped`` (None when the queue had nothing)."""
        if not (self.synced or self.failed or self.skipped):
            return None
        parts = [f"{self.synced} synced"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        return ", ".join(parts)

    def as_json(self) -> dict[str, int]:
        return {"synced": self.synced, "failed": self.failed, "skipped": self.skipped}


@dataclass
class SyncReport:
    queues: dict[str, QueueTally] = field(default_factory=lambda: {q: QueueTally() for q in QUEUES})
    offline: bool = False
    locked: bool = False
    server_lost: bool = False
    missing_accounts: set[str] = field(default_factory=set)
    rejected_accounts: dict[str, str] = field(default_factory=dict)  # account -> message
    config_errors: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    newly_matched: int = 0
    sync_disabled: bool = False  # KOReader's Sync switch is off: progress skipped (exit 2)

    # items delivered with a text cut to fit (spec §4.1 "Long text"):
    # {"queue", "id", "fingerprint", "datetime"}
    cut: list[dict[str, Any]] = field(default_factory=list)
    _cut_line: int | None = field(default=None, repr=False)

    def note_cut(self, queue: str, items: Any) -> None:
        """Record items whose text was cut; one message line says how many."""
        for item in items:
            self.cut.append({"queue": queue, "id": item.id, "fingerprint": item.fingerprint,
                             "datetime": (item.key or {}).get("datetime")})
        n = len(self.cut)
        line = (f"{n} note{'s' if n != 1 else ''} cut to fit the server's "
                f"{TEXT_COLUMN_BYTES:,}-byte text limit (marked \"… [cut by booklore-sync]\")")
        if self._cut_line is None:
            self._cut_line = len(self.messages)
            self.messages.append(line)
        else:
            self.messages[self._cut_line] = line

    def note_sync_off(self) -> None:
        """Say once that the KOReader account's Sync switch is off (an account
        problem: exit 2, spec §6.3); the items carry the reason with the fix."""
        line = ("Error: Sync is switched off for the KOReader account on the server, "
                "so reading positions stay queued")
        if line not in self.messages:
            self.messages.append(line)

    @property
    def sync_off(self) -> bool:
        """Progress was skipped because the KOReader account's Sync switch is off
        (spec §4.1: `sync` then ends with exit 2)."""
        return any(SyncDisabledError.REASON in why
                   for t in self.queues.values() for why in t.skip_reasons)

    def merge(self, other: SyncReport) -> None:
        for q in QUEUES:
            mine, theirs = self.queues[q], other.queues[q]
            mine.synced += theirs.synced
            mine.failed += theirs.failed
            mine.skipped += theirs.skipped
            mine.fail_reasons.update(theirs.fail_reasons)
            mine.skip_reasons.update(theirs.skip_reasons)
        self.offline |= other.offline
        self.sync_disabled |= other.sync_disabled
        self.server_lost |= other.server_lost
        self.missing_accounts |= other.missing_accounts
        self.rejected_accounts.update(other.rejected_accounts)
        self.config_errors += other.config_errors
        for entry in other.cut:
            self.cut.append(entry)
        self.messages += other.messages

    @property
    def failed(self) -> int:
        return sum(t.failed for t in self.queues.values())

    @property
    def synced(self) -> int:
        return sum(t.synced for t in self.queues.values())

    @property
    def exit_code(self) -> int:
        if self.locked:
            return EXIT_LOCKED
        if self.offline:
            return EXIT_OFFLINE
        if (self.missing_accounts or self.rejected_accounts or self.config_errors
                or self.sync_disabled or self.sync_off):
            return EXIT_USAGE
        if self.failed:
            return EXIT_FAILED
        return EXIT_OK

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {q: self.queues[q].as_json() for q in QUEUES}
        data["offline"] = self.offline
        if self.cut:
            data["cut"] = [dict(c) for c in self.cut]  # an extra key (spec §6.4)
        return data

    def summary_lines(self) -> list[str]:
        """``S: 12 synced, 1 failed`` … one line per queue that had anything."""
        lines = []
        for q in QUEUES:
            t = self.queues[q]
            counts = t.counts_text()
            if counts is None:
                continue
            line = f"{LETTERS[q]}: {counts}"
            reasons = [f"{n}× {r}" if n > 1 else r for r, n in t.fail_reasons.most_common(3)]
            reasons += [f"skipped: {n}× {r}" if n > 1 else f"skipped: {r}"
                        for r, n in t.skip_reasons.most_common(3)]
            if reasons:
                line += " (" + "; ".join(reasons) + ")"
            lines.append(line)
        if not lines:
            lines.append("Nothing to sync: all queues are empty.")
        return lines

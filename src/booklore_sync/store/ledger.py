"""Synced history (the ledger) and the engine's updates of queue rows (spec §2, §3, §4.1,
§4.4, §4.5).

A confirmed upload moves its queue rows into synced history in one
transaction, recording the server's ID of the item where there is one, what
was sent, and how it was settled (:class:`~booklore_sync.common.vocab.Settlement`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

from booklore_sync.common.vocab import (
    QUEUE_BY_NAME,
    RECONCILE_KIND_OF_LEDGER,
    QueueState,
    Settlement,
)
from booklore_sync.store import queries
from booklore_sync.store.core import StoreCore
from booklore_sync.store.edits import TEXT_NOT_SENT, edit_payload, ledger_rows
from booklore_sync.store.queries import HISTORY_TABLES, KEY_COLUMNS, QUEUE_TABLES, QUEUES
from booklore_sync.store.types import key_text, utcnow

_SETTLED = ("COALESCE(:settled, CASE :outcome WHEN 'server_ahead' THEN 'server_newer'"
            " ELSE 'uploaded' END)")
# queue → (history table, its columns, the SELECT list that fills them from a queue row)
_HISTORY_COPY: dict[str, tuple[str, str, str]] = {
    "sessions": ("historical_sessions",
                 "fingerprint, start_epoch, book_id, payload, remote_id, sent, settled,"
                 " synced_at",
                 f"fingerprint, start_epoch, :book_id, payload, :remote_id, :sent, {_SETTLED},"
                 " :now"),
    "annotations": ("synced_annotations",
                    "fingerprint, datetime, kind, position, destination, book_id, remote_id,"
                    " sent, settled, synced_at",
                    "fingerprint, datetime, kind, position, :destination, :book_id, :remote_id,"
                    f" COALESCE(:sent, payload), {_SETTLED}, :now"),
    "bookmarks": ("synced_bookmarks",
                  "fingerprint, datetime, book_id, remote_id, sent, settled, synced_at",
                  f"fingerprint, datetime, :book_id, :remote_id, COALESCE(:sent, payload),"
                  f" {_SETTLED}, :now"),
    "ratings": ("rating_sync_history",
                "fingerprint, rating, book_id, remote_id, sent, settled, synced_at",
                f"fingerprint, rating, :book_id, :remote_id, :sent, {_SETTLED}, :now"),
    "progress": ("synced_koreader_progress",
                 "fingerprint, progress, percentage, outcome, remote_id, sent, settled,"
                 " synced_at",
                 f"fingerprint, progress, percentage, :outcome, :remote_id,"
                 f" COALESCE(:sent, payload), {_SETTLED}, :now"),
}
_IN_FLIGHT = QueueState.IN_FLIGHT.value
_UNCERTAIN = QueueState.UNCERTAIN.value
_PENDING = QueueState.PENDING.value


def _json_ids(ids: Sequence[int]) -> str:
    return json.dumps(list(ids))


def _settled_text(settled: Settlement | str | None) -> str | None:
    return None if settled is None else Settlement(settled).value


def _sent_text(sent: Any) -> str | None:
    if sent is None or isinstance(sent, str):
        return sent
    return json.dumps(sent, ensure_ascii=False, sort_keys=True)


class LedgerMixin(StoreCore):
    # -------------------------------------------------------- engine updates
    @property
    def in_transaction(self) -> bool:
        """Whether a transaction is open on this connection (another thread's writes
        would have to wait for its end)."""
        return self._conn.in_transaction

    def set_state(self, queue: str, ids: Sequence[int], state: str) -> None:
        """Durably mark rows 'pending', 'in_flight' or 'uncertain'.

        'in_flight' records the time (the request is about to be sent);
        'uncertain' records when the outcome became unknown (``abandoned_at``,
        kept from an earlier mark: the first abandonment counts); 'pending'
        clears both.
        """
        if not ids:
            return
        state = QueueState(state).value
        with self.transaction():
            self._execute(
                f"UPDATE {QUEUE_TABLES[queue]} SET state = :state,"
                " in_flight_at = CASE :state WHEN :in_flight THEN :now"
                "   WHEN :pending THEN NULL ELSE in_flight_at END,"
                " abandoned_at = CASE :state WHEN :uncertain THEN COALESCE(abandoned_at, :now)"
                "   ELSE NULL END"
                " WHERE id IN (SELECT value FROM json_each(:ids))",
                {"state": state, "now": utcnow(), "ids": _json_ids(ids), "in_flight": _IN_FLIGHT,
                 "pending": _PENDING, "uncertain": _UNCERTAIN})

    def record_attempt(self, queue: str, ids: Sequence[int], *, error: str | None,
                       status: int | None = None, count_attempt: bool = True,
                       state: str | None = _PENDING) -> None:
        """A failed (or inconclusive) attempt: the rows stay queued with the reason.

        ``state`` 'uncertain' records when the outcome became unknown; 'pending'
        clears the in-flight and abandonment times; None keeps state and times.
        """
        if not ids:
            return
        inc = 1 if count_attempt else 0
        with self.transaction():
            self._execute(
                f"UPDATE {QUEUE_TABLES[queue]} SET retry_count = retry_count + :inc,"
                " last_attempt_at = CASE WHEN :inc THEN :now ELSE last_attempt_at END,"
                " last_error = :error, last_status = :status, state = COALESCE(:state, state),"
                " in_flight_at = CASE :state WHEN :pending THEN NULL ELSE in_flight_at END,"
                " abandoned_at = CASE :state WHEN :pending THEN NULL"
                "   WHEN :uncertain THEN COALESCE(abandoned_at, :now) ELSE abandoned_at END"
                " WHERE id IN (SELECT value FROM json_each(:ids))",
                {"inc": inc, "now": utcnow(), "error": error, "status": status, "state": state,
                 "pending": _PENDING, "uncertain": _UNCERTAIN, "ids": _json_ids(ids)})

    def record_skip(self, queue: str, ids: Sequence[int], reason: str) -> None:
        """Not attempted through no failure: retry_count unchanged, reason kept."""
        if not ids:
            return
        with self.transaction():
            self._execute(f"UPDATE {QUEUE_TABLES[queue]} SET last_error = ?"
                          " WHERE id IN (SELECT value FROM json_each(?))",
                          (reason, _json_ids(ids)))

    def mark_annotation_part(self, item_id: int, part: str, *, book_id: int | None,
                             remote_id: int | None = None,
                             settled: Settlement | str | None = None) -> None:
        """Record one half of a 'both' note as delivered (spec koreader-data §6.7)."""
        with self.transaction():
            row = self._execute("SELECT * FROM pending_annotations WHERE id = ?",
                                (item_id,)).fetchone()
            if row is None:
                return
            parts = json.loads(row["done_parts"])
            if part not in parts:
                parts.append(part)
            self._execute("UPDATE pending_annotations SET done_parts = ? WHERE id = ?",
                          (json.dumps(parts), item_id))
            self._execute(
                "INSERT OR IGNORE INTO synced_annotations(fingerprint, datetime, kind, position,"
                " destination, book_id, remote_id, sent, settled, synced_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                (row["fingerprint"], row["datetime"], row["kind"], row["position"], part,
                 book_id, remote_id, row["payload"],
                 _settled_text(settled) or Settlement.UPLOADED.value, utcnow()))

    def move_to_history(self, queue: str, ids: Sequence[int], *, book_id: int | None = None,
                        destination: str | None = None, remote_id: int | None = None,
                        outcome: str = "pushed",
                        expected: dict[int, tuple[Any, ...]] | None = None,
                        settled: Settlement | str | None = None, sent: Any = None,
                        parts: dict[str, dict[str, Any]] | None = None) -> int:
        """Upload settled: copy the rows into synced history and delete them, atomically.

        ``settled`` says how (default: uploaded; for progress, ``outcome``
        'server_ahead' means server newer); ``sent`` is the version or text
        sent (default: the queued payload; for sessions and ratings, whose
        history rows hold the value itself, nothing more).  ``expected`` maps a
        row id to the key values that were sent (ratings, progress): a row whose
        value changed meanwhile (a scan queued a newer one) stays queued, since
        that newer value was not sent.  ``parts`` (annotations queued as updates of
        the server's items, spec §4.1 "Edits"): per destination, the ``sent``
        version, the server's ``remote_id`` and how it was ``settled`` (None: as
        before), recorded on that destination's ledger row.
        """
        if not ids:
            return 0
        if parts is not None and queue == "annotations":
            return self._settle_update(ids, book_id, parts)
        table = QUEUE_TABLES[queue]
        history, columns, values = _HISTORY_COPY[queue]
        with self.transaction():
            if expected is not None:
                cols = KEY_COLUMNS[queue]
                rows = self._execute(
                    f"SELECT id, {', '.join(cols)} FROM {table}"
                    " WHERE id IN (SELECT value FROM json_each(?))", (_json_ids(ids),))
                ids = [r["id"] for r in rows
                       if r["id"] not in expected
                       or tuple(r[c] for c in cols) == tuple(expected[r["id"]])]
                if not ids:
                    return 0
            params = {"ids": _json_ids(ids), "book_id": book_id, "remote_id": remote_id,
                      "destination": destination or "annotation", "outcome": outcome,
                      "settled": _settled_text(settled), "sent": _sent_text(sent),
                      "now": utcnow()}
            self._execute(
                f"INSERT OR IGNORE INTO {history}({columns}) SELECT {values} FROM {table}"
                " WHERE id IN (SELECT value FROM json_each(:ids)) ORDER BY id", params)
            return self._execute(f"DELETE FROM {table} WHERE id IN (SELECT value FROM"
                                 " json_each(?))", (params["ids"],)).rowcount

    def _settle_update(self, ids: Sequence[int], book_id: int | None,
                       parts: dict[str, dict[str, Any]]) -> int:
        """An annotation update settled: its ledger rows now hold the version sent
        (the row of a destination not yet in the ledger is added).  A change that
        could not be sent (a highlight's text) stays queued with its reason."""
        now = utcnow()
        moved = 0
        with self.transaction():
            for item_id in ids:
                row = self._execute("SELECT * FROM pending_annotations WHERE id = ?",
                                    (item_id,)).fetchone()
                if row is None:
                    continue
                key = (row["fingerprint"], row["datetime"], row["kind"], row["position"])
                for dest, info in parts.items():
                    values = (_sent_text(info.get("sent")) or row["payload"],
                              info.get("remote_id"), _settled_text(info.get("settled")), now)
                    done = self._execute(
                        "UPDATE synced_annotations SET sent = ?, remote_id = COALESCE(?, remote_id),"
                        " settled = COALESCE(?, settled), synced_at = ?, book_id = COALESCE(?,"
                        " book_id) WHERE fingerprint = ? AND datetime = ? AND kind = ?"
                        " AND position = ? AND destination = ?",
                        (*values, book_id, *key, dest)).rowcount
                    if not done:
                        self._execute(
                            "INSERT OR IGNORE INTO synced_annotations(sent, remote_id, settled,"
                            " synced_at, book_id, fingerprint, datetime, kind, position,"
                            " destination) VALUES (?, ?, COALESCE(?, 'uploaded'), ?,?,?,?,?,?,?)",
                            (*values, book_id, *key, dest))
                # what the server could not take (a highlight's text) stays queued, told
                rest = edit_payload(json.loads(row["payload"]),
                                    ledger_rows(self._conn, [key]).get(key, []))
                if rest is None:
                    self._execute("DELETE FROM pending_annotations WHERE id = ?", (item_id,))
                else:
                    self._execute(
                        "UPDATE pending_annotations SET payload = ?, last_error = ?,"
                        " state = ?, in_flight_at = NULL, abandoned_at = NULL WHERE id = ?",
                        (json.dumps(rest, ensure_ascii=False, sort_keys=True), TEXT_NOT_SENT,
                         _PENDING, item_id))
                moved += 1
        return moved

    def move_many_to_history(self, queue: str,
                             moves: Sequence[tuple[Sequence[int], dict[str, Any]]]) -> int:
        """Several settled uploads (ids, move_to_history keywords) in one transaction.

        Moves that differ only in their ``remote_id`` share one statement: the ids
        and remote ids travel as a JSON array of pairs.
        """
        groups: dict[tuple[Any, ...], list[list[Any]]] = {}
        singles = []
        for ids, kw in moves:
            if any(kw.get(k) is not None for k in ("expected", "sent", "parts")):
                singles.append((ids, kw))
                continue
            key = (kw.get("book_id"), kw.get("destination"), kw.get("outcome", "pushed"),
                   _settled_text(kw.get("settled")))
            groups.setdefault(key, []).extend([i, kw.get("remote_id")] for i in ids)
        table = QUEUE_TABLES[queue]
        history, columns, values = _HISTORY_COPY[queue]
        values = values.replace(":remote_id", "json_extract(j.value, '$[1]')")
        moved = 0
        with self.transaction():
            for (book_id, destination, outcome, settled), pairs in groups.items():
                params = {"pairs": json.dumps(pairs), "book_id": book_id,
                          "destination": destination or "annotation", "outcome": outcome,
                          "settled": settled, "sent": None, "now": utcnow()}
                self._execute(
                    f"INSERT OR IGNORE INTO {history}({columns}) SELECT {values} FROM {table} q"
                    " JOIN json_each(:pairs) j ON q.id = json_extract(j.value, '$[0]')"
                    " ORDER BY q.id",
                    params)
                moved += self._execute(
                    f"DELETE FROM {table} WHERE id IN (SELECT json_extract(value, '$[0]')"
                    " FROM json_each(?))", (params["pairs"],)).rowcount
            for ids, kw in singles:
                moved += self.move_to_history(queue, ids, **kw)
        return moved

    # ------------------------------------------------------------- settled values
    @staticmethod
    def _settled_value(queue: str, values: Sequence[Any]) -> tuple[Any, ...]:
        """A latest-value queue's key values as stored in history, normalised."""
        if queue == "ratings":
            return (int(values[0]),)
        return (values[0], float(values[1]))

    def last_synced_rating(self, fingerprint: str) -> int | None:
        row = self._execute(
            "SELECT rating FROM rating_sync_history WHERE fingerprint = ?"
            " ORDER BY id DESC LIMIT 1", (fingerprint,)).fetchone()
        return None if row is None else int(row[0])

    def last_synced_progress(self, fingerprint: str, *, pushed_only: bool = False
                             ) -> tuple[str, float] | None:
        extra = " AND outcome = 'pushed'" if pushed_only else ""
        row = self._execute(
            "SELECT progress, percentage FROM synced_koreader_progress WHERE fingerprint = ?"
            f"{extra} ORDER BY id DESC LIMIT 1", (fingerprint,)).fetchone()
        return None if row is None else (row[0], float(row[1]))

    def progress_record(self, fingerprint: str) -> dict[str, Any]:
        """What synced progress remembers of this client's pushes for a book
        (koreader-data §8.3): ``pushed_at`` — the server's time of the last recorded
        push (position or status), ``status`` — the KOReader status last settled."""
        out: dict[str, Any] = {"pushed_at": None, "status": None}
        rows = self._execute(
            "SELECT sent FROM synced_koreader_progress WHERE fingerprint = ?"
            " ORDER BY id DESC LIMIT 50", (fingerprint,)).fetchall()
        for i, (sent,) in enumerate(rows):
            try:
                data = json.loads(sent) if sent else {}
            except ValueError:
                data = {}
            if not isinstance(data, dict):
                continue
            if i == 0:
                out["status"] = data.get("status")
            times = [t for t in (data.get("pushed_at"), data.get("status_pushed_at"))
                     if isinstance(t, (int, float))]
            if times:
                out["pushed_at"] = float(max(times))
                break
        return out

    # ------------------------------------------------------------------ clear
    def clear_pending(self, queues: Iterable[str]) -> dict[str, int]:
        """Clear Pending (§4.4): delete the queues, remembering their keys as discarded."""
        out: dict[str, int] = {}
        now = utcnow()
        with self.transaction():
            for q in queues:
                table = QUEUE_TABLES[q]
                cols = KEY_COLUMNS[q]
                rows = self._execute(
                    f"SELECT fingerprint, {', '.join(cols)} FROM {table}").fetchall()
                self._conn.executemany(
                    "INSERT OR IGNORE INTO discarded_items(queue, item_key, discarded_at)"
                    " VALUES (?,?,?)",
                    [(q, key_text(r[0], [r[c] for c in cols]), now) for r in rows])
                out[q] = self._execute(f"DELETE FROM {table}").rowcount
        return out

    def clear_history(self, ledgers: Iterable[str]) -> dict[str, int]:
        """Advanced → Clear (§4.5): synced-history ledgers and/or the discard list
        ('discarded').  Clearing sessions, annotations or bookmarks also forgets the
        reconciliation records of that kind (sessions; book notes; PDF bookmarks)."""
        out: dict[str, int] = {}
        with self.transaction():
            for name in ledgers:
                table = "discarded_items" if name == "discarded" else HISTORY_TABLES[name]
                out[name] = self._execute(f"DELETE FROM {table}").rowcount
                kind = RECONCILE_KIND_OF_LEDGER.get(name)
                if kind is not None:
                    self._execute("DELETE FROM reconciliations WHERE kind = ?", (kind.value,))
            self._execute("UPDATE store_meta SET value = CAST(value AS INTEGER) + 1"
                          " WHERE key = 'history_generation'")
        return out

    def history_generation(self) -> int:
        """Goes up whenever synced history or the discard list is cleared: what was
        skipped as 'already synced' or 'discarded' may be queued again."""
        value = self._meta("history_generation")
        return int(value) if value is not None else 0

    # ------------------------------------------------------------------ read
    def counts(self) -> dict[str, int]:
        return queries.queue_counts(self._conn)

    def progress_history_count(self) -> int:
        return queries.progress_history_count(self._conn)

    def history_counts(self) -> dict[str, int]:
        out = {q: int(self._execute(f"SELECT COUNT(*) FROM {HISTORY_TABLES[q]}").fetchone()[0])
               for q in QUEUES}
        out["discarded"] = int(
            self._execute("SELECT COUNT(*) FROM discarded_items").fetchone()[0])
        return out

    def session_ranges(self, fingerprint: str) -> list[tuple[int, int]]:
        """(start, end) epochs of the sessions queued or synced for a book."""
        out = []
        for queue in ("pending_sessions", "historical_sessions"):
            for start, payload in self._execute(
                    f"SELECT start_epoch, payload FROM {queue} WHERE fingerprint = ?",
                    (fingerprint,)):
                end = _epoch(json.loads(payload).get("endTime"))
                if end is not None:
                    out.append((int(start), end))
        return out

    def remote_ids(self, queue: str, book_id: int) -> set[int]:
        """Server ids of the v1 book notes (queue 'annotations') or bookmarks (queue
        'bookmarks') this store has recorded as delivered for a book: an earlier
        upload's unknown outcome is resolved only against the server's other items."""
        if queue == "bookmarks":
            sql = ("SELECT remote_id FROM synced_bookmarks WHERE book_id = ?"
                   " AND remote_id IS NOT NULL")
        else:
            sql = ("SELECT remote_id FROM synced_annotations WHERE book_id = ?"
                   " AND destination IN ('book_note', 'both') AND remote_id IS NOT NULL")
        return {int(r[0]) for r in self._execute(sql, (book_id,))}

    def settlements(self, queue: str) -> dict[str, int]:
        """How the rows of a ledger were settled: count per Settlement value."""
        table = QUEUE_BY_NAME[queue].history_table
        return {str(r[0]): int(r[1]) for r in self._execute(
            f"SELECT settled, COUNT(*) FROM {table} GROUP BY settled ORDER BY settled")}


def _epoch(text: Any) -> int | None:
    """``YYYY-MM-DDTHH:MM:SSZ`` as epoch seconds (None if absent or malformed)."""
    if not isinstance(text, str):
        return None
    try:
        return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
                   .replace(tzinfo=timezone.utc).timestamp())
    except ValueError:
        return None

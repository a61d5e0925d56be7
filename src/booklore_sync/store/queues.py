"""The five upload queues: enqueue (one implementation), and reading them.

There is one set of enqueue rules (spec §3: natural keys; already queued /
already synced / discarded; the CFI refresh of unconvertible annotations and
bookmarks; latest value wins for ratings and progress), written once in
:meth:`QueuesMixin._apply_keyed` and :meth:`QueuesMixin._apply_latest`, which
take a batch of rows.  ``enqueue_session`` and the other single methods are a
batch of one; ``enqueue_many`` feeds them many rows in a few statements.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from booklore_sync.common.vocab import QUEUE_BY_NAME
from booklore_sync.store.edits import edit_payload, ledger_rows, queued_edit
from booklore_sync.store.ledger import LedgerMixin
from booklore_sync.store.queries import KEY_COLUMNS, QUEUES
from booklore_sync.store.queue_rows import (
    PENDING,
    Row,
    batchable,
    insert_sql,
    payload_json,
    run_ops,
    split,
    status_of,
    wants_cfi_refresh,
)
from booklore_sync.store.types import (
    ALREADY_QUEUED,
    ALREADY_SYNCED,
    DISCARDED,
    QUEUED,
    UPDATED,
    QueueItem,
    key_text,
    utcnow,
)


def _dict(payload: dict[str, Any] | None, pjson: str) -> dict[str, Any]:
    """A row's payload: a batch row may leave it out (None), its JSON is the same data
    (the scan's worker processes send the JSON only)."""
    if payload is not None:
        return payload
    out = json.loads(pjson)
    return out if isinstance(out, dict) else {}


class QueuesMixin(LedgerMixin):
    _MANY_CHUNK = 400

    # --------------------------------------------------------------- enqueue
    def enqueue_session(self, fingerprint: str, start_epoch: int, payload: dict[str, Any]) -> str:
        return self._enqueue_one("sessions", (fingerprint, start_epoch, payload))

    def enqueue_annotation(self, fingerprint: str, datetime: str, kind: str, position: str,
                           payload: dict[str, Any], last_error: str | None = None) -> str:
        return self._enqueue_one(
            "annotations", (fingerprint, datetime, kind, position, payload, last_error))

    def enqueue_bookmark(self, fingerprint: str, datetime: str, payload: dict[str, Any],
                         last_error: str | None = None) -> str:
        return self._enqueue_one("bookmarks", (fingerprint, datetime, payload, last_error))

    def enqueue_rating(self, fingerprint: str, rating: int,
                       payload: dict[str, Any] | None = None) -> str:
        return self._enqueue_one("ratings", (fingerprint, rating, payload))

    def enqueue_progress(self, fingerprint: str, progress: str, percentage: float,
                         payload: dict[str, Any] | None = None) -> str:
        return self._enqueue_one("progress", (fingerprint, progress, percentage, payload))

    def _enqueue_one(self, queue: str, row: Sequence[Any]) -> str:
        fp, keys, payload, last_error = split(queue, row)
        with self.transaction():
            return self._apply(queue, [(fp, keys, payload, payload_json(payload), last_error)])[0]

    def enqueue_many(self, queue: str, rows: Iterable[Sequence[Any]]) -> list[str]:
        """Many ``enqueue_<queue>`` calls in a few statements; their outcomes, in order.

        Each row holds the positional arguments of the single method, fingerprint
        first (``enqueue_annotation``: fingerprint, datetime, kind, position,
        payload[, last_error]; ``enqueue_bookmark``: fingerprint, datetime,
        payload[, last_error]; ``enqueue_session``: fingerprint, start_epoch,
        payload; ``enqueue_rating``: fingerprint, rating[, payload];
        ``enqueue_progress``: fingerprint, progress, percentage[, payload]).
        The rules are the single methods' own (they share one implementation),
        duplicates within the batch included.  Rows whose values are not of
        their columns' natural types go alone, in their place in the order, so
        they fail where a single call fails.  ``created_at`` is read once per
        batch.
        """
        # one lookup binds up to 6 values a row: stay under SQLite's variable limit
        chunk = max(1, min(self._MANY_CHUNK, self._conn.getlimit(
            sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 8))
        out: list[str] = []
        batch: list[Row] = []
        for row in rows:
            norm = batchable(queue, row)
            if (norm is None or len(batch) >= chunk) and batch:
                with self.transaction():
                    out += self._apply(queue, batch)
                batch = []
            if norm is None:
                out.append(self._enqueue_one(queue, row))
            else:
                batch.append(norm)
        if batch:
            with self.transaction():
                out += self._apply(queue, batch)
        return out

    def enqueue_rows(self, queue: str, rows: Sequence[Row]) -> list[str]:
        """:meth:`enqueue_many` of rows already normalised by
        :func:`~booklore_sync.store.queue_rows.batchable` (the scan checks each row as it
        builds it, and the check is not made twice); their outcomes, in order."""
        chunk = max(1, min(self._MANY_CHUNK, self._conn.getlimit(
            sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 8))
        out: list[str] = []
        for start in range(0, len(rows), chunk):
            with self.transaction():
                out += self._apply(queue, list(rows[start:start + chunk]))
        return out

    def _apply(self, queue: str, batch: list[Row]) -> list[str]:
        if QUEUE_BY_NAME[queue].latest_value:
            return self._apply_latest(queue, batch)
        return self._apply_keyed(queue, batch)

    def _apply_keyed(self, queue: str, batch: list[Row]) -> list[str]:
        """Sessions, annotations, bookmarks: queue an item unless it is queued, synced or
        discarded.  One lookup statement for the batch, then executemany."""
        kind = QUEUE_BY_NAME[queue]
        table, history, cols = kind.queue_table, kind.history_table, kind.key_columns
        n = len(cols)
        discards = self._any_discarded(queue)
        width = 2 + n + (1 if discards else 0)
        params: list[Any] = [queue] if discards else []  # the ? of `disc` comes first
        for i, (fp, keys, _p, _j, _e) in enumerate(batch):
            params += (i, fp, *keys)
            if discards:
                params.append(key_text(fp, keys))
        match = " AND ".join(f"{{t}}.{c} = v.column{3 + j}" for j, c in enumerate(cols))
        disc = (f"EXISTS (SELECT 1 FROM discarded_items d WHERE d.queue = ?"
                f" AND d.item_key = v.column{3 + n})" if discards else "0")
        rows_sql = ",".join(["(" + ",".join("?" * width) + ")"] * len(batch))
        found_by = self._queue_lookup(
            f"SELECT v.column1, q.id, q.state, q.payload, q.last_error,"
            f" EXISTS (SELECT 1 FROM {history} h WHERE h.fingerprint = v.column2"
            f" AND {match.format(t='h')}), {disc}"
            f" FROM (VALUES {rows_sql}) AS v LEFT JOIN {table} q"
            f" ON q.fingerprint = v.column2 AND {match.format(t='q')}", params)
        edits = queue == "annotations"
        ledger = ledger_rows(self._conn, list(dict.fromkeys(
            (fp, *keys) for i, (fp, keys, *_r) in enumerate(batch) if found_by[i][5]))) \
            if edits else {}
        now = utcnow()
        state: dict[tuple[Any, ...], list[Any] | None] = {}
        ops: list[tuple[str, tuple[Any, ...]]] = []
        out: list[str] = []
        for i, (fp, keys, payload, pjson, last_error) in enumerate(batch):
            key = (fp, *keys)
            r = found_by[i]
            if key in state:
                cur = state[key]
            else:
                cur = state[key] = [r[2], r[3], r[4]] if r[1] is not None else None
            if cur is None:
                if r[5]:
                    # synced already: queued again only as an update of an edited item
                    upd = None if r[6] or not edits else edit_payload(_dict(payload, pjson),
                                                                      ledger.get(key, []))
                    if upd is None:
                        out.append(ALREADY_SYNCED)
                        continue
                    pjson, last_error = payload_json(upd), None
                    ops.append(("insert", (fp, pjson, now, last_error, *keys)))
                    state[key] = [PENDING, pjson, last_error]
                    out.append(UPDATED)
                elif r[6]:
                    out.append(DISCARDED)
                else:
                    ops.append(("insert", (fp, pjson, now, last_error, *keys)))
                    state[key] = [PENDING, pjson, last_error]
                    out.append(QUEUED)
            elif edits and (edit := queued_edit(cur[0], cur[1], _dict(payload, pjson),
                                                ledger.get(key))) is not None:
                if edit[0] == "delete":
                    ops.append(("delete", key))
                    state[key] = None
                    out.append(ALREADY_SYNCED)
                else:
                    new_json = payload_json(edit[1])
                    ops.append(("update", (new_json, None, *key)))
                    cur[1], cur[2] = new_json, None
                    out.append(UPDATED)
            elif wants_cfi_refresh(queue, cur[0], cur[1], cur[2], _dict(payload, pjson),
                                   last_error):
                ops.append(("update", (pjson, None, *key)))
                cur[1], cur[2] = pjson, None
                out.append(UPDATED)
            else:
                out.append(ALREADY_QUEUED)
        where = " AND ".join(f"{c} = ?" for c in cols)
        sql = {
            "insert": insert_sql(table, cols),
            "update": f"UPDATE {table} SET payload = ?, last_error = ? WHERE fingerprint = ?"
                      f" AND {where}",
            "delete": f"DELETE FROM {table} WHERE fingerprint = ? AND {where}",
        }
        run_ops(self._conn, sql, ops)
        return out

    def _apply_latest(self, queue: str, batch: list[Row]) -> list[str]:
        """Ratings and progress: one row per book, the latest value wins; a value equal to
        the last one settled is already synced (and takes an older queued value with it)."""
        kind = QUEUE_BY_NAME[queue]
        table, history, cols = kind.queue_table, kind.history_table, kind.key_columns
        params: list[Any] = []
        for i, (fp, *_rest) in enumerate(batch):
            params += (i, fp)
        rows_sql = ",".join(["(?,?)"] * len(batch))
        found_by = self._queue_lookup(
            f"SELECT v.column1, q.id, {', '.join('q.' + c for c in cols)},"
            f" h.id, {', '.join('h.' + c for c in cols)}, q.payload, h.sent"
            f" FROM (VALUES {rows_sql}) AS v LEFT JOIN {table} q ON q.fingerprint = v.column2"
            f" LEFT JOIN {history} h ON h.id = (SELECT id FROM {history}"
            f" WHERE fingerprint = v.column2 ORDER BY id DESC LIMIT 1)", params)
        n = len(cols)
        discards = self._any_discarded(queue)
        now = utcnow()
        sets = ", ".join(f"{c} = ?" for c in cols)
        sql = {
            "insert": insert_sql(table, cols),
            # an engine that is sending the old value meanwhile will not move this row
            # to history: move_to_history(expected=...) checks the value it sent
            "update": f"UPDATE {table} SET {sets}, payload = ?, retry_count = 0,"
                      " last_error = NULL, last_status = NULL, last_attempt_at = NULL,"
                      " in_flight_at = NULL, abandoned_at = NULL,"
                      f" state = '{PENDING}' WHERE fingerprint = ?",
            "delete": f"DELETE FROM {table} WHERE fingerprint = ?",
        }
        state: dict[str, tuple[Any, ...] | None] = {}
        ops: list[tuple[str, tuple[Any, ...]]] = []
        out: list[str] = []
        for i, (fp, vals, _payload, pjson, _e) in enumerate(batch):
            r = found_by[i]
            row = state[fp] if fp in state else (tuple(r[2:2 + n]) if r[1] is not None
                                                 else None)
            last = None if r[2 + n] is None else self._settled_value(queue, r[3 + n:3 + 2 * n])
            # progress: a changed KOReader status alone re-queues (koreader-data §6.3)
            status = _dict(_payload, pjson)
            new_status = (status.get("status"), status.get("status_modified")) \
                if queue == "progress" else None
            if row is not None and row == vals and (
                    new_status is None or fp in state
                    or status_of(r[3 + 2 * n]) == new_status):
                out.append(ALREADY_QUEUED)
            elif row is not None and row == vals:
                ops.append(("update", (*vals, pjson, fp)))
                out.append(UPDATED)
            elif last is not None and last == vals and (
                    new_status is None or new_status[0] not in ("complete", "abandoned")
                    or status_of(r[4 + 2 * n]) == new_status):
                # the value is what the server already has from us: a queued, different
                # value would overwrite it with something older, so it goes too
                if row is not None:
                    ops.append(("delete", (fp,)))
                    state[fp] = None
                out.append(ALREADY_SYNCED)
            elif discards and self._is_discarded(queue, fp, vals):
                out.append(DISCARDED)
            elif row is not None:
                ops.append(("update", (*vals, pjson, fp)))
                state[fp] = vals
                out.append(UPDATED)
            else:
                ops.append(("insert", (fp, pjson, now, None, *vals)))
                state[fp] = vals
                out.append(QUEUED)
        run_ops(self._conn, sql, ops)
        return out

    def _any_discarded(self, queue: str) -> bool:
        return self._execute("SELECT 1 FROM discarded_items WHERE queue = ? LIMIT 1",
                             (queue,)).fetchone() is not None

    def _queue_lookup(self, sql: str, params: Sequence[Any]) -> dict[int, Any]:
        """The rows of a batch lookup by their batch index (the first column)."""
        return {r[0]: r for r in self._execute(sql, params).fetchall()}

    def _is_discarded(self, queue: str, fingerprint: str, key: Sequence[Any]) -> bool:
        return self._execute(
            "SELECT 1 FROM discarded_items WHERE queue = ? AND item_key = ?",
            (queue, key_text(fingerprint, key))).fetchone() is not None

    # ------------------------------------------------------------------ read
    def pending(self, queue: str, *, fingerprint: str | None = None,
                ids: Iterable[int] | None = None) -> list[QueueItem]:
        """Queue rows in insertion order, joined to the cache through any fingerprint."""
        kind = QUEUE_BY_NAME[queue]
        table = kind.queue_table
        where: list[str] = []
        params: list[Any] = []
        if fingerprint is not None:
            where.append("q.fingerprint = ?")
            params.append(fingerprint)
        if ids is not None:
            where.append("q.id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(ids)))
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        key_cols = KEY_COLUMNS[queue]
        parts = ", q.done_parts" if queue == "annotations" else ""
        # plain tuple cursors (the store's Row factory costs more than the rest per
        # row); the cached book once per fingerprint, not joined into every row
        cur = self._conn.cursor()
        cur.row_factory = None
        rows = cur.execute(
            f"SELECT q.id, q.fingerprint, q.payload, q.created_at, q.retry_count,"
            f" q.last_attempt_at, q.last_error, q.last_status, q.state,"
            f" q.in_flight_at, q.abandoned_at, {', '.join('q.' + c for c in key_cols)}"
            f"{parts} FROM {table} q{clause} ORDER BY q.id", params).fetchall()
        if not rows:
            return []
        books: dict[str, tuple[Any, ...]] = {r[0]: r[1:] for r in cur.execute(
            "SELECT h.hash, b.id, b.book_id, b.title, b.file_path, b.book_type"
            " FROM book_hashes h JOIN book_cache b ON b.id = h.cache_id"
            f" WHERE h.hash IN (SELECT DISTINCT q.fingerprint FROM {table} q{clause})",
            params)}
        payloads = _decode_all([r[2] for r in rows])
        no_book = (None, None, None, None, None)
        n_keys = len(key_cols)
        items: list[QueueItem] = []
        append = items.append
        if parts:
            loads = json.loads
            for r, payload in zip(rows, payloads, strict=True):
                cache_id, book_id, title, path, book_type = books.get(r[1], no_book)
                done = r[11 + n_keys]
                append(QueueItem(
                    queue, r[0], r[1], payload, r[3], r[4], r[5], r[6], r[7], r[8],
                    dict(zip(key_cols, r[11:11 + n_keys], strict=True)), cache_id, book_id,
                    title, path, book_type, [] if done == "[]" else loads(done), r[9], r[10]))
        elif n_keys == 1:
            (col,) = key_cols
            for r, payload in zip(rows, payloads, strict=True):
                cache_id, book_id, title, path, book_type = books.get(r[1], no_book)
                append(QueueItem(
                    queue, r[0], r[1], payload, r[3], r[4], r[5], r[6], r[7], r[8],
                    {col: r[11]}, cache_id, book_id, title, path, book_type, [], r[9], r[10]))
        else:
            for r, payload in zip(rows, payloads, strict=True):
                cache_id, book_id, title, path, book_type = books.get(r[1], no_book)
                append(QueueItem(
                    queue, r[0], r[1], payload, r[3], r[4], r[5], r[6], r[7], r[8],
                    dict(zip(key_cols, r[11:], strict=True)), cache_id, book_id, title, path,
                    book_type, [], r[9], r[10]))
        return items

    def all_pending(self) -> list[QueueItem]:
        return [item for q in QUEUES for item in self.pending(q)]


_RAW_DECODE = json.JSONDecoder().raw_decode


def _decode_all(texts: list[str]) -> list[Any]:
    """``json.loads`` of each text, without its per-call set-up (what json.loads does
    on top of the C scanner costs as much as the scanning of a short payload)."""
    raw, loads = _RAW_DECODE, json.loads
    out = []
    for text in texts:
        try:
            value, end = raw(text)
        except (ValueError, TypeError):
            value, end = None, -1
        # anything but one bare JSON value (blanks, trailing data, not a str): as loads
        out.append(value if end >= 0 and end == len(text) else loads(text))
    return out

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
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from booklore_sync.common.vocab import QUEUE_BY_NAME, QueueState
from booklore_sync.store.edits import edit_payload, ledger_rows, queued_edit
from booklore_sync.store.ledger import LedgerMixin
from booklore_sync.store.queries import KEY_COLUMNS, QUEUES
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

# (fingerprint, key values, payload, payload JSON, last_error)
Row = tuple[str, tuple[Any, ...], "dict[str, Any] | None", str, "str | None"]

# the arity of each single method's positional arguments (fingerprint first)
_ARITY = {"annotations": (5, 6), "bookmarks": (3, 4), "sessions": (3, 3), "ratings": (2, 3),
          "progress": (3, 4)}
_PENDING = QueueState.PENDING.value


def _payload_json(payload: dict[str, Any] | None) -> str:
    return json.dumps(payload or {}, ensure_ascii=False, sort_keys=True)


def _batch_json() -> Callable[[Any], str]:
    """``_payload_json`` without making an encoder per call (the C encoder when there is
    one; no circular check: a circular payload fails here either way and goes to the
    single path, which says so).  Same output, byte for byte."""
    import json.encoder as json_encoder

    c_make_encoder = getattr(json_encoder, "c_make_encoder", None)
    if c_make_encoder is None:  # pragma: no cover - other Pythons
        return json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode
    enc = c_make_encoder(None, json.JSONEncoder().default, json_encoder.encode_basestring, None,
                         ": ", ", ", True, False, True)
    return lambda o: "".join(enc(o, 0))


_BATCH_JSON = _batch_json()


def _split(queue: str, row: Sequence[Any]) -> tuple[str, tuple[Any, ...], Any, str | None]:
    """(fingerprint, key values, payload, last_error) from a single method's arguments,
    with the conversions the single methods make (``int``, ``float``)."""
    n = len(row)
    lo, hi = _ARITY[queue]
    if not lo <= n <= hi:
        raise TypeError(f"enqueue {queue}: {n} values given, {lo}..{hi} expected")
    if queue == "annotations":
        return row[0], (row[1], row[2], row[3]), row[4], row[5] if n == 6 else None
    if queue == "bookmarks":
        return row[0], (row[1],), row[2], row[3] if n == 4 else None
    if queue == "sessions":
        return row[0], (int(row[1]),), row[2], None
    if queue == "ratings":
        return row[0], (int(row[1]),), row[2] if n == 3 else None, None
    return row[0], (row[1], float(row[2])), row[3] if n == 4 else None, None


def _text(v: Any) -> bool:
    """A str SQLite can store (UTF-8: no lone surrogates)."""
    if type(v) is not str:
        return False
    if v.isascii():
        return True
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _status_of(payload_json: str | None) -> tuple[Any, Any]:
    """(status, status_modified) of a progress payload as stored (JSON text)."""
    try:
        data = json.loads(payload_json) if payload_json else {}
    except ValueError:
        return (None, None)
    if not isinstance(data, dict):
        return (None, None)
    return (data.get("status"), data.get("status_modified"))


def _batchable(queue: str, row: Sequence[Any]) -> Row | None:
    """The row for a batch, or None when it must go alone (values not of their columns'
    natural types, or not storable: lone surrogates, NaN, out-of-range integers), so
    that it fails where a single call fails without taking its batch with it."""
    try:
        fp, keys, payload, last_error = _split(queue, row)
        if queue in ("annotations", "bookmarks") and not all(_text(k) for k in keys):
            return None
        if queue == "progress" and (not _text(keys[0]) or keys[1] != keys[1]):
            return None
        if not _text(fp) or not (last_error is None or _text(last_error)):
            return None
        if type(keys[0]) is int and not -(1 << 63) <= keys[0] < (1 << 63):
            return None
        if payload is not None and type(payload) is not dict:
            return None
        pjson = _BATCH_JSON(payload or {})
        if not _text(pjson):
            return None
    except Exception:  # noqa: BLE001 - the single path raises it in its place
        return None
    return fp, keys, payload, pjson, last_error


def _wants_cfi_refresh(queue: str, state: str, stored_payload: str, stored_error: str | None,
                       payload: dict[str, Any] | None, last_error: str | None) -> bool:
    """A row queued without a position (no CFI yet) gets it once the book is at hand."""
    return (state == _PENDING and last_error is None and bool(stored_error)
            and queue in ("annotations", "bookmarks")
            and bool((payload or {}).get("cfi"))
            and not json.loads(stored_payload).get("cfi"))


def _run_ops(conn: sqlite3.Connection, sql: dict[str, str],
             ops: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Run the statements in order, consecutive ones of a kind in one executemany."""
    i = 0
    while i < len(ops):
        j = i
        while j < len(ops) and ops[j][0] == ops[i][0]:
            j += 1
        conn.executemany(sql[ops[i][0]], [p for _k, p in ops[i:j]])
        i = j


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
        fp, keys, payload, last_error = _split(queue, row)
        with self.transaction():
            return self._apply(queue, [(fp, keys, payload, _payload_json(payload), last_error)])[0]

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
            norm = _batchable(queue, row)
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
        discards = self._execute("SELECT 1 FROM discarded_items WHERE queue = ? LIMIT 1",
                                 (queue,)).fetchone() is not None
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
        found = self._execute(
            f"SELECT v.column1, q.id, q.state, q.payload, q.last_error,"
            f" EXISTS (SELECT 1 FROM {history} h WHERE h.fingerprint = v.column2"
            f" AND {match.format(t='h')}), {disc}"
            f" FROM (VALUES {rows_sql}) AS v LEFT JOIN {table} q"
            f" ON q.fingerprint = v.column2 AND {match.format(t='q')}", params).fetchall()
        found_by = {r[0]: r for r in found}
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
                    upd = None if r[6] or not edits else edit_payload(payload or {},
                                                                      ledger.get(key, []))
                    if upd is None:
                        out.append(ALREADY_SYNCED)
                        continue
                    pjson, last_error = _payload_json(upd), None
                    ops.append(("insert", (fp, pjson, now, last_error, *keys)))
                    state[key] = [_PENDING, pjson, last_error]
                    out.append(UPDATED)
                elif r[6]:
                    out.append(DISCARDED)
                else:
                    ops.append(("insert", (fp, pjson, now, last_error, *keys)))
                    state[key] = [_PENDING, pjson, last_error]
                    out.append(QUEUED)
            elif edits and (edit := queued_edit(cur[0], cur[1], payload or {},
                                                ledger.get(key))) is not None:
                if edit[0] == "delete":
                    ops.append(("delete", key))
                    state[key] = None
                    out.append(ALREADY_SYNCED)
                else:
                    new_json = _payload_json(edit[1])
                    ops.append(("update", (new_json, None, *key)))
                    cur[1], cur[2] = new_json, None
                    out.append(UPDATED)
            elif _wants_cfi_refresh(queue, cur[0], cur[1], cur[2], payload, last_error):
                ops.append(("update", (pjson, None, *key)))
                cur[1], cur[2] = pjson, None
                out.append(UPDATED)
            else:
                out.append(ALREADY_QUEUED)
        where = " AND ".join(f"{c} = ?" for c in cols)
        sql = {
            "insert": f"INSERT INTO {table}(fingerprint, payload, created_at, last_error,"
                      f" {', '.join(cols)}) VALUES ({','.join('?' * (4 + n))})",
            "update": f"UPDATE {table} SET payload = ?, last_error = ? WHERE fingerprint = ?"
                      f" AND {where}",
            "delete": f"DELETE FROM {table} WHERE fingerprint = ? AND {where}",
        }
        _run_ops(self._conn, sql, ops)
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
        found = self._execute(
            f"SELECT v.column1, q.id, {', '.join('q.' + c for c in cols)},"
            f" h.id, {', '.join('h.' + c for c in cols)}, q.payload, h.sent"
            f" FROM (VALUES {rows_sql}) AS v LEFT JOIN {table} q ON q.fingerprint = v.column2"
            f" LEFT JOIN {history} h ON h.id = (SELECT id FROM {history}"
            f" WHERE fingerprint = v.column2 ORDER BY id DESC LIMIT 1)", params).fetchall()
        found_by = {r[0]: r for r in found}
        n = len(cols)
        discards = self._execute("SELECT 1 FROM discarded_items WHERE queue = ? LIMIT 1",
                                 (queue,)).fetchone() is not None
        now = utcnow()
        sets = ", ".join(f"{c} = ?" for c in cols)
        sql = {
            "insert": f"INSERT INTO {table}(fingerprint, payload, created_at, last_error,"
                      f" {', '.join(cols)}) VALUES ({','.join('?' * (4 + n))})",
            # an engine that is sending the old value meanwhile will not move this row
            # to history: move_to_history(expected=...) checks the value it sent
            "update": f"UPDATE {table} SET {sets}, payload = ?, retry_count = 0,"
                      " last_error = NULL, last_status = NULL, last_attempt_at = NULL,"
                      " in_flight_at = NULL, abandoned_at = NULL,"
                      f" state = '{_PENDING}' WHERE fingerprint = ?",
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
            status = _payload or {}
            new_status = (status.get("status"), status.get("status_modified")) \
                if queue == "progress" else None
            if row is not None and row == vals and (
                    new_status is None or fp in state
                    or _status_of(r[3 + 2 * n]) == new_status):
                out.append(ALREADY_QUEUED)
            elif row is not None and row == vals:
                ops.append(("update", (*vals, pjson, fp)))
                out.append(UPDATED)
            elif last is not None and last == vals and (
                    new_status is None or new_status[0] not in ("complete", "abandoned")
                    or _status_of(r[4 + 2 * n]) == new_status):
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
        _run_ops(self._conn, sql, ops)
        return out

    def _is_discarded(self, queue: str, fingerprint: str, key: Sequence[Any]) -> bool:
        return self._execute(
            "SELECT 1 FROM discarded_items WHERE queue = ? AND item_key = ?",
            (queue, key_text(fingerprint, key))).fetchone() is not None

    # ------------------------------------------------------------------ read
    def pending(self, queue: str, *, fingerprint: str | None = None,
                ids: Iterable[int] | None = None) -> list[QueueItem]:
        """Queue rows in insertion order, joined to the cache through any fingerprint."""
        kind = QUEUE_BY_NAME[queue]
        where: list[str] = []
        params: list[Any] = []
        if fingerprint is not None:
            where.append("q.fingerprint = ?")
            params.append(fingerprint)
        if ids is not None:
            id_list = list(ids)
            where.append(f"q.id IN ({','.join('?' * len(id_list))})")
            params.extend(id_list)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        key_cols = KEY_COLUMNS[queue]
        parts = ", q.done_parts" if queue == "annotations" else ", '[]'"
        # a plain tuple cursor: the store's Row factory costs more than the rest per row
        cur = self._conn.cursor()
        cur.row_factory = None
        rows = cur.execute(
            f"SELECT q.id, q.fingerprint, q.payload, q.created_at, q.retry_count,"
            f" q.last_attempt_at, q.last_error, q.last_status, q.state,"
            f" b.id, b.book_id, b.title, b.file_path, b.book_type{parts},"
            f" q.in_flight_at, q.abandoned_at,"
            f" {', '.join('q.' + c for c in key_cols)} FROM {kind.queue_table} q"
            f" LEFT JOIN book_hashes h ON h.hash = q.fingerprint"
            f" LEFT JOIN book_cache b ON b.id = h.cache_id{clause} ORDER BY q.id", params)
        loads = json.loads
        items = []
        for (rid, fp, payload, created, retries, attempted, error, status, st, cache_id,
             book_id, title, path, book_type, done, in_flight, abandoned, *key) in rows:
            items.append(QueueItem(
                queue, rid, fp, loads(payload), created, retries, attempted, error, status,
                st, dict(zip(key_cols, key, strict=True)), cache_id, book_id, title, path,
                book_type, loads(done), in_flight, abandoned))
        return items

    def all_pending(self) -> list[QueueItem]:
        return [item for q in QUEUES for item in self.pending(q)]

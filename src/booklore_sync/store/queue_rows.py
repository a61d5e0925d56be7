"""The rows the enqueue rules take: a single method's arguments split into
(fingerprint, key values, payload, last_error), the check that a row may join a
batch, and the small pieces :mod:`~booklore_sync.store.queues` applies them with."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from booklore_sync.common.vocab import QueueState

# (fingerprint, key values, payload (None: as its JSON says), payload JSON, last_error)
Row = tuple[str, tuple[Any, ...], "dict[str, Any] | None", str, "str | None"]

# the arity of each single method's positional arguments (fingerprint first)
_ARITY = {"annotations": (5, 6), "bookmarks": (3, 4), "sessions": (3, 3), "ratings": (2, 3),
          "progress": (3, 4)}
PENDING = QueueState.PENDING.value


def payload_json(payload: dict[str, Any] | None) -> str:
    return json.dumps(payload or {}, ensure_ascii=False, sort_keys=True)


def _batch_json() -> Callable[[Any], str]:
    """``payload_json`` without making an encoder per call (the C encoder when there is
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


def split(queue: str, row: Sequence[Any]) -> tuple[str, tuple[Any, ...], Any, str | None]:
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


def status_of(payload_json: str | None) -> tuple[Any, Any]:
    """(status, status_modified) of a progress payload as stored (JSON text)."""
    try:
        data = json.loads(payload_json) if payload_json else {}
    except ValueError:
        return (None, None)
    if not isinstance(data, dict):
        return (None, None)
    return (data.get("status"), data.get("status_modified"))


def batchable(queue: str, row: Sequence[Any]) -> Row | None:
    """The row for a batch, or None when it must go alone (values not of their columns'
    natural types, or not storable: lone surrogates, NaN, out-of-range integers), so
    that it fails where a single call fails without taking its batch with it."""
    try:
        fp, keys, payload, last_error = split(queue, row)
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


def wants_cfi_refresh(queue: str, state: str, stored_payload: str, stored_error: str | None,
                       payload: dict[str, Any] | None, last_error: str | None) -> bool:
    """A row queued without a position (no CFI yet) gets it once the book is at hand."""
    return (state == PENDING and last_error is None and bool(stored_error)
            and queue in ("annotations", "bookmarks")
            and bool((payload or {}).get("cfi"))
            and not json.loads(stored_payload).get("cfi"))


def run_ops(conn: sqlite3.Connection, sql: dict[str, str],
             ops: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Run the statements in order, consecutive ones of a kind in one executemany."""
    i = 0
    while i < len(ops):
        j = i
        while j < len(ops) and ops[j][0] == ops[i][0]:
            j += 1
        conn.executemany(sql[ops[i][0]], [p for _k, p in ops[i:j]])
        i = j


def insert_sql(table: str, cols: Sequence[str]) -> str:
    """The INSERT of a new queue row: fingerprint, payload, created_at, last_error, keys."""
    return (f"INSERT INTO {table}(fingerprint, payload, created_at, last_error,"
            f" {', '.join(cols)}) VALUES ({','.join('?' * (4 + len(cols)))})")

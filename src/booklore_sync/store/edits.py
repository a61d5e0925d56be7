"""Edits of annotations made on the device after they were synced (spec §3, §4.1
"Edits"; koreader-data §6.4).

The synced ledger keeps, per destination of an annotation (``annotation``,
``note_v2``, ``book_note``), the version of the item that was sent — the device's
texts as they were, before any cut to fit a column — and the server's id of the
item.  A scan compares the item as it is now with that version: a later
``datetime_updated``, or a changed text, note, colour or style, is an edit, and
the item is queued again carrying an ``update`` marker: per destination still on
the server, its id (when known), the version sent before and what changed.  The
engine then updates the server's item instead of creating one
(:mod:`booklore_sync.sync.edits`).

Pure functions (and one read query); no writes here.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from booklore_sync.common.vocab import Settlement

__all__ = ["EDIT_FIELDS", "PARTS", "TEXT_NOT_SENT", "UPDATE_KEY", "changed_fields", "edit_payload",
           "ledger_rows", "edit_fields_differ", "is_update", "queued_edit"]

#: the fields of a queued annotation an edit is judged by (besides datetime_updated)
EDIT_FIELDS = ("text", "note", "color", "style")
#: the destinations of an annotation, in the order they are sent
PARTS = ("annotation", "note_v2", "book_note")
#: why a change of the highlighted text is not sent (the server cannot change it)
TEXT_NOT_SENT = ("the highlighted text was changed on the device; BookLore cannot change "
                 "a highlight's text, so that change is not sent")
#: the payload key that marks a queued annotation as an update of the server's item
UPDATE_KEY = "update"

# one ledger row of an annotation: (destination, remote_id, sent JSON, settled)
LedgerRow = tuple[str, "int | None", "str | None", str]


def _norm(v: Any) -> Any:
    return None if v == "" else v


def changed_fields(payload: Mapping[str, Any], sent: Mapping[str, Any]) -> list[str]:
    """What differs between the device's item now and the version sent: the fields
    of :data:`EDIT_FIELDS` that differ, and ``datetime_updated`` when it is later.

    A field the device's item does not carry says nothing; a version sent before
    ``datetime_updated`` was recorded (no such key) is judged by its fields alone.
    """
    out = [f for f in EDIT_FIELDS
           if f in payload and _norm(payload.get(f)) != _norm(sent.get(f))]
    if "datetime_updated" in sent:
        now = payload.get("datetime_updated") or ""
        then = sent.get("datetime_updated") or ""
        if isinstance(now, str) and isinstance(then, str) and now > then:
            out.append("datetime_updated")
    return out


def edit_fields_differ(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether ``b`` (the device's item) differs from ``a`` in what an edit changes."""
    return any(f in b and _norm(a.get(f)) != _norm(b.get(f))
               for f in (*EDIT_FIELDS, "datetime_updated"))


def is_update(payload: Mapping[str, Any]) -> bool:
    return isinstance(payload.get(UPDATE_KEY), dict)


def _sent(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    value.pop(UPDATE_KEY, None)
    return value


def _parts(rows: Sequence[LedgerRow]) -> dict[str, tuple[int | None, dict[str, Any] | None, str]]:
    """The ledger's record per destination.  A ``both`` row stands for its two halves
    only where their own rows are missing (their ids are then unknown)."""
    own = {r[0]: (r[1], _sent(r[2]), r[3]) for r in rows if r[0] in PARTS}
    for dest, _rid, sent, settled in rows:
        if dest == "both":
            for half in ("note_v2", "book_note"):
                own.setdefault(half, (None, _sent(sent), settled))
    return {p: own[p] for p in PARTS if p in own}


def edit_payload(payload: Mapping[str, Any], rows: Sequence[LedgerRow]) -> dict[str, Any] | None:
    """The payload of an update of an item already synced, or None when nothing was
    edited since it was sent (or its server items were found deleted there, or what
    was sent is not known)."""
    parts: dict[str, Any] = {}
    cfi = None
    for dest, (remote_id, sent, settled) in _parts(rows).items():
        if sent is None or settled == Settlement.DELETED_ON_SERVER.value:
            continue
        cfi = cfi or sent.get("cfi")
        changed = changed_fields(payload, sent)
        if changed:
            parts[dest] = {"remote_id": remote_id, "previous": sent, "changed": changed}
    if not parts:
        return None
    out = {k: v for k, v in payload.items() if k != UPDATE_KEY}
    if not out.get("cfi") and cfi:
        out["cfi"] = cfi  # the server's item is found by its id: the CFI sent before will do
    out[UPDATE_KEY] = {"parts": parts}
    return out


def queued_edit(state: str, stored_json: str, payload: Mapping[str, Any],
                rows: Sequence[LedgerRow] | None
                ) -> tuple[str, dict[str, Any] | None] | None:
    """A new edit of an update still queued (and waiting, not in flight): None when
    there is none; ``("update", payload)`` — the new queued payload, judged against
    what was sent; ``("delete", None)`` — the update is no longer needed (the item
    is back to the version sent).  An item queued and never synced keeps its queued
    version: once it is sent, a later scan finds the edit against it."""
    if state != "pending":
        return None
    try:
        stored = json.loads(stored_json)
    except ValueError:
        return None
    if not isinstance(stored, dict) or not is_update(stored) \
            or not edit_fields_differ(stored, payload):
        return None
    new = edit_payload(payload, rows or [])
    return ("delete", None) if new is None else ("update", new)


def ledger_rows(conn: sqlite3.Connection, keys: Sequence[tuple[Any, ...]]
                ) -> dict[tuple[Any, ...], list[LedgerRow]]:
    """The synced ledger's rows of these annotation keys (fingerprint, datetime, kind,
    position), in one statement."""
    out: dict[tuple[Any, ...], list[LedgerRow]] = {}
    if not keys:
        return out
    params: list[Any] = []
    for k in keys:
        params += k
    values = ",".join(["(?,?,?,?)"] * len(keys))
    for fp, dt, kind, pos, dest, rid, sent, settled in conn.execute(
            "SELECT h.fingerprint, h.datetime, h.kind, h.position, h.destination, h.remote_id,"
            f" h.sent, h.settled FROM (VALUES {values}) AS v JOIN synced_annotations h"
            " ON h.fingerprint = v.column1 AND h.datetime = v.column2 AND h.kind = v.column3"
            " AND h.position = v.column4 ORDER BY h.id", params):
        out.setdefault((fp, dt, kind, pos), []).append(
            (dest, None if rid is None else int(rid), sent, settled))
    return out

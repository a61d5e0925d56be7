"""One vocabulary (issue 9 item 1): the queue registry and the enums, and the store's
old names derived from them."""

from __future__ import annotations

import subprocess
import sys

from booklore_sync.common import vocab
from booklore_sync.common.vocab import (
    QUEUE_KINDS,
    Account,
    EnqueueOutcome,
    ExitCode,
    QueueState,
    queue_kind,
)
from booklore_sync.store import queries


def test_registry_order_letters_tables_and_labels():
    assert [(k.letter, k.name) for k in QUEUE_KINDS] == [
        ("S", "sessions"), ("A", "annotations"), ("R", "ratings"), ("B", "bookmarks"),
        ("P", "progress")]
    assert [k.history_label for k in QUEUE_KINDS] == [
        "Historical sessions", "Synced annotations", "Rating sync history", "Synced bookmarks",
        "Synced progress"]
    assert queue_kind("progress").queue_table == "pending_koreader_progress"
    assert [k.name for k in QUEUE_KINDS if k.latest_value] == ["ratings", "progress"]
    try:
        queue_kind("notes")
    except KeyError as exc:
        assert "notes" in str(exc)
    else:
        raise AssertionError("an unknown queue must be refused")


def test_queue_kind_is_frozen_and_comparable():
    k = queue_kind("sessions")
    for attempt in (lambda: setattr(k, "letter", "X"), lambda: delattr(k, "letter")):
        try:
            attempt()
        except AttributeError:
            pass
        else:
            raise AssertionError("QueueKind must be frozen")
    assert k == vocab.SESSIONS and hash(k) == hash(vocab.SESSIONS) and k != vocab.RATINGS


def test_old_store_names_are_derived_from_the_registry():
    assert queries.QUEUES == ("sessions", "annotations", "ratings", "bookmarks", "progress")
    assert queries.LETTERS == {"sessions": "S", "annotations": "A", "ratings": "R",
                               "bookmarks": "B", "progress": "P"}
    assert queries.HISTORY_TABLES["ratings"] == "rating_sync_history"
    assert queries.KEY_COLUMNS["annotations"] == ("datetime", "kind", "position")


def test_stored_values_and_codes_do_not_change():
    assert [s.value for s in QueueState] == ["pending", "in_flight", "uncertain"]
    assert [o.value for o in EnqueueOutcome] == [
        "queued", "updated", "already_queued", "already_synced", "discarded"]
    assert [o for o in EnqueueOutcome if o.is_new] == [EnqueueOutcome.QUEUED,
                                                      EnqueueOutcome.UPDATED]
    assert {int(c) for c in ExitCode} == {0, 1, 2, 3, 4, 130}
    assert (ExitCode.OFFLINE, ExitCode.LOCKED, ExitCode.INTERRUPTED) == (3, 4, 130)
    assert [a.display_name for a in Account] == ["BookLore account", "KOReader account"]
    assert Account("koreader") is Account.KOREADER


def test_queries_and_vocab_load_without_the_rest_of_the_store():
    code = ("import sys, booklore_sync.store.queries, booklore_sync.common.vocab;"
            "print(sorted(m for m in sys.modules if m.startswith('booklore_sync')));"
            "print('dataclasses' in sys.modules, 'typing' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0] == str(["booklore_sync", "booklore_sync.common", "booklore_sync.common.vocab",
                          "booklore_sync.store", "booklore_sync.store.queries"])
    assert out[1] == "False False"


def test_store_names_resolve_lazily_to_the_real_objects():
    import booklore_sync.store as store_pkg
    from booklore_sync.store.facade import Store

    assert store_pkg.Store is Store
    assert store_pkg.QUEUED is EnqueueOutcome.QUEUED and store_pkg.QUEUED == "queued"
    try:
        store_pkg.Nope  # noqa: B018
    except AttributeError as exc:
        assert "Nope" in str(exc)
    else:
        raise AssertionError("unknown names must raise AttributeError")

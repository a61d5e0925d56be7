"""Edit detection at scan time (spec §3 "unless it was edited", §4.1 "Edits";
koreader-data §6.4): an item already synced whose device version differs from the
version the ledger recorded as sent is queued once, as an update."""

from __future__ import annotations

from pathlib import Path

from booklore_sync.koreader.luatable import dump, parse_file
from booklore_sync.koreader.scan import scan_source
from booklore_sync.store import ALREADY_QUEUED, ALREADY_SYNCED, QUEUED, UPDATED, Store

NOW = 1800000000
UTC = {"device.timezone": "UTC"}
LEAVES = "59d481d168cca6267322f150c5f6a2a3"
NOTE_DT = "2024-03-04 22:56:36"
HL_DT = "2024-03-01 20:09:49"


def _sidecar(kobo: Path) -> Path:
    return kobo / "Books" / "leaves.sdr" / "metadata.epub.lua"


def _edit(kobo: Path, dt: str, **changes) -> None:
    path = _sidecar(kobo)
    data = parse_file(path)
    [item] = [a for a in data["annotations"] if a.get("datetime") == dt]
    item.update(changes)
    path.write_bytes(dump(data, str(path)))


def _settle_all(store: Store, remote: int = 100) -> None:
    """What a sync does on success: every annotation moved to synced history."""
    for n, item in enumerate(store.pending("annotations")):
        store.move_to_history("annotations", [item.id], book_id=7, remote_id=remote + n,
                              destination="note_v2" if item.key["kind"] == "note"
                              else "annotation")


def _scan(store: Store, kobo: Path):
    return scan_source(store, kobo, UTC, now=NOW)


def test_scan_payload_carries_datetime_updated(store, kobo_copy):
    _scan(store, kobo_copy)
    by_dt = {i.key["datetime"]: i.payload for i in store.pending("annotations")}
    assert by_dt[NOTE_DT]["datetime_updated"] == "2024-03-05 21:06:47"
    assert by_dt[HL_DT]["datetime_updated"] is None


def test_edit_of_synced_item_queued_once_as_update(store, kobo_copy):
    _scan(store, kobo_copy)
    _settle_all(store)
    assert _scan(store, kobo_copy).queued["annotations"] == 0

    _edit(kobo_copy, HL_DT, color="red", datetime_updated="2024-04-01 10:00:00")
    assert _scan(store, kobo_copy).queued["annotations"] == 1
    [item] = store.pending("annotations")
    assert item.key["datetime"] == HL_DT and item.payload["color"] == "#FB923C"
    part = item.payload["update"]["parts"]["annotation"]
    assert part["remote_id"] is not None
    assert part["previous"]["color"] == "#FFC107"
    assert sorted(part["changed"]) == ["color", "datetime_updated"]
    # idempotent: the same edit is not queued twice
    assert _scan(store, kobo_copy).queued["annotations"] == 0
    assert len(store.pending("annotations")) == 1


def test_edit_of_queued_update_updates_it_and_a_revert_drops_it(store, kobo_copy):
    _scan(store, kobo_copy)
    _settle_all(store)
    _edit(kobo_copy, NOTE_DT, note="first edit", datetime_updated="2024-04-01 10:00:00")
    assert _scan(store, kobo_copy).queued["annotations"] == 1
    _edit(kobo_copy, NOTE_DT, note="second edit", datetime_updated="2024-04-02 10:00:00")
    assert _scan(store, kobo_copy).queued["annotations"] == 1  # updated in place
    [item] = store.pending("annotations")
    assert item.payload["note"] == "second edit"
    assert item.payload["update"]["parts"]["note_v2"]["previous"]["note"].endswith("aloud!")

    # back to the version sent (and its update time): nothing left to send
    sent = item.payload["update"]["parts"]["note_v2"]["previous"]
    _edit(kobo_copy, NOTE_DT, note=sent["note"], datetime_updated=sent["datetime_updated"])
    assert _scan(store, kobo_copy).queued["annotations"] == 0
    assert store.pending("annotations") == []


def test_never_synced_item_keeps_its_queued_version(store):
    a = (LEAVES, HL_DT, "highlight", "/body/p/text().0")
    assert store.enqueue_annotation(*a, {"text": "x", "color": "#FFC107"}) == QUEUED
    assert store.enqueue_annotation(*a, {"text": "x", "color": "#FB923C"}) == ALREADY_QUEUED
    [item] = store.pending("annotations")
    assert item.payload["color"] == "#FFC107" and "update" not in item.payload


def test_edit_rules_against_the_ledger(store):
    a = (LEAVES, HL_DT, "highlight", "/body/p/text().0")
    base = {"text": "t", "note": None, "color": "#FFC107", "style": "highlight",
            "datetime_updated": "2024-03-05 10:00:00", "cfi": "epubcfi(/6/2!/4,/1:0,/1:1)"}
    store.enqueue_annotation(*a, base)
    [item] = store.pending("annotations")
    store.move_to_history("annotations", [item.id], book_id=1, remote_id=5,
                          destination="annotation")
    # the same version, an earlier or equal update time: nothing
    assert store.enqueue_annotation(*a, dict(base)) == ALREADY_SYNCED
    earlier = {**base, "datetime_updated": "2024-03-01 10:00:00"}
    assert store.enqueue_annotation(*a, earlier) == ALREADY_SYNCED
    # a field a payload does not carry says nothing
    assert store.enqueue_annotation(*a, {}) == ALREADY_SYNCED
    # style, note or text changed, or a later update time: an update
    for change in ({"style": "underline"}, {"note": "n"}, {"text": "u"},
                   {"datetime_updated": "2024-03-06 10:00:00"}):
        out = store.enqueue_annotation(*a, {**base, **change})
        assert out == UPDATED, change
        [queued] = store.pending("annotations")
        assert queued.payload["update"]["parts"]["annotation"]["remote_id"] == 5
        store.clear_pending(["annotations"])
        store.clear_history(["discarded"])


def test_sent_without_update_time_and_cfi_kept(store):
    """A version sent before datetime_updated was recorded is judged by its fields;
    an update carries the CFI sent when the rescan has none (no book file)."""
    a = (LEAVES, HL_DT, "highlight", "/body/p/text().0")
    sent = {"text": "t", "color": "#FFC107", "style": "highlight", "cfi": "epubcfi(/6/2!/4)"}
    store.enqueue_annotation(*a, sent)
    [item] = store.pending("annotations")
    store.move_to_history("annotations", [item.id], book_id=1, destination="annotation")
    now = {**sent, "datetime_updated": "2024-03-06 10:00:00", "cfi": None}
    assert store.enqueue_annotation(*a, now) == ALREADY_SYNCED
    assert store.enqueue_annotation(*a, {**now, "color": "#4ADE80"},
                                    "book file not found") == UPDATED
    [queued] = store.pending("annotations")
    assert queued.payload["cfi"] == "epubcfi(/6/2!/4)" and queued.last_error is None
    assert queued.payload["update"]["parts"]["annotation"]["remote_id"] is None


def test_deleted_on_server_and_discarded_are_not_queued_again(store):
    a = (LEAVES, HL_DT, "highlight", "/body/p/text().0")
    b = (LEAVES, "2024-03-02 00:00:00", "highlight", "/body/p/text().9")
    for key in (a, b):
        store.enqueue_annotation(*key, {"text": "t", "color": "#FFC107"})
    items = store.pending("annotations")
    store.move_to_history("annotations", [items[0].id], book_id=1, destination="annotation",
                          settled="deleted_on_server")
    store.move_to_history("annotations", [items[1].id], book_id=1, destination="annotation")
    assert store.enqueue_annotation(*a, {"text": "t", "color": "#FB923C"}) == ALREADY_SYNCED
    assert store.enqueue_annotation(*b, {"text": "t", "color": "#FB923C"}) == UPDATED
    store.clear_pending(["annotations"])  # the user discards the update
    assert store.enqueue_annotation(*b, {"text": "t", "color": "#FB923C"}) == ALREADY_SYNCED


def test_batch_and_single_agree(tmp_path):
    """enqueue_many gives the single calls' outcomes, duplicates within a batch too."""
    a = (LEAVES, HL_DT, "highlight", "/body/p/text().0")
    rows = [(*a, {"text": "t", "color": "#FB923C"}), (*a, {"text": "t", "color": "#FB923C"}),
            (*a, {"text": "t", "color": "#4ADE80"}), (*a, {"text": "t", "color": "#FFC107"})]
    outs = []
    for batched in (False, True):
        s = Store.open(tmp_path / f"s{batched}.sqlite3")
        s.enqueue_annotation(*a, {"text": "t", "color": "#FFC107"})
        [item] = s.pending("annotations")
        s.move_to_history("annotations", [item.id], book_id=1, destination="annotation")
        outs.append(s.enqueue_many("annotations", rows) if batched
                    else [s.enqueue_annotation(*r) for r in rows])
        outs.append([i.payload for i in s.pending("annotations")])
        s.close()
    assert outs[0] == outs[2] == [UPDATED, ALREADY_QUEUED, UPDATED, ALREADY_SYNCED]
    assert outs[1] == outs[3] == []

"""Edits made on the device after a sync are sent as updates of the server's items
(spec §4.1 "Edits", booklore-api.md §3.25): scanned fixture device → engine →
emulator over HTTP."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

from booklore_sync.actions.sync import sync_once
from booklore_sync.koreader.luatable import dump, parse_file
from booklore_sync.sync.edits import TEXT_NOT_SENT
from tests.sync.conftest import make_config, open_store, scan_into

LEAVES = "59d481d168cca6267322f150c5f6a2a3"
TALL = "41cce710f34e5ec21315e19c99821415"
PHANTOM = "A Phantom arose before me with distrustful aspect"
ONWARD = "2024-03-04 22:56:36"  # the note of leaves.epub


def _sidecar(kobo: Path, name: str = "leaves") -> Path:
    ext = "pdf" if name in ("tall", "2col") else "epub"
    return kobo / "Books" / f"{name}.sdr" / f"metadata.{ext}.lua"


def _edit(kobo: Path, datetime: str, name: str = "leaves", **changes: Any) -> None:
    """Change one annotation of a sidecar as KOReader does when the user edits it."""
    path = _sidecar(kobo, name)
    data = parse_file(path)
    found = [a for a in data["annotations"] if a.get("datetime") == datetime]
    assert len(found) == 1, datetime
    found[0].update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        found[0].pop(key)
    path.write_bytes(dump(data, str(path)))


def _dt_of(kobo: Path, text: str, name: str = "leaves") -> str:
    data = parse_file(_sidecar(kobo, name))
    return next(a["datetime"] for a in data["annotations"] if a.get("text") == text)


def _synced(cfg) -> Any:
    report = sync_once(cfg)
    assert report.exit_code == 0, (report.messages, report.to_json())
    return report


def _writes(emu, since: int) -> list[tuple[str, str]]:
    return [(e["method"], e["path"].split("?")[0]) for e in emu.request_log()[since:]
            if e["method"] in ("POST", "PUT", "DELETE") and "/auth/" not in e["path"]]


def _book_id(cfg, fingerprint: str) -> int:
    with open_store(cfg) as store:
        return next(b.book_id for b in store.books() if b.file_hash == fingerprint)


def _ready(home, kobo, emu, **settings: Any):
    cfg = make_config(home, emu.base_url)
    cfg.file_values.update(settings)
    scan_into(cfg, kobo)
    _synced(cfg)
    assert scan_into(cfg, kobo).queued["annotations"] == 0
    return cfg


def _delete(emu, path: str) -> None:
    # the emulator, like BookLore, refuses a second login in the same second: poll
    deadline = time.monotonic() + 5
    while True:
        answer = httpx.post(emu.url("/api/v1/auth/login"),
                            json={"username": "demo", "password": "demo"}).json()
        if "accessToken" in answer or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    token = answer["accessToken"]
    r = httpx.delete(emu.url(path), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 204, r.text


# ------------------------------------------------------------------ highlights
def test_edited_highlight_updated_in_place(home, kobo, emu):
    cfg = _ready(home, kobo, emu)
    book = _book_id(cfg, LEAVES)
    before = emu.state.annotations(book)
    [hl] = [a for a in before if a["text"] == PHANTOM]
    assert (hl["color"], hl["style"]) == ("#FFC107", "highlight")

    _edit(kobo, _dt_of(kobo, PHANTOM), color="green", drawer="underscore",
          datetime_updated="2024-04-01 09:00:00")
    scan = scan_into(cfg, kobo)
    assert scan.queued["annotations"] == 1
    assert scan_into(cfg, kobo).queued["annotations"] == 0  # once per change
    with open_store(cfg) as store:
        [item] = store.pending("annotations")
        assert item.payload["update"]["parts"]["annotation"]["remote_id"] == hl["id"]

    mark = len(emu.request_log())
    report = _synced(cfg)
    assert report.queues["annotations"].synced == 1
    assert _writes(emu, mark) == [("PUT", f"/api/v1/annotations/{hl['id']}")]
    after = emu.state.annotations(book)
    assert len(after) == len(before)  # one copy on the server
    [hl2] = [a for a in after if a["text"] == PHANTOM]
    assert (hl2["id"], hl2["color"], hl2["style"]) == (hl["id"], "#4ADE80", "underline")
    # settled: nothing queued again, nothing sent again
    assert scan_into(cfg, kobo).queued["annotations"] == 0
    mark = len(emu.request_log())
    assert _synced(cfg).synced == 0
    assert _writes(emu, mark) == []


def test_unchanged_data_and_earlier_update_time_queue_nothing(home, kobo, emu):
    cfg = _ready(home, kobo, emu)
    # a datetime_updated that is not later than the one sent is no edit
    _edit(kobo, ONWARD, datetime_updated="2024-03-05 21:06:47")
    assert scan_into(cfg, kobo).queued["annotations"] == 0
    _edit(kobo, ONWARD, datetime_updated="2024-03-01 00:00:00")
    assert scan_into(cfg, kobo).queued["annotations"] == 0
    # a later one is, even with the same texts (KOReader says the item was edited)
    _edit(kobo, ONWARD, datetime_updated="2024-05-01 00:00:00")
    assert scan_into(cfg, kobo).queued["annotations"] == 1
    mark = len(emu.request_log())
    _synced(cfg)
    assert [m for m, _p in _writes(emu, mark)] == ["PUT"]
    assert scan_into(cfg, kobo).queued["annotations"] == 0


def test_highlight_text_change_reported_not_resent(home, kobo, emu):
    cfg = _ready(home, kobo, emu)
    book = _book_id(cfg, LEAVES)
    dt = _dt_of(kobo, PHANTOM)
    _edit(kobo, dt, text="A Phantom arose", text_edited=True,
          datetime_updated="2024-04-01 09:00:00")
    assert scan_into(cfg, kobo).queued["annotations"] == 1
    mark = len(emu.request_log())
    report = sync_once(cfg)
    assert report.exit_code == 0
    assert report.queues["annotations"].skipped == 1
    assert report.queues["annotations"].skip_reasons == {TEXT_NOT_SENT: 1}
    assert _writes(emu, mark) == []  # nothing the server could take was sent
    with open_store(cfg) as store:
        [item] = store.pending("annotations")
        assert item.last_error == TEXT_NOT_SENT and item.retry_count == 0
    assert PHANTOM in {a["text"] for a in emu.state.annotations(book)}
    # rescans and syncs change nothing
    assert scan_into(cfg, kobo).queued["annotations"] == 0
    mark = len(emu.request_log())
    assert sync_once(cfg).queues["annotations"].skipped == 1
    assert _writes(emu, mark) == []

    # a colour change on top goes out; the text change stays reported
    _edit(kobo, dt, color="red", datetime_updated="2024-04-02 09:00:00")
    assert scan_into(cfg, kobo).queued["annotations"] == 1  # the queued update, updated
    mark = len(emu.request_log())
    report = _synced(cfg)
    assert report.queues["annotations"].synced == 1
    assert [m for m, _p in _writes(emu, mark)] == ["PUT"]
    [hl] = [a for a in emu.state.annotations(book) if a["text"] == PHANTOM]
    assert hl["color"] == "#FB923C"
    with open_store(cfg) as store:  # the text change alone stays queued, told
        [item] = store.pending("annotations")
        assert item.last_error == TEXT_NOT_SENT
        assert list(item.payload["update"]["parts"]["annotation"]["changed"]) == ["text"]
    assert scan_into(cfg, kobo).queued["annotations"] == 0
    mark = len(emu.request_log())
    report = sync_once(cfg)
    assert report.queues["annotations"].skip_reasons == {TEXT_NOT_SENT: 1}
    assert _writes(emu, mark) == []


def test_deleted_on_server_settled_not_recreated(home, kobo, emu):
    cfg = _ready(home, kobo, emu)
    book = _book_id(cfg, LEAVES)
    [hl] = [a for a in emu.state.annotations(book) if a["text"] == PHANTOM]
    _delete(emu, f"/api/v1/annotations/{hl['id']}")
    count = len(emu.state.annotations(book))

    dt = _dt_of(kobo, PHANTOM)
    _edit(kobo, dt, color="green", datetime_updated="2024-04-01 09:00:00")
    assert scan_into(cfg, kobo).queued["annotations"] == 1
    mark = len(emu.request_log())
    report = _synced(cfg)
    assert report.queues["annotations"].synced == 1 and report.queues["annotations"].failed == 0
    assert _writes(emu, mark) == [("PUT", f"/api/v1/annotations/{hl['id']}")]
    assert len(emu.state.annotations(book)) == count  # not recreated
    assert PHANTOM not in {a["text"] for a in emu.state.annotations(book)}
    with open_store(cfg) as store:
        assert store.counts()["annotations"] == 0
        assert store.settlements("annotations").get("deleted_on_server") == 1
    # later edits of it are not queued any more
    _edit(kobo, dt, color="red", datetime_updated="2024-04-02 09:00:00")
    assert scan_into(cfg, kobo).queued["annotations"] == 0


def test_item_found_by_409_is_looked_up_by_cfi(home, kobo, emu):
    cfg = _ready(home, kobo, emu)
    book = _book_id(cfg, LEAVES)
    [hl] = [a for a in emu.state.annotations(book) if a["text"] == PHANTOM]
    # forget what was sent: the next sync finds every item already there (409), without ids
    with open_store(cfg) as store:
        store.clear_history(["annotations"])
    scan_into(cfg, kobo)
    _synced(cfg)
    with open_store(cfg) as store:
        rows = store._conn.execute(
            "SELECT remote_id FROM synced_annotations WHERE destination = 'annotation'"
            " AND fingerprint = ?", (LEAVES,)).fetchall()
        assert rows and all(r[0] is None for r in rows)

    _edit(kobo, _dt_of(kobo, PHANTOM), color="green", datetime_updated="2024-04-01 09:00:00")
    assert scan_into(cfg, kobo).queued["annotations"] == 1
    mark = len(emu.request_log())
    _synced(cfg)
    log = [(e["method"], e["path"]) for e in emu.request_log()[mark:]]
    assert ("GET", f"/api/v1/annotations/book/{book}") in log
    assert _writes(emu, mark) == [("PUT", f"/api/v1/annotations/{hl['id']}")]
    [hl2] = [a for a in emu.state.annotations(book) if a["text"] == PHANTOM]
    assert hl2["color"] == "#4ADE80"
    with open_store(cfg) as store:  # the id is known from now on
        got = store._conn.execute(
            "SELECT remote_id FROM synced_annotations WHERE remote_id = ?", (hl["id"],))
        assert got.fetchone() is not None


# ------------------------------------------------------------------------ notes
def test_edited_in_book_note_updated(home, kobo, emu):
    cfg = _ready(home, kobo, emu)
    book = _book_id(cfg, LEAVES)
    [note] = emu.state.notes_v2(book)
    assert note["noteContent"].endswith("Re-read aloud!")
    _edit(kobo, ONWARD, note="Read it again, slowly.", color="blue",
          datetime_updated="2024-04-01 09:00:00")
    assert scan_into(cfg, kobo).queued["annotations"] == 1
    mark = len(emu.request_log())
    _synced(cfg)
    assert _writes(emu, mark) == [("PUT", f"/api/v2/book-notes/{note['id']}")]
    [after] = emu.state.notes_v2(book)
    assert (after["id"], after["noteContent"], after["color"]) == (
        note["id"], "Read it again, slowly.", "#38BDF8")
    assert after["selectedText"] == note["selectedText"]
    assert scan_into(cfg, kobo).queued["annotations"] == 0


def test_edited_booklore_book_note_updated(home, kobo, emu):
    cfg = _ready(home, kobo, emu, **{"annotations.notes_destination": "in_booklore"})
    book = _book_id(cfg, LEAVES)
    notes = emu.state.book_notes(book)
    [note] = [n for n in notes if n["content"].endswith("Re-read aloud!")]
    _edit(kobo, ONWARD, note="Read it again, slowly.", datetime_updated="2024-04-01 09:00:00")
    assert scan_into(cfg, kobo).queued["annotations"] == 1
    mark = len(emu.request_log())
    _synced(cfg)
    writes = [e for e in emu.request_log()[mark:]
              if e["method"] in ("POST", "PUT") and "/auth/" not in e["path"]]
    assert [(e["method"], e["path"]) for e in writes] == [("POST", "/api/v1/book-notes")]
    assert writes[0]["body"]["id"] == note["id"]  # the update form, never a new note
    after = emu.state.book_notes(book)
    assert len(after) == len(notes)
    [changed] = [n for n in after if n["id"] == note["id"]]
    assert (changed["title"], changed["content"]) == (note["title"], "Read it again, slowly.")
    assert scan_into(cfg, kobo).queued["annotations"] == 0


def test_pdf_highlight_edit_updates_its_book_note(home, kobo, emu):
    cfg = _ready(home, kobo, emu)
    book = _book_id(cfg, TALL)
    [note] = emu.state.book_notes(book)
    dt = _dt_of(kobo, "Text highlight in DjVu", "tall")
    _edit(kobo, dt, "tall", text="Text highlight in a PDF", datetime_updated="2024-04-01 09:00:00")
    assert scan_into(cfg, kobo).queued["annotations"] == 1
    _synced(cfg)
    [after] = emu.state.book_notes(book)
    assert after["id"] == note["id"]
    assert after["content"] == "Text highlight in a PDF"  # a PDF's text is the note's content


def test_long_note_cut_is_not_an_edit(home, kobo, emu):
    long_note = "Ω" * 40000  # 80,000 bytes of UTF-8: cut to fit the server's column
    _edit(kobo, ONWARD, note=long_note)
    cfg = _ready(home, kobo, emu)
    [note] = emu.state.notes_v2(_book_id(cfg, LEAVES))
    assert len(note["noteContent"].encode()) <= 65535 and note["noteContent"] != long_note
    # what was recorded is the device's text: rescans find no edit
    assert scan_into(cfg, kobo).queued["annotations"] == 0
    # a real edit of the long note is sent (cut again), once
    _edit(kobo, ONWARD, note=long_note + "!", datetime_updated="2024-04-01 09:00:00")
    assert scan_into(cfg, kobo).queued["annotations"] == 1
    _synced(cfg)
    assert scan_into(cfg, kobo).queued["annotations"] == 0
    [after] = emu.state.notes_v2(_book_id(cfg, LEAVES))
    assert after["id"] == note["id"]


def test_both_destinations_updated_each_once(home, kobo, emu):
    cfg = _ready(home, kobo, emu, **{"annotations.notes_destination": "both"})
    book = _book_id(cfg, LEAVES)
    [v2] = emu.state.notes_v2(book)
    v1s = emu.state.book_notes(book)
    [v1] = [n for n in v1s if n["content"].endswith("Re-read aloud!")]
    _edit(kobo, ONWARD, note="Both, edited.", datetime_updated="2024-04-01 09:00:00")
    assert scan_into(cfg, kobo).queued["annotations"] == 1
    mark = len(emu.request_log())
    report = _synced(cfg)
    assert report.queues["annotations"].synced == 1
    assert _writes(emu, mark) == [("PUT", f"/api/v2/book-notes/{v2['id']}"),
                                  ("POST", "/api/v1/book-notes")]
    assert [n["noteContent"] for n in emu.state.notes_v2(book)] == ["Both, edited."]
    after = emu.state.book_notes(book)
    assert len(after) == len(v1s)
    assert next(n for n in after if n["id"] == v1["id"])["content"] == "Both, edited."
    assert scan_into(cfg, kobo).queued["annotations"] == 0

"""`booklore-sync demo`: the whole pipeline on generated sample data.

Starts the emulator on a free loopback port with a small library, writes a
KOReader device folder (books, sidecars with highlights, a note, bookmarks,
ratings and positions, a statistics database), then runs scan → status →
sync → status against it in a private, temporary home, and stops the
emulator.  Nothing from the network or from ``../shared`` is used, and
nothing is left running.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

from booklore_sync.config import Config
from booklore_sync.koreader.fingerprint import partial_md5
from booklore_sync.store import QUEUES, Store

DEMO_USER = ("demo", "demo")
_HELD = (("reading sessions", "sessions"), ("highlights (EPUB, by CFI)", "annotations"),
         ("in-book notes (EPUB, by CFI)", "notes"),
         ("book notes (PDF highlights and notes: no CFI)", "book_notes"),
         ("bookmarks", "bookmarks"), ("ratings", "ratings"), ("KOReader positions", "positions"))


class _Out:
    """Where the demo's human lines go: stdout, or stderr under ``--json``."""

    stream: TextIO = sys.stdout


def _print(*parts: object) -> None:
    print(*parts, file=_Out.stream, flush=True)


def _sync_and_say(cfg: Any) -> Any:
    """One sync, its messages and summary printed; the report."""
    from booklore_sync import render
    from booklore_sync.actions.sync import sync_once

    report = sync_once(cfg)
    for message in report.messages + report.config_errors:
        _print(message)
    for line in render.sync_summary(report):
        _print(line)
    return report


def _step(title: str) -> None:
    _print(f"\n== {title} ==")


_LABELS = {"sessions": ("session", "sessions"), "highlights": ("highlight", "highlights"),
           "notes": ("note", "notes"), "bookmarks": ("bookmark", "bookmarks"),
           "ratings": ("rating", "ratings"), "progress": ("position", "positions")}


def _queued_per_book(store: Store) -> list[str]:
    """One line per book: what the scan queued for it, and how many of its
    EPUB positions became CFIs (PDF items need none)."""
    books: dict[str, dict[str, int]] = {}
    for queue in QUEUES:
        for item in store.pending(queue):
            counts = books.setdefault(item.title or item.fingerprint, {})
            kind = queue
            if queue == "annotations":
                kind = "notes" if item.payload.get("kind") == "note" else "highlights"
            counts[kind] = counts.get(kind, 0) + 1
            if queue in ("annotations", "bookmarks") and not item.payload.get("paged"):
                counts["epub"] = counts.get("epub", 0) + 1
                counts["cfi"] = counts.get("cfi", 0) + bool(item.payload.get("cfi"))
    lines = []
    for name, counts in books.items():
        parts = [f"{counts[k]} {_LABELS[k][counts[k] != 1]}" for k in _LABELS if counts.get(k)]
        if counts.get("epub"):
            parts.append(f"CFIs {counts['cfi']}/{counts['epub']}")
        lines.append(f"  {name}: " + ", ".join(parts))
    return lines


def run_demo(keep: Path | None = None, *, json_out: bool = False) -> int:
    """The demo; with ``json_out`` one JSON object on stdout (the story on stderr)."""
    from booklore_sync.emulator import start_emulator
    from booklore_sync.koreader.sample import build_sample_device
    from booklore_sync.koreader.scan import scan_source
    from booklore_sync.render import status_text
    from booklore_sync.status import status_data

    if keep is not None and keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
        # a previous run's store would already hold everything as synced
        from booklore_sync.actions.base import EXIT_USAGE, USAGE, ActionError

        raise ActionError(USAGE, f"--keep {keep}: give a new or empty directory", EXIT_USAGE)
    work = Path(tempfile.mkdtemp(prefix="booklore-sync-demo-")) if keep is None else keep
    work.mkdir(parents=True, exist_ok=True)
    _Out.stream = sys.stderr if json_out else sys.stdout
    emu = None
    try:
        _step("Creating a sample KOReader device")
        device = build_sample_device(work / "device")
        _print(f"device folder: {device.root}")
        for book in device.books:
            sidecar = next(book.parent.glob(f"{book.stem}.sdr/metadata.*.lua"), None)
            _print(f"  {book.relative_to(device.root)}  (fingerprint {partial_md5(book)})")
            if sidecar is not None:
                _print(f"    {sidecar.relative_to(device.root)}")
        for extra in ("settings.reader.lua", "settings/statistics.sqlite3"):
            _print(f"  {(device.data_dir / extra).relative_to(device.root)}")

        _step("Starting the BookLore emulator")
        # A real server creates KOReader accounts with Sync off; the demo switches it on.
        emu = start_emulator(mode="fork", library=device.library, port=0,
                             user=DEMO_USER, koreader_user=DEMO_USER, koreader_sync=True)
        _print(f"{emu.base_url}  (BookLore user demo/demo, KOReader account demo/demo)")
        _print("KOReader account demo: Sync switched on for the demo (on a real server, "
               "switch it on in BookLore: Settings → KOReader)")
        _print(f"library: the same {len(device.books)} book files, byte for byte "
              "(the server knows them by the same fingerprints)")

        home = work / "home"
        env = {
            "BOOKLORE_SYNC_HOME": str(home),
            "BOOKLORE_URL": emu.base_url,
            "BOOKLORE_USERNAME": DEMO_USER[0],
            "BOOKLORE_PASSWORD": DEMO_USER[1],
            "BOOKLORE_KOREADER_USERNAME": DEMO_USER[0],
            "BOOKLORE_KOREADER_PASSWORD": DEMO_USER[1],
        }
        cfg = Config.load(home=home, env=env)
        # the sample device's clock is UTC, and its copied files keep their times
        cfg.file_values["device.timezone"] = "UTC"

        _step(f"booklore-sync scan {device.root}")
        with Store.open(cfg.store_path) as store:
            scan = scan_source(store, device.root, cfg.settings())
            per_book = _queued_per_book(store)
        data = scan.to_json()
        _print(f"{data['books']} books; queued: "
              + ", ".join(f"{data['queued'][q]} {q}" for q in QUEUES))
        for line in per_book:
            _print(line)
        for problem in data["errors"]:
            _print(f"  error: {problem['file']}: {problem['error']}")
        for problem in data["warnings"]:
            _print(f"  warning: {problem['file']}: "
                   f"{problem.get('warning', problem.get('error', ''))}")

        _step("booklore-sync status")
        with Store.open(cfg.store_path) as store:
            _print(status_text(status_data(store)))

        _step("booklore-sync sync")
        report = _sync_and_say(cfg)
        _print(f"(exit code {report.exit_code})")

        _step("booklore-sync status --verbose")
        with Store.open(cfg.store_path) as store:
            _print(status_text(status_data(store, verbose=True)))

        _step("What the emulator now holds")
        state = emu.state
        server = {"sessions": len(state.sessions()), "annotations": len(state.annotations()),
                  "book_notes": len(state.book_notes()), "notes": len(state.notes_v2()),
                  "bookmarks": len(state.bookmarks()), "ratings": len(state.ratings()),
                  "positions": len(state.progress())}
        for what, key in _HELD:
            _print(f"  {what}: {server[key]}")

        _step("Second sync (nothing is sent twice)")
        again = _sync_and_say(cfg)
        code = report.exit_code or again.exit_code
        if json_out:
            summary: dict[str, Any] = {"scan": data, "sync": report.to_json(),
                                       "server": server}
            sys.stdout.write(json.dumps(summary) + "\n")
        _print(f"\nDemo finished (exit {code}). Try it yourself: booklore-sync emulator --library "
              "DIR, then set BOOKLORE_URL and run scan / sync / menu.")
        return code
    finally:
        if emu is not None:
            emu.stop()
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
        sys.stdout.flush()
        _Out.stream = sys.stdout

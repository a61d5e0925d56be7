"""`booklore-sync demo`: the whole pipeline on generated sample data.

Starts the emulator on a free loopback port with a small library, writes a
KOReader device folder (books, sidecars with highlights, a note, bookmarks,
ratings and positions, a statistics database), then runs scan → status →
sync → status against it in a private, temporary home, and stops the
emulator.  Nothing from the network or from ``../shared`` is used, and
nothing is left running.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from booklore_sync.config import Config
from booklore_sync.store import QUEUES, Store

DEMO_USER = ("demo", "demo")


def _step(title: str) -> None:
    print(f"\n== {title} ==", flush=True)


def run_demo(keep: Path | None = None) -> int:
    from booklore_sync.emulator import start_emulator
    from booklore_sync.koreader.sample import build_sample_device
    from booklore_sync.koreader.scan import scan_source
    from booklore_sync.status import status_data, status_text
    from booklore_sync.sync.runner import sync_once

    work = Path(tempfile.mkdtemp(prefix="booklore-sync-demo-")) if keep is None else keep
    work.mkdir(parents=True, exist_ok=True)
    emu = None
    try:
        _step("Creating a sample KOReader device")
        device = build_sample_device(work / "device")
        print(f"device folder: {device.root}")
        for book in device.books:
            print(f"  {book.relative_to(device.root)}")

        _step("Starting the BookLore emulator")
        emu = start_emulator(mode="fork", library=device.library, port=0,
                             user=DEMO_USER, koreader_user=DEMO_USER)
        print(f"{emu.base_url}  (BookLore user demo/demo, KOReader account demo/demo)")

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
        data = scan.to_json()
        print(f"{data['books']} books; queued: "
              + ", ".join(f"{data['queued'][q]} {q}" for q in QUEUES))
        for problem in data["errors"]:
            print(f"  error: {problem['file']}: {problem['error']}")

        _step("booklore-sync status")
        with Store.open(cfg.store_path) as store:
            print(status_text(status_data(store, verbose=True)))

        _step("booklore-sync sync")
        report = sync_once(cfg)
        for message in report.messages + report.config_errors:
            print(message)
        for line in report.summary_lines():
            print(line)

        _step("booklore-sync status")
        with Store.open(cfg.store_path) as store:
            print(status_text(status_data(store, verbose=True)))

        _step("What the emulator now holds")
        state = emu.state
        held = {
            "reading sessions": len(state.sessions()),
            "highlights": len(state.annotations()),
            "in-book notes": len(state.notes_v2()),
            "book notes": len(state.book_notes()),
            "bookmarks": len(state.bookmarks()),
            "ratings": len(state.ratings()),
            "KOReader positions": len(state.progress()),
        }
        for what, n in held.items():
            print(f"  {what}: {n}")

        _step("Second sync (nothing is sent twice)")
        again = sync_once(cfg)
        for line in again.summary_lines():
            print(line)
        code = report.exit_code or again.exit_code
        print(f"\nDemo finished (exit {code}). Try it yourself: booklore-sync emulator --library "
              "DIR, then set BOOKLORE_URL and run scan / sync / menu.")
        return code
    finally:
        if emu is not None:
            emu.stop()
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
        sys.stdout.flush()

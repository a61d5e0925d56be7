"""Benchmark: Sync Pending Now against the emulator (spec §9).

Workload: 10,000 sessions over 200 books, 2,000 annotations, 500 bookmarks,
200 ratings, 200 progress updates, queued directly in a fresh store.  Prints
requests per endpoint, total requests, wall time, and the ratio against a bare
keep-alive replay of the same minimal request set with a plain httpx loop
against an identical emulator in the same run.  Also prints what the plugin's
pattern (one request per session and per rating) would have needed, and the
start-up ratio of `status --json` against `python -c "import sqlite3, json"`.

    python bench/bench_sync.py [--small] [--latency MS] [--workload p3|p5]

``--latency MS`` makes the emulator answer every request after MS milliseconds
(through its control API: a ``delay`` fault rule on every path, booklore-api.md
§7.7) and compares the sync, at ``http.max_concurrency`` 1 and at the default, with
a sequential bare replay of the minimal request set under the same delay.  With a
latency the workload defaults to spec §9 p5 (60 books × 50 sessions, 10 highlights
per book of which 10 % carry notes, 2–3 bookmarks, one rating and one position per
book); without, to p3.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from booklore_sync.actions.sync import sync_once
from booklore_sync.config import Config
from booklore_sync.emulator import start_emulator
from booklore_sync.store import Store
from booklore_sync.sync.engine import DEFAULT_CONCURRENCY

BOOK_TYPE = "EPUB"


def fingerprint(i: int) -> str:
    return f"{i:032x}"


def build_workload(store: Store, books: int, sessions: int, annotations: int, bookmarks: int,
                   ratings: int, progress: int, notes_every: int = 0) -> None:
    base = 1_700_000_000
    with store.transaction():
        for i in range(sessions):
            fp = fingerprint(i % books)
            start = base + i * 3600
            store.enqueue_session(fp, start, {
                "bookType": BOOK_TYPE,
                "startTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
                "endTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + 1200)),
                "durationSeconds": 1200, "durationFormatted": "20m 0s",
                "startProgress": 10.0, "endProgress": 12.5, "progressDelta": 2.5,
                "startLocation": "10", "endLocation": "14"})
        for i in range(annotations):
            fp = fingerprint(i % books)
            kind = "note" if notes_every and i % notes_every == 0 else "highlight"
            store.enqueue_annotation(
                fp, f"2024-01-01 10:{i // 60 % 60:02d}:{i % 60:02d}-{i}", kind,
                f"/body/DocFragment[{i % 7 + 2}]/body/p[{i}]/text().0", {
                    "kind": kind, "paged": False, "book_type": BOOK_TYPE,
                    "cfi": f"epubcfi(/6/{2 * (i % 7) + 4}!/4/{2 * i + 2}/1,:0,:10)",
                    "text": f"highlighted passage {i}",
                    "note": f"a note on passage {i}" if kind == "note" else None,
                    "chapter": "Chapter",
                    "color": "#FFC107", "style": "highlight", "page": None,
                    "datetime": "2024-01-01 10:00:00"})
        for i in range(bookmarks):
            fp = fingerprint(i % books)
            store.enqueue_bookmark(fp, f"2024-02-01 10:00:{i:04d}", {
                "paged": False, "cfi": f"epubcfi(/6/4!/4/{2 * i + 2}/1:0)",
                "title": f"Bookmark {i}", "page": None, "chapter": "Chapter",
                "text": None, "datetime": "x"})
        for i in range(ratings):
            store.enqueue_rating(fingerprint(i % books), 2 * (i % 5 + 1))
        for i in range(progress):
            store.enqueue_progress(fingerprint(i % books), f"/body/DocFragment[3]/body/p[{i}]",
                                   round(0.2 + (i % 50) / 100, 4),
                                   {"device": "bench", "device_id": "BENCH", "position_time": None})
        for i in range(books):
            store.upsert_book(fingerprint(i), title=f"Book {i}")


def recon_budget(args) -> int:
    """First-contact reads the spec allows: one per book and kind the workload has
    (sessions for every book; book notes only with notes; PDF bookmarks: none here)."""
    kinds = 1 + (1 if args.notes_every else 0)
    return args.books * kinds


def seed_books(books: int) -> list[dict]:
    return [{"metadata": {"title": f"Book {i}", "authors": ["Bench"]}, "hash": fingerprint(i),
             "bookType": BOOK_TYPE} for i in range(books)]


def endpoint_of(entry: dict) -> str:
    path = entry["path"].split("?")[0]
    parts = path.split("/")
    # collapse ids and hashes
    norm = ["{id}" if p.isdigit() or (len(p) == 32 and all(c in "0123456789abcdef" for c in p))
            else p for p in parts]
    return f"{entry['method']} {'/'.join(norm)}"


class EmulatorProcess:
    """The emulator in a process of its own, as a real server is (the default): the
    client's work and the server's then do not share one interpreter lock."""

    def __init__(self, books: int, workdir: Path):
        seed = workdir / "seed.json"
        seed.write_text(json.dumps({"books": seed_books(books)}))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "booklore_sync", "emulator", "--port", "0", "--seed",
             str(seed), "--koreader-sync", "on"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.base_url = self.proc.stdout.readline().strip()
        if not self.base_url.startswith("http"):
            self.stop()
            raise SystemExit("the emulator did not start")

    def request_log(self) -> list[dict]:
        return httpx.get(self.base_url + "/__emulator/requests", timeout=60).json()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


def launch_emulator(args, workdir: Path):
    if args.in_process:
        emu = start_emulator(mode="fork", port=0, books=seed_books(args.books), library=None)
    else:
        emu = EmulatorProcess(args.books, workdir)
    if args.latency:
        set_latency(emu.base_url, args.latency)
    return emu


def set_latency(base_url: str, ms: int) -> None:
    """Every request answered after ``ms`` milliseconds: a ``delay`` fault rule on every
    path, for ever (the emulator's control API, booklore-api.md §7.7)."""
    resp = httpx.post(base_url + "/__emulator/faults", json={
        "path": "/", "match": "prefix", "method": "*", "action": "delay",
        "delay_ms": int(ms), "times": None}, timeout=30)
    resp.raise_for_status()


def run_engine(args, home: Path, concurrency: int | None = None):
    home.mkdir(parents=True, exist_ok=True)
    emu = launch_emulator(args, home)
    try:
        cfg = Config.load(home=home, env={
            "BOOKLORE_URL": emu.base_url, "BOOKLORE_USERNAME": "demo", "BOOKLORE_PASSWORD": "demo",
            "BOOKLORE_KOREADER_USERNAME": "demo", "BOOKLORE_KOREADER_PASSWORD": "demo"})
        with Store.open(cfg.store_path) as store:
            build_workload(store, args.books, args.sessions, args.annotations, args.bookmarks,
                           args.ratings, args.progress, args.notes_every)
        if concurrency is not None:
            cfg.file_values["http.max_concurrency"] = concurrency
        # what is measured is the sync, not the process start-up work any command pays
        # once (importing modules; finding the OS keyring backend), which the bare
        # replay does not pay either
        import booklore_sync.booklore.client  # noqa: F401
        import booklore_sync.sync.engine  # noqa: F401
        from booklore_sync.config import keyring_available

        keyring_available()

        start = time.perf_counter()
        report = sync_once(cfg)
        wall = time.perf_counter() - start
        log = emu.request_log()
        return report, wall, log
    finally:
        emu.stop()


def minimal_requests(log: list[dict]) -> list[dict]:
    """The writes the engine made (the minimal set), to replay with a bare loop."""
    return [e for e in log if e["method"] in ("POST", "PUT") and not e["path"].startswith(
        ("/api/v1/auth/", "/__emulator"))]


def run_bare(args, writes: list[dict]) -> float:
    with tempfile.TemporaryDirectory(prefix="bench-bare-") as tmp:
        emu = launch_emulator(args, Path(tmp))
        try:
            return _replay(emu, writes)
        finally:
            emu.stop()


def _replay(emu, writes: list[dict]) -> float:
    """The minimal request set with a plain keep-alive httpx loop."""
    with httpx.Client(base_url=emu.base_url, timeout=30) as client:
        token = client.post("/api/v1/auth/login",
                            json={"username": "demo", "password": "demo"}).json()["accessToken"]
        ko = {"x-auth-user": "demo", "x-auth-key": hashlib.md5(b"demo").hexdigest()}
        bearer = {"Authorization": f"Bearer {token}"}
        start = time.perf_counter()
        for e in writes:
            headers = ko if e["path"].startswith("/api/koreader/") else bearer
            resp = client.request(e["method"], e["path"], json=e.get("body"), headers=headers)
            if resp.status_code >= 400 and resp.status_code != 409:
                raise SystemExit(f"bare replay failed: {e['method']} {e['path']} -> "
                                 f"{resp.status_code} {resp.text[:200]}")
        return time.perf_counter() - start


def startup_ratio(rounds: int = 15) -> tuple[float, float, float]:
    home = tempfile.mkdtemp(prefix="bench-status-")
    env = dict(os.environ, BOOKLORE_SYNC_HOME=home)
    exe = Path(sys.executable).parent / "booklore-sync"
    cmd_ours = [str(exe), "status", "--json"] if exe.exists() else \
        [sys.executable, "-m", "booklore_sync", "status", "--json"]
    subprocess.run(cmd_ours, env=env, stdout=subprocess.DEVNULL, check=True)

    def median(cmd):
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    base = median([sys.executable, "-c", "import sqlite3, json"])
    ours = median(cmd_ours)
    return base, ours, ours / base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="a tenth of the workload")
    parser.add_argument("--in-process", action="store_true",
                        help="run the emulator in this process (threads) instead of its own")
    parser.add_argument("--latency", type=int, default=0, metavar="MS",
                        help="the emulator answers every request after MS milliseconds")
    parser.add_argument("--workload", choices=("p3", "p5"), default=None,
                        help="spec §9 workload (default: p5 with --latency, else p3)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each side, interleaved; the fastest of each is compared "
                        "(the machines are shared and noisy)")
    args = parser.parse_args()
    scale = 10 if args.small else 1
    workload = args.workload or ("p5" if args.latency else "p3")
    if workload == "p5":
        args.books = max(1, 60 // scale)
        args.sessions, args.annotations = 50 * args.books, 10 * args.books
        args.bookmarks = args.books * 5 // 2
        args.ratings = args.progress = args.books
        args.notes_every = 10
    else:
        args.books = 200 // scale
        args.sessions = 10_000 // scale
        args.annotations = 2_000 // scale
        args.bookmarks = 500 // scale
        args.ratings = 200 // scale
        args.progress = 200 // scale
        args.notes_every = 0

    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        report, wall, log = run_engine(args, Path(tmp) / "run0", DEFAULT_CONCURRENCY)
    if report.exit_code != 0:
        raise SystemExit(f"sync did not succeed: exit {report.exit_code} {report.messages} "
                         f"{report.to_json()}")
    per_endpoint = Counter(endpoint_of(e) for e in log)
    print(f"workload: {args.sessions} sessions over {args.books} books, {args.annotations} "
          f"annotations, {args.bookmarks} bookmarks, {args.ratings} ratings, "
          f"{args.progress} progress updates")
    print("requests per endpoint:")
    for name, n in sorted(per_endpoint.items(), key=lambda kv: -kv[1]):
        print(f"  {n:6d}  {name}")
    total = sum(per_endpoint.values())
    sessions_ratings = sum(n for k, n in per_endpoint.items()
                           if k.startswith(("POST", "PUT"))
                           and ("reading-sessions" in k or "personal-rating" in k))
    writes = minimal_requests(log)
    lookups = per_endpoint.get("GET /api/koreader/books/by-hash/{id}", 0) + \
        per_endpoint.get("GET /api/v1/books/by-hash/{id}", 0)
    recon = sum(n for k, n in per_endpoint.items() if k.startswith("GET ") and (
        "reading-sessions/book" in k or "book-notes/book" in k
        or "bookmarks/book" in k))
    state_reads = per_endpoint.get("GET /api/v1/books/{id}", 0) + \
        per_endpoint.get("GET /api/koreader/syncs/progress/{id}", 0)
    other = total - len(writes) - lookups - recon - state_reads
    # spec §9 p3: the minimal set + one lookup per book + one first-contact read per
    # book and kind + one server-state read per progress item whose Book the run does
    # not already hold + 10
    budget = len(writes) + args.books + recon_budget(args) + args.progress + 10
    print(f"total requests: {total} (minimal write set {len(writes)}, lookups {lookups} "
          f"[budget {args.books}], first-contact reads {recon} [budget "
          f"{recon_budget(args)}], server-state reads {state_reads} [budget <= "
          f"{args.progress}], other {other} [budget 10]); spec budget <= {budget}"
          f"{'' if total <= budget else '  OVER BUDGET'}")
    print(f"sessions + ratings requests: {sessions_ratings} (target <= "
          f"{args.books + 5} = one batch of <=100 per book + one per distinct rating)")
    print("the bare replay sends the minimal write set only (spec §9: the lookups, "
          "first-contact and server-state reads are the sync's own cost)")
    plugin = args.sessions + args.ratings + args.annotations + args.bookmarks + args.progress
    print(f"the plugin's pattern would need: {args.sessions + args.ratings} requests for "
          f"sessions + ratings, {plugin} writes in all")
    print(f"latency: {args.latency} ms per request; workload {workload}")
    bares = [run_bare(args, writes)]
    walls: dict[int, list[float]] = {1: [], DEFAULT_CONCURRENCY: [wall]}
    for n in range(max(1, args.repeat)):
        for concurrency in (1, DEFAULT_CONCURRENCY):
            if len(walls[concurrency]) > n:
                continue
            with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
                walls[concurrency].append(
                    run_engine(args, Path(tmp) / f"run{n}-{concurrency}", concurrency)[1])
        if len(bares) <= n:
            bares.append(run_bare(args, writes))
    bare = min(bares)
    target = {1: 1.25 if not args.latency else None,
              DEFAULT_CONCURRENCY: 0.35 if args.latency else None}
    for concurrency, times in walls.items():
        best = min(times)
        goal = f" (target <= {target[concurrency]})" if target[concurrency] else ""
        print(f"wall time (best of {len(times)}), http.max_concurrency = {concurrency}: "
              f"engine {best:.2f} s, sequential bare replay {bare:.2f} s, "
              f"ratio {best / bare:.2f}{goal}")
        print("  all runs: engine " + ", ".join(f"{w:.2f}" for w in times))
    print("  bare runs: " + ", ".join(f"{b:.2f}" for b in bares))
    if args.latency:
        return
    base, ours, ratio = startup_ratio()
    print(f"start-up: status --json {ours * 1000:.0f} ms, python -c 'import sqlite3, json' "
          f"{base * 1000:.0f} ms, ratio {ratio:.2f} (target <= 2)")


if __name__ == "__main__":
    main()

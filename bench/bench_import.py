"""Benchmark: sessions from a statistics.sqlite3 with 1,000,000 page-stat rows / 500 books.

Compares booklore-sync's streaming session derivation (private copy + grouping in
Python) with SQLite itself running the window-function grouping query of
koreader-data.md §3.5 on the same file, each in its own child process (so peak
memory is measured per side).  Targets: ratio ≤ 0.75, peak ≤ 150 MB.

    python bench/bench_import.py [--small] [--rows N]
"""

from __future__ import annotations

import json
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from booklore_sync.koreader.statistics import SCHEMA_DDL, WINDOW_GROUPING_SQL


def generate(path: Path, n_rows: int, n_books: int = 500, seed: int = 7) -> None:
    rnd = random.Random(seed)
    conn = sqlite3.connect(path)
    for sql in SCHEMA_DDL:
        conn.execute(sql)
    conn.execute("PRAGMA user_version = 20221111")
    conn.executemany("INSERT INTO book(id, title, authors, md5, pages) VALUES (?,?,?,?,?)",
                     [(i, f"Book {i}", "N/A", f"{i:032x}", 300) for i in range(1, n_books + 1)])
    pages = {i: rnd.randint(1, 50) for i in range(1, n_books + 1)}

    def rows():
        t = 1_600_000_000
        made = 0
        while made < n_rows:
            book = rnd.randint(1, n_books)
            length = min(rnd.randint(20, 200), n_rows - made)
            for _ in range(length):
                d = rnd.randint(5, 120)
                yield (book, pages[book], t, d, 300)
                pages[book] = pages[book] % 300 + 1
                t += d + rnd.randint(0, 8)
            made += length
            t += rnd.randint(600, 172_800)

    conn.executemany("INSERT INTO page_stat_data VALUES (?,?,?,?,?)", rows())
    conn.commit()
    conn.close()


def child(mode: str, path: str) -> None:
    t0 = time.perf_counter()
    if mode == "derive":
        from booklore_sync.koreader.statistics import derive_sessions
        from booklore_sync.settings_defaults import DEFAULTS
        _, sessions, _ = derive_sessions(path, DEFAULTS, 2_000_000_000)
        n = len(sessions)
        total = sum(s.duration for s in sessions)
    else:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        out = conn.execute(WINDOW_GROUPING_SQL, {"gap": 300}).fetchall()
        n = len(out)
        total = sum(r[4] for r in out)
        conn.close()
    elapsed = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": elapsed, "sessions": n, "total": total, "peak_mb": peak_kb / 1024}))


def run_child(mode: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> None:
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        child(sys.argv[i + 1], sys.argv[i + 2])
        return
    n_rows = 100_000 if "--small" in sys.argv else 1_000_000
    if "--rows" in sys.argv:
        n_rows = int(sys.argv[sys.argv.index("--rows") + 1])
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "statistics.sqlite3"
        t0 = time.perf_counter()
        generate(db, n_rows)
        print(f"generated {n_rows:,} rows over 500 books in {time.perf_counter() - t0:.1f} s "
              f"({db.stat().st_size / 1e6:.0f} MB)")
        ours = min((run_child("derive", db) for _ in range(2)), key=lambda r: r["seconds"])
        sql = min((run_child("sql", db) for _ in range(2)), key=lambda r: r["seconds"])
        assert ours["sessions"] == sql["sessions"] and ours["total"] == sql["total"], (ours, sql)
        print(f"booklore-sync derivation: {ours['seconds']:.2f} s, "
              f"{n_rows / ours['seconds']:,.0f} rows/s, peak RSS {ours['peak_mb']:.0f} MB, "
              f"{ours['sessions']:,} sessions")
        print(f"SQLite window query:      {sql['seconds']:.2f} s, "
              f"{n_rows / sql['seconds']:,.0f} rows/s, peak RSS {sql['peak_mb']:.0f} MB")
        ratio = ours["seconds"] / sql["seconds"]
        print(f"ratio (ours / SQLite): {ratio:.2f}  (target ≤ 0.75)  "
              f"peak {ours['peak_mb']:.0f} MB (target ≤ 150 MB)")


if __name__ == "__main__":
    main()

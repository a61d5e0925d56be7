"""Fuzz the importer with seeded damaged devices (koreader-data §12; issue 13).

    .venv/bin/python bench/bench_fuzz_import.py [--inputs 1000] [--seed 1]

Each input is the Kobo fixture with one file damaged (truncated, bit-flipped, wrongly
typed, wrongly encoded, deeply nested, with injected Lua code, a corrupt SQLite page,
schema or version, a stray or hot journal, a link, folder or FIFO where a file
belongs: ``tests/koreader/damage.py``).  Every scan must return within the time bound,
without a traceback, leave no trace of the injected code, and keep every item of the
books the damage does not concern.  Prints ``N inputs, 0 crashes, 0 hangs``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.koreader.damage import TIME_LIMIT, run_many  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="booklore-fuzz-") as tmp:
        outcomes = run_many(range(args.seed, args.seed + args.inputs), Path(tmp))
    elapsed = time.perf_counter() - t0
    crashes = [o for o in outcomes if o.crashed]
    hangs = [o for o in outcomes if o.hung]
    losses = [o for o in outcomes if o.lost]
    kinds = Counter(o.name.split(": ", 1)[1].rsplit(":", 1)[-1] for o in outcomes)
    for o in crashes[:10]:
        print(f"CRASH {o.name}\n{o.crashed}", file=sys.stderr)
    for o in hangs[:10]:
        print(f"HANG {o.name}", file=sys.stderr)
    for o in losses[:10]:
        print(f"SILENT LOSS {o.name}: {o.lost}", file=sys.stderr)
    slowest = max(outcomes, key=lambda o: o.seconds)
    print(f"operators: {', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}")
    print(f"slowest input {slowest.seconds:.2f} s ({slowest.name}); bound {TIME_LIMIT:.0f} s; "
          f"total {elapsed:.0f} s")
    print(f"{len(outcomes)} inputs, {len(crashes)} crashes, {len(hangs)} hangs, "
          f"{len(losses)} silent losses")
    return 1 if crashes or hangs or losses else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: parse a generated ~3.5 MB KOReader sidecar (5,000 annotations).

Prints MB/s of booklore_sync.koreader.luatable.parse and, as a reference, of
Python's json module on a JSON text of the same data.  Usage:
    python bench/bench_luaparse.py [--small]
"""

from __future__ import annotations

import json
import sys
import time

from booklore_sync.koreader.luatable import dump, parse


def make_sidecar(n_annotations: int) -> dict:
    anns = []
    for i in range(n_annotations):
        frag = 3 + i // 40
        anns.append({
            "chapter": f"Chapter {frag} – “Quoted” ünïcödé",
            "color": ["yellow", "green", "blue", "red"][i % 4],
            "datetime": f"2024-03-{1 + i % 28:02d} {i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}",
            "drawer": "lighten" if i % 3 else "underscore",
            "note": (f"Note {i}: a \"thought\"\nsecond line\twith tab — and more text " * 3
                     if i % 5 == 0 else None),
            "page": f"/body/DocFragment[{frag}]/body/div[1]/p[{i % 50 + 1}]/text().{i % 97}",
            "pageno": 5 + i,
            "pos0": f"/body/DocFragment[{frag}]/body/div[1]/p[{i % 50 + 1}]/text().{i % 97}",
            "pos1": f"/body/DocFragment[{frag}]/body/div[1]/p[{i % 50 + 2}]/text().{i % 89}",
            "text": ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod "
                     "tempor incididunt ut labore et dolore magna aliqua.\nUt enim ad minim "
                     "veniam, quis nostrud exercitation ullamco laboris " * 2),
        })
    return {
        "annotations": anns,
        "cre_dom_version": 20240114,
        "doc_pages": 1109,
        "doc_path": "/mnt/onboard/Books/big.epub",
        "doc_props": {"authors": "A\nB", "title": "Big"},
        "partial_md5_checksum": "59d481d168cca6267322f150c5f6a2a3",
        "percent_finished": 0.45678912345679,
        "summary": {"modified": "2024-03-02", "rating": 4, "status": "reading"},
    }


def main() -> None:
    small = "--small" in sys.argv
    n = 500 if small else 5000
    data = dump(make_sidecar(n), "/mnt/onboard/Books/big.sdr/metadata.epub.lua")
    mb = len(data) / 1e6
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        value = parse(data)
        best = min(best, time.perf_counter() - t0)
    assert len(value["annotations"]) == n
    js = json.dumps(value).encode()
    jbest = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        json.loads(js)
        jbest = min(jbest, time.perf_counter() - t0)
    print(f"sidecar: {n} annotations, {mb:.2f} MB")
    print(f"luatable.parse: {best:.3f} s  ({mb / best:.1f} MB/s)")
    print(f"json.loads (same data, {len(js) / 1e6:.2f} MB, C reference): {jbest:.3f} s "
          f"({len(js) / 1e6 / jbest:.1f} MB/s)")
    t0 = time.perf_counter()
    dump(value)
    print(f"luatable.dump: {time.perf_counter() - t0:.3f} s")


if __name__ == "__main__":
    main()

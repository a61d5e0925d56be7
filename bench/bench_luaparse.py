"""Benchmark: parse a generated ~3.5 MB KOReader sidecar (5,000 annotations).

Prints MB/s of booklore_sync.koreader.luatable.parse and, as references, of the
exact parser alone (what parse falls back to for text outside KOReader's canonical
shape) and of Python's json module on a JSON text of the same data; then the same
for many small sidecars (3 annotations each, as in bench_scan).  Usage:
    python bench/bench_luaparse.py [--small] [--check N]

``--check N`` first runs N random differential cases: dumps of random values, cut,
mutated and stuffed with Lua/JSON look-alike tokens, must parse on the fast path
exactly as on the exact parser (same value and types, or a decline).
"""

from __future__ import annotations

import json
import math
import random
import sys
import time

from booklore_sync.koreader.luatable import (
    _ABSENT,
    LuaParseError,
    _fast_parse,
    _parse_exact,
    dump,
    parse,
)


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


def _best(fn, *args, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best


def small_sidecars(count: int) -> list[bytes]:
    """Sidecars like bench_scan's: 3 paged annotations, rating, progress."""
    out = []
    for i in range(count):
        anns = [{"chapter": f"Chapter {k}", "color": "yellow", "datetime": f"2024-0{1 + k}-1{k} 10:00:00",
                 "drawer": "lighten" if k < 2 else None, "page": 10 + k, "pageno": 10 + k,
                 "pos0": {"page": 10 + k, "x": 10.5, "y": 20.25, "zoom": 1.5, "rotation": 0},
                 "pos1": {"page": 10 + k, "x": 110.5, "y": 40.25, "zoom": 1.5, "rotation": 0},
                 "text": f"highlighted text {i} {k} " * 5 if k < 2 else None} for k in range(3)]
        out.append(dump({"annotations": anns, "doc_pages": 300, "doc_path": f"/mnt/onboard/b{i}.pdf",
                         "doc_props": {"title": f"Book {i}", "authors": "A. Writer"},
                         "last_page": 19, "partial_md5_checksum": "358de0ef496428406dd4a1c1f8feaab2",
                         "percent_finished": 0.54923988637702,
                         "summary": {"rating": 1 + i % 5, "status": "reading"}},
                        f"/mnt/onboard/b{i}.sdr/metadata.pdf.lua"))
    return out


_TOKENS = ['{', '}', '[', ']', '=', ',', ';', '"a"', '"', "'", '1', '0', '-', '.', 'e', 'true',
           'false', 'nil', 'nan', 'inf', '[1] = ', '["k"] = ', ' ', '\n', '\r', '\\', '\\n',
           '\\9', '\\200', '\\"', '\\\n', '--', '[[x]]', 'x', ':', '12345678901234567890',
           '00', '\x00', '\x01', 'null', 'NaN', 'Infinity', '[-0] = ', '[01] = ', '[ 1 ] = ',
           '1e400', '0x10', '[1.5] = ', '\\u0041', '\\/', '\udcff', 'é']


def _random_value(rnd: random.Random, depth: int = 0) -> object:
    r = rnd.random()
    if depth < 3 and r < 0.3:
        if rnd.random() < 0.5:
            return [_random_value(rnd, depth + 1) for _ in range(rnd.randint(1, 4))]
        return {rnd.choice(["a", "b", "x y", "1", "é", 1, 2, -3, 10**19]): _random_value(rnd, depth + 1)
                for _ in range(rnd.randint(0, 4))}
    return rnd.choice([None, True, False, 0, -1, 2**62, 10**19, 0.5, -0.0, 1e300,
                       float("inf"), float("nan"), "", "t", "a\tb", "x\ny", '"q"', "\\",
                       "\x01", "é", "\udcff", "[1] = 2", "] = "])


def _canon(v: object) -> object:
    if isinstance(v, dict):
        return ("d", tuple((_canon(k), _canon(x)) for k, x in v.items()))
    if isinstance(v, list):
        return ("l", tuple(_canon(x) for x in v))
    if isinstance(v, float):
        return ("f", "nan" if math.isnan(v) else v.hex())
    return (type(v).__name__, v)


def check(count: int, seed: int = 7) -> None:
    """Differential check of the fast path against the exact parser."""
    rnd = random.Random(seed)
    taken = 0
    for _ in range(count):
        data = dump(_random_value(rnd), "/x.lua" if rnd.random() < 0.5 else None)
        for _ in range(rnd.randint(0, 3)):
            i = rnd.randint(0, len(data))
            op = rnd.random()
            if op < 0.4:
                data = data[:i] + rnd.choice(_TOKENS).encode("utf-8", "surrogateescape") + data[i:]
            elif op < 0.7:
                data = data[:i] + data[i + 1:]
            else:
                data = data[:i]
        fast = _fast_parse(data)
        if fast is _ABSENT:
            continue
        taken += 1
        try:
            exact = _parse_exact(data, None)
        except LuaParseError as exc:
            raise AssertionError(
                f"fast path accepted what the parser rejects: {data!r} ({exc})") from exc
        assert _canon(fast) == _canon(exact), (data, fast, exact)
    print(f"check: {count} cases, {taken} on the fast path, all equal to the exact parser")


def main() -> None:
    if "--check" in sys.argv:
        check(int(sys.argv[sys.argv.index("--check") + 1]))
    small = "--small" in sys.argv
    n = 500 if small else 5000
    data = dump(make_sidecar(n), "/mnt/onboard/Books/big.sdr/metadata.epub.lua")
    mb = len(data) / 1e6
    best = _best(parse, data)
    value = parse(data)
    assert len(value["annotations"]) == n
    assert _fast_parse(data) == value == _parse_exact(data, None)  # the fast path took it
    exact = _best(_parse_exact, data, None)
    js = json.dumps(value).encode()
    jbest = _best(json.loads, js)
    print(f"sidecar: {n} annotations, {mb:.2f} MB")
    print(f"luatable.parse: {best:.3f} s  ({mb / best:.1f} MB/s)")
    print(f"  exact parser alone (the fallback): {exact:.3f} s  ({mb / exact:.1f} MB/s)")
    print(f"json.loads (same data, {len(js) / 1e6:.2f} MB, C reference): {jbest:.3f} s "
          f"({len(js) / 1e6 / jbest:.1f} MB/s)")
    t0 = time.perf_counter()
    dump(value)
    print(f"luatable.dump: {time.perf_counter() - t0:.3f} s")

    count = 200 if small else 2000
    sidecars = small_sidecars(count)
    for raw in sidecars[:50]:
        assert _fast_parse(raw) == _parse_exact(raw, None)
    each = _best(lambda: [parse(raw) for raw in sidecars], repeat=5) / count
    each_exact = _best(lambda: [_parse_exact(raw, None) for raw in sidecars], repeat=5) / count
    print(f"{count} small sidecars ({len(sidecars[0]):,} bytes): luatable.parse {each * 1e6:.0f} us "
          f"each, exact parser alone {each_exact * 1e6:.0f} us each")


if __name__ == "__main__":
    main()

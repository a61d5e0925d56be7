"""A seeded generator of damaged KOReader devices, and the check every scan of one
must pass (koreader-data §12; issue 13).

Each input is the Kobo fixture device (hard-linked copy) with ONE file damaged by a
random operator: truncation, flipped bytes, broken encodings, swapped value types,
deep nesting, injected Lua code (that must never run), corrupted SQLite pages,
schema text and ``user_version``, text in numeric columns, stray and hot journals,
and links, folders or FIFOs where files belong.  The check: the scan returns (no
traceback) within a time bound (no hang), the injected code left no trace, and
every book the damage does not concern keeps all its queued items (no silent loss);
a book that lost items has the loss reported in ``errors`` or ``warnings``.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import sqlite3
import struct
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from booklore_sync.koreader.scan import scan_source
from booklore_sync.store import Store
from tests.conftest import new_store

from .conftest import KOBO

NOW = 1800000000
SETTINGS = {"device.timezone": "UTC"}
QUEUES = ("annotations", "bookmarks", "ratings", "progress", "sessions")
DATA = ".adds/koreader"
LEAVES = "59d481d168cca6267322f150c5f6a2a3"
JULIET = "cf7ce9b8d4e135c8ac340f18d1e58c85"
TALL = "41cce710f34e5ec21315e19c99821415"
TWOCOL = "e7105714c0e372d7815d9651ed726b28"
#: damaged file → the books whose items it holds (None: sessions only / settings)
LUA_VICTIMS = {
    "Books/leaves.sdr/metadata.epub.lua": {LEAVES},
    "Books/2col.sdr/metadata.pdf.lua": {TWOCOL},
    "Books/tall.sdr/metadata.pdf.lua": {TALL},
    f"{DATA}/hashdocsettings/cf/{JULIET}.sdr/metadata.epub.lua": {JULIET},
    f"{DATA}/settings.reader.lua": set(),
    f"{DATA}/history.lua": set(),
}
BOOK_VICTIMS = {"Books/leaves.epub": set(), "Books/juliet.epub": set(),
                "Books/tall.pdf": set()}
STATS = f"{DATA}/settings/statistics.sqlite3"
MARKER = "PWNED-BY-LUA"
TIME_LIMIT = 20.0


class Hang(Exception):
    pass


@dataclass
class Outcome:
    name: str
    crashed: str | None = None
    hung: bool = False
    lost: str | None = None
    seconds: float = 0.0


# ------------------------------------------------------------------ byte operators
def _truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(0, max(1, len(data)))]


def _flip(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 12)):
        if b:
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def _bad_utf8(rng: random.Random, data: bytes) -> bytes:
    junk = rng.choice([b"\xff\xfe", b"\xc3", b"\xe6\x97", b"\xed\xa0\x80", b"\x80\x80\x80",
                       "日本".encode("gbk")])
    quotes = [m.end() for m in re.finditer(rb'"', data)] or [len(data) // 2]
    i = rng.choice(quotes)
    return data[:i] + junk + data[i:]


def _swap_types(rng: random.Random, data: bytes) -> bytes:
    values = list(re.finditer(rb'= ("(?:[^"\\\n]|\\.)*"|-?[0-9.e+]+|true|false|\{\})', data))
    if not values:
        return _flip(rng, data)
    out = data
    for m in sorted(rng.sample(values, min(len(values), rng.randint(1, 6))),
                    key=lambda m: -m.start()):
        new = rng.choice([b'"text"', b"42", b"-1e309", b"0x7fffffffffffffffff", b"true",
                          b"{}", b'{[1] = "a", [2] = {}}', b"nil", b'"\\0\\255"', b"1.5"])
        out = out[: m.start(1)] + new + out[m.end(1):]
    return out


def _nest(rng: random.Random, data: bytes) -> bytes:
    depth = rng.choice([99, 101, 150, 1000, 20000])
    values = list(re.finditer(rb"= (\{)", data))
    nested = b"{" * depth + b"1" + b"}" * depth
    if not values:
        return b"return " + nested
    m = rng.choice(values)
    return data[: m.start(1)] + nested + b"," + data[m.start(1):]


def _inject_code(rng: random.Random, data: bytes, marker: Path) -> bytes:
    target = str(marker).encode()
    code = rng.choice([
        b'os.execute("touch ' + target + b'")',
        b'io.open("' + target + b'", "w"):write("x")',
        b'(function() io.open("' + target + b'", "w") end)()',
        b'"a" .. io.open("' + target + b'", "w")',
        b'dofile("' + target + b'")',
        b'require("os").execute("touch ' + target + b'")',
    ])
    where = rng.choice(["value", "prefix", "statement"])
    if where == "prefix":
        return code + b"\n" + data
    if where == "statement":
        return data.replace(b"return {", code + b"\nreturn {", 1)
    values = list(re.finditer(rb'= ("(?:[^"\\\n]|\\.)*"|[0-9]+)', data))
    if not values:
        return code + b"\n" + data
    m = rng.choice(values)
    return data[: m.start(1)] + code + data[m.end(1):]


LUA_OPS: list[Callable[..., bytes]] = [_truncate, _flip, _bad_utf8, _swap_types, _nest]


# ------------------------------------------------------------------ file-kind operators
def _replace_with(rng: random.Random, path: Path) -> str:
    kind = rng.choice(["dir", "dangling", "loop", "fifo", "empty", "link-to-dir"])
    path.unlink()
    if kind == "dir":
        path.mkdir()
        (path / "metadata.epub.lua").write_bytes(b"return {}")
    elif kind == "dangling":
        path.symlink_to(path.parent / "no-such-file")
    elif kind == "loop":
        other = path.with_name(path.name + ".loop")
        path.symlink_to(other)
        other.symlink_to(path)
    elif kind == "fifo" and hasattr(os, "mkfifo"):
        os.mkfifo(path)
    elif kind == "link-to-dir":
        path.symlink_to(path.parent)
    else:
        path.write_bytes(b"")
    return kind


# ------------------------------------------------------------------ SQLite operators
def _sqlite_edit(path: Path, sql: list[str]) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        for s in sql:
            conn.execute(s)
        conn.commit()
    finally:
        conn.close()


def _damage_stats(rng: random.Random, path: Path) -> str:
    for side in ("-wal", "-shm"):
        p = Path(str(path) + side)
        if p.exists():
            p.unlink()
    fresh = path.read_bytes()
    path.unlink()
    path.write_bytes(fresh)
    op = rng.choice(["truncate", "flip", "page", "schema", "version-new", "version-old",
                     "text-values", "null-values", "stray-journal", "hot-journal", "wal-junk",
                     "file-kind", "drop-table", "bad-utf8-values"])
    if op == "truncate":
        path.write_bytes(_truncate(rng, fresh))
    elif op == "flip":
        path.write_bytes(_flip(rng, fresh))
    elif op == "page":
        b = bytearray(fresh)
        page = 4096 if len(b) % 4096 == 0 else 1024
        n = max(1, len(b) // page)
        start = rng.randrange(n) * page
        for i in range(start, min(len(b), start + page)):
            b[i] = rng.randrange(256)
        path.write_bytes(bytes(b))
    elif op == "schema":
        b = bytearray(fresh)
        i = fresh.find(b"CREATE TABLE")
        if i >= 0:
            for k in range(i + 13, min(len(b), i + 13 + rng.randint(1, 40))):
                b[k] = rng.choice([0xFF, 0xC3, 0x80, 0x00])
        path.write_bytes(bytes(b))
    elif op in ("version-new", "version-old"):
        b = bytearray(fresh)
        b[60:64] = struct.pack(">I", 20260101 if op == "version-new" else 20200101)
        path.write_bytes(bytes(b))
    elif op == "text-values":
        _sqlite_edit(path, ["UPDATE OR IGNORE page_stat_data SET page = 'xii' WHERE rowid % 7 = 0",
                            "UPDATE OR IGNORE page_stat_data SET duration = x'00ff' WHERE rowid % 11 = 0",
                            "UPDATE OR IGNORE page_stat_data SET start_time = 1.5 WHERE rowid % 13 = 0"])
    elif op == "null-values":
        _sqlite_edit(path, ["UPDATE OR IGNORE page_stat_data SET total_pages = NULL WHERE rowid % 5 = 0",
                            "UPDATE book SET md5 = NULL WHERE id = 1",
                            "UPDATE OR IGNORE book SET title = x'ff00fe' WHERE id = 3"])
    elif op == "bad-utf8-values":
        _sqlite_edit(path, ["UPDATE OR IGNORE book SET title = CAST(x'c3ffe697' AS TEXT)",
                            "UPDATE OR IGNORE book SET authors = CAST(x'80' AS TEXT)",
                            "UPDATE OR IGNORE book SET md5 = CAST(x'ff' AS TEXT) WHERE id = 2"])
    elif op == "drop-table":
        _sqlite_edit(path, [rng.choice(["DROP TABLE page_stat_data", "DROP TABLE book",
                                        "ALTER TABLE page_stat_data RENAME COLUMN page TO p"])])
    elif op == "stray-journal":
        Path(str(path) + "-journal").write_bytes(rng.randbytes(rng.choice([0, 28, 512, 4096])))
    elif op == "wal-junk":
        Path(str(path) + "-wal").write_bytes(rng.randbytes(rng.choice([32, 4096, 5000])))
    elif op == "hot-journal":
        _hot_journal(path)
    else:
        return "stats:" + _replace_with(rng, path)
    return "stats:" + op


def _hot_journal(path: Path) -> None:
    """A write cut off half way: the DB holds uncommitted pages, the -journal the
    originals (made by copying both files while the transaction is open)."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "s.sqlite3"
        shutil.copyfile(path, work)
        conn = sqlite3.connect(work, isolation_level=None)
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute("PRAGMA cache_size=1")
        conn.execute("BEGIN")
        conn.execute("DELETE FROM page_stat_data")
        conn.execute("UPDATE book SET title = 'uncommitted'")
        for i in range(400):  # spill pages to the file before the commit
            conn.execute("INSERT INTO numbers(number) VALUES (?)", (100000 + i,))
        shutil.copyfile(work, path)
        journal = Path(str(work) + "-journal")
        if journal.exists():
            shutil.copyfile(journal, Path(str(path) + "-journal"))
        conn.execute("ROLLBACK")
        conn.close()


# ------------------------------------------------------------------ EPUB/PDF operators
def _damage_book(rng: random.Random, path: Path) -> str:
    data = path.read_bytes()
    path.unlink()
    op = rng.choice(["truncate", "flip", "deflate", "crc", "container", "file-kind"])
    if op == "truncate":
        path.write_bytes(_truncate(rng, data))
    elif op == "flip":
        path.write_bytes(_flip(rng, data))
    elif op == "deflate":
        # flip bytes inside the first compressed member's data
        b = bytearray(data)
        i = data.find(b"PK\x03\x04", 40)
        if i > 0:
            name_len, extra_len = struct.unpack("<HH", b[i + 26:i + 30])
            start = i + 30 + name_len + extra_len
            for k in range(start + 2, min(len(b), start + 40), 3):
                b[k] ^= 0x5A
        path.write_bytes(bytes(b))
    elif op == "crc":
        b = bytearray(data)
        for m in re.finditer(rb"PK\x01\x02", data):
            if rng.random() < 0.5:
                b[m.start() + 16] ^= 0xFF
        path.write_bytes(bytes(b))
    elif op == "container":
        b = data.replace(b"META-INF/container.xml", b"META-INF/containeR.xml")
        path.write_bytes(b)
    else:
        path.write_bytes(data)
        return "book:" + _replace_with(rng, path)
    return "book:" + op


# ------------------------------------------------------------------ the check
def make_base(root: Path) -> Path:
    base = root / "device"
    shutil.copytree(KOBO, base, copy_function=os.link)
    return base


def baseline(base: Path, tmp: Path) -> dict[str, Counter[str]]:
    store = Store.open(tmp / "baseline.sqlite3")
    try:
        report = scan_source(store, base, SETTINGS, now=NOW)
        assert report.errors == [], report.errors
        return _per_book(store)
    finally:
        store.close()


def _per_book(store: Store) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for q in QUEUES:
        for item in store.pending(q):
            out.setdefault(item.fingerprint, Counter())[q] += 1
    return out


def _alarm(_signum: int, _frame: object) -> None:
    raise Hang()


def damage(rng: random.Random, device: Path, marker: Path) -> tuple[str, set[str] | None]:
    """Damage one file of ``device``; returns (what was done, the books it concerns —
    None when only sessions may change)."""
    pick = rng.random()
    if pick < 0.5:
        rel = rng.choice(sorted(LUA_VICTIMS))
        path = device / rel
        data = path.read_bytes()
        path.unlink()
        r = rng.random()
        if r < 0.2:
            path.write_bytes(_inject_code(rng, data, marker))
            what = "inject"
        elif r < 0.3:
            path.write_bytes(data)
            what = _replace_with(rng, path)
        else:
            op = rng.choice(LUA_OPS)
            new = op(rng, data)
            if rng.random() < 0.3:
                new = rng.choice(LUA_OPS)(rng, new)
            path.write_bytes(new)
            what = op.__name__.strip("_")
        return f"{rel}:{what}", LUA_VICTIMS[rel]
    if pick < 0.75:
        return _damage_stats(rng, device / STATS), None
    rel = rng.choice(sorted(BOOK_VICTIMS))
    return f"{rel}:{_damage_book(rng, device / rel)}", BOOK_VICTIMS[rel]


def run_one(seed: int, base: Path, expected: dict[str, Counter[str]], work: Path) -> Outcome:
    rng = random.Random(seed)
    case = work / f"case-{seed}"
    device = case / "device"
    shutil.copytree(base, device, copy_function=os.link, symlinks=True)
    marker = case / MARKER
    name, concerned = damage(rng, device, marker)
    out = Outcome(f"seed {seed}: {name}")
    store = new_store(case / "store.sqlite3")
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, TIME_LIMIT)
    t0 = time.perf_counter()
    try:
        report = scan_source(store, device, SETTINGS, now=NOW)
        signal.setitimer(signal.ITIMER_REAL, 0)
        got = _per_book(store)
        mentioned = " ".join(e["file"] for e in report.errors + report.warnings)
        problems = []
        for fp, counts in expected.items():
            have = got.get(fp, Counter())
            if concerned is not None and fp in concerned:
                # the damaged file's own items: a damaged key may turn a highlight into
                # a bookmark, or drop its rating; a loss must be reported
                if sum(have.values()) - have["sessions"] < sum(counts.values()) \
                        - counts["sessions"] and not mentioned:
                    problems.append(f"{fp[:8]}: items lost without a word")
                continue
            for q in QUEUES:
                if q != "sessions" and have[q] < counts[q]:
                    problems.append(f"{fp[:8]} {q}: {have[q]} < {counts[q]}")
        if "stats" not in name and sum(c["sessions"] for c in got.values()) < sum(
                c["sessions"] for c in expected.values()) and not mentioned:
            problems.append("sessions lost without a word")
        if problems:
            out.lost = "; ".join(problems)
        for row in report.errors + report.warnings:
            row["file"].encode("utf-8")
            (row.get("error") or row.get("warning") or "").encode("utf-8")
    except Hang:
        out.hung = True
    except BaseException:  # noqa: BLE001 - the point of the check
        signal.setitimer(signal.ITIMER_REAL, 0)
        out.crashed = traceback.format_exc(limit=8)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        out.seconds = time.perf_counter() - t0
        store.close()
    if marker.exists():
        out.crashed = (out.crashed or "") + "injected Lua code ran"
    shutil.rmtree(case, ignore_errors=True)
    return out


def run_many(seeds: range, work: Path) -> list[Outcome]:
    base = make_base(work)
    expected = baseline(base, work)
    return [run_one(seed, base, expected, work) for seed in seeds]

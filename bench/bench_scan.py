"""Benchmark: scan of 10,000 generated books with sidecars (Kobo layout).

Prints files/s of a first scan, of a rescan of unchanged data, and the ratio
against a bare loop that reads each book's 12 KiB fingerprint samples and each
sidecar's bytes.  Targets: first scan ≤ 6× the bare loop; rescan ≤ 0.2× the
first scan (and queueing nothing).

    python bench/bench_scan.py [--small] [--books N] [--repeat R] [--epubs E] [--workers W]

``--workers W`` sets ``BOOKLORE_SYNC_SCAN_WORKERS`` (0: one process; default: the
scan's own choice, its worker processes on the machine's cores above 500 books).

``--epubs E`` makes the first E books small EPUBs (three chapters) whose highlights
and bookmarks carry xpointers, so that the scan's CFI conversion is measured too
(default: none, every book a PDF).

Both sides read the same freshly written (page-cached) files.  The bare loop is
timed three times and its best time kept; ``--repeat R`` likewise keeps the best
of R first scans (each into a fresh store) and of their rescans (default 1).
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from booklore_sync.koreader import parallel
from booklore_sync.koreader.fingerprint import OFFSETS, partial_md5
from booklore_sync.koreader.luatable import dump
from booklore_sync.koreader.scan import scan_source
from booklore_sync.store import Store

_CHAPTER = ('<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
            "<head><title>c</title></head><body>{}</body></html>")


def _epub(path: Path, rnd: random.Random, book: int) -> None:
    """A small valid EPUB: three chapters of ten paragraphs, with random padding."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        z.writestr("META-INF/container.xml",
                   '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:'
                   'opendocument:xmlns:container"><rootfiles><rootfile full-path="OEBPS/'
                   'content.opf" media-type="application/oebps-package+xml"/></rootfiles>'
                   "</container>")
        items, spine = [], []
        for c in range(1, 4):
            body = "".join(f"<p>Book {book} chapter {c} paragraph {k}: "
                           f"{rnd.randbytes(40).hex()}</p>" for k in range(1, 11))
            z.writestr(f"OEBPS/c{c}.xhtml", _CHAPTER.format(body))
            items.append(f'<item id="c{c}" href="c{c}.xhtml" media-type="application/xhtml+xml"/>')
            spine.append(f'<itemref idref="c{c}"/>')
        z.writestr("OEBPS/content.opf",
                   '<?xml version="1.0" encoding="utf-8"?><package xmlns="http://www.idpf.org/'
                   '2007/opf" version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">'
                   f"<metadata><dc:title>Generated EPUB {book}</dc:title></metadata>"
                   f'<manifest>{"".join(items)}</manifest><spine>{"".join(spine)}</spine>'
                   "</package>")


def _epub_annotations(rnd: random.Random, i: int) -> list[dict[str, object]]:
    anns: list[dict[str, object]] = []
    for k in range(3):
        frag, para = rnd.randint(1, 3), rnd.randint(1, 10)  # DocFragment[c]: chapter c
        base = f"/body/DocFragment[{frag}]/body/p[{para}]/text()"
        shown = f"Book {i} chapter {frag} paragraph {para}: "[2:20]  # the text of .2 to .20
        anns.append({
            "chapter": f"Chapter {frag}", "color": "yellow",
            "datetime": f"2024-0{1 + k}-1{k} 10:{i % 60:02d}:{k:02d}",
            "drawer": "lighten" if k < 2 else None, "page": f"{base}.2",
            "pos0": f"{base}.2" if k < 2 else None, "pos1": f"{base}.20" if k < 2 else None,
            "text": shown if k < 2 else f"in chapter {frag}",
        })
    return anns


def generate(root: Path, n: int, seed: int = 3, epubs: int = 0) -> list[tuple[Path, Path]]:
    rnd = random.Random(seed)
    data_dir = root / ".adds" / "koreader"
    data_dir.mkdir(parents=True)
    (data_dir / "settings.reader.lua").write_bytes(dump(
        {"device_id": "0123456789ABCDEF0123456789ABCDEF", "document_metadata_folder": "doc"},
        "/mnt/onboard/.adds/koreader/settings.reader.lua"))
    pairs = []
    for i in range(n):
        folder = root / "Books" / f"shelf{i // 500:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        ext = "epub" if i < epubs else "pdf"
        book = folder / f"book{i:05d}.{ext}"
        if i < epubs:
            _epub(book, rnd, i)
        else:
            book.write_bytes(rnd.randbytes(rnd.randint(6_000, 40_000)))
        sdr = folder / f"book{i:05d}.sdr"
        sdr.mkdir()
        anns = []
        for k in range(3):
            page = rnd.randint(1, 300)
            anns.append({
                "chapter": f"Chapter {page // 20}", "color": "yellow",
                "datetime": f"2024-0{1 + k}-1{k} 10:{i % 60:02d}:{k:02d}",
                "drawer": "lighten" if k < 2 else None, "page": page, "pageno": page,
                "pos0": {"page": page, "x": 10.5 + k, "y": 20.25, "zoom": 1.5, "rotation": 0},
                "pos1": {"page": page, "x": 110.5, "y": 40.25, "zoom": 1.5, "rotation": 0},
                "text": f"highlighted text {i} {k} " * 5 if k < 2 else None,
            })
        if i < epubs:
            anns = _epub_annotations(rnd, i)
        sidecar = {
            "annotations": anns, "doc_pages": 300,
            "doc_path": f"/mnt/onboard/Books/shelf{i // 500:02d}/book{i:05d}.{ext}",
            "doc_props": {"title": f"Generated book {i}", "authors": "A. Writer"},
            "last_page": rnd.randint(1, 300), "partial_md5_checksum": partial_md5(book),
            "percent_finished": rnd.random(), "summary": {"rating": 1 + i % 5, "status": "reading"},
        }
        if i < epubs:
            sidecar["last_xpointer"] = "/body/DocFragment[3]/body/p[2]/text().4"
            sidecar.pop("last_page")
        path = sdr / f"metadata.{ext}.lua"
        path.write_bytes(dump(sidecar, str(path)))
        pairs.append((book, path))
    return pairs


def bare_loop(pairs: list[tuple[Path, Path]]) -> int:
    total = 0
    for book, sidecar in pairs:
        size = os.path.getsize(book)
        with open(book, "rb") as fh:
            for off in OFFSETS:
                if off >= size:
                    break
                fh.seek(off)
                total += len(fh.read(1024))
        with open(sidecar, "rb") as fh:
            total += len(fh.read())
    return total


def main() -> None:
    n = 1000 if "--small" in sys.argv else 10_000
    if "--books" in sys.argv:
        n = int(sys.argv[sys.argv.index("--books") + 1])
    epubs = int(sys.argv[sys.argv.index("--epubs") + 1]) if "--epubs" in sys.argv else 0
    repeat = int(sys.argv[sys.argv.index("--repeat") + 1]) if "--repeat" in sys.argv else 1
    if "--workers" in sys.argv:
        os.environ[parallel.ENV] = sys.argv[sys.argv.index("--workers") + 1]
    workers = parallel.workers_for(n)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "device"
        t0 = time.perf_counter()
        pairs = generate(root, n, epubs=min(epubs, n))
        print(f"generated {n:,} books ({min(epubs, n):,} EPUBs) + sidecars in {time.perf_counter() - t0:.1f} s")
        bare = min(_timed(bare_loop, pairs)[0] for _ in range(3))
        first = second = float("inf")
        for r in range(repeat):
            store = Store.open(Path(tmp) / f"store{r}" / "store.sqlite3")
            t_first, report = _timed(scan_source, store, root, {"device.timezone": "UTC"})
            assert report.books == n and not report.errors, report.to_json()
            assert not report.warnings, report.warnings[:3]  # every CFI converted
            t_second, again = _timed(scan_source, store, root, {"device.timezone": "UTC"})
            assert sum(again.queued.values()) == 0 and again.books == n
            store.close()
            first, second = min(first, t_first), min(second, t_second)
        print(f"bare loop (12 KiB samples + sidecar bytes): {bare:.2f} s, {n / bare:,.0f} files/s")
        print(f"first scan:  {first:.2f} s, {n / first:,.0f} books/s, queued {report.queued}"
              f" ({f'{workers} worker processes' if workers else 'one process'})")
        print(f"rescan:      {second:.2f} s, {n / second:,.0f} books/s, queued nothing")
        print(f"first scan / bare loop = {first / bare:.2f}  (target ≤ 6)")
        print(f"rescan / first scan    = {second / first:.2f}  (target ≤ 0.2)")


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


if __name__ == "__main__":
    main()

"""The sample PDF, written object by object, and its highlight positions."""

from __future__ import annotations

from pathlib import Path

# ========================================================================= PDF
PDF_W, PDF_H = 420, 595               # A5 in points
PDF_LEFT, PDF_TOP, PDF_SIZE, PDF_LEADING = 48, 520, 11, 16
PDF_CHAR_W = 0.5 * PDF_SIZE           # an average Helvetica advance, good enough for boxes
PDF_WRAP = 58


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def _pdf_str(s: str) -> bytes:
    return b"(" + s.encode("latin-1").replace(b"\\", b"\\\\").replace(
        b"(", b"\\(").replace(b")", b"\\)") + b")"


def _write_pdf(path: Path, title: str, author: str,
               pages: list[tuple[str, list[str]]]) -> None:
    """A small, valid PDF 1.4: Helvetica text, an outline (one entry per page), an
    /Info dictionary.  Objects: 1 catalog, 2 pages, 3 font, 4 info, 5 outlines,
    then per page: page, content stream, outline item."""
    n = len(pages)
    page_id = [6 + 3 * i for i in range(n)]
    objs: dict[int, bytes] = {}
    objs[1] = b"<< /Type /Catalog /Pages 2 0 R /Outlines 5 0 R /PageMode /UseOutlines >>"
    kids = b" ".join(b"%d 0 R" % p for p in page_id)
    objs[2] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, n)
    objs[3] = (b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
               b"/Encoding /WinAnsiEncoding >>")
    objs[4] = (b"<< /Title " + _pdf_str(title) + b" /Author " + _pdf_str(author)
               + b" /Creator (booklore-sync sample generator) /Producer (booklore-sync)"
               b" /CreationDate (D:20250101000000Z) >>")
    objs[5] = b"<< /Type /Outlines /First %d 0 R /Last %d 0 R /Count %d >>" % (
        page_id[0] + 2, page_id[-1] + 2, n)
    for i, (heading, lines) in enumerate(pages):
        pid = page_id[i]
        ops = [b"BT /F1 16 Tf %d %d Td " % (PDF_LEFT, PDF_TOP + 30) + _pdf_str(heading)
               + b" Tj ET",
               b"BT /F1 %d Tf %d TL %d %d Td" % (PDF_SIZE, PDF_LEADING, PDF_LEFT, PDF_TOP)]
        for j, line in enumerate(lines):
            ops.append((b"T* " if j else b"") + _pdf_str(line) + b" Tj")
        ops.append(b"ET")
        ops.append(b"BT /F1 9 Tf %d 40 Td (%d) Tj ET" % (PDF_W // 2 - 3, i + 1))
        stream = b"\n".join(ops) + b"\n"
        objs[pid] = (b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] "
                     b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>"
                     % (PDF_W, PDF_H, pid + 1))
        objs[pid + 1] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"endstream"
        item = b"<< /Title " + _pdf_str(heading) + b" /Parent 5 0 R"
        if i > 0:
            item += b" /Prev %d 0 R" % (page_id[i - 1] + 2)
        if i < n - 1:
            item += b" /Next %d 0 R" % (page_id[i + 1] + 2)
        item += b" /Dest [%d 0 R /XYZ null null null] >>" % pid
        objs[pid + 2] = item
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for num in sorted(objs):
        offsets[num] = len(out)
        out += b"%d 0 obj\n" % num + objs[num] + b"\nendobj\n"
    xref = len(out)
    size = max(objs) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for num in range(1, size):
        out += b"%010d 00000 n \n" % offsets[num]
    out += (b"trailer\n<< /Size %d /Root 1 0 R /Info 4 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (size, xref))
    path.write_bytes(bytes(out))


def _pdf_position(lines: list[str], phrase: str, page: int) -> tuple[dict, dict, list[dict]]:
    """pos0, pos1 and pboxes of a phrase (unzoomed page coordinates, origin top left)."""
    zoom = 1.6190476190476
    boxes = []
    pos0 = pos1 = None
    text = " ".join(lines)
    start = text.index(phrase)
    end = start + len(phrase)
    base = 0
    for j, line in enumerate(lines):
        lo, hi = max(start, base), min(end, base + len(line))
        if lo < hi:
            top = PDF_H - (PDF_TOP - j * PDF_LEADING) - PDF_SIZE
            x0 = PDF_LEFT + (lo - base) * PDF_CHAR_W
            x1 = PDF_LEFT + (hi - base) * PDF_CHAR_W
            boxes.append({"x": round(x0, 3), "y": round(top - 2, 3),
                          "w": round(x1 - x0, 3), "h": round(PDF_SIZE + 4.0, 3)})
            mid = top + PDF_SIZE / 2
            if pos0 is None:
                pos0 = {"page": page, "rotation": 0, "x": x0 + 1.25, "y": mid, "zoom": zoom}
            pos1 = {"page": page, "rotation": 0, "x": x1 - 1.25, "y": mid, "zoom": zoom}
        base += len(line) + 1
    assert pos0 is not None and pos1 is not None
    return pos0, pos1, boxes



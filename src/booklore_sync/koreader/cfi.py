"""KOReader XPointer → EPUB CFI (koreader-data.md §7).

crengine builds one DOM per book: ``/body/DocFragment[N]/body/…``.  This module
maps such XPointers onto the raw XHTML of the spine item (parsed with lxml after
HTML-entity substitution) and writes EPUB CFIs:

* element steps: ``2 × position among child elements``, ``[id]`` assertion when
  the element has an ``id`` (design: always), spine step with ``[idref]``;
* text steps: crengine's N-th text node → the raw DOM run (odd CFI index),
  crengine's collapsed code-point offset → raw offset → UTF-16 code units;
* highlights: three-part range CFIs; the text the range selects is compared with
  the annotation text (soft hyphens removed, ASCII whitespace collapsed, trimmed)
  and, on a mismatch, looked up in the spine item's text (a unique hit wins).

Anything that cannot be converted gives ``Conversion(cfi=None, reason=…)``.
The output for a given input is deterministic; :data:`CONVERTER_VERSION` is
bumped whenever a rule changes.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from booklore_sync.koreader.epub import EpubError, EpubPackage, SpineItem, localname

__all__ = ["CONVERTER_VERSION", "Conversion", "CfiConverter", "normalise_text",
           "is_epub_xpointer"]

CONVERTER_VERSION = 1

ASCII_WS = " \t\r\n\f"
_WS_RUN = re.compile(r"[ \t\r\n\f]+")
_STEP = re.compile(r"^([A-Za-z_][A-Za-z0-9_:\-]*|text\(\))(?:\[(\d+)\])?(?:\.(\d+))?$")
_EPUB_XP = re.compile(r"^/body(?:\[1\])?/DocFragment(?:\[\d+\])?(?:/|\.|$)")
_CFI_ESCAPE = re.compile(r"([\[\]\(\),;=^])")

# elements crengine's default stylesheet renders as blocks (unknown elements are inline)
BLOCK_ELEMENTS = frozenset("""
address article aside blockquote body caption center col colgroup dd details dialog dir div
dl dt fieldset figcaption figure footer form h1 h2 h3 h4 h5 h6 header hgroup hr html li main
menu nav noscript ol p pre section summary table tbody td tfoot th thead tr ul
""".split())
WRAPPER_ELEMENTS = frozenset(
    {"autoboxing", "floatbox", "inlinebox", "tabularbox", "rubybox", "pseudoelem"})
_PRE_ELEMENTS = frozenset({"pre", "textarea", "listing", "xmp", "plaintext"})


def normalise_text(s: str) -> str:
    """Comparison form of §7.2 step 7: no soft hyphens, ASCII whitespace runs → one
    space, trimmed.  U+00A0 is an ordinary character."""
    return _WS_RUN.sub(" ", s.replace("\u00ad", "")).strip(ASCII_WS)


def is_epub_xpointer(xp: Any) -> bool:
    return isinstance(xp, str) and bool(_EPUB_XP.match(xp))


@dataclass(frozen=True)
class Conversion:
    cfi: str | None
    reason: str | None = None
    method: str | None = None   # "direct", "search", or None when not converted


class _Unconvertible(Exception):
    pass


def _is_element(node: Any) -> bool:
    return isinstance(node.tag, str)


def _utf16_len(s: str) -> int:
    n = len(s)
    for ch in s:
        if ord(ch) > 0xFFFF:
            n += 1
    return n


def _escape_assertion(value: str) -> str:
    return _CFI_ESCAPE.sub(r"^\1", value)


def _element_step(el: etree._Element) -> str:
    parent = el.getparent()
    pos = 0
    for ch in parent:
        if _is_element(ch):
            pos += 1
            if ch is el:
                break
    step = f"/{2 * pos}"
    ident = el.get("id")
    if ident:
        step += f"[{_escape_assertion(ident)}]"
    return step


def _runs(el: etree._Element) -> tuple[list[etree._Element], list[str]]:
    """Child elements and the raw character-data runs between them (run i has the
    odd CFI index 2i+1; text on both sides of a comment is one run)."""
    elems: list[etree._Element] = []
    texts: list[list[str]] = [[el.text or ""]]
    for ch in el:
        if _is_element(ch):
            elems.append(ch)
            texts.append([ch.tail or ""])
        else:
            texts[-1].append(ch.tail or "")
    return elems, ["".join(t) for t in texts]


def _is_pre(el: etree._Element) -> bool:
    node: etree._Element | None = el
    while node is not None:
        if localname(node.tag).lower() in _PRE_ELEMENTS:
            return True
        style = node.get("style") if _is_element(node) else None
        if style and re.search(r"white-space\s*:\s*pre", style, re.I):
            return True
        node = node.getparent()
    return False


def _is_block(el: etree._Element) -> bool:
    return localname(el.tag).lower() in BLOCK_ELEMENTS


def _is_blank(s: str) -> bool:
    return s.strip(ASCII_WS) == ""


def _crengine_children(el: etree._Element) -> tuple[list[tuple[str, Any]], list[str]]:
    """crengine's child list: ("el", element) and ("text", run index) entries.

    Whitespace-only runs at the start of a block element and between two block
    siblings do not exist in crengine's DOM (§7.3)."""
    elems, runs = _runs(el)
    pre = None
    block = None
    out: list[tuple[str, Any]] = []
    for i, text in enumerate(runs):
        if text:
            keep = True
            if _is_blank(text):
                if pre is None:
                    pre = _is_pre(el)
                if not pre:
                    if i == 0:
                        if block is None:
                            block = _is_block(el)
                        keep = not block
                    elif i < len(elems):
                        keep = not (_is_block(elems[i - 1]) and _is_block(elems[i]))
            if keep:
                out.append(("text", i))
        if i < len(elems):
            out.append(("el", elems[i]))
    return out, runs


def _crengine_to_raw(raw: str, offset: int, pre: bool) -> int:
    """crengine's collapsed code-point offset → offset into the raw run."""
    if pre:
        if offset > len(raw):
            raise _Unconvertible(f"offset {offset} beyond the text node ({len(raw)} characters)")
        return offset
    count = 0
    i = 0
    n = len(raw)
    while i < n and count < offset:
        if raw[i] in ASCII_WS:
            i += 1
            while i < n and raw[i] in ASCII_WS:
                i += 1
        else:
            i += 1
        count += 1
    if count < offset:
        raise _Unconvertible(f"offset {offset} beyond the text node ({count} characters)")
    return i


@dataclass
class _Point:
    fragment: SpineItem
    body: etree._Element
    element: etree._Element          # the element holding the point
    run: int | None = None           # run index (text points)
    raw_offset: int = 0              # code points into the raw run
    before_child: etree._Element | None = None   # element points: path of this child


@dataclass
class _Flat:
    text: str
    starts: list[int]                # global start of each segment (sorted)
    segs: list[tuple[etree._Element, int, int, int]]   # (element, run, run_offset, length)
    by_run: dict[tuple[Any, int], list[int]] = field(default_factory=dict)
    el_start: dict[Any, int] = field(default_factory=dict)


class CfiConverter:
    """Converts XPointers of one EPUB (opened once, documents cached)."""

    def __init__(self, package: EpubPackage, dom_version: int | None):
        self.package = package
        self.dom_version = dom_version
        self._fragments = package.fragments(dom_version)
        self._flat: dict[str, _Flat] = {}

    @classmethod
    def open(cls, path: str | Path, dom_version: int | None) -> CfiConverter:
        return cls(EpubPackage.open(path), dom_version)

    def close(self) -> None:
        self.package.close()

    # ---------------------------------------------------------- resolving
    def _resolve(self, xpointer: str) -> _Point:
        if not isinstance(xpointer, str) or not is_epub_xpointer(xpointer):
            raise _Unconvertible(
                f"not an EPUB position (XPointer {str(xpointer)[:60]!r} is not under "
                "/body/DocFragment)")
        parts = xpointer.split("/")[1:]
        steps = []
        for p in parts:
            m = _STEP.match(p)
            if m is None:
                raise _Unconvertible(f"malformed XPointer step {p!r}")
            steps.append((m.group(1), int(m.group(2)) if m.group(2) else 1,
                          int(m.group(3)) if m.group(3) is not None else None))
        # steps[0] = body, steps[1] = DocFragment
        if len(steps) < 3 or steps[2][0].lower() != "body":
            raise _Unconvertible("XPointer does not reach the fragment's <body>")
        if steps[0][2] is not None or steps[1][2] is not None:
            raise _Unconvertible("XPointer points at the fragment itself")
        n = steps[1][1]
        if not 1 <= n <= len(self._fragments):
            raise _Unconvertible(
                f"DocFragment[{n}] is not in the spine ({len(self._fragments)} fragments)")
        frag = self._fragments[n - 1]
        assert frag.item is not None
        try:
            root = self.package.document(frag.item)
        except EpubError as exc:
            raise _Unconvertible(str(exc)) from None
        body = None
        for ch in root:
            if _is_element(ch) and localname(ch.tag).lower() == "body":
                body = ch
                break
        if body is None:
            raise _Unconvertible(f"{frag.item.href} has no <body>")
        cur = body
        rest = steps[3:]
        last_offset = steps[2][2]
        for idx, (name, index, offset) in enumerate(rest):
            final = idx == len(rest) - 1
            if name == "text()":
                if not final:
                    raise _Unconvertible("text() step in the middle of the XPointer")
                children, runs = _crengine_children(cur)
                texts = [c[1] for c in children if c[0] == "text"]
                if index > len(texts):
                    raise _Unconvertible(
                        f"text()[{index}] does not exist ({len(texts)} text nodes)")
                run = texts[index - 1]
                raw = _crengine_to_raw(runs[run], offset or 0, _is_pre(cur))
                return _Point(frag, body, cur, run=run, raw_offset=raw)
            if name.lower() in WRAPPER_ELEMENTS:
                last_offset = offset
                continue
            lname = name.lower()
            count = 0
            found = None
            for ch in cur:
                if _is_element(ch) and localname(ch.tag).lower() == lname:
                    count += 1
                    if count == index:
                        found = ch
                        break
            if found is None:
                raise _Unconvertible(f"no element {name}[{index}] under <{localname(cur.tag)}>")
            cur = found
            last_offset = offset
        return self._element_point(frag, body, cur, last_offset)

    def _element_point(self, frag: SpineItem, body: etree._Element, el: etree._Element,
                       k: int | None) -> _Point:
        if k is None:
            return _Point(frag, body, el)
        children, _runs_ = _crengine_children(el)
        if k >= len(children):
            return _Point(frag, body, el)
        kind, what = children[k]
        if kind == "text":
            return _Point(frag, body, el, run=what, raw_offset=0)
        return _Point(frag, body, el, before_child=what)

    # ------------------------------------------------------------ writing
    def _spine_part(self, frag: SpineItem) -> str:
        return (f"/{self.package.spine_step}/{2 * frag.position}"
                f"[{_escape_assertion(frag.idref)}]")

    def _steps(self, point: _Point) -> tuple[list[str], str]:
        """Element steps from the body (inclusive) and the terminal step."""
        target = point.before_child if point.before_child is not None else point.element
        chain = []
        node = target
        while node is not None:
            chain.append(node)
            if node is point.body:
                break
            node = node.getparent()
        if not chain or chain[-1] is not point.body:
            raise _Unconvertible("position is outside the fragment's <body>")
        steps = [_element_step(n) for n in reversed(chain)]
        terminal = ""
        if point.run is not None and point.before_child is None:
            _e, runs = _runs(point.element)
            terminal = f"/{2 * point.run + 1}:{_utf16_len(runs[point.run][:point.raw_offset])}"
        return steps, terminal

    def _point_cfi(self, point: _Point) -> str:
        steps, terminal = self._steps(point)
        return f"epubcfi({self._spine_part(point.fragment)}!{''.join(steps)}{terminal})"

    def _range_cfi(self, a: _Point, b: _Point) -> str:
        sa, ta = self._steps(a)
        sb, tb = self._steps(b)
        c = 0
        while c < len(sa) and c < len(sb) and sa[c] == sb[c]:
            c += 1
        while c > 0 and ((c == len(sa) and not ta) or (c == len(sb) and not tb)):
            c -= 1
        parent = "".join(sa[:c])
        return (f"epubcfi({self._spine_part(a.fragment)}!{parent},"
                f"{''.join(sa[c:])}{ta},{''.join(sb[c:])}{tb})")

    # ----------------------------------------------------------- flat text
    def _flat_text(self, frag: SpineItem, body: etree._Element) -> _Flat:
        assert frag.item is not None
        flat = self._flat.get(frag.item.href)
        if flat is not None:
            return flat
        parts: list[str] = []
        starts: list[int] = []
        segs: list[tuple[etree._Element, int, int, int]] = []
        by_run: dict[tuple[Any, int], list[int]] = {}
        el_start: dict[Any, int] = {}
        pos = 0

        def emit(s: str) -> None:
            nonlocal pos
            parts.append(s)
            pos += len(s)

        def seg(el: etree._Element, run: int, run_off: int, s: str) -> None:
            by_run.setdefault((el, run), []).append(len(segs))
            starts.append(pos)
            segs.append((el, run, run_off, len(s)))
            emit(s)

        def walk(el: etree._Element) -> None:
            name = localname(el.tag).lower()
            block = name in BLOCK_ELEMENTS
            if block or name == "br":
                emit("\n")
            el_start[el] = pos
            run = 0
            run_off = 0
            if el.text:
                seg(el, 0, 0, el.text)
                run_off = len(el.text)
            for ch in el:
                if _is_element(ch):
                    walk(ch)
                    run += 1
                    run_off = 0
                    if ch.tail:
                        seg(el, run, 0, ch.tail)
                        run_off = len(ch.tail)
                elif ch.tail:
                    seg(el, run, run_off, ch.tail)
                    run_off += len(ch.tail)
            if block:
                emit("\n")

        try:
            walk(body)
        except RecursionError:
            raise _Unconvertible("document nested too deeply") from None
        flat = _Flat("".join(parts), starts, segs, by_run, el_start)
        if len(self._flat) > 8:
            self._flat.pop(next(iter(self._flat)))
        self._flat[frag.item.href] = flat
        return flat

    def _global(self, flat: _Flat, point: _Point) -> int:
        if point.run is not None and point.before_child is None:
            idxs = flat.by_run.get((point.element, point.run))
            if not idxs:
                raise _Unconvertible("position in an empty text run")
            best = idxs[0]
            for i in idxs:
                if flat.segs[i][2] <= point.raw_offset:
                    best = i
            _el, _run, run_off, _ln = flat.segs[best]
            return flat.starts[best] + (point.raw_offset - run_off)
        target = point.before_child if point.before_child is not None else point.element
        return flat.el_start.get(target, 0)

    def _point_at(self, flat: _Flat, frag: SpineItem, body: etree._Element, g: int,
                  end: bool) -> _Point:
        """Global text index → a text point (``end``: just after character g-1)."""
        probe = g - 1 if end else g
        i = bisect.bisect_right(flat.starts, probe) - 1
        if i < 0:
            raise _Unconvertible("text position outside any text node")
        el, run, run_off, length = flat.segs[i]
        off = probe - flat.starts[i]
        if not 0 <= off < length:
            raise _Unconvertible("text position outside any text node")
        return _Point(frag, body, el, run=run, raw_offset=run_off + off + (1 if end else 0))

    # --------------------------------------------------------------- API
    def point(self, xpointer: str) -> Conversion:
        """A point CFI (bookmarks, progress)."""
        try:
            return Conversion(self._point_cfi(self._resolve(xpointer)), method="direct")
        except _Unconvertible as exc:
            return Conversion(None, str(exc))

    def range(self, pos0: str, pos1: str, text: str | None = None) -> Conversion:
        """A range CFI for a highlight, validated against ``text`` when given."""
        want = normalise_text(text) if text else ""
        try:
            a = self._resolve(pos0)
        except _Unconvertible as exc:
            return Conversion(None, f"start: {exc}")
        direct_reason = None
        try:
            b = self._resolve(pos1)
            if b.fragment.position != a.fragment.position:
                return Conversion(None, "the highlight crosses a spine item (chapter) boundary")
            if not want:
                return Conversion(self._range_cfi(a, b), method="direct")
            flat = self._flat_text(a.fragment, a.body)
            g0, g1 = self._global(flat, a), self._global(flat, b)
            got = normalise_text(flat.text[g0:g1]) if g1 >= g0 else ""
            if got == want:
                return Conversion(self._range_cfi(a, b), method="direct")
            direct_reason = "the text at the converted positions differs from the highlight"
        except _Unconvertible as exc:
            direct_reason = str(exc)
        if not want:
            return Conversion(None, direct_reason)
        # fallback: a unique hit of the text in the start's spine item
        try:
            flat = self._flat_text(a.fragment, a.body)
            norm, index = _normalised_with_index(flat.text)
            hit = norm.find(want)
            if hit < 0:
                return Conversion(None, f"{direct_reason}; the text was not found in the chapter")
            if norm.find(want, hit + 1) >= 0:
                return Conversion(None, f"{direct_reason}; the text occurs more than once "
                                        "in the chapter")
            g0 = index[hit]
            g1 = index[hit + len(want) - 1] + 1
            pa = self._point_at(flat, a.fragment, a.body, g0, end=False)
            pb = self._point_at(flat, a.fragment, a.body, g1, end=True)
            return Conversion(self._range_cfi(pa, pb), method="search")
        except _Unconvertible as exc:
            return Conversion(None, f"{direct_reason}; {exc}")


def _normalised_with_index(text: str) -> tuple[str, list[int]]:
    """``normalise_text`` without the trim, with the raw index of each output char."""
    out: list[str] = []
    index: list[int] = []
    in_ws = False
    for i, ch in enumerate(text):
        if ch == "\u00ad":
            continue
        if ch in ASCII_WS:
            if not in_ws:
                out.append(" ")
                index.append(i)
                in_ws = True
            continue
        in_ws = False
        out.append(ch)
        index.append(i)
    return "".join(out), index

"""A safe parser (and a writer) for KOReader's serialized Lua tables.

Implements the grammar of ``koreader-data.md`` §5.2 over **bytes**.  Nothing is
ever executed: anything outside the literal subset raises :class:`LuaParseError`
with the file, line and column (1-based; the column counts bytes).

Value mapping:

* strings → ``str`` (UTF-8, ``errors="surrogateescape"``, so broken sequences
  survive a round trip through :func:`dump`);
* numbers → ``int`` (no ``.``, no exponent, no hex fraction, below 2**63) or
  ``float``; ``true``/``false`` → ``bool``;
* ``nil``, ``nan``, ``inf``, ``-nan``, ``-inf`` as values → the entry is absent;
* a table whose keys are exactly ``1..n`` (n ≥ 1) → ``list``; any other table
  (``{}`` included) → ``dict``.  **Mixed tables** (``{[1]=…, ["x"]=…}``) become
  a dict holding both the ``int`` and the ``str`` keys; whole float keys become
  ``int``.  Positional entries take the keys 1, 2, … in order; for duplicate
  keys the last one wins (Lua semantics).  Boolean keys are accepted but, as in
  any Python dict, ``True`` collides with ``1``.

:func:`dump` writes KOReader's own format (sorted keys, every key bracketed,
4-space indentation, LuaJIT ``%q`` strings, ``%.14g`` numbers).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["LuaParseError", "parse", "parse_file", "dump", "dumps", "as_list",
           "MAX_FILE_SIZE", "MAX_DEPTH"]

MAX_FILE_SIZE = 64 * 1024 * 1024
MAX_DEPTH = 100
# the fast path holds a few copies of its input for a moment (some 6-8 times its
# size at the peak): bigger files go straight to the exact parser
FAST_PATH_MAX = 16 * 1024 * 1024


class LuaParseError(ValueError):
    """The text is not a KOReader Lua table literal."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 column: int | None = None):
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        where = file or "<lua>"
        if line is not None:
            where += f":{line}:{column}"
        super().__init__(f"{where}: {message}")


_ABSENT = object()

_WS = re.compile(rb"(?:[ \t\r\n\f\v]+|--\[(=*)\[.*?\]\1\]|--(?!\[=*\[)[^\n]*)*", re.S)
_SIMPLE_DQ = re.compile(rb'"([^"\\\n\r]*)"')
_SIMPLE_SQ = re.compile(rb"'([^'\\\n\r]*)'")
_SPECIAL_DQ = re.compile(rb'["\\\n\r]')
_SPECIAL_SQ = re.compile(rb"['\\\n\r]")
_NUMBER = re.compile(
    rb"0[xX][0-9a-fA-F]+(?:\.[0-9a-fA-F]*)?(?:[pP][+-]?[0-9]+)?"
    rb"|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NAME = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
# the common case: plain decimal integers and fractions, not followed by numeral characters
_PLAIN_NUMBER = re.compile(rb"[0-9]+(?:\.[0-9]+)?(?![0-9A-Za-z_.])")
_LONG_OPEN = re.compile(rb"\[(=*)\[")
# the usual KOReader entry head: `["key"] = ` or `[12] = `
_STR_KEY = re.compile(rb'\["([^"\\\n\r]*)"\][ \t]*=[ \t]*')
_INT_KEY = re.compile(rb"\[(-?[0-9]+)\][ \t]*=[ \t]*")
_SEP = re.compile(rb"[ \t\r\n]*[,;][ \t\r\n]*")
_HEX2 = re.compile(rb"[0-9a-fA-F]{2}")
_DIGITS = re.compile(rb"[0-9]{1,3}")
_UESC = re.compile(rb"\{([0-9a-fA-F]+)\}")
_ZSPACE = re.compile(rb"[ \t\n\r\f\v]*")
_NEWLINES = re.compile(rb"\r\n|\n\r|\r|\n")

_KEYWORDS = frozenset(
    b"and break do else elseif end false for function goto if in local nil not or "
    b"repeat return then true until while".split())
_SIMPLE_ESCAPES = {
    ord("a"): 7, ord("b"): 8, ord("f"): 12, ord("n"): 10, ord("r"): 13, ord("t"): 9,
    ord("v"): 11, ord("\\"): 92, ord('"'): 34, ord("'"): 39,
}
_NUMERAL_TAIL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.")
_INT_LIMIT = 1 << 63


def _utf8_extended(cp: int) -> bytes:
    """Lua's UTF-8 encoder: up to 6 bytes (code points < 2**31), surrogates included."""
    if cp < 0x80:
        return bytes([cp])
    out = []
    limit = 0x3F
    while cp > limit:
        out.append(0x80 | (cp & 0x3F))
        cp >>= 6
        limit >>= 1
    out.append(((~limit << 1) & 0xFF) | cp)
    return bytes(reversed(out))


class _Parser:
    __slots__ = ("data", "n", "file", "_keys")

    def __init__(self, data: bytes, file: str | None):
        self.data = data
        self.n = len(data)
        self.file = file
        self._keys: dict[bytes, str] = {}

    # ------------------------------------------------------------- errors
    def error(self, message: str, pos: int) -> LuaParseError:
        data = self.data
        pos = max(0, min(pos, self.n))
        line = data.count(b"\n", 0, pos) + 1
        column = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
        return LuaParseError(message, self.file, line, column)

    def describe(self, pos: int) -> str:
        if pos >= self.n:
            return "end of file"
        chunk = self.data[pos:pos + 12]
        return repr(chunk.decode("utf-8", "replace"))

    # -------------------------------------------------------------- spaces
    def ws(self, pos: int) -> int:
        m = _WS.match(self.data, pos)  # matches the empty string too
        pos = m.end() if m is not None else pos
        if self.data.startswith(b"--", pos):
            raise self.error("unfinished long comment", pos)
        return pos

    # ---------------------------------------------------------------- file
    def parse_file(self) -> Any:
        data = self.data
        pos = 3 if data.startswith(b"\xef\xbb\xbf") else 0
        pos = self.ws(pos)
        if data.startswith(b"return", pos):
            end = pos + 6
            if end >= self.n or data[end] not in _NUMERAL_TAIL or data[end] == 46:
                pos = self.ws(end)
        if pos >= self.n:
            raise self.error("empty input: expected a value", pos)
        value, pos = self.value(pos, 0)
        pos = self.ws(pos)
        if pos != self.n:
            raise self.error(f"unexpected {self.describe(pos)} after the value", pos)
        return None if value is _ABSENT else value

    # --------------------------------------------------------------- values
    def value(self, pos: int, depth: int) -> tuple[Any, int]:
        data = self.data
        if pos >= self.n:
            raise self.error("unexpected end of file: expected a value", pos)
        c = data[pos]
        if c == 123:  # {
            return self.table(pos, depth + 1)
        if c == 34:  # "
            m = _SIMPLE_DQ.match(data, pos)
            if m is not None:
                return m.group(1).decode("utf-8", "surrogateescape"), m.end()
            raw, pos = self.short_string(pos, c)
            return raw.decode("utf-8", "surrogateescape"), pos
        if c == 39:  # '
            m = _SIMPLE_SQ.match(data, pos)
            if m is not None:
                return m.group(1).decode("utf-8", "surrogateescape"), m.end()
            raw, pos = self.short_string(pos, c)
            return raw.decode("utf-8", "surrogateescape"), pos
        if 48 <= c <= 57 or c == 46:  # digit or .
            m = _PLAIN_NUMBER.match(data, pos)
            if m is not None:
                text = m.group(0)
                if b"." in text:
                    return float(text), m.end()
                v = int(text)
                if v < _INT_LIMIT:
                    return v, m.end()
            return self.number(pos)
        if c == 45:  # -
            if data.startswith(b"--", pos):
                raise self.error("unexpected comment: expected a value", pos)
            p = self.ws(pos + 1)
            if p < self.n and (48 <= data[p] <= 57 or data[p] == 46):
                v, p = self.number(p)
                return -v, p
            m = _NAME.match(data, p)
            if m is not None and m.group(0) in (b"nan", b"inf"):
                return _ABSENT, m.end()
            raise self.error(f"'-' must be followed by a number, got {self.describe(p)}", p)
        if c == 91:  # [ : long string
            m = _LONG_OPEN.match(data, pos)
            if m is None:
                raise self.error("unexpected '[': expected a value", pos)
            raw, pos = self.long_string(m)
            return raw.decode("utf-8", "surrogateescape"), pos
        m = _NAME.match(data, pos)
        if m is not None:
            word = m.group(0)
            if word == b"true":
                return True, m.end()
            if word == b"false":
                return False, m.end()
            if word in (b"nil", b"nan", b"inf"):
                return _ABSENT, m.end()
            raise self.error(
                f"identifier {word.decode('ascii')!r} is not allowed (only literals are)", pos)
        raise self.error(f"unexpected {self.describe(pos)}: expected a value", pos)

    def number(self, pos: int) -> tuple[Any, int]:
        data = self.data
        m = _NUMBER.match(data, pos)
        if m is None:
            raise self.error("malformed number", pos)
        end = m.end()
        if end < self.n and data[end] in _NUMERAL_TAIL:
            raise self.error("malformed number", pos)
        text = m.group(0)
        if text[:2] in (b"0x", b"0X"):
            if b"." in text or b"p" in text or b"P" in text:
                try:
                    return float.fromhex(text.decode("ascii")), end
                except (ValueError, OverflowError):
                    raise self.error("malformed number", pos) from None
            v = int(text, 16)
            return (v if v < _INT_LIMIT else float(v)), end
        if b"." in text or b"e" in text or b"E" in text:
            return float(text), end
        v = int(text)
        return (v if v < _INT_LIMIT else float(v)), end

    def short_string(self, pos: int, quote: int) -> tuple[bytes, int]:
        data = self.data
        n = self.n
        special = _SPECIAL_DQ if quote == 34 else _SPECIAL_SQ
        out = bytearray()
        i = pos + 1
        while True:
            m = special.search(data, i)
            if m is None:
                raise self.error("unfinished string", pos)
            j = m.start()
            out += data[i:j]
            c = data[j]
            if c == quote:
                return bytes(out), j + 1
            if c == 10 or c == 13:
                raise self.error("unfinished string (raw newline inside a short string)", j)
            # a backslash
            if j + 1 >= n:
                raise self.error("unfinished string", pos)
            e = data[j + 1]
            simple = _SIMPLE_ESCAPES.get(e)
            if simple is not None:
                out.append(simple)
                i = j + 2
            elif e == 10 or e == 13:
                out.append(10)
                i = j + 2
                if i < n and data[i] in (10, 13) and data[i] != e:
                    i += 1
            elif 48 <= e <= 57:
                d = _DIGITS.match(data, j + 1)
                if d is None:
                    raise self.error("decimal escape expected", j)
                v = int(d.group(0))
                if v > 255:
                    raise self.error("decimal escape too large", j)
                out.append(v)
                i = d.end()
            elif e == 120:  # x
                h = _HEX2.match(data, j + 2)
                if h is None:
                    raise self.error("hexadecimal digit expected in \\x escape", j)
                out.append(int(h.group(0), 16))
                i = h.end()
            elif e == 122:  # z
                z = _ZSPACE.match(data, j + 2)  # matches the empty string too
                i = z.end() if z is not None else j + 2
            elif e == 117:  # u
                u = _UESC.match(data, j + 2)
                if u is None:
                    raise self.error("malformed \\u{...} escape", j)
                cp = int(u.group(1), 16)
                if cp >= 0x80000000:
                    raise self.error("UTF-8 value too large", j)
                out += _utf8_extended(cp)
                i = u.end()
            else:
                raise self.error(f"invalid escape sequence {self.describe(j)[:6]}", j)

    def long_string(self, m: re.Match[bytes]) -> tuple[bytes, int]:
        data = self.data
        start = m.end()
        close = b"]" + m.group(1) + b"]"
        end = data.find(close, start)
        if end < 0:
            raise self.error("unfinished long string", m.start())
        body = data[start:end]
        if body[:2] in (b"\r\n", b"\n\r"):
            body = body[2:]
        elif body[:1] in (b"\r", b"\n"):
            body = body[1:]
        if b"\r" in body:
            body = _NEWLINES.sub(b"\n", body)
        return body, end + len(close)

    def key_text(self, raw: bytes) -> str:
        k = self._keys.get(raw)
        if k is None:
            k = self._keys[raw] = raw.decode("utf-8", "surrogateescape")
        return k

    def table(self, pos: int, depth: int) -> tuple[Any, int]:
        if depth > MAX_DEPTH:
            raise self.error(f"tables nested deeper than {MAX_DEPTH}", pos)
        data = self.data
        n = self.n
        result: dict[Any, Any] = {}
        counter = 0
        pos = self.ws(pos + 1)
        while True:
            if pos >= n:
                raise self.error("unfinished table: expected '}'", pos)
            c = data[pos]
            if c == 125:  # }
                pos += 1
                break
            key: Any
            if c == 91:  # [
                m = _STR_KEY.match(data, pos)
                if m is not None:
                    key = self.key_text(m.group(1))
                    value, pos = self.value(self.ws(m.end()), depth)
                else:
                    m = _INT_KEY.match(data, pos)
                    if m is not None:
                        key = int(m.group(1))
                        value, pos = self.value(self.ws(m.end()), depth)
                    elif data.startswith(b"[[", pos) or data.startswith(b"[=", pos):
                        counter += 1
                        key = counter
                        value, pos = self.value(pos, depth)
                    else:
                        key, pos = self.bracket_key(pos, depth)
                        value, pos = self.value(pos, depth)
            else:
                m = _NAME.match(data, pos)
                if m is not None:
                    after = self.ws(m.end())
                    if after < n and data[after] == 61 and not data.startswith(b"==", after):
                        word = m.group(0)
                        if word in _KEYWORDS:
                            raise self.error(
                                f"keyword {word.decode('ascii')!r} cannot be a field name", pos)
                        key = self.key_text(word)
                        value, pos = self.value(self.ws(after + 1), depth)
                    else:
                        counter += 1
                        key = counter
                        value, pos = self.value(pos, depth)
                else:
                    counter += 1
                    key = counter
                    value, pos = self.value(pos, depth)
            if value is _ABSENT:
                result.pop(key, None)
            else:
                result[key] = value
            # separator or end
            m = _SEP.match(data, pos)
            if m is not None:
                pos = m.end()
                if pos < n and data[pos] == 45 or pos < n and data[pos] in b" \t\r\n\f\v":
                    pos = self.ws(pos)
                continue
            pos = self.ws(pos)
            if pos < n and data[pos] in b",;":
                pos = self.ws(pos + 1)
                continue
            if pos < n and data[pos] == 125:
                pos += 1
                break
            raise self.error(f"expected ',' or '}}', got {self.describe(pos)}", pos)
        return _finish_table(result), pos

    def bracket_key(self, pos: int, depth: int) -> tuple[Any, int]:
        data = self.data
        p = self.ws(pos + 1)
        key, p = self.value(p, depth)
        if key is _ABSENT:
            raise self.error("table index is nil or NaN", pos)
        if isinstance(key, (dict, list)):
            raise self.error("a table cannot be used as a key", pos)
        if isinstance(key, float):
            if math.isnan(key):
                raise self.error("table index is NaN", pos)
            if key.is_integer():
                key = int(key)
        p = self.ws(p)
        if p >= self.n or data[p] != 93:  # ]
            raise self.error(f"expected ']', got {self.describe(p)}", p)
        p = self.ws(p + 1)
        if p >= self.n or data[p] != 61 or data.startswith(b"==", p):
            raise self.error(f"expected '=', got {self.describe(p)}", p)
        return key, self.ws(p + 1)


def _finish_table(d: dict[Any, Any]) -> Any:
    n = len(d)
    if n == 0:
        return d
    # exactly the keys 1..n → list (keys are distinct, so int + range check suffices)
    lo = hi = None
    for k in d:
        if type(k) is not int:
            return d
        if lo is None or k < lo:
            lo = k
        if hi is None or k > hi:
            hi = k
    if lo == 1 and hi == n:
        if next(iter(d)) == 1 and list(d) == list(range(1, n + 1)):
            return list(d.values())
        return [d[i] for i in range(1, n + 1)]
    return d


# ================================================================ fast path
# KOReader writes its tables in one canonical shape (see :func:`dump`).  Text in that
# shape is translated to JSON by a few C-level passes and decoded by the json
# module, giving exactly what :class:`_Parser` builds.  Anything outside the narrow
# shape (comments past the header, ``nil``/``nan``/``inf``, positional entries, name
# keys, spaced brackets, single quotes, long strings, escapes other than ``\\``,
# ``\"``, ``\<LF>`` and decimal ones below 128, a missing trailing ``,`` …) or any
# JSON error makes :func:`_fast_parse` return ``_ABSENT``, and the exact parser
# runs instead: errors and their positions always come from :class:`_Parser`.
# Nothing is ever executed.
#
# How (on bytes): the text is cut at its quotes into code and string contents
# (escaped backslashes and quotes are set aside first; each string is ``_SENT`` in
# the code).  The code may not hold what JSON reads and Lua does not, or reads
# otherwise: ``null``/``NaN``/``Infinity`` (no n, N or I), ``:``, integers of more
# than 18 digits (floats to Lua, ints to JSON).  ``[N] = `` (canonical decimal N)
# becomes ``"\ud800":0,"\ud800N":``; what is left of ``[``/``]``/``=`` must be
# exactly ``[<string>] = `` heads (their value on the same line, as the parser
# wants), which become ``<string>:`` (so no JSON array can appear); every ``}`` gets
# a ``"\ud801":0`` pair in front (so the trailing ``,`` before it is valid JSON, and
# a missing one is not).  The JSON text is decoded as strict UTF-8 (the parser
# reads broken bytes with surrogateescape: those texts decline), and the escapes
# kept only make ASCII, so no real key can hold U+D800 or U+D801.  The object hook
# drops the ``"\ud801"`` pair, and where the bare ``"\ud800"`` key flags integer
# keys it turns them back into ints and applies the list rule.
_SENT = b"\x00"
_MARK = "\ud800"
_END = "\ud801"
_FAST_HEAD = re.compile(
    rb"(?:\xef\xbb\xbf)?[ \t\n\r]*+(?:--(?!\[=*\[)[^\n]*+(?:\n[ \t\n\r]*+|\Z))*+"
    rb"(?:return(?![A-Za-z0-9_.])[ \t\n\r]*+)?")
_FAST_PAIR = b"\x01"   # stands for an escaped backslash while the text is cut at quotes
_FAST_QUOTE = b"\x02"  # an escaped quote, likewise
_FAST_DIGITS = bytes.maketrans(b"012345678", b"999999999")
_FAST_LONG = b"9" * 19  # 19 digits in a row: past 2**63 Lua reads a float, JSON an int
# a `[N] = ` head: canonical decimal N, the value on the same line
_FAST_IKEY = re.compile(rb"\[(0|-?[1-9][0-9]*+)\] = (?![ \t\n\r])")
_FAST_NOT_BRACES = bytes(c for c in range(256) if c not in b"{}")
# once escaped backslashes are out: escapes that JSON reads otherwise or not at all
_FAST_BADESC = re.compile(rb'\\[^bfnrt"\n0-9]|\\\Z')
_FAST_DEC = re.compile(rb"\\([0-9]{1,3})")


class _Decline(Exception):
    pass


def _fast_decimal(m: re.Match[bytes]) -> bytes:
    """A decimal escape as JSON; above 127 it is a byte of UTF-8: decline."""
    v = int(m.group(1))
    if v >= 128:
        raise _Decline
    return b"\\u%04x" % v


def _fast_int_key(m: re.Match[bytes]) -> bytes:
    return b'"\\ud800":0,"\\ud800' + m.group(1) + b'":'


def _fast_object(d: dict[str, Any]) -> Any:
    del d[_END]  # every table has it (KeyError: not ours → decline)
    if _MARK not in d:
        return d
    out: dict[Any, Any] = {}
    for k, v in d.items():
        if k[:1] == _MARK:
            if len(k) > 1:
                out[int(k[1:])] = v
        else:
            out[k] = v
    return _finish_table(out)


_FAST_JSON = json.JSONDecoder(object_hook=_fast_object, strict=False)


def _fast_parse(data: bytes) -> Any:
    """The canonical-KOReader-text fast path; ``_ABSENT`` means "use the parser"."""
    m = _FAST_HEAD.match(data)  # matches the empty string too
    head = m.end() if m is not None else 0
    body = data[head:] if head else data
    if _SENT in body:
        return _ABSENT
    escapes = b"\\" in body
    if escapes:
        # Backslashes belong in strings (the code check below refuses them).  Take the
        # escaped backslashes and quotes out of the way of the cut at quotes; keep the
        # escapes JSON reads alike; decline the others.
        if _FAST_PAIR in body or _FAST_QUOTE in body:
            return _ABSENT
        pairs = b"\\\\" in body
        if pairs:
            body = body.replace(b"\\\\", _FAST_PAIR)
        if _FAST_BADESC.search(body) is not None:
            return _ABSENT
        body = body.replace(b'\\"', _FAST_QUOTE).replace(b"\\\n", b"\\n")
        if _FAST_DEC.search(body) is not None:
            try:
                body = _FAST_DEC.sub(_fast_decimal, body)
            except _Decline:
                return _ABSENT
    parts = body.split(b'"')
    if not len(parts) & 1:
        return _ABSENT
    code = _SENT.join(parts[0::2])
    if (b"\n" in body and body.count(b"\n") != code.count(b"\n")
            or b"\r" in body and body.count(b"\r") != code.count(b"\r")):
        return _ABSENT  # a raw line break inside a short string
    del body  # (big inputs: hold as few copies as possible)
    # JSON reads nothing here the parser reads otherwise: no ``null``/``NaN``/
    # ``Infinity`` (n, N, I), no ``:``, no long integers; anything else that is not
    # Lua, and not JSON either, fails in the decoder
    if (b"n" in code or b"N" in code or b"I" in code or b":" in code
            or _FAST_LONG in code.translate(_FAST_DIGITS)):
        return _ABSENT
    if code.count(b"{") > MAX_DEPTH and not _depth_ok(code):
        return _ABSENT
    if b"[" in code:
        code = _FAST_IKEY.sub(_fast_int_key, code)
    # every [, ] and = left must belong to a `[<string>] = ` head whose value follows
    # on the same line (the parser insists on that)
    heads = code.count(b"[")
    if heads != code.count(b"]") or heads != code.count(b"="):
        return _ABSENT
    if heads:
        if (heads != code.count(b"[\x00] = ") or b"= \n" in code or b"= \r" in code
                or b"=  " in code or b"= \t" in code):
            return _ABSENT
        code = code.translate(None, b"[]").replace(b"=", b":")
    code = code.replace(b"}", b'"\\ud801":0}')
    parts[0::2] = code.split(_SENT)
    json_bytes = b'"'.join(parts)
    del parts, code
    if escapes:
        if pairs:
            json_bytes = json_bytes.replace(_FAST_PAIR, b"\\\\")
        json_bytes = json_bytes.replace(_FAST_QUOTE, b'\\"')
    try:
        # strict UTF-8: what is not (broken bytes, encoded surrogates) the parser
        # decodes with surrogateescape, string by string
        json_text = json_bytes.decode("utf-8")
        del json_bytes
        return _FAST_JSON.decode(json_text)
    except (ValueError, KeyError, RecursionError, _Decline):
        return _ABSENT


def _depth_ok(code: bytes) -> bool:
    """Tables nested at most MAX_DEPTH deep (each pass removes the innermost level)."""
    braces = code.translate(None, _FAST_NOT_BRACES)
    for _ in range(MAX_DEPTH):
        braces = braces.replace(b"{}", b"")
        if not braces:
            return True
    return False


def _parse_exact(data: bytes, name: str | None) -> Any:
    try:
        return _Parser(data, name).parse_file()
    except RecursionError:  # pragma: no cover - guarded by MAX_DEPTH
        raise LuaParseError("nesting too deep", name) from None


def parse(data: bytes | str, *, file: str | os.PathLike[str] | None = None) -> Any:
    """Parse one serialized Lua value (``[return] value``); ``None`` for ``nil``."""
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogateescape")
    name = None if file is None else os.fspath(file)
    if len(data) > MAX_FILE_SIZE:
        raise LuaParseError(f"file larger than {MAX_FILE_SIZE} bytes", name)
    data = bytes(data)
    if len(data) <= FAST_PATH_MAX:
        value = _fast_parse(data)
        if value is not _ABSENT:
            return value
    return _parse_exact(data, name)


def parse_file(path: str | os.PathLike[str]) -> Any:
    """Read and parse a file; I/O problems surface as ``OSError``."""
    size = os.path.getsize(path)
    if size > MAX_FILE_SIZE:
        raise LuaParseError(f"file larger than {MAX_FILE_SIZE} bytes", os.fspath(path))
    with open(path, "rb") as fh:
        data = fh.read()
    return parse(data, file=path)


def as_list(value: Any) -> list[Any]:
    """Accessor for list-valued keys (§5.2): lists as is, ``{}`` → ``[]``, int-keyed
    dicts → values sorted by key; anything else → ``[]``."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        items = [(k, v) for k, v in value.items() if type(k) is int]
        return [v for _, v in sorted(items, key=lambda kv: kv[0])]
    return []


# ====================================================================== writer
_QUOTE = re.compile(rb'[\x00-\x1f\x7f"\\](?=([0-9])?)')


def _quote_repl(m: re.Match[bytes]) -> bytes:
    c = m.group(0)[0]
    if c == 34:
        return b'\\"'
    if c == 92:
        return b"\\\\"
    if c == 10:
        return b"\\\n"
    if m.group(1) is not None:
        return b"\\%03d" % c
    return b"\\%d" % c


def _quote(s: str) -> bytes:
    raw = s.encode("utf-8", "surrogateescape")
    return b'"' + _QUOTE.sub(_quote_repl, raw) + b'"'


def _number(v: int | float) -> bytes:
    if isinstance(v, int):
        return str(v).encode("ascii")
    if math.isnan(v):
        return b"-nan" if math.copysign(1.0, v) < 0 else b"nan"
    if math.isinf(v):
        return b"-inf" if v < 0 else b"inf"
    return (b"%.14g" % v)


def _tostring_key(k: Any) -> bytes:
    if isinstance(k, bool):
        return b"true" if k else b"false"
    if isinstance(k, (int, float)):
        return _number(k)
    return str(k).encode("utf-8", "surrogateescape")


def _category(k: Any) -> int:
    if isinstance(k, bool):
        return 2
    if isinstance(k, (int, float)):
        return 0
    return 1


def _sorted_keys(keys: list[Any]) -> list[Any]:
    cats = {_category(k) for k in keys}
    if len(cats) == 1 and 2 not in cats:
        return sorted(keys)
    return sorted(keys, key=_tostring_key)


def _dump_key(k: Any) -> bytes:
    if isinstance(k, str):
        return _quote(k)
    if isinstance(k, bool):
        return b"true" if k else b"false"
    if isinstance(k, (int, float)):
        return _number(k)
    raise TypeError(f"cannot serialize a key of type {type(k).__name__}")


def _dump_value(v: Any, level: int, out: list[bytes]) -> None:
    if isinstance(v, str):
        out.append(_quote(v))
    elif isinstance(v, bool):
        out.append(b"true" if v else b"false")
    elif isinstance(v, (int, float)):
        out.append(_number(v))
    elif v is None:
        out.append(b"nil")
    elif isinstance(v, (list, tuple)):
        items = [(i + 1, x) for i, x in enumerate(v) if x is not None]
        _dump_items(items, level, out)
    elif isinstance(v, Mapping):
        keys = _sorted_keys([k for k, x in v.items() if x is not None])
        _dump_items([(k, v[k]) for k in keys], level, out)
    else:
        raise TypeError(f"cannot serialize a value of type {type(v).__name__}")


def _dump_items(items: list[tuple[Any, Any]], level: int, out: list[bytes]) -> None:
    if not items:
        out.append(b"{}")
        return
    inner = b"    " * (level + 1)
    out.append(b"{\n")
    for k, x in items:
        out.append(inner + b"[" + _dump_key(k) + b"] = ")
        _dump_value(x, level + 1, out)
        out.append(b",\n")
    out.append(b"    " * level + b"}")


def dump(value: Any, path: str | None = None) -> bytes:
    """Serialize like KOReader: an optional ``-- <path>`` line, ``return <value>``, newline.

    ``None`` values inside tables are left out (Lua has no nil entries).  Python
    ints are written exactly; floats with ``%.14g`` (so whole floats come back
    as ``int``, and only 14 significant digits survive, exactly as in KOReader).
    """
    out: list[bytes] = []
    if path is not None:
        out.append(b"-- " + path.encode("utf-8", "surrogateescape") + b"\n")
    out.append(b"return ")
    _dump_value(value, 0, out)
    out.append(b"\n")
    return b"".join(out)


def dumps(value: Any, path: str | None = None) -> str:
    """:func:`dump` as text (decoded with ``surrogateescape``)."""
    return dump(value, path).decode("utf-8", "surrogateescape")

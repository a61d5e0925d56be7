import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booklore_sync.koreader.luatable import (
    MAX_DEPTH,
    LuaParseError,
    as_list,
    dump,
    dumps,
    parse,
    parse_file,
)

from .conftest import KOBO

SIDECARS = [
    KOBO / "Books/leaves.sdr/metadata.epub.lua",
    KOBO / "Books/tall.sdr/metadata.pdf.lua",
    KOBO / "Books/2col.sdr/metadata.pdf.lua",
    KOBO / ".adds/koreader/hashdocsettings/cf/cf7ce9b8d4e135c8ac340f18d1e58c85.sdr/metadata.epub.lua",
    KOBO / ".adds/koreader/settings.reader.lua",
    KOBO / ".adds/koreader/history.lua",
]


@pytest.mark.parametrize("path", SIDECARS, ids=lambda p: p.name)
def test_fixture_files_roundtrip_byte_exact(path):
    raw = path.read_bytes()
    value = parse_file(path)
    header = raw.split(b"\n", 1)[0][3:].decode()
    assert dump(value, header) == raw


def test_fixture_values():
    leaves = parse_file(SIDECARS[0])
    anns = leaves["annotations"]
    assert isinstance(anns, list) and len(anns) == 6
    assert anns[1]["text"] == ("Then falter not O book, fulfil your destiny,\n"
                               "\u00a0 You not a reminiscence of the land alone,")
    assert anns[5]["note"] == ("Whitman's \"onward\" optimism — compare:\n\tSong of Myself, §6 "
                               "(\"the smallest sprout shows there is really no death\")\nRe-read aloud!")
    assert leaves["percent_finished"] == 0.87285843101894
    assert leaves["copt_h_page_margins"] == [15, 15]
    assert leaves["font_family_fonts"] == {}
    hist = parse_file(SIDECARS[5])
    assert hist[0] == {"file": "/mnt/onboard/Books/tall.pdf", "time": 1709813065}


@pytest.mark.parametrize("src,expected", [
    (r'"\a\b\f\n\r\t\v\\\"\'"', "\a\b\f\n\r\t\v\\\"'"),
    ("'it\\'s'", "it's"),
    ('"line1\\\nline2"', "line1\nline2"),
    ('"a\\\r\nb"', "a\nb"),
    ('"a\\\n\rb"', "a\nb"),
    ('"a\\\rb"', "a\nb"),
    (r'"\9tab\13cr\0nul"', "\ttab\rcr\x00nul"),
    (r'"\0019"', "\x019"),
    (r'"\127\65\066"', "\x7fAB"),
    (r'"\x41\x7a"', "Az"),
    ('"a\\z   \n   b"', "ab"),
    (r'"\u{48}\u{E9}\u{1F600}"', "Hé😀"),
    ('"\xc3\xa9 raw"'.encode("latin-1").decode("utf-8"), "é raw"),
    ("[[long\nstring]]", "long\nstring"),
    ("[[\nfirst newline dropped]]", "first newline dropped"),
    ("[==[a]]b]=]c]==]", "a]]b]=]c"),
    ("[[no \\n escapes]]", "no \\n escapes"),
    ('""', ""),
])
def test_strings(src, expected):
    assert parse("return " + src) == expected


def test_invalid_utf8_survives():
    v = parse(b'return "\xff\xfe ok"')
    assert v == "\udcff\udcfe ok"
    assert dump(v) == b'return "\xff\xfe ok"\n'


@pytest.mark.parametrize("src,expected", [
    ("5", 5), ("-5", -5), ("1700000000", 1700000000), ("0.5", 0.5),
    ("0.23456790123457", 0.23456790123457), ("1e+20", 1e20), ("1e-07", 1e-07),
    ("1E5", 1e5), (".5", 0.5), ("5.", 5.0), ("0x10", 16), ("0XfF", 255),
    ("0x1p4", 16.0), ("0x1.8", 1.5), ("- 3", -3), ("9223372036854775807", 9223372036854775807),
    ("9223372036854775808", 9.223372036854775808e18),
])
def test_numbers(src, expected):
    v = parse("return " + src)
    assert v == expected and type(v) is type(expected)


def test_nan_inf_nil_are_absent():
    v = parse("return { a = nan, b = -nan, c = inf, d = -inf, e = nil, f = 1, [1] = nil }")
    assert v == {"f": 1}
    assert parse("return nil") is None
    assert parse("return {1, nil, 3}") == {1: 1, 3: 3}


def test_tables():
    assert parse("return {}") == {}
    assert parse("return {1, 2, 3,}") == [1, 2, 3]
    assert parse("return {[2] = 'b', [1] = 'a'}") == ["a", "b"]
    assert parse("return {[1] = 'a', [3] = 'c'}") == {1: "a", 3: "c"}
    assert parse("return {[1] = 'a', x = 2}") == {1: "a", "x": 2}  # mixed → dict
    assert parse("return {[1.0] = 'a', [2.5] = 'b'}") == {1: "a", 2.5: "b"}
    assert parse("return {x = 1; y = 2}") == {"x": 1, "y": 2}
    assert parse("return {x = 1, x = 2}") == {"x": 2}
    assert parse("return {[true] = 1, [false] = 2, t = true, f = false}") == {
        True: 1, False: 2, "t": True, "f": False}
    assert parse("return {nan = 1, inf = 2}") == {"nan": 1, "inf": 2}
    assert parse('return {["a"] = {["b"] = {[1] = {}}}}') == {"a": {"b": [{}]}}
    assert parse("{1}") == [1]  # "return" is optional


def test_comments_and_whitespace():
    src = """-- /path/of/file.lua
--[[ block
comment ]] return --[==[ another ]] ]==] { -- trailing
    [1] = 1, --[[inline]] [2] = 2 -- c
    ;
}\f\v
"""
    assert parse(src) == [1, 2]


@pytest.mark.parametrize("src,line,col", [
    ("return {", 1, 9),
    ("return {\n  [1] = os.exit(),\n}", 2, 9),
    ("return {\n  a = 1 + 2,\n}", 2, 9),
    ('return "unterminated', 1, 8),
    ('return "a\nb"', 1, 10),
    (r'return "\q"', 1, 9),
    (r'return "\256"', 1, 9),
    (r'return "\xZZ"', 1, 9),
    ("return {} extra", 1, 11),
    ("return function() end", 1, 8),
    ("return {[{}] = 1}", 1, 9),
    ("return {[nil] = 1}", 1, 9),
    ("return {true = 1}", 1, 9),
    ("return 5abc", 1, 8),
    ("return {1 2}", 1, 11),
    ("return [[never closed", 1, 8),
    ("--[[ never closed\nreturn 1", 1, 1),
    ("return 'a' .. 'b'", 1, 12),
    ("", 1, 1),
    ("return", 1, 7),
    ("return -x", 1, 9),
])
def test_errors_carry_position(src, line, col):
    with pytest.raises(LuaParseError) as info:
        parse(src, file="bad.lua")
    err = info.value
    assert (err.file, err.line, err.column) == ("bad.lua", line, col)
    assert str(err).startswith(f"bad.lua:{line}:{col}: ")


def test_depth_limit():
    ok = "return " + "{" * MAX_DEPTH + "}" * MAX_DEPTH
    parse(ok)
    with pytest.raises(LuaParseError):
        parse("return " + "{" * (MAX_DEPTH + 1) + "}" * (MAX_DEPTH + 1))
    with pytest.raises(LuaParseError):
        parse("return " + "{" * 100000)


def test_as_list():
    assert as_list([1, 2]) == [1, 2]
    assert as_list({}) == []
    assert as_list({3: "c", 1: "a", "x": 1}) == ["a", "c"]
    assert as_list(None) == []


def test_dump_format():
    value = {"b": [15, 15], "a": "x\ny\t\"q\"\\", "e": {}, "n": 0.23456790123457123,
             "i": 1e20, "t": True, "none": None, "z": {"k": 1}, 3: 1, 1: 2}
    out = dumps(value, "/mnt/onboard/x.lua")
    assert out == ('-- /mnt/onboard/x.lua\nreturn {\n'
                   '    [1] = 2,\n    [3] = 1,\n'
                   '    ["a"] = "x\\\ny\\9\\"q\\"\\\\",\n'
                   '    ["b"] = {\n        [1] = 15,\n        [2] = 15,\n    },\n'
                   '    ["e"] = {},\n    ["i"] = 1e+20,\n    ["n"] = 0.23456790123457,\n'
                   '    ["t"] = true,\n    ["z"] = {\n        ["k"] = 1,\n    },\n}\n')
    assert dump("\x01" + "9") == b'return "\\0019"\n'
    assert dump("\x01x\r\x00") == b'return "\\1x\\13\\0"\n'
    assert dump([float("nan"), float("inf"), -float("inf")]) == (
        b"return {\n    [1] = nan,\n    [2] = inf,\n    [3] = -inf,\n}\n")


# ----------------------------------------------------------------- properties
keys = st.one_of(st.text(max_size=12), st.integers(min_value=-10**6, max_value=10**6))
floats = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda f: not f.is_integer()).map(lambda f: float("%.14g" % f))
scalars = st.one_of(st.text(max_size=40), st.integers(min_value=-2**62, max_value=2**62),
                    floats, st.booleans())


def _canonical(children):
    lists = st.lists(children, min_size=1, max_size=6)
    dicts = st.dictionaries(keys, children, max_size=6).filter(
        lambda d: not (d and all(type(k) is int for k in d)
                       and sorted(d) == list(range(1, len(d) + 1))))
    return st.one_of(lists, dicts)


values = st.recursive(scalars, _canonical, max_leaves=25)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_roundtrip(value):
    assert parse(dump(value)) == value
    assert parse(dumps(value, "/x")) == value


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_parse_errors(data):
    try:
        parse(data)
    except LuaParseError:
        pass


lua_alphabet = st.sampled_from(list('{}[]=,;"\'\\-+.0123456789eExXpPabnrtzu\n\r\t [[]]--nilnaninftruefalsereturn'))


@settings(max_examples=500)
@given(st.lists(lua_alphabet, max_size=80).map("".join))
def test_luaish_text_only_raises_parse_errors(text):
    try:
        parse(text)
    except LuaParseError:
        pass


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_arbitrary_text_only_raises_parse_errors(text):
    try:
        parse(text)
    except LuaParseError:
        pass


@settings(max_examples=200)
@given(values, st.integers(min_value=0, max_value=10_000))
def test_truncated_dump_is_rejected_or_valid(value, cut):
    raw = dump(value)
    cut = cut % (len(raw) + 1)
    try:
        parse(raw[:cut])
    except LuaParseError:
        pass


def test_float_formatting_like_koreader():
    assert parse(dump(0.1 + 0.2)) == 0.3
    assert parse(dump(5.0)) == 5 and type(parse(dump(5.0))) is int
    assert math.isclose(parse(dump(1 / 3)), 0.33333333333333)


def test_line_break_between_key_and_value():
    # valid Lua that KOReader does not write but a hand-edited file may contain
    assert parse(b'return {["k"] =\n 1, [2] = -- note\n "x"}') == {"k": 1, 2: "x"}

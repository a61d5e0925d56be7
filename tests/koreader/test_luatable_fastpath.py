"""The parser's fast path (canonical KOReader output through json) must agree with the
exact parser on everything it accepts, and decline everything else."""

from hypothesis import given, settings
from hypothesis import strategies as st

from booklore_sync.koreader import luatable as lt

from .test_luatable import values


def _exact(data: bytes):
    try:
        return ("ok", lt._parse_exact(data, None))
    except lt.LuaParseError as exc:
        return ("error", str(exc))


@settings(max_examples=300, deadline=None)
@given(values)
def test_fast_path_agrees_with_exact_parser_on_dumps(value):
    data = lt.dump(value)
    fast = lt._fast_parse(data)
    if fast is not lt._ABSENT:  # the fast path took it
        assert ("ok", fast) == _exact(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fast_path_never_accepts_what_the_exact_parser_rejects(data):
    fast = lt._fast_parse(b"return " + data)
    if fast is not lt._ABSENT:
        assert _exact(b"return " + data) == ("ok", fast)

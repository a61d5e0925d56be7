"""§3.8: the exact matchScore algorithm; every worked example of the spec is pinned,
as a unit and over HTTP."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booklore_sync.common.matchscore import (
    clean_isbn_query,
    fuzzy_score,
    match_score,
    self_score,
)

from .conftest import Api, book

WORKED = [
    ("Dune", "dune", 10, 1.0),
    ("Dune Messiah", "Dune", 10, 0.29411764705882354),
    ("Dune", "Dune Messiah", 10, 0.29411764705882354),
    ("The Hobbit", "Hobbit", 14, 0.5),
    ("The Hobbit", "The Hobit", 23, 0.8214285714285714),
    ("Workshop", "ws", 2, 0.09090909090909091),
    ("Dune", "xdune", 0, None),
    ("Leaves of Grass", "leaves of grass", 43, 1.0),
    ("Leaves of Grass", "Leaves", 16, 0.37209302325581395),
    ("Romeo and Juliet", "juliet", 16, 0.34782608695652173),
    ("Romeo and Juliet", "Romeo & Juliet", 16, 0.34782608695652173),
]


@pytest.mark.parametrize("title,query,raw,score", WORKED)
def test_worked_examples_unit(title, query, raw, score):
    assert fuzzy_score(title, query) == raw
    assert match_score(title, query) == (score if score is not None else 0.0)


@pytest.mark.parametrize("title,query,raw,score", WORKED)
def test_worked_examples_over_http(emu, api: Api, title, query, raw, score):
    bid = book(emu, title)
    r = api.get("/api/v1/books/search", params={"title": query})
    assert r.status_code == 200
    if score is None:
        assert r.json() == []  # a zero score is filtered out
    else:
        assert r.json() == [{"id": bid, "title": title, "hash": "a" * 32,
                             "coverHash": emu.state.book(bid)["coverHash"], "matchScore": score}]


def test_self_score_and_empty():
    assert self_score("abcd") == 10
    assert fuzzy_score("", "") == 0
    assert match_score("", "") == 0.0


def test_utf16_code_units():
    # an emoji is two UTF-16 code units: self score 3*2-2
    assert fuzzy_score("😀", "😀") == 4
    assert match_score("a😀", "a😀") == 1.0


@given(st.text(min_size=1, max_size=30))
def test_self_match_is_one(text):
    assert fuzzy_score(text, text) == self_score(text)
    assert match_score(text, text) == 1.0


@given(st.text(max_size=20), st.text(max_size=20))
def test_score_is_bounded(title, query):
    assert 0.0 <= match_score(title, query) <= 1.0


@pytest.mark.parametrize("raw", ["title=The+Hobbit", "title=The%20Hobbit", "title=the%20hobbit&limit=1"])
def test_query_encoding_plus_and_percent(emu, api: Api, raw):
    bid = book(emu, "The Hobbit")
    r = api.get(f"/api/v1/books/search?{raw}")
    assert [(x["id"], x["matchScore"]) for x in r.json()] == [(bid, 1.0)]


def test_ampersand_in_a_title_query(emu, api: Api):
    book(emu, "Romeo and Juliet")
    r = api.get("/api/v1/books/search", params={"title": "Romeo & Juliet"})
    assert r.json()[0]["matchScore"] == 0.34782608695652173


def test_isbn_cleaning_drops_lowercase_x():
    assert clean_isbn_query("0-306-40615-X") == "030640615X"
    assert clean_isbn_query("0-306-40615-x") == "030640615"

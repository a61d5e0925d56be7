"""BookLore's title search score (booklore-api.md §3.8).

``FuzzyScore`` is the greedy, never-backtracking scorer of Apache Commons Text
(``Locale.ENGLISH``), re-implemented from the description in the spec.  Strings are
compared as UTF-16 code units, as Java does.
"""

from __future__ import annotations

import re


def _units(text: str) -> list[int]:
    data = text.lower().encode("utf-16-le")
    return [int.from_bytes(data[i : i + 2], "little") for i in range(0, len(data), 2)]


def _fuzzy_units(term: list[int], query: list[int]) -> int:
    score = 0
    t = 0
    previous = None
    n = len(term)
    for c in query:
        while t < n:
            if term[t] == c:
                score += 1
                if previous is not None and previous + 1 == t:
                    score += 2
                previous = t
                t += 1
                break
            t += 1
        else:
            # the scan reached the end of the term: nothing later can match
            break
    return score


def fuzzy_score(term: str, query: str) -> int:
    """Apache Commons Text ``FuzzyScore(Locale.ENGLISH).fuzzyScore(term, query)``."""
    return _fuzzy_units(_units(term), _units(query))


def self_score(text: str) -> int:
    n = len(_units(text))
    return 3 * n - 2 if n else 0


def match_score(title: str, query: str) -> float:
    """``FuzzyScore(title, query) / max(self(title), self(query))``; 0.0 when both are empty."""
    t, q = _units(title), _units(query)
    denominator = max(3 * len(t) - 2 if t else 0, 3 * len(q) - 2 if q else 0)
    if denominator <= 0:
        return 0.0
    return _fuzzy_units(t, q) / denominator


_ISBN_KEEP = re.compile(r"[^0-9X]")


def clean_isbn_query(text: str) -> str:
    """The search input cleaning: keep ``0-9`` and upper-case ``X`` only."""
    return _ISBN_KEEP.sub("", text)


def clean_stored_isbn(text: str | None) -> str | None:
    """A stored ISBN with ``-`` and spaces removed."""
    if text is None:
        return None
    return text.replace("-", "").replace(" ", "")

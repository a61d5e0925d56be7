"""Menu labels (spec §4.7): only non-zero counts, order S A R B P, ', ' separator."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from booklore_sync.labels import menu_entries, queue_summary
from booklore_sync.store import QUEUES

counts_strategy = st.fixed_dictionaries({q: st.integers(0, 10_000) for q in QUEUES})
cache_strategy = st.integers(0, 50).flatmap(
    lambda total: st.integers(0, total).map(
        lambda matched: {"total": total, "matched": matched, "unmatched": total - matched}))


@given(counts_strategy)
def test_summary_format(counts):
    summary = queue_summary(counts)
    parts = summary.split(", ") if summary else []
    expected = [f"{counts[q]}{letter}" for q, letter in zip(QUEUES, "SARBP", strict=True) if counts[q]]
    assert parts == expected
    for part in parts:
        assert re.fullmatch(r"[1-9][0-9]*[SARBP]", part)


@given(counts_strategy, cache_strategy)
def test_entries(counts, cache):
    entries = menu_entries(counts, cache)
    labels = [e.label for e in entries]
    pending = any(counts.values())
    summary = queue_summary(counts)
    assert labels[0] == (f"Sync Pending Now ({summary})" if pending else "Sync Pending Now")
    assert labels[3] == (f"Clear Pending... ({summary})" if pending else "Clear Pending...")
    assert labels[1] == "View Pending Sessions" and labels[4] == "Advanced"
    assert labels[5] == "Clear Cache"
    un = cache["unmatched"]
    assert labels[2] == (f"Match Unmatched Books ({un})" if un else "Match Unmatched Books")
    assert [e.enabled for e in entries] == [pending, True, un > 0, pending, True,
                                            cache["total"] > 0]


def test_seed_example():
    counts = {"sessions": 3, "annotations": 1, "ratings": 2, "bookmarks": 1, "progress": 4}
    entries = menu_entries(counts, {"total": 4, "matched": 0, "unmatched": 4})
    assert [e.dump() for e in entries] == [
        "Sync Pending Now (3S, 1A, 2R, 1B, 4P)",
        "View Pending Sessions",
        "Match Unmatched Books (4)",
        "Clear Pending... (3S, 1A, 2R, 1B, 4P)",
        "Advanced",
        "Clear Cache",
    ]

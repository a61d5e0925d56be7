"""Damaged input never crashes, hangs or silently drops another file's items
(koreader-data §12): a small seeded run of the generator in ``damage.py``.
``bench/bench_fuzz_import.py`` runs a thousand and more."""

from __future__ import annotations

from .damage import run_many


def test_fifty_damaged_devices(tmp_path):
    outcomes = run_many(range(1, 51), tmp_path)
    bad = [o for o in outcomes if o.crashed or o.hung or o.lost]
    assert not bad, "\n".join(f"{o.name}: {o.crashed or ('hang' if o.hung else o.lost)}"
                              for o in bad[:5])

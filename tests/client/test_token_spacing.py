"""The spacing between token requests (booklore-api.md §2.4 rule 5) and its override."""

from __future__ import annotations

import time

from booklore_sync.booklore import auth


def test_default_spacing_is_the_products(monkeypatch):
    monkeypatch.delenv(auth.TOKEN_SPACING_ENV, raising=False)
    assert auth.token_spacing() == auth.TOKEN_SPACING_SECONDS == 1.1


def test_environment_overrides_and_bad_values_are_ignored(monkeypatch):
    monkeypatch.setenv(auth.TOKEN_SPACING_ENV, "0.05")
    assert auth.token_spacing() == 0.05
    for bad in ("soon", "-1", "inf", "nan"):
        monkeypatch.setenv(auth.TOKEN_SPACING_ENV, bad)
        assert auth.token_spacing() == auth.TOKEN_SPACING_SECONDS


def test_gate_keeps_requests_apart(monkeypatch):
    monkeypatch.setenv(auth.TOKEN_SPACING_ENV, "0.2")
    gate = auth.TokenGate()
    with gate.lock:
        gate.wait_turn()
        t0 = time.monotonic()
        gate.wait_turn()
    assert time.monotonic() - t0 >= 0.19

"""The emulator's state (booklore-api.md §7.2): one lock, plain JSON-friendly records.
Records use the wire's camelCase field names, so a dump reads like the API.

The parts: ``core`` (attributes, lookups, the unique index, the request log),
``seeding`` (accounts, library and seed), ``tokens`` (tokens and the login limiter),
``persistence`` (the state file) and ``helpers`` (the operations of the control API).
"""

from __future__ import annotations

import copy
import os
import secrets
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..clock import Clock
from ..faults import FaultTable
from .base import (
    ACCESS_TTL,
    BOOK_TYPES,
    GRIMMORY_ACCESS_TTL,
    META_KEYS,
    MODES,
    READ_STATUSES,
    REFRESH_TTL,
    TABLES,
    SeedError,
    _empty_data,
    md5_hex,
)
from .helpers import ControlMixin
from .seeding import _load_seed

__all__ = ["ACCESS_TTL", "BOOK_TYPES", "GRIMMORY_ACCESS_TTL", "META_KEYS", "MODES",
           "READ_STATUSES", "REFRESH_TTL", "TABLES", "SeedError", "State", "md5_hex"]


class State(ControlMixin):
    """Everything the emulator knows.  ``lock`` guards all of it; each request runs with
    the lock held, so each request is atomic.

    ``koreader_sync``: the Sync switch of the KOReader accounts it creates (a real server
    creates them off).  ``access_token_ttl`` None = the flavour's lifetime.  ``latency_ms``:
    every BookLore request is answered no sooner than this."""

    def __init__(
        self,
        *,
        mode: str = "fork",
        server_version: str | None = None,
        user: tuple[str, str] | None = ("demo", "demo"),
        koreader_user: tuple[str, str] | None = ("demo", "demo"),
        admin: tuple[str, str] | None = ("admin", "admin"),
        library: str | os.PathLike[str] | None = None,
        seed: dict[str, Any] | str | os.PathLike[str] | None = None,
        books: Iterable[dict[str, Any]] | None = None,
        state_file: str | os.PathLike[str] | None = None,
        bug_compat: bool = True,
        spa_fallback: bool = True,
        koreader_sync: bool = False,
        latency_ms: int = 0,
        access_token_ttl: int | None = None,
        refresh_token_ttl: int = REFRESH_TTL,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = Clock()
        self.faults = FaultTable()
        self.set_mode(mode, server_version)
        self.bug_compat = bug_compat
        self.spa_fallback = spa_fallback
        self.koreader_sync = bool(koreader_sync)
        self.set_latency(latency_ms)
        self.access_token_ttl_override = None if access_token_ttl is None else int(access_token_ttl)
        self.refresh_token_ttl = int(refresh_token_ttl)
        self.accounts = {"user": user, "koreader_user": koreader_user, "admin": admin}
        self.secret = secrets.token_bytes(32)
        self.state_file = Path(state_file) if state_file else None
        # tokens and limiter are runtime-only (refresh tokens persist)
        self.refresh_tokens = {}
        self.issued_access = []
        self.expired_tokens = set()
        self.broken_tokens = set()
        self.limiter = {}
        self.log = []
        self.log_seq = 0
        self.dirty = False
        self._save_lock = threading.Lock()
        self._unique = {}
        self._by_book = None

        seed_obj = _load_seed(seed)
        library_books: list[dict[str, Any]] = []
        if library is not None:
            from ..library import scan_library

            library_books = scan_library(library)
        self.data = _empty_data()
        self._apply_seed(seed_obj or {}, extra_books=library_books, tail_books=list(books or []))
        self.seed_data = copy.deepcopy(self.data)
        if self.state_file and self.state_file.exists():
            self._load_file(self.state_file)
        elif self.state_file:
            self.save()

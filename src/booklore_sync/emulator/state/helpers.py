"""The emulator's test-facing operations (booklore-api.md §7.7): thread-safe copies of the
tables, configuration and mode, books and accounts changed directly, reset/seed/renumber,
faults, the request log, the clock and tokens.  None of them goes through HTTP."""

from __future__ import annotations

import copy
import os
from typing import Any

from .. import flavours
from ..faults import FaultRule
from .base import ACCESS_TTL, GRIMMORY_ACCESS_TTL, META_KEYS, SeedError, md5_hex
from .persistence import PersistenceMixin
from .seeding import SeedMixin, _load_seed
from .tokens import TokenMixin


class ControlMixin(SeedMixin, TokenMixin, PersistenceMixin):
    def sessions(self, book_id: int | None = None, user_id: int | None = None) -> list[dict[str, Any]]:
        return self._table("sessions", book_id, user_id)

    def annotations(self, book_id: int | None = None, user_id: int | None = None) -> list[dict[str, Any]]:
        return self._table("annotations", book_id, user_id)

    def notes_v2(self, book_id: int | None = None, user_id: int | None = None) -> list[dict[str, Any]]:
        return self._table("notesV2", book_id, user_id)

    def book_notes(self, book_id: int | None = None, user_id: int | None = None) -> list[dict[str, Any]]:
        """v1 book notes (``/api/v1/book-notes``)."""
        return self._table("bookNotes", book_id, user_id)

    def bookmarks(self, book_id: int | None = None, user_id: int | None = None) -> list[dict[str, Any]]:
        return self._table("bookmarks", book_id, user_id)

    def shelves(self) -> list[dict[str, Any]]:
        return self._table("shelves")

    def users(self) -> list[dict[str, Any]]:
        return self._table("users")

    def koreader_accounts(self) -> list[dict[str, Any]]:
        return self._table("koreaderAccounts")

    def libraries(self) -> list[dict[str, Any]]:
        return self._table("libraries")

    def books(self) -> list[dict[str, Any]]:
        return self._table("books")

    def book(self, book_id: int) -> dict[str, Any] | None:
        with self.lock:
            return copy.deepcopy(self.data["books"].get(book_id))

    def progress(self, book_id: int | None = None, user_id: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            rows = [r for _k, r in sorted(self.data["progress"].items())]
            if book_id is not None:
                rows = [r for r in rows if r["bookId"] == book_id]
            if user_id is not None:
                rows = [r for r in rows if r["userId"] == user_id]
            return copy.deepcopy(rows)

    def ratings(self) -> list[dict[str, Any]]:
        """``{"userId", "bookId", "personalRating"}`` for every progress row with a rating."""
        with self.lock:
            return [
                {"userId": r["userId"], "bookId": r["bookId"], "personalRating": r["personalRating"]}
                for _k, r in sorted(self.data["progress"].items())
                if r.get("personalRating") is not None
            ]

    def dump(self) -> dict[str, Any]:
        """The whole state as JSON (what ``GET /__emulator/state`` returns)."""
        out = self.to_json(include_secrets=False)
        out.pop("format", None)
        out.pop("version", None)
        out["ratings"] = self.ratings()
        out["hardcoverPushes"] = self.hardcover_pushes()
        out["mode"] = self.mode
        out["config"] = self.config()
        out["clock"] = self.clock.describe()
        return out

    def config(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "flavour": self.flavour,
            "server_version": self.server_version,
            "bug_compat": self.bug_compat,
            "spa_fallback": self.spa_fallback,
            "oidc_only": self.data["oidcOnly"],
            "koreader_sync": self.koreader_sync,
            "latency_ms": self.latency_ms,
            "access_token_ttl": self.access_token_ttl,
            "refresh_token_ttl": self.refresh_token_ttl,
        }

    def configure(self, bug_compat: bool | None = None, spa_fallback: bool | None = None,
                  oidc_only: bool | None = None, access_token_ttl: int | None = None,
                  refresh_token_ttl: int | None = None, mode: str | None = None,
                  server_version: str | None = None, koreader_sync: bool | None = None,
                  latency_ms: int | None = None) -> dict[str, Any]:
        with self.lock:
            if mode is not None or server_version is not None:
                self.set_mode(mode or self.mode, server_version)
            if bug_compat is not None:
                self.bug_compat = bool(bug_compat)
            if spa_fallback is not None:
                self.spa_fallback = bool(spa_fallback)
            if oidc_only is not None:
                self.data["oidcOnly"] = bool(oidc_only)
            if koreader_sync is not None:
                self.koreader_sync = bool(koreader_sync)
            if latency_ms is not None:
                self.set_latency(latency_ms)
            if access_token_ttl is not None:
                self.access_token_ttl_override = int(access_token_ttl)
            if refresh_token_ttl is not None:
                self.refresh_token_ttl = int(refresh_token_ttl)
            return self.config()

    def set_mode(self, mode: str, server_version: str | None = None) -> None:
        """Switch the flavour (and the release: default the newest of the mode)."""
        text, parsed = flavours.check(mode, server_version)
        with self.lock:
            self.mode = mode
            self.flavour = flavours.canonical(mode)
            self.server_version, self.version_tuple = text, parsed

    def set_latency(self, latency_ms: int) -> None:
        """Answer every BookLore request no sooner than ``latency_ms`` after it arrived."""
        value = int(latency_ms)
        if value < 0:
            raise ValueError("latency_ms is a non-negative number of milliseconds")
        self.latency_ms = value

    @property
    def access_token_ttl(self) -> int:
        """The access-token lifetime: as configured, else the flavour's (grimmory 2 h)."""
        if self.access_token_ttl_override is not None:
            return self.access_token_ttl_override
        return GRIMMORY_ACCESS_TTL if self.flavour == "grimmory" else ACCESS_TTL

    def hardcover_pushes(self) -> list[dict[str, Any]]:
        """The Hardcover forwards a kosync push would have made (§3.18 step 6)."""
        with self.lock:
            return copy.deepcopy(self.data["hardcoverPushes"])

    def add_book(
        self,
        title: str | None = None,
        authors: list[str] | str | None = None,
        isbn13: str | None = None,
        isbn10: str | None = None,
        file_hash: str | None = None,
        book_type: str = "EPUB",
        *,
        id: int | None = None,  # noqa: A002 - the wire's name
        library_id: int = 1,
        file_name: str | None = None,
        initial_hash: str | None = None,
        files: list[dict[str, Any]] | None = None,
        deleted: bool = False,
        metadata: dict[str, Any] | None = None,
        **extra_metadata: Any,
    ) -> dict[str, Any]:
        """Add one book without a file on disk.  ``files`` (seed format) replaces the single
        primary file made from ``file_hash``/``book_type``; ``files=[]`` gives a book
        without any file.  Extra keyword arguments are metadata fields
        (``description``, ``publisher``, …).  Returns the stored record (with ``id``)."""
        entry: dict[str, Any] = {"metadata": dict(metadata or {}), "libraryId": library_id,
                                 "deleted": deleted, "bookType": book_type}
        if title is not None:
            entry["metadata"]["title"] = title
        if authors is not None:
            entry["metadata"]["authors"] = authors
        if isbn13 is not None:
            entry["metadata"]["isbn13"] = isbn13
        if isbn10 is not None:
            entry["metadata"]["isbn10"] = isbn10
        entry["metadata"].update(extra_metadata)
        if id is not None:
            entry["id"] = id
        if files is not None:
            entry["files"] = files
        else:
            entry["hash"] = file_hash
            if initial_hash is not None:
                entry["initialHash"] = initial_hash
            if file_name is not None:
                entry["fileName"] = file_name
        return self.add_book_entry(entry)

    def add_book_entry(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Add a book given as a seed entry (``POST /__emulator/books``)."""
        with self.lock:
            rec = self._add_book(entry)
            self.mark_dirty()
            return copy.deepcopy(rec)

    def update_book(self, book_id: int, **changes: Any) -> dict[str, Any]:
        """Change a stored book: ``metadata`` keys (merged), ``deleted``, ``libraryId``,
        or ``currentHash`` (of the primary file, to simulate hash drift)."""
        with self.lock:
            book = self.data["books"][book_id]
            for key, value in changes.items():
                if key == "metadata":
                    book["metadata"].update(value)
                elif key in META_KEYS:
                    book["metadata"][key] = value
                elif key == "currentHash":
                    for f in book["files"]:
                        if f["primary"]:
                            f["currentHash"] = value
                elif key in ("deleted", "libraryId", "coverHash"):
                    book[key] = value
                else:
                    raise KeyError(key)
            self.mark_dirty()
            return copy.deepcopy(book)

    def set_koreader_account(self, username: str, **changes: Any) -> dict[str, Any]:
        """Change a KOReader account: ``syncEnabled``, ``syncWithBookloreReader``,
        ``userId`` (None = not linked), ``password``."""
        with self.lock:
            acc = self.find_koreader(username)
            if acc is None:
                raise KeyError(username)
            for key, value in changes.items():
                if key == "password":
                    acc["password"] = value
                    acc["md5"] = md5_hex(value)
                elif key in ("syncEnabled", "syncWithBookloreReader", "userId", "username"):
                    acc[key] = value
                else:
                    raise KeyError(key)
            self.mark_dirty()
            return copy.deepcopy(acc)

    def set_user(self, username: str, **changes: Any) -> dict[str, Any]:
        """Change a BookLore user: ``password``, ``isAdmin``, ``libraryIds``,
        ``canSyncKoReader``, ``isDefaultPassword``."""
        with self.lock:
            user = self.find_user(username)
            if user is None:
                raise KeyError(username)
            for key, value in changes.items():
                if key not in ("password", "isAdmin", "libraryIds", "canSyncKoReader",
                               "isDefaultPassword", "username"):
                    raise KeyError(key)
                user[key] = value
            self.mark_dirty()
            return copy.deepcopy(user)

    def delete_user(self, username: str) -> None:
        with self.lock:
            user = self.find_user(username)
            if user is None:
                raise KeyError(username)
            del self.data["users"][user["id"]]
            self.mark_dirty()

    def renumber(self, offset: int = 100) -> dict[str, int]:
        """Give every book the id ``old + offset`` (a rebuilt library); everything that
        refers to a book follows it."""
        offset = int(offset)
        with self.lock:
            books = self.data["books"]
            if offset < 0 and books and min(books) + offset < 1:
                raise ValueError("ids must stay positive")
            new_books = {}
            for bid, book in books.items():
                book["id"] = bid + offset
                new_books[bid + offset] = book
            self.data["books"] = new_books
            for table in ("sessions", "annotations", "notesV2", "bookNotes", "bookmarks"):
                for rec in self.data[table].values():
                    rec["bookId"] += offset
            self.data["progress"] = {
                (u, b + offset): dict(row, bookId=b + offset)
                for (u, b), row in self.data["progress"].items()
            }
            for shelf in self.data["shelves"].values():
                shelf["bookIds"] = [b + offset for b in shelf["bookIds"]]
            self.invalidate()
            if new_books:
                self.data["nextIds"]["books"] = max(self.data["nextIds"]["books"] + offset,
                                                    max(new_books) + 1)
            self.mark_dirty()
            return {"offset": offset, "books": len(new_books)}

    def reset(self) -> None:
        """Back to the seed state; clears faults, tokens, the limiter and the request log."""
        with self.lock:
            self.data = copy.deepcopy(self.seed_data)
            self.invalidate()
            self.refresh_tokens.clear()
            self.issued_access.clear()
            self.expired_tokens.clear()
            self.broken_tokens.clear()
            self.limiter.clear()
            self.log.clear()
            self.faults.clear()
            self.mark_dirty()

    def seed(self, seed: dict[str, Any] | str | os.PathLike[str]) -> None:
        """Replace the state with a JSON seed (§7.3); it becomes the new reset point."""
        obj = _load_seed(seed)
        with self.lock:
            old = self.data
            try:
                self._apply_seed(obj or {})
            except (SeedError, KeyError, TypeError, ValueError):
                self.data = old
                self.invalidate()
                raise
            self.seed_data = copy.deepcopy(self.data)
            self.refresh_tokens.clear()
            self.issued_access.clear()
            self.limiter.clear()
            self.mark_dirty()

    # faults
    def inject_fault(self, path: str | dict[str, Any], action: str | None = None,
                     **spec: Any) -> dict[str, Any]:
        """Add a fault rule (§7.7), e.g. ``inject_fault("/api/v1/reading-sessions/batch",
        "status", status=503, times=2)``, or ``inject_fault({...rule as JSON...})``.
        Returns the rule (with ``id`` and ``remaining``)."""
        if isinstance(path, dict):
            rule_spec = dict(path, **spec)
            if action is not None:
                rule_spec["action"] = action
        else:
            rule_spec = dict(spec, path=path, action=action or "status")
        rule: FaultRule = self.faults.add(rule_spec)
        return rule.to_json()

    def fault_rules(self) -> list[dict[str, Any]]:
        return self.faults.list()

    def remove_fault(self, rule_id: int) -> bool:
        return self.faults.remove(rule_id)

    def clear_faults(self) -> None:
        self.faults.clear()

    # request log
    def request_log(self, since: int = 0) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy([e for e in self.log if e["seq"] > since])

    def clear_request_log(self) -> None:
        with self.lock:
            self.log.clear()

    # clock and tokens
    def set_clock(self, when: Any, frozen: bool = False) -> None:
        from ..wire import parse_iso_datetime

        self.clock.set(parse_iso_datetime(when) if isinstance(when, str) else when, frozen)

    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def real_clock(self) -> None:
        self.clock.real()


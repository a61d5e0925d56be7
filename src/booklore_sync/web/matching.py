"""The web page's manual matching (spec §4.3 step 2, §10.5): one unmatched book at a
time with its candidates, a BookLore ID looked up, a choice confirmed under the lock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from booklore_sync.config import Config, ConfigError
from booklore_sync.store.db import Store
from booklore_sync.web.actions import ActionError, _read_store, _skipped, locked


@dataclass
class ManualBook:
    cache_id: int
    heading: str
    term: str
    candidates: list[Any]   # sync.matcher.Candidate
    best_percent: int | None


def unmatched_ids(cfg: Config) -> list[int]:
    store = _read_store(cfg)
    if store is None:
        return []
    with store:
        return [b.id for b in store.books(unmatched_only=True)]


@contextmanager
def _matcher(cfg: Config, store: Store) -> Iterator[Any]:
    from booklore_sync.actions.sync import make_client
    from booklore_sync.sync.matcher import Matcher, ServerUnavailable

    try:
        client = make_client(cfg, store)
    except ConfigError as exc:
        raise ActionError(str(exc)) from None
    with client:
        matcher = Matcher(store, client)
        try:
            matcher.connect()
            yield matcher
        except ServerUnavailable as exc:
            raise ActionError(f"{str(exc)[:1].upper()}{str(exc)[1:]}; nothing was changed.") \
                from None


def manual_book(cfg: Config, cache_id: int, index: int, count: int,
                term: str | None) -> ManualBook | None:
    """One unmatched book with up to five candidates (None when it is matched by now)."""
    from booklore_sync.sync.manual import describe
    from booklore_sync.sync.matcher import search_term

    store = _read_store(cfg)
    if store is None:
        return None
    with store:
        book = store.get_book(cache_id)
        if book is None or book.book_id is not None:
            return None
        term = term or search_term(book)
        with _matcher(cfg, store) as matcher:
            candidates = matcher.search(term)
    best = max((c.percent for c in candidates), default=None)
    return ManualBook(cache_id, f"[{index}/{count}] {describe(book)}", term, candidates, best)


def lookup_book(cfg: Config, book_id: int) -> tuple[str, str] | None:
    """(title, authors) of the server's book with this ID, or None when it has none."""
    with Store.open(cfg.store_path) as store, _matcher(cfg, store) as matcher:
        found = matcher.lookup_id(book_id)
    if found is None:
        return None
    authors = ", ".join(getattr(found, "authors", ()) or ()) or "unknown author"
    return (getattr(found, "title", None) or "(untitled)", authors)


def confirm_match(cfg: Config, cache_id: int, book_id: int,
                  score: float | None) -> list[str]:
    """Link the book (a manual match) and upload its pending items, under the lock."""
    from booklore_sync.actions.sync import sync_locked

    with locked(cfg), Store.open(cfg.store_path) as store:
        book = store.get_book(cache_id)
        if book is None:
            raise ActionError("That book is no longer in the cache; nothing was changed.")
        with _matcher(cfg, store) as matcher:
            if matcher.lookup_id(book_id) is None:
                raise ActionError(f"BookLore has no book with ID {book_id}; nothing was changed.")
            matcher.confirm(cache_id, book_id, method="manual", confidence=score)
            lines = [f"Matched {book.display_name} to BookLore book {book_id}."]
            fingerprints = set(store.book_hashes(cache_id))
            if fingerprints:
                report = sync_locked(cfg, store, matcher.client, only_fingerprints=fingerprints)
                if report.synced or report.failed or _skipped(report):
                    lines += [f"uploaded: {line}" for line in report.summary_lines()]
                lines += list(report.messages)
    return lines

"""The store's value types and errors (no SQL here)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from booklore_sync.common.vocab import EnqueueOutcome, LinkKind

# Outcomes of an enqueue call (the vocabulary's values, under their old names).
QUEUED = EnqueueOutcome.QUEUED
UPDATED = EnqueueOutcome.UPDATED
ALREADY_QUEUED = EnqueueOutcome.ALREADY_QUEUED
ALREADY_SYNCED = EnqueueOutcome.ALREADY_SYNCED
DISCARDED = EnqueueOutcome.DISCARDED
NEW_OUTCOMES = frozenset({QUEUED, UPDATED})


class StoreError(Exception):
    """A problem with the store file itself (its path is in the message)."""


class StoreVersionError(StoreError):
    """The store file was written by a newer booklore-sync."""


def utcnow() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def display_name(title: str | None, file_path: str | None, fingerprint: str) -> str:
    """A book for a person: its title, else its file's name, else its fingerprint."""
    if title:
        return title
    if file_path:
        return Path(file_path).name
    return fingerprint


@dataclass(frozen=True)
class BookRow:
    id: int
    file_path: str | None
    file_hash: str
    book_id: int | None
    title: str | None
    author: str | None
    isbn10: str | None
    isbn13: str | None
    book_type: str | None
    match_method: str | None
    match_confidence: float | None
    matched_at: str | None
    matched_by: str | None = None

    @property
    def display_name(self) -> str:
        return display_name(self.title, self.file_path, self.file_hash)


@dataclass
class QueueItem:
    """One queue row, with the cached book its fingerprint points to (if any)."""

    queue: str
    id: int
    fingerprint: str
    payload: dict[str, Any]
    created_at: str
    retry_count: int
    last_attempt_at: str | None
    last_error: str | None
    last_status: int | None
    state: str
    key: dict[str, Any]
    cache_id: int | None = None
    book_id: int | None = None
    title: str | None = None
    file_path: str | None = None
    book_type: str | None = None
    done_parts: list[str] = field(default_factory=list)
    #: when the row was last marked in flight (its upload request about to be sent)
    in_flight_at: str | None = None
    #: when the outcome of its upload became unknown (spec §4.1 "Exactly once")
    abandoned_at: str | None = None

    @property
    def display_name(self) -> str:
        return display_name(self.title, self.file_path, self.fingerprint)


@dataclass(frozen=True)
class KeptLink:
    """A user's decision kept beside the cache: fingerprint → BookLore book ID."""

    fingerprint: str
    book_id: int
    kind: LinkKind
    linked_at: str


class CacheCleared(NamedTuple):
    """What Clear Cache did: cache rows removed, kept links left in place."""

    books: int
    links_kept: int


@dataclass(frozen=True)
class MatchesForgotten:
    """What Re-match All's forgetting step did."""

    book_ids: int
    links: int
    plugin_links_replaced: int
    reconciliations: int


@dataclass(frozen=True)
class ServerIdentity:
    """The server and accounts the server-bound records belong to (spec §3)."""

    url: str
    username: str | None = None
    koreader_username: str | None = None

    def key(self) -> str:
        """A stable text form (what ``store_meta`` and the records hold)."""
        return json.dumps([self.url, self.username, self.koreader_username],
                          separators=(",", ":"), ensure_ascii=False)


def key_text(fingerprint: str, key: Sequence[Any]) -> str:
    """A natural key as one string (the discard list's ``item_key``)."""
    return json.dumps([fingerprint, *key], separators=(",", ":"), ensure_ascii=False)

"""`match`, `link` and `advanced rematch-all` as library calls (spec §4.3, §4.5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from booklore_sync.booklore import errors as E
from booklore_sync.config import Config, ConfigError
from booklore_sync.store import BookRow, LockBusy, Store
from booklore_sync.sync.matcher import Matcher, RematchResult, ServerUnavailable
from booklore_sync.sync.report import (
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_USAGE,
    SyncReport,
)
from booklore_sync.sync.runner import make_client, sync_locked, upload_lock


@dataclass
class MatchOutcome:
    matched: int = 0
    still_unmatched: int = 0
    exit_code: int = EXIT_OK
    messages: list[str] = field(default_factory=list)
    uploads: SyncReport = field(default_factory=SyncReport)

    def to_json(self) -> dict[str, int]:
        return {"matched": self.matched, "still_unmatched": self.still_unmatched}


def _fingerprints(store: Store, cache_ids: list[int]) -> set[str]:
    return {fp for cid in cache_ids for fp in store.book_hashes(cid)}


def run_match(cfg: Config, *, interactive: bool, prompter: Any = None) -> MatchOutcome:
    """Automatic matching, silent uploads of newly matched books, then (on a terminal,
    when nothing new was found) the manual dialog."""
    out = MatchOutcome()
    try:
        with upload_lock(cfg), Store.open(cfg.store_path) as store:
            out.still_unmatched = store.cache_counts()["unmatched"]
            try:
                client = make_client(cfg, store)
            except ConfigError as exc:
                out.exit_code = EXIT_USAGE
                out.messages.append(str(exc))
                return out
            with client:
                _match(cfg, store, client, out, interactive, prompter)
            out.still_unmatched = store.cache_counts()["unmatched"]
    except LockBusy as exc:
        out.exit_code = EXIT_LOCKED
        out.messages.append(f"{exc}; try again when it has finished")
        with Store.open(cfg.store_path) as store:
            out.still_unmatched = store.cache_counts()["unmatched"]
    return out


def _match(cfg: Config, store: Store, client: Any, out: MatchOutcome, interactive: bool,
           prompter: Any) -> None:
    matcher = Matcher(store, client)
    try:
        matcher.connect()
        auto = matcher.auto_match()
    except ServerUnavailable as exc:
        out.exit_code = EXIT_FAILED
        out.messages.append(f"{exc}; nothing was changed")
        return
    out.matched += len(auto.matched)
    for cache_id, book_id, method in auto.matched:
        book = store.get_book(cache_id)
        out.messages.append(f"Matched {_name(book)} → BookLore book {book_id} (by {method})")
    if auto.matched:
        _upload(cfg, store, client, out, [cid for cid, _, _ in auto.matched])
    unmatched = store.cache_counts()["unmatched"]
    if auto.matched or not unmatched or not interactive or prompter is None:
        return
    if not prompter.confirm(f"No new matches found ({unmatched} still unmatched). "
                            "Match them manually?"):
        return
    from booklore_sync.sync.manual import manual_match

    def upload_now(book: BookRow, book_id: int) -> None:
        _upload(cfg, store, client, out, [book.id])

    try:
        result = manual_match(matcher, prompter, on_match=upload_now)
    except ServerUnavailable as exc:
        out.exit_code = max(out.exit_code, EXIT_FAILED)
        out.messages.append(str(exc))
        return
    out.matched += len(result.matched)


def _upload(cfg: Config, store: Store, client: Any, out: MatchOutcome, cache_ids: list[int]) -> None:
    fps = _fingerprints(store, cache_ids)
    if not fps:
        return
    report = sync_locked(cfg, store, client, only_fingerprints=fps)
    out.uploads.merge(report)
    if report.offline or report.server_lost or report.failed:
        out.exit_code = max(out.exit_code, EXIT_FAILED)
    if report.missing_accounts or report.rejected_accounts:
        out.exit_code = max(out.exit_code, EXIT_USAGE)


def _name(book: BookRow | None) -> str:
    if book is None:
        return "?"
    return book.display_name


# ------------------------------------------------------------------- link
class LinkError(Exception):
    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def find_cached_book(store: Store, ref: str) -> BookRow | None:
    """BOOK given as a file path (as cached, or resolved) or as a fingerprint."""
    ref = ref.strip()
    if len(ref) == 32 and all(c in "0123456789abcdefABCDEF" for c in ref):
        book = store.get_book_by_hash(ref.lower())
        if book is not None:
            return book
    for candidate in (ref, str(Path(ref).expanduser().resolve())):
        book = store.get_book_by_path(candidate)
        if book is not None:
            return book
    return None


def run_link(cfg: Config, ref: str, book_id: int) -> str:
    with Store.open(cfg.store_path) as store:
        book = find_cached_book(store, ref)
        if book is None:
            raise LinkError(f"no book {ref!r} in the cache (give a cached file path or "
                            "fingerprint; run `booklore-sync scan` first)", EXIT_USAGE)
        try:
            client = make_client(cfg, store)
        except ConfigError as exc:
            raise LinkError(str(exc), EXIT_USAGE) from None
        with client:
            try:
                client.healthcheck()
                server_book = client.get_book(book_id)
            except E.NotFoundError:
                raise LinkError(f"BookLore has no book with ID {book_id}", EXIT_USAGE) from None
            except (E.OfflineError, E.OutcomeUnknownError) as exc:
                raise LinkError(f"the server cannot be reached ({exc.message}); nothing was "
                                "changed", EXIT_FAILED) from None
            except (E.NotConfiguredError, E.AuthError) as exc:
                raise LinkError(f"checking the book needs the BookLore account: {exc}",
                                EXIT_USAGE) from None
            except E.BookLoreError as exc:
                raise LinkError(f"{exc}; nothing was changed", EXIT_FAILED) from None
        store.set_book_id(book.id, book_id, "manual", None)
        return (f"Linked {book.display_name} to BookLore book {book_id}"
                f" ({server_book.title or 'untitled'}); its pending items go with the next sync.")


# ----------------------------------------------------------------- rematch
def run_rematch(cfg: Config, *, confirm: Any = None) -> tuple[int, RematchResult | None, list[str]]:
    """Forget every stored ID and resolve again; all or nothing."""
    messages: list[str] = []
    try:
        with upload_lock(cfg), Store.open(cfg.store_path) as store:
            try:
                client = make_client(cfg, store)
            except ConfigError as exc:
                return EXIT_USAGE, None, [str(exc)]
            with client:
                matcher = Matcher(store, client)
                try:
                    matcher.connect()
                except ServerUnavailable as exc:
                    return EXIT_FAILED, None, [f"{exc}; no stored ID was changed"]
                if not matcher.can_hash:
                    messages.append("This server cannot look books up by fingerprint: only books "
                                    "with an ISBN BookLore knows will be matched again; the "
                                    "others become unmatched.")
                if confirm is not None and not confirm(messages):
                    return EXIT_OK, None, messages + ["Cancelled; nothing was changed."]
                try:
                    result = matcher.rematch_all()
                except ServerUnavailable as exc:
                    return EXIT_FAILED, None, messages + [f"{exc}; no stored ID was changed"]
        return EXIT_OK, result, messages
    except LockBusy as exc:
        return EXIT_LOCKED, None, [f"{exc}; try again when it has finished"]

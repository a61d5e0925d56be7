"""Match Unmatched Books, link and Re-match All (spec §4.3, §4.5) as library calls."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from booklore_sync.actions.base import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    NOT_FOUND,
    ActionError,
    client_error,
    open_store,
    session,
    store_lock,
)
from booklore_sync.actions.books import find_book
from booklore_sync.booklore import errors as E
from booklore_sync.config import Config
from booklore_sync.server_url import reason_only
from booklore_sync.store import BookRow, Store
from booklore_sync.sync.matcher import Matcher, RematchResult, ServerUnavailable
from booklore_sync.sync.report import SyncReport

NO_TERMINAL_HINT = ("{n} still unmatched; run `booklore-sync match` on a terminal, "
                    "or `link BOOK ID`")
EMPTY_CACHE_HINT = ("the book cache is empty: run `booklore-sync scan SOURCE` to rebuild it "
                    "(kept links come back by fingerprint), then match what is still unmatched")


@dataclass
class MatchOutcome:
    matched: int = 0
    still_unmatched: int = 0
    exit_code: int = EXIT_OK
    messages: list[str] = field(default_factory=list)
    uploads: SyncReport = field(default_factory=SyncReport)
    error: ActionError | None = None
    interrupted: bool = False

    def fail(self, exc: ActionError) -> None:
        self.error = exc
        self.exit_code = max(self.exit_code, exc.exit_code)
        self.messages.append(exc.message)

    def to_json(self) -> dict[str, Any]:
        return {"matched": self.matched, "still_unmatched": self.still_unmatched}


def _fingerprints(store: Store, cache_ids: list[int]) -> set[str]:
    return {fp for cid in cache_ids for fp in store.book_hashes(cid)}


def _unmatched(cfg: Config) -> int:
    if not cfg.store_path.exists():
        return 0
    with open_store(cfg) as store:
        return store.cache_counts()["unmatched"]


def run_match(cfg: Config, *, interactive: bool, prompter: Any = None,
              hint_without_terminal: bool = True) -> MatchOutcome:
    """Automatic matching and the uploads of newly matched books (under the lock), then
    — on a terminal, when nothing new was found — the manual dialog, which takes the
    lock only for each confirmed upload."""
    out = MatchOutcome()
    try:
        with session(cfg) as s:
            out.still_unmatched = s.store.cache_counts()["unmatched"]
            _auto(cfg, s.store, s.client, out)
            counts = s.store.cache_counts()
            out.still_unmatched = counts["unmatched"]
            if not counts["total"] and out.error is None:
                out.messages.append(EMPTY_CACHE_HINT)
    except ActionError as exc:
        out.fail(exc)
        out.still_unmatched = _unmatched(cfg)
        return out
    if out.error is not None or out.matched or not out.still_unmatched:
        return out
    if not interactive or prompter is None:
        if hint_without_terminal:
            out.messages.append(NO_TERMINAL_HINT.format(n=out.still_unmatched))
        return out
    try:
        _manual(cfg, out, prompter)
    except ActionError as exc:
        out.fail(exc)
    except KeyboardInterrupt:
        out.interrupted = True
        out.exit_code = EXIT_INTERRUPTED
        out.messages.append(f"Cancelled; {out.matched} books matched before.")
    out.still_unmatched = _unmatched(cfg)
    return out


def _unreachable(exc: ServerUnavailable, url: str | None, action: str) -> ActionError:
    """The server is away: one line naming the URL once, the cause, and what happened."""
    text = str(exc)
    prefix = "the server cannot be reached ("
    if text.startswith(prefix) and text.endswith(")"):
        text = text[len(prefix):-1]
    return ActionError("offline", f"cannot reach {url or 'the server'} "
                       f"({reason_only(text, url)}); {action}", EXIT_FAILED)


def _auto(cfg: Config, store: Store, client: Any, out: MatchOutcome) -> None:
    matcher = Matcher(store, client)
    try:
        matcher.connect()
        auto = matcher.auto_match()
    except ServerUnavailable as exc:
        out.fail(_unreachable(exc, client.base_url, "nothing was changed"))
        return
    except E.BookLoreError as exc:
        out.fail(client_error(exc, client.base_url))
        return
    out.matched += len(auto.matched)
    for cache_id, book_id, method in auto.matched:
        book = store.get_book(cache_id)
        name = book.display_name if book is not None else "?"
        out.messages.append(f"Matched {name} → BookLore book {book_id} (by {method})")
    if auto.matched:
        _upload(cfg, store, client, out, [cid for cid, _, _ in auto.matched])


def _manual(cfg: Config, out: MatchOutcome, prompter: Any) -> None:
    from booklore_sync.actions.base import make_client
    from booklore_sync.sync.manual import manual_match

    if not prompter.confirm(f"No new matches found ({out.still_unmatched} still unmatched). "
                            "Match them manually?"):
        return
    with open_store(cfg) as store, make_client(cfg, store) as client:
        matcher = Matcher(store, client)

        def commit(book: BookRow, book_id: int, score: float | None) -> bool:
            try:
                with store_lock(cfg):
                    matcher.confirm(book.id, book_id, method="manual", confidence=score)
                    _upload(cfg, store, client, out, [book.id])
            except ActionError as exc:
                prompter.say(f"{exc.message}; {book.display_name} was not matched.")
                return False
            out.matched += 1
            return True

        try:
            matcher.connect()
            manual_match(matcher, prompter, commit=commit)
        except ServerUnavailable as exc:
            raise _unreachable(exc, client.base_url, "nothing was changed") from None
        except E.BookLoreError as exc:
            raise client_error(exc, client.base_url) from None


def _upload(cfg: Config, store: Store, client: Any, out: MatchOutcome,
            cache_ids: list[int]) -> None:
    from booklore_sync.actions.sync import sync_locked

    fps = _fingerprints(store, cache_ids)
    if not fps:
        return
    report = sync_locked(cfg, store, client, only_fingerprints=fps)
    out.uploads.merge(report)
    if report.offline or report.server_lost or report.failed:
        out.exit_code = max(out.exit_code, EXIT_FAILED)
    if report.missing_accounts or report.rejected_accounts:
        out.exit_code = max(out.exit_code, EXIT_USAGE)


# ------------------------------------------------------------------- link
class LinkError(ActionError):
    def __init__(self, message: str, code: int, kind: str = NOT_FOUND):
        super().__init__(kind, message, code)


@dataclass(frozen=True)
class LinkResult:
    fingerprint: str
    path: str | None
    title: str | None
    book_id: int
    previous_book_id: int | None
    server_title: str | None

    @property
    def message(self) -> str:
        name = self.title or self.path or self.fingerprint
        return (f"Linked {name} to BookLore book {self.book_id} "
                f"({self.server_title or 'untitled'}); its pending items go with the next sync.")

    def to_json(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, "path": self.path, "title": self.title,
                "book_id": self.book_id, "previous_book_id": self.previous_book_id}


def link_book(cfg: Config, ref: str, book_id: int) -> LinkResult:
    """Record BOOK → BookLore ID as a manual match after checking the ID on the server."""
    try:
        with session(cfg) as s:
            book = find_book(s.store, ref)
            try:
                server_book = s.client.get_book(book_id)
            except E.NotFoundError:
                raise LinkError(f"BookLore has no book with ID {book_id}", EXIT_USAGE) from None
            except E.BookLoreError as exc:
                raise client_error(exc, s.url) from None
            s.store.set_book_id(book.id, book_id, "manual", None)
            return LinkResult(book.file_hash, book.file_path, book.title, book_id, book.book_id,
                              getattr(server_book, "title", None))
    except LinkError:
        raise
    except ActionError as exc:
        raise LinkError(exc.message, exc.exit_code, exc.kind) from None


def run_link(cfg: Config, ref: str, book_id: int) -> str:
    return link_book(cfg, ref, book_id).message


# ----------------------------------------------------------------- rematch
def run_rematch(cfg: Config, *, confirm: Callable[[list[str]], bool] | None = None
                ) -> tuple[int, RematchResult | None, list[str]]:
    """Forget every stored ID and resolve again; all or nothing.  The confirmation is
    asked before the lock is taken."""
    messages: list[str] = []
    try:
        with session(cfg, lock=False) as s:
            matcher = Matcher(s.store, s.client)
            try:
                matcher.connect()
            except ServerUnavailable as exc:
                return EXIT_FAILED, None, [_unreachable(exc, s.url, "no stored ID was "
                                                        "changed").message]
            except E.BookLoreError as exc:
                return EXIT_FAILED, None, [client_error(exc, s.url, action="no stored ID was "
                                                        "changed").message]
            if not matcher.can_hash:
                messages.append("This server cannot look books up by fingerprint: only books "
                                "with an ISBN BookLore knows will be matched again; the "
                                "others become unmatched.")
            if confirm is not None and not confirm(messages):
                return EXIT_OK, None, messages + ["Cancelled; nothing was changed."]
            with store_lock(cfg):
                try:
                    result = matcher.rematch_all()
                except ServerUnavailable as exc:
                    return EXIT_FAILED, None, messages + [
                        _unreachable(exc, s.url, "no stored ID was changed").message]
                except E.BookLoreError as exc:
                    return EXIT_FAILED, None, messages + [
                        client_error(exc, s.url, action="no stored ID was changed").message]
        return EXIT_OK, result, messages
    except ActionError as exc:
        return exc.exit_code, None, messages + [exc.message]

"""Match Unmatched Books and Re-match All (spec §4.3, §4.5).

The matcher decides; it never prompts.  The interactive step (pick / skip /
search again / enter an ID / stop) lives in :mod:`booklore_sync.sync.manual`
and calls :meth:`Matcher.search` and :meth:`Matcher.confirm`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from booklore_sync.booklore import errors as E
from booklore_sync.booklore.models import normalize_isbn
from booklore_sync.store import BookRow, Store

MAX_CANDIDATES = 5


class ServerUnavailable(Exception):
    """The server cannot be reached (or stopped answering): nothing was changed."""


@dataclass(frozen=True)
class Candidate:
    book_id: int
    title: str
    authors: tuple[str, ...]
    score: float

    @property
    def percent(self) -> int:
        """matchScore × 100, rounded half-up to a whole percent (spec §4.3)."""
        return int(Decimal(repr(self.score * 100)).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def label(self) -> str:
        author = ", ".join(self.authors) if self.authors else "unknown author"
        return f"{self.title or '(untitled)'} — {author} ({self.percent}%)"


@dataclass
class AutoResult:
    matched: list[tuple[int, int, str]] = field(default_factory=list)  # cache id, book id, how
    still_unmatched: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class RematchResult:
    rematched: int = 0      # same ID as before
    changed: int = 0        # a different ID
    now_unmatched: int = 0  # had an ID, the server no longer knows it
    newly_matched: int = 0  # had none, found now
    unmatched: int = 0      # had none, still none
    hash_lookup: bool = True


def search_term(book: BookRow) -> str:
    """The book's title, else its file name without extension (spec §4.3)."""
    if book.title:
        return book.title
    if book.file_path:
        return Path(book.file_path).stem
    return book.file_hash


class Matcher:
    def __init__(self, store: Store, client: Any):
        self.store = store
        self.client = client
        self.caps: Any = None
        self._books: list[Any] | None = None  # the server's book list (servers without search)
        self._hash_ok = True

    # -------------------------------------------------------------- setup
    def connect(self) -> Any:
        """Health + capability probe; ServerUnavailable when the server is away."""
        try:
            self.caps = self.client.probe()
        except E.OfflineError as exc:
            raise ServerUnavailable(f"the server cannot be reached ({exc.message})") from None
        except E.NotBookLoreError as exc:
            raise ServerUnavailable(f"{exc.message} — check server.url") from None
        return self.caps

    @property
    def can_hash(self) -> bool:
        caps = self.caps
        if caps is None or not self._hash_ok:
            return False
        ko = bool(caps.by_hash_koreader) and self.client.has_koreader_account
        bearer = bool(caps.by_hash_bearer) and self.client.has_booklore_account
        return ko or bearer

    # ----------------------------------------------------------- automatic
    def find(self, book: BookRow) -> tuple[int, str, float] | None:
        """(book id, method, confidence) by fingerprint, then exact ISBN; None if neither.

        Network loss raises ServerUnavailable; other errors just mean "not found here".
        """
        if self.can_hash:
            for fp in self.store.book_hashes(book.id):
                try:
                    found = self.client.find_book_by_hash(fp)
                except (E.OfflineError, E.OutcomeUnknownError) as exc:
                    raise ServerUnavailable(f"the server stopped answering ({exc.message})") from None
                except (E.UnsupportedEndpointError, E.NotConfiguredError, E.AuthError):
                    self._hash_ok = False
                    break
                except E.BookLoreError:
                    continue
                if found is not None:
                    return found.id, "hash", 1.0
        for isbn in (book.isbn13, book.isbn10):
            clean = normalize_isbn(isbn)
            if not clean:
                continue
            book_id = self._isbn_match(clean)
            if book_id is not None:
                return book_id, "isbn", 1.0
        return None

    def _isbn_match(self, isbn: str) -> int | None:
        if not self.client.has_booklore_account:
            return None
        try:
            if self.caps is not None and self.caps.search is not False:
                try:
                    results = self.client.search_books(isbn=isbn)
                except E.UnsupportedEndpointError:
                    pass
                else:
                    exact = [r for r in results if r.match_score == 1.0]
                    return exact[0].id if len(exact) == 1 else None
            hits = [b.id for b in self._server_books()
                    if isbn in (normalize_isbn(b.isbn13), normalize_isbn(b.isbn10))]
            return hits[0] if len(hits) == 1 else None
        except (E.OfflineError, E.OutcomeUnknownError) as exc:
            raise ServerUnavailable(f"the server stopped answering ({exc.message})") from None
        except E.BookLoreError:
            return None

    def _server_books(self) -> list[Any]:
        if self._books is None:
            self._books = self.client.list_books()
        return self._books

    def auto_match(self) -> AutoResult:
        """Match every unmatched cached book by fingerprint / ISBN; store each match."""
        if self.caps is None:
            self.connect()
        result = AutoResult()
        for book in self.store.books(unmatched_only=True):
            hit = self.find(book)
            if hit is None:
                continue
            book_id, method, confidence = hit
            self.store.set_book_id(book.id, book_id, method, confidence)
            result.matched.append((book.id, book_id, method))
        result.still_unmatched = self.store.cache_counts()["unmatched"]
        return result

    # -------------------------------------------------------------- manual
    def search(self, term: str) -> list[Candidate]:
        """Up to five candidates for a search term, with the server's matchScore."""
        term = term.strip()
        if not term:
            return []
        try:
            if self.caps is None or self.caps.search is not False:
                try:
                    results = self.client.search_books(title=term)
                except E.UnsupportedEndpointError:
                    pass
                else:
                    return [self._candidate(r.id, r.title, r.match_score)
                            for r in results[:MAX_CANDIDATES]]
            return self._local_search(term)
        except (E.OfflineError, E.OutcomeUnknownError) as exc:
            raise ServerUnavailable(f"the server stopped answering ({exc.message})") from None

    def _candidate(self, book_id: int, title: str, score: float) -> Candidate:
        authors: tuple[str, ...] = ()
        try:
            authors = self.client.get_book(book_id).authors
        except E.BookLoreError:
            pass
        return Candidate(book_id=book_id, title=title, authors=authors, score=score)

    def _local_search(self, term: str) -> list[Candidate]:
        """No search endpoint (upstream): score the book list with the same algorithm."""
        from booklore_sync.common.matchscore import match_score

        scored = []
        for b in self._server_books():
            title = b.title or b.file_name or ""
            score = match_score(title, term)
            if score > 0:
                scored.append((score, b))
        scored.sort(key=lambda pair: -pair[0])  # stable: ties keep the server's order
        return [Candidate(book_id=b.id, title=b.title or b.file_name or "", authors=b.authors,
                          score=s) for s, b in scored[:MAX_CANDIDATES]]

    def lookup_id(self, book_id: int) -> Any | None:
        """The server's book with this ID, or None when it has none."""
        try:
            return self.client.get_book(book_id)
        except E.NotFoundError:
            return None
        except (E.OfflineError, E.OutcomeUnknownError) as exc:
            raise ServerUnavailable(f"the server stopped answering ({exc.message})") from None

    def confirm(self, cache_id: int, book_id: int, *, method: str = "manual",
                confidence: float | None = None) -> None:
        self.store.set_book_id(cache_id, book_id, method, confidence)

    # ------------------------------------------------------------ rematch
    def rematch_all(self) -> RematchResult:
        """Forget every stored ID and resolve every book again — all or nothing."""
        if self.caps is None:
            self.connect()
        result = RematchResult(hash_lookup=self.can_hash)
        books = self.store.books()
        plan: list[tuple[BookRow, tuple[int, str, float] | None]] = []
        for book in books:
            plan.append((book, self.find(book)))  # ServerUnavailable aborts before any change
        with self.store.transaction():
            self.store.forget_all_book_ids()
            self.store.forget_reconciliations()  # first contact is made again (§4.5)
            for book, hit in plan:
                old = book.book_id
                if hit is not None:
                    self.store.set_book_id(book.id, hit[0], hit[1], hit[2])
                new = hit[0] if hit is not None else None
                if old is None and new is None:
                    result.unmatched += 1
                elif old is None:
                    result.newly_matched += 1
                elif new is None:
                    result.now_unmatched += 1
                elif new == old:
                    result.rematched += 1
                else:
                    result.changed += 1
        return result

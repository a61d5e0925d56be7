"""The manual matching dialog (spec §4.3 step 2), apart from how it is shown.

``Prompter`` is the seam: the terminal implementation
(:class:`booklore_sync.interactive.TerminalPrompter`, questionary) is passed in by
the interfaces; tests script it.  The dialog is beets' candidate prompt: pick a result, *Skip this
book*, *Search again*, *Enter a BookLore ID*, or *Stop*.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from booklore_sync.store import BookRow
from booklore_sync.sync.matcher import Candidate, Matcher, search_term

SKIP, SEARCH_AGAIN, ENTER_ID, STOP = "skip", "search", "enter_id", "stop"
WEAK_SCORE = 0.5  # below it, Skip this book is the pre-selected choice (spec §4.3)


class Prompter(Protocol):
    def confirm(self, message: str) -> bool: ...

    def choose(self, book: BookRow, term: str, candidates: list[Candidate]) -> Candidate | str: ...

    def text(self, message: str, default: str = "") -> str | None: ...

    def say(self, message: str) -> None: ...


@dataclass
class ManualResult:
    matched: list[tuple[int, int]]  # cache id, book id
    skipped: int
    stopped: bool


def describe(book: BookRow) -> str:
    name = book.title or (Path(book.file_path).name if book.file_path else book.file_hash)
    extra = f" ({Path(book.file_path).name})" if book.title and book.file_path else ""
    return f"{name}{extra}"


Commit = Callable[[BookRow, int, "float | None"], bool]


def manual_match(matcher: Matcher, prompter: Prompter,
                 on_match: Callable[[BookRow, int], None] | None = None,
                 commit: Commit | None = None) -> ManualResult:
    """Step through the unmatched books.

    A confirmed choice is stored by ``commit(book, book_id, score)`` when given (it
    takes the store's lock, stores the match and uploads the book's items; False when
    it could not), else by the matcher, followed by ``on_match``."""
    result = ManualResult(matched=[], skipped=0, stopped=False)
    books = matcher.store.books(unmatched_only=True)
    for index, book in enumerate(books, 1):
        prompter.say(f"[{index}/{len(books)}] {describe(book)}")
        term = search_term(book)
        while True:
            candidates = matcher.search(term)
            if not candidates:
                prompter.say(f"No BookLore book matches {term!r}.")
            choice = prompter.choose(book, term, candidates)
            if isinstance(choice, Candidate):
                if _confirm(matcher, book, choice.book_id, choice.score, result, on_match,
                            commit):
                    prompter.say(f"Matched to BookLore book {choice.book_id}: {choice.title}")
                break
            if choice == SKIP:
                result.skipped += 1
                break
            if choice == STOP or choice is None:
                result.stopped = True
                return result
            if choice == SEARCH_AGAIN:
                new_term = prompter.text("Search BookLore for:", term)
                if new_term is None:
                    result.stopped = True
                    return result
                term = new_term.strip() or term
                continue
            if choice == ENTER_ID:
                raw = prompter.text("BookLore book ID:", "")
                if raw is None:
                    continue
                try:
                    book_id = int(raw.strip())
                except ValueError:
                    prompter.say(f"{raw!r} is not a book ID (a whole number).")
                    continue
                found = matcher.lookup_id(book_id)
                if found is None:
                    prompter.say(f"BookLore has no book with ID {book_id}.")
                    continue
                if _confirm(matcher, book, book_id, None, result, on_match, commit):
                    prompter.say(f"Matched to BookLore book {book_id}: {found.title or ''}")
                break
    return result


def _confirm(matcher: Matcher, book: BookRow, book_id: int, score: float | None,
             result: ManualResult, on_match: Callable[[BookRow, int], None] | None,
             commit: Commit | None) -> bool:
    if commit is not None:
        if not commit(book, book_id, score):
            return False
    else:
        matcher.confirm(book.id, book_id, method="manual", confidence=score)
    result.matched.append((book.id, book_id))
    if on_match is not None:
        on_match(book, book_id)
    return True

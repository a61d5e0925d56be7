"""Old home of `match`, `link` and `advanced rematch-all`; they live in
:mod:`booklore_sync.actions.match` now."""

from booklore_sync.actions.books import find_book as find_cached_book
from booklore_sync.actions.match import (
    LinkError,
    LinkResult,
    MatchOutcome,
    link_book,
    run_link,
    run_match,
    run_rematch,
)

__all__ = ["LinkError", "LinkResult", "MatchOutcome", "find_cached_book", "link_book",
           "run_link", "run_match", "run_rematch"]

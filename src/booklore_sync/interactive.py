"""Terminal questions that cannot misfire (spec §4.3, §4.4, §4.7).

- every answer needs Enter (``y`` alone does not submit a confirmation);
- keys typed before a question is shown are discarded;
- Esc and ``q`` leave every list, checklist and confirmation (answer ``None``);
- Ctrl-C raises KeyboardInterrupt (the caller exits 130).

:class:`TerminalPrompter` puts the manual-match dialog of
:mod:`booklore_sync.sync.manual` (the library's logic) on these questions.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from booklore_sync.store import BookRow
    from booklore_sync.sync.matcher import Candidate


def flush_typeahead() -> None:
    """Throw away input typed before the question is shown."""
    try:
        import termios

        if sys.stdin.isatty():
            termios.tcflush(sys.stdin.fileno(), termios.TCIFLUSH)
    except (ImportError, OSError, ValueError):
        pass


def _q() -> Any:
    import questionary

    return questionary


def _back_keys(question: Any, *, letter_q: bool = True) -> Any:
    from prompt_toolkit.key_binding import KeyBindings, merge_key_bindings

    kb = KeyBindings()

    def back(event: Any) -> None:
        event.app.exit(result=None)

    kb.add("escape", eager=True)(back)
    if letter_q:
        kb.add("q")(back)
    app = question.application
    app.key_bindings = merge_key_bindings([app.key_bindings, kb])
    return question


def _ask(question: Any) -> Any:
    flush_typeahead()
    return question.unsafe_ask()  # Ctrl-C raises KeyboardInterrupt


def choice(title: str, value: Any, *, disabled: str | None = None) -> Any:
    return _q().Choice(title, value=value, disabled=disabled)


def select(message: str, choices: list[Any], *, default: Any = None) -> Any:
    """A list; the first enabled entry (or ``default``) has the pointer; None on Esc/q."""
    kw: dict[str, Any] = {"instruction": "(arrows, Enter; Esc/q back)"}
    if default is not None:
        kw["default"] = default
    return _ask(_back_keys(_q().select(message, choices=choices, **kw)))


def checkbox(message: str, choices: list[Any]) -> list[Any] | None:
    return _ask(_back_keys(_q().checkbox(
        message, choices=choices,
        instruction="(space toggles, Enter continues; Esc/q cancel)")))


def confirm(message: str, *, default: bool = False) -> bool:
    """Yes/No that needs Enter; Esc and q answer No."""
    answer = _ask(_back_keys(_q().confirm(message, default=default, auto_enter=False)))
    return bool(answer)


def text(message: str, default: str = "") -> str | None:
    """A line of text; Esc leaves (None)."""
    return _ask(_back_keys(_q().text(message, default=default), letter_q=False))


def pause(message: str = "Press any key to close") -> None:
    flush_typeahead()
    _q().press_any_key_to_continue(message).unsafe_ask()


# ------------------------------------------------ the manual-match dialog's prompter
class TerminalPrompter:
    """questionary dialogs on the terminal that cannot misfire (spec §4.3): every answer
    needs Enter, typed-ahead keys are discarded before each question, Esc and q leave a
    list or confirmation (as Stop / No), a weak best candidate pre-selects Skip."""

    def confirm(self, message: str) -> bool:
        return confirm(message, default=True)

    def choose(self, book: BookRow, term: str, candidates: list[Candidate]) -> Candidate | str:
        from booklore_sync.sync.manual import ENTER_ID, SEARCH_AGAIN, SKIP, STOP, WEAK_SCORE

        weak = not candidates or max(c.score for c in candidates) < WEAK_SCORE
        skip = choice("Skip this book", SKIP)
        picks = [choice(c.label(), c) for c in candidates]
        rest = [choice("Search again", SEARCH_AGAIN), choice("Enter a BookLore ID", ENTER_ID),
                choice("Stop", STOP)]
        choices = [skip, *picks, *rest] if weak else [*picks, skip, *rest]
        answer = select(f"Results for {term!r}:", choices)
        return STOP if answer is None else answer

    def text(self, message: str, default: str = "") -> str | None:
        return text(message, default)

    def say(self, message: str) -> None:
        print(message, flush=True)

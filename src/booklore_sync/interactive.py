"""Terminal questions that cannot misfire (spec §4.3, §4.4, §4.7).

- every answer needs Enter (``y`` alone does not submit a confirmation);
- keys typed before a question is shown are discarded;
- Esc and ``q`` leave every list, checklist and confirmation (answer ``None``);
- Ctrl-C raises KeyboardInterrupt (the caller exits 130).
"""

from __future__ import annotations

import sys
from typing import Any


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

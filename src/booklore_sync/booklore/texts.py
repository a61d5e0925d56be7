"""Text rules of the server's columns (booklore-api.md §3.14–§3.16, §8 #22–#23): blank
texts are never sent, TEXT columns (65,535 bytes of UTF-8) are cut on a character
boundary with a visible marker."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BlankTextError

__all__ = [
    "TEXT_COLUMN_BYTES",
    "CUT_MARKER",
    "FittedText",
    "fit_text_column",
    "require_not_empty",
    "require_not_blank",
]

#: a MariaDB TEXT column holds at most this many bytes
TEXT_COLUMN_BYTES = 65_535
#: appended to a text cut to fit (sync-and-cache.md §4.1)
CUT_MARKER = "… [cut by booklore-sync]"


@dataclass(frozen=True)
class FittedText:
    """A text as it will be sent; ``cut`` tells that it was shortened to fit."""

    text: str
    cut: bool = False


def fit_text_column(text: str, limit: int = TEXT_COLUMN_BYTES) -> FittedText:
    """``text`` unchanged when its UTF-8 form fits ``limit`` bytes; otherwise cut on a
    character boundary so that, with :data:`CUT_MARKER` appended, it fits."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return FittedText(text, False)
    room = limit - len(CUT_MARKER.encode("utf-8"))
    head = data[: max(0, room)].decode("utf-8", errors="ignore")  # drops a split character
    return FittedText(head + CUT_MARKER, True)


def require_not_empty(text: str | None) -> str:
    """``@NotEmpty`` (annotation ``text``, v2 ``noteContent``): ``""`` is refused for
    good, white space passes. Raises :class:`BlankTextError`."""
    if text is None or text == "":
        raise BlankTextError()
    return text


def require_not_blank(text: str | None) -> str:
    """``@NotBlank`` (v1 ``content``): empty and white-space-only are refused. Raises
    :class:`BlankTextError`."""
    if text is None or not text.strip():
        raise BlankTextError()
    return text

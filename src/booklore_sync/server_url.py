"""The server URL as a user may type it, made into a base URL (as httpie does).

``booklore.local:6060`` → ``http://booklore.local:6060`` (said in a notice);
``:6060`` → ``http://localhost:6060``; a trailing ``/``, then a trailing
``/api/koreader``, ``/api/v1`` or ``/api`` (a pasted API URL) is removed, also
with a notice.  What is still not an ``http``/``https`` URL with a host is
refused with :class:`BadURL`, naming the value.  Standard library only.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

API_SUFFIXES = ("/api/koreader", "/api/v1", "/api")
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:]+:[0-9A-Fa-f:.]*|[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class BadURL(ValueError):
    """The value cannot be a server URL; the message names it."""


def normalize_url(raw: str) -> tuple[str, list[str]]:
    """``(base URL, notices)`` for a URL as given; :class:`BadURL` when it cannot be one."""
    value = raw.strip()
    notices: list[str] = []
    if not value:
        raise BadURL("the server URL is empty")
    url = value
    added_scheme = False
    if not _SCHEME.match(url):
        if "://" in url or url.startswith("//"):
            raise BadURL(f"{raw!r} is not a server URL (expected e.g. http://host:6060)")
        url = ("http://localhost" + url) if url.startswith(":") else "http://" + url
        added_scheme = True
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError for a port that is not a number in range
    except ValueError:
        raise BadURL(f"{raw!r} is not a server URL (bad port?)") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise BadURL(f"{raw!r} is not a server URL: only http:// and https:// are supported")
    if not parts.hostname or " " in parts.netloc:
        raise BadURL(f"{raw!r} is not a server URL: it names no host")
    if not _HOST.match(parts.hostname) or parts.netloc.endswith(":"):
        raise BadURL(f"{raw!r} is not a server URL: {parts.hostname!r} is not a host name")
    if parts.query or parts.fragment:
        raise BadURL(f"{raw!r} is not a server URL: it has a query or fragment")
    del port
    path = parts.path
    removed = ""
    while path.endswith("/"):
        path = path[:-1]
    for suffix in API_SUFFIXES:
        if path.lower().endswith(suffix):
            removed = path[len(path) - len(suffix):]
            path = path[: len(path) - len(suffix)].rstrip("/")
            break
    base = f"{parts.scheme.lower()}://{parts.netloc}{path}"
    if added_scheme:
        notices.append(f"no scheme given; using {base}")
    if removed:
        notices.append(f"removed the trailing {removed} (the base URL is wanted); using {base}")
    return base, notices


def reason_only(text: str, url: str | None) -> str:
    """A client error's text without the URL in it, so that a message naming the URL
    itself names it once: ``cannot connect to http://h:1: refused`` → ``refused``."""
    if not url:
        return text.strip()
    for bare in {url, url.rstrip("/")}:
        text = text.replace(f"cannot connect to {bare}: ", "").replace(
            f"cannot connect to {bare}", "cannot connect")
        text = re.sub(rf"(?<![\w/.:]){re.escape(bare)}(?![\w/.:])", "the server", text)
    return text.strip()

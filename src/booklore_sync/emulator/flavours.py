"""Server flavours and releases (booklore-api.md §0.1, §7.4): which mode names exist, which
release each reproduces by default, and which release brought which route."""

from __future__ import annotations

import re

MODES = ("fork", "booklore", "grimmory", "upstream", "fork-2675")
ALIASES = {"upstream": "booklore"}
NEWEST = {"fork": "2.3.0", "booklore": "2.3.0", "grimmory": "3.2.4", "fork-2675": "2.3.0"}
FORKS = ("fork", "fork-2675")
Version = tuple[int, int, int]

# the first BookLore release with a route (the route table of §0.1 / §7.4)
RATINGS = (1, 14, 0)
BOOKMARKS = (1, 14, 1)
SESSIONS = (1, 16, 0)
BOOKMARK_PUT = (1, 16, 0)
SESSION_LIST = (1, 16, 1)
READ_STATUS = (1, 16, 1)
HEALTHCHECK = (1, 16, 2)
ANNOTATIONS = (1, 18, 0)
SPA_FALLBACK = (2, 0, 0)

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?$")


def canonical(mode: str) -> str:
    """The flavour a mode name stands for (``upstream`` → ``booklore``)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    return ALIASES.get(mode, mode)


def parse_version(text: str) -> Version:
    """``X.Y.Z`` (an optional ``v``, the patch optional) → a comparable tuple."""
    m = _VERSION.match(text.strip())
    if m is None:
        raise ValueError(f"a server version is X.Y.Z, got {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def check(mode: str, version: str | None) -> tuple[str, Version]:
    """Validate a (mode, server version) pair; returns the version string and tuple.
    Releases before 2.0.0 exist only as stock BookLore."""
    flavour = canonical(mode)
    text = version if version is not None else NEWEST[flavour]
    parsed = parse_version(text)
    if parsed < SPA_FALLBACK and flavour != "booklore":
        raise ValueError(f"--server-version {text} exists only with --mode booklore "
                         f"(the {flavour} flavour starts at 2.0.0)")
    return ".".join(str(p) for p in parsed), parsed

"""Server capabilities (booklore-api.md §6) and the cache protocol.

The cache itself (the ``capability_cache`` passed to :class:`BookLoreClient`) only
stores a dict per server URL; the TTL, version keying and invalidation live here and
in the client.
"""

from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "Capabilities",
    "CapabilityCache",
    "TokenStore",
    "CACHE_TTL_SECONDS",
    "CACHE_SCHEMA",
    "ROUTE_SINCE",
    "ROUTE_NAMES",
    "parse_release",
    "route_missing_reason",
]

#: how long a cached probe result is trusted (§6: 24 h)
CACHE_TTL_SECONDS = 24 * 3600
#: bumped when the dict layout changes; entries of another schema are ignored
CACHE_SCHEMA = 2

#: the first BookLore release with each route the client needs (booklore-api.md §0.1)
ROUTE_SINCE: dict[str, tuple[int, int, int]] = {
    "ratings": (1, 14, 0),
    "bookmarks": (1, 14, 1),
    "bookmark_update": (1, 16, 0),
    "sessions": (1, 16, 1),
    "status": (1, 16, 1),
    "annotations": (1, 18, 0),
    "notes_v2": (1, 18, 0),
}
#: how messages name each route
ROUTE_NAMES = {
    "ratings": "rating",
    "bookmarks": "bookmark",
    "bookmark_update": "bookmark update",
    "sessions": "reading-session list",
    "status": "read-status",
    "annotations": "annotation",
    "notes_v2": "in-book note",
}
#: the first release with the healthcheck (before it: the probe's 403/401)
HEALTHCHECK_SINCE = (1, 16, 2)
_RELEASE_RE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?$")


def parse_release(version: str | None) -> tuple[int, int, int] | None:
    """``v1.17.0`` / ``2.3.0`` / ``1.18`` → a tuple; anything else (``development``, a
    fork image tag) → ``None`` = unknown, treated as the newest release (§0.1)."""
    if not isinstance(version, str):
        return None
    return _parse_release(version)


@functools.lru_cache(maxsize=32)  # asked before every request of a versioned route
def _parse_release(version: str) -> tuple[int, int, int] | None:
    m = _RELEASE_RE.match(version.strip())
    if m is None:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def _dotted(release: tuple[int, int, int]) -> str:
    major, minor, patch = release
    return f"{major}.{minor}.{patch}" if patch else f"{major}.{minor}"


def route_missing_reason(server: str, kind: str) -> str:
    """``this server (BookLore 1.16.3) has no annotation route; BookLore ≥ 1.18 or
    Grimmory needed``."""
    since = ROUTE_SINCE.get(kind)
    need = f"BookLore ≥ {_dotted(since)} or Grimmory" if since else "a newer BookLore or Grimmory"
    return f"this server ({server}) has no {ROUTE_NAMES.get(kind, kind)} route; {need} needed"


@runtime_checkable
class CapabilityCache(Protocol):
    """Where probe results are kept between runs (the lead's SQLite store)."""

    def get(self, server_url: str) -> dict | None: ...

    def put(self, server_url: str, data: dict) -> None: ...

    def drop(self, server_url: str) -> None: ...


@runtime_checkable
class TokenStore(Protocol):
    """Where the BookLore refresh token is kept between runs (the OS keyring)."""

    def get_refresh_token(self, server_url: str, username: str) -> str | None: ...

    def set_refresh_token(self, server_url: str, username: str, token: str | None) -> None: ...


@dataclass(frozen=True)
class Capabilities:
    """What a server offers. ``None`` means "not determined".

    * ``flavour``: the route family: ``"fork"`` (the KOReader-plugin fork),
      ``"upstream"`` (stock routes: booklore, grimmory and old releases) or ``None``;
    * ``server``: the flavour of booklore-api.md §0.1: ``"fork"``, ``"booklore"`` or
      ``"grimmory"`` (``None``: not determined);
    * ``no_healthcheck``: the healthcheck answered as on a release before v1.16.2;
    * ``missing_routes``: kinds of item this server has no route for (from the
      release table, or learnt from a route's first answer);
    * ``by_hash_koreader`` / ``by_hash_bearer``: ``GET /api/koreader/books/by-hash`` /
      ``GET /api/v1/books/by-hash``;
    * ``search``: ``GET /api/v1/books/search``;
    * ``batch``: ``POST /api/v1/reading-sessions/batch`` (assumed on a fork, switched
      off by :meth:`BookLoreClient.mark_no_batch`);
    * ``single_session_koreader``: whether a single session may be posted with the
      KOReader headers (fork only);
    * ``koreader_auth_ok`` / ``koreader_linked`` / ``booklore_auth_ok``: what this run's
      probe learnt about the configured accounts (not cached: they depend on the
      credentials, not on the server);
    * ``from_cache``: the server-level fields came from the cache;
    * ``probed_at``: epoch seconds of the probe that produced the server-level fields.
    """

    reachable: bool = True
    version: str | None = None
    flavour: str | None = None
    by_hash_koreader: bool | None = None
    by_hash_bearer: bool | None = None
    search: bool | None = None
    batch: bool | None = None
    single_session_koreader: bool | None = None
    koreader_auth_ok: bool | None = None
    koreader_linked: bool | None = None
    booklore_auth_ok: bool | None = None
    from_cache: bool = False
    probed_at: float | None = None
    server: str | None = None
    no_healthcheck: bool = False
    missing_routes: tuple[str, ...] = ()

    _SERVER_FIELDS = (
        "version",
        "flavour",
        "server",
        "no_healthcheck",
        "missing_routes",
        "by_hash_koreader",
        "by_hash_bearer",
        "search",
        "batch",
        "single_session_koreader",
        "probed_at",
    )

    def to_cache(self) -> dict[str, Any]:
        """The dict handed to ``CapabilityCache.put`` (server-level fields only)."""
        data = {k: getattr(self, k) for k in self._SERVER_FIELDS}
        data["schema"] = CACHE_SCHEMA
        return data

    @classmethod
    def from_cache_dict(cls, data: dict[str, Any]) -> Capabilities | None:
        if not isinstance(data, dict) or data.get("schema") != CACHE_SCHEMA:
            return None
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names and k in cls._SERVER_FIELDS}
        if isinstance(kwargs.get("missing_routes"), list):
            kwargs["missing_routes"] = tuple(str(x) for x in kwargs["missing_routes"])
        try:
            return cls(reachable=True, from_cache=True, **kwargs)
        except TypeError:
            return None

    @property
    def release(self) -> tuple[int, int, int] | None:
        """The release from the healthcheck version (``None``: unknown)."""
        return parse_release(self.version)

    @property
    def release_known(self) -> bool:
        return self.release is not None

    def describe(self) -> str:
        """How messages name the server: ``BookLore 1.16.3``, ``Grimmory 3.2.4``,
        ``BookLore older than 1.16.2``, ``BookLore``."""
        name = "Grimmory" if self.server == "grimmory" else "BookLore"
        release = self.release
        if release is not None:
            return f"{name} {release[0]}.{release[1]}.{release[2]}"
        if self.no_healthcheck:
            return f"{name} older than {_dotted(HEALTHCHECK_SINCE)}"
        return name

    def route_by_release(self, kind: str) -> bool | None:
        """Whether the release table says the server has the route of ``kind``:
        ``None`` when the release is unknown (learn it from the route's answer)."""
        if self.server == "grimmory":
            return True
        since = ROUTE_SINCE.get(kind)
        if since is None:
            return True
        release = self.release
        if release is not None:
            return release >= since
        if self.no_healthcheck and since <= HEALTHCHECK_SINCE:
            return None
        if self.no_healthcheck:
            return False  # older than 1.16.2, and the route came later
        return None  # a non-numeric version: learn it from the route's first answer

    def has_route(self, kind: str) -> bool | None:
        """True / False when known (learnt, or by release), ``None`` when unknown."""
        if kind in self.missing_routes:
            return False
        return self.route_by_release(kind)

    def with_(self, **changes: Any) -> Capabilities:
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

"""Server capabilities (booklore-api.md §6) and the cache protocol.

The cache itself (the ``capability_cache`` passed to :class:`BookLoreClient`) only
stores a dict per server URL; the TTL, version keying and invalidation live here and
in the client.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Protocol, runtime_checkable

__all__ = ["Capabilities", "CapabilityCache", "TokenStore", "CACHE_TTL_SECONDS", "CACHE_SCHEMA"]

#: how long a cached probe result is trusted (§6: 24 h)
CACHE_TTL_SECONDS = 24 * 3600
#: bumped when the dict layout changes; entries of another schema are ignored
CACHE_SCHEMA = 1


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

    * ``flavour``: ``"fork"`` (the KOReader-plugin fork), ``"upstream"`` or ``None``;
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

    _SERVER_FIELDS = (
        "version",
        "flavour",
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
        try:
            return cls(reachable=True, from_cache=True, **kwargs)
        except TypeError:
            return None

    def with_(self, **changes: Any) -> Capabilities:
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

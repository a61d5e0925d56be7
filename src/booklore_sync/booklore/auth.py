"""Credentials and token bookkeeping (booklore-api.md §2.2–§2.4).

Nothing here ever logs or formats a secret. The transport work (the login and
refresh requests themselves) is done by the client; this module holds the state and
the rules.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time
from dataclasses import dataclass

__all__ = [
    "Secret",
    "koreader_key",
    "koreader_headers",
    "jwt_claims",
    "TokenGate",
    "token_gate",
    "Tokens",
    "TOKEN_SPACING_SECONDS",
    "TOKEN_SPACING_ENV",
    "token_spacing",
    "refresh_margin",
]

#: minimum spacing between two token requests for one (server, user) (§2.4 rule 5)
TOKEN_SPACING_SECONDS = 1.1
#: an environment variable that overrides the spacing (seconds, ≥ 0), for test suites that
#: log in against their own emulator many times; the product default stays above
TOKEN_SPACING_ENV = "BOOKLORE_SYNC_TOKEN_SPACING"
#: refresh when the access token expires within this many seconds (§2.4 rule 2) …
REFRESH_MARGIN_SECONDS = 60
#: … or within a tenth of its lifetime when that lifetime is shorter than this
SHORT_LIFETIME_SECONDS = 600


class Secret:
    """A string that does not show itself in ``repr``/``str`` (nor in debuggers or
    tracebacks that print locals)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def koreader_key(password: str) -> str:
    """``x-auth-key``: the lower-case hex MD5 of the UTF-8 password."""
    return hashlib.md5(password.encode("utf-8")).hexdigest()  # noqa: S324 - protocol-defined


def koreader_headers(username: str, password: str) -> dict[str, bytes | str]:
    """The two KOReader headers (§2.2). The user name is sent as UTF-8 bytes."""
    return {"x-auth-user": username.encode("utf-8"), "x-auth-key": koreader_key(password)}


def refresh_margin(lifetime: float | None) -> float:
    """§2.4 rule 2: refresh when the token expires within 60 s — or within a tenth of its
    lifetime when that lifetime is shorter than 10 minutes."""
    if lifetime is not None and 0 < lifetime < SHORT_LIFETIME_SECONDS:
        return lifetime / 10
    return REFRESH_MARGIN_SECONDS


def jwt_claims(token: str) -> dict:
    """The payload of a JWT, decoded without checking the signature (only ``exp`` /
    ``iat`` are read). Returns ``{}`` when the token cannot be decoded."""
    try:
        payload = token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        data = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
        return data if isinstance(data, dict) else {}
    except (IndexError, ValueError, UnicodeError):
        return {}


class TokenGate:
    """Serialises token requests for one (server, username) across every client of
    the process, and keeps them at least :data:`TOKEN_SPACING_SECONDS` apart."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._last: float | None = None

    def wait_turn(self) -> None:
        """Call with ``lock`` held, right before sending a token request."""
        if self._last is not None:
            spacing = token_spacing()
            gap = time.monotonic() - self._last
            if gap < spacing:
                time.sleep(spacing - gap)
        self._last = time.monotonic()

    def mark(self) -> None:
        """Record the end of a token request (its answer time counts as well)."""
        self._last = time.monotonic()


def token_spacing() -> float:
    """The spacing between token requests: :data:`TOKEN_SPACING_SECONDS`, unless
    ``BOOKLORE_SYNC_TOKEN_SPACING`` holds a finite number ≥ 0."""
    raw = os.environ.get(TOKEN_SPACING_ENV)
    if raw:
        try:
            value = float(raw)
        except ValueError:
            return TOKEN_SPACING_SECONDS
        if 0 <= value < float("inf"):
            return value
    return TOKEN_SPACING_SECONDS


_gates: dict[tuple[str, str], TokenGate] = {}
_gates_lock = threading.Lock()


def token_gate(server_url: str, username: str) -> TokenGate:
    key = (server_url, username.strip().lower())
    with _gates_lock:
        gate = _gates.get(key)
        if gate is None:
            gate = _gates[key] = TokenGate()
        return gate


@dataclass
class Tokens:
    """The in-memory tokens of one client. ``expires_at`` is on the client's clock,
    computed from the token's own lifetime (``exp - iat``, else grimmory's ``expires``)
    so that a skewed server clock does not matter; ``None`` = unknown (use until a 401).

    A token that has not been used yet is never renewed (§2.4 rule 2: a server with
    very short tokens must not cost one refresh per request); ``mark_used`` records
    its first use."""

    access: str | None = None
    refresh: str | None = None
    expires_at: float | None = None
    lifetime: float | None = None
    used: bool = False
    generation: int = 0

    def __repr__(self) -> str:  # never show a token
        return (
            f"Tokens(access={'set' if self.access else None}, refresh={'set' if self.refresh else None}, "
            f"expires_at={self.expires_at!r}, lifetime={self.lifetime!r})"
        )

    def set_access(self, token: str, now: float, expires_in: float | None = None) -> None:
        claims = jwt_claims(token)
        exp, iat = claims.get("exp"), claims.get("iat")
        expires_at: float | None = None
        lifetime: float | None = None
        if isinstance(exp, (int, float)) and not isinstance(exp, bool):
            if isinstance(iat, (int, float)) and not isinstance(iat, bool) and exp > iat:
                lifetime = float(exp - iat)
                expires_at = now + lifetime
            else:
                expires_at = float(exp)
        elif expires_in is not None and expires_in > 0:
            lifetime = float(expires_in)
            expires_at = now + lifetime
        self.access = token
        self.expires_at = expires_at
        self.lifetime = lifetime
        self.used = False
        self.generation += 1

    def access_usable(self, now: float) -> bool:
        if not self.access:
            return False
        if self.expires_at is None:
            return True
        left = self.expires_at - now
        if not self.used:
            return left > 0  # a fresh token is used once before any renewal
        return left > refresh_margin(self.lifetime)

    def mark_used(self) -> None:
        self.used = True

    def clear_access(self) -> None:
        self.access = None
        self.expires_at = None
        self.lifetime = None
        self.used = False


"""Tokens and the login limiter of the emulator (booklore-api.md §2.3, §7.6)."""

from __future__ import annotations

from typing import Any

from .. import jwt
from .base import LIMIT_FAILURES, LIMIT_WINDOW
from .core import StateCore


class TokenMixin(StateCore):
    def token_for(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.secret)

    def access_user(self, token: str) -> dict[str, Any] | None:
        """The user of a valid access token, else None (→ 401 empty)."""
        if token in self.broken_tokens or token in self.expired_tokens:
            return None
        claims = jwt.verify_signature(token, self.secret)
        if not claims or claims.get("tokenType") == "refresh":
            return None
        if self.flavour == "grimmory" and claims.get("iss") != "booklore":
            return None  # a token from before a BookLore → Grimmory migration
        exp = claims.get("exp")
        if not isinstance(exp, (int, float)) or exp <= self.clock.time():
            return None
        user = self.data["users"].get(claims.get("userId"))
        if user is None or user["username"] != claims.get("sub"):
            return None
        return user

    def limited(self, key: tuple[str, str]) -> bool:
        rec = self.limiter.get(key)
        if rec is None:
            return False
        if self.clock.time() >= rec[1] + LIMIT_WINDOW:
            del self.limiter[key]
            return False
        return rec[0] >= LIMIT_FAILURES

    def fail(self, key: tuple[str, str]) -> None:
        now = self.clock.time()
        rec = self.limiter.get(key)
        if rec is None or now >= rec[1] + LIMIT_WINDOW:
            self.limiter[key] = [1, now]
        else:
            rec[0] += 1


    def expire_access_tokens(self) -> int:
        """Every access token issued so far now fails as expired (401, empty body)."""
        with self.lock:
            self.expired_tokens.update(self.issued_access)
            return len(self.issued_access)

    def expire_refresh_tokens(self) -> int:
        """Every refresh token issued so far is now expired (refresh → 400)."""
        with self.lock:
            for rec in self.refresh_tokens.values():
                rec["expiry"] = min(rec["expiry"], self.clock.time() - 1)
            return len(self.refresh_tokens)

    def break_signatures(self) -> int:
        """Every token issued so far now fails the signature check."""
        with self.lock:
            self.broken_tokens.update(self.issued_access)
            self.broken_tokens.update(self.refresh_tokens)
            return len(self.issued_access) + len(self.refresh_tokens)

    def expire_token(self, token: str) -> None:
        """Make one given token (access or refresh) fail as expired from now on."""
        with self.lock:
            self.expired_tokens.add(token)
            if token in self.refresh_tokens:
                self.refresh_tokens[token]["expiry"] = self.clock.time() - 1

    def break_token(self, token: str) -> None:
        """Make one given token fail the signature check from now on."""
        with self.lock:
            self.broken_tokens.add(token)


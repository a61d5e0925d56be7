"""Sessions, CSRF tokens, the password and its rate limit (spec §10.1).

Everything lives in memory: a restart of ``serve`` logs everyone out.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PASSWORD_ENV = "BOOKLORE_SYNC_WEB_PASSWORD"
COOKIE = "booklore_sync_session"
MAX_FAILURES = 5
BLOCK_SECONDS = 15 * 60
MAX_SESSIONS = 2000
SESSION_IDLE_SECONDS = 7 * 24 * 3600


class PasswordError(Exception):
    """The password cannot be read, or none is given where one is needed."""


def is_loopback(host: str) -> bool:
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def load_password(password_file: Path | None, env: dict[str, str] | None = None) -> str | None:
    """``--password-file`` (its first line) first, then ``BOOKLORE_SYNC_WEB_PASSWORD``."""
    if password_file is not None:
        try:
            with open(password_file, encoding="utf-8") as fh:
                first = fh.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise PasswordError(f"cannot read the password file {password_file}: "
                                f"{exc.__class__.__name__}") from None
        if not first:
            raise PasswordError(f"the password file {password_file} has an empty first line")
        return first
    value = (os.environ if env is None else env).get(PASSWORD_ENV)
    return value or None


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison (also for different lengths)."""
    a = hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest()
    b = hashlib.sha256(expected.encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(a, b)


@dataclass
class Session:
    sid: str
    csrf: str
    authed: bool = False
    seen: float = field(default_factory=time.monotonic)
    flash: list[str] = field(default_factory=list)
    manual: Any = None  # the manual-matching walk of this browser


class Sessions:
    def __init__(self, password: str | None):
        self.password = password
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, tuple[int, float]] = {}  # address -> (count, blocked until)
        self._lock = threading.Lock()

    @property
    def needs_login(self) -> bool:
        return self.password is not None

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is None:
                return None
            now = time.monotonic()
            if now - session.seen > SESSION_IDLE_SECONDS:
                del self._sessions[sid]
                return None
            session.seen = now
            return session

    def new(self, authed: bool = False) -> Session:
        session = Session(sid=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32),
                          authed=authed or not self.needs_login)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                # forget the longest idle ones (unauthenticated first)
                ordered = sorted(self._sessions.values(), key=lambda s: (s.authed, s.seen))
                for old in ordered[: len(ordered) // 4 or 1]:
                    del self._sessions[old.sid]
            self._sessions[session.sid] = session
        return session

    def drop(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.sid, None)

    @staticmethod
    def csrf_ok(session: Session | None, token: str | None) -> bool:
        if session is None or not token:
            return False
        return hmac.compare_digest(session.csrf.encode(), token.encode("utf-8", "replace"))

    # ------------------------------------------------------------- login
    def blocked(self, address: str) -> bool:
        with self._lock:
            count, until = self._failures.get(address, (0, 0.0))
            if until and time.monotonic() >= until:
                del self._failures[address]
                return False
            return count >= MAX_FAILURES

    def check_password(self, address: str, given: str) -> bool:
        """Compare in constant time; count failures per address."""
        assert self.password is not None
        if same_secret(given, self.password):
            with self._lock:
                self._failures.pop(address, None)
            return True
        with self._lock:
            count, _ = self._failures.get(address, (0, 0.0))
            count += 1
            until = time.monotonic() + BLOCK_SECONDS if count >= MAX_FAILURES else 0.0
            self._failures[address] = (count, until)
        return False

"""BookLore-account bearer tokens: lazy login, refresh by the token's lifetime,
rotation, the keyring hand-over and the login error rules (booklore-api.md §2.3, §2.4).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx

from .auth import Secret, Tokens, token_gate
from .capabilities import TokenStore
from .errors import (
    AuthError,
    NotJSONError,
    OfflineError,
    OutcomeUnknownError,
    RequestRejectedError,
)
from .http import Scrubber, body_json, extract_message, is_json_response, media_type, status_error
from .transport import Transport, is_quick_drop

__all__ = ["BearerAuth", "LOGIN", "REFRESH"]

log = logging.getLogger("booklore_sync.booklore")

LOGIN = "/api/v1/auth/login"
REFRESH = "/api/v1/auth/refresh"


def _is_data_conflict(message: str) -> bool:
    low = message.lower()
    return "data conflict" in low or "duplicate entry" in low


class BearerAuth:
    """The bearer token of one (server, BookLore user). Thread-safe: logins and
    refreshes are serialised per (server, user) for the whole process."""

    def __init__(
        self,
        transport: Transport,
        username: str,
        password: Secret,
        *,
        token_store: TokenStore | None,
        scrub: Scrubber,
        clock: Callable[[], float],
    ) -> None:
        self._t, self._user, self._password = transport, username, password
        self._token_store, self._scrub, self._clock = token_store, scrub, clock
        self.tokens = Tokens()
        self.gate = token_gate(transport.base, username)
        self.block: AuthError | None = None  # rejected / rate-limited / disabled
        self._stored_refresh_checked = False
        #: the login answer's ``isDefaultPassword`` (string on booklore, bool on grimmory)
        self.default_password: bool | None = None
        #: "grimmory" when a token answer carried ``expires`` or a boolean
        #: ``isDefaultPassword`` (§6 probe 8); None otherwise
        self.flavour_hint: str | None = None
        self.renewals = 0

    # ------------------------------------------------------------------ public

    def access_token(self) -> tuple[str, int]:
        """A usable access token (logging in or refreshing when needed) and its
        generation number. Handing the token out counts as its use."""
        with self.gate.lock:
            if self.block is not None:
                raise self._blocked_copy()
            if not self.tokens.access_usable(self._clock()):
                self._renew()
            assert self.tokens.access is not None
            self.tokens.mark_used()
            return self.tokens.access, self.tokens.generation

    def invalidate(self, generation: int) -> None:
        with self.gate.lock:
            if self.tokens.generation == generation:
                self.tokens.clear_access()

    # ------------------------------------------------------------------ internals

    def _blocked_copy(self) -> AuthError:
        b = self.block
        assert b is not None
        return AuthError(b.message, account=b.account, kind=b.kind, method=b.method, path=b.path, status=b.status)

    def _stored_refresh(self) -> str | None:
        if self._token_store is None or self._stored_refresh_checked:
            return None
        self._stored_refresh_checked = True
        try:
            token = self._token_store.get_refresh_token(self._t.base, self._user)
        except Exception as exc:  # noqa: BLE001 - keyring trouble must not stop the run
            log.warning("could not read the stored refresh token: %s", type(exc).__name__)
            return None
        if token:
            self._scrub.add(token)
        return token or None

    def _save_refresh(self, token: str | None) -> None:
        if self._token_store is None:
            return
        try:
            self._token_store.set_refresh_token(self._t.base, self._user, token)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not store the refresh token: %s", type(exc).__name__)

    def _renew(self) -> None:
        """Refresh (if a refresh token is known) or log in. Lock held."""
        self.renewals += 1
        refresh = self.tokens.refresh or self._stored_refresh()
        if refresh and self._refresh(refresh):
            return
        self._login()

    def _token_request(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """One token request: never with ``Authorization``, never retried blindly,
        spaced ≥ 1.1 s from the previous one for this (server, user)."""
        self.gate.wait_turn()
        try:
            return self._t.exchange("POST", path, json_body=body, idempotent=False)
        finally:
            self.gate.mark()

    def _install(self, data: Any, path: str) -> None:
        if not isinstance(data, dict) or not isinstance(data.get("accessToken"), str):
            raise NotJSONError("token answer without an accessToken", method="POST", path=path, status=200)
        access = data["accessToken"]
        self._scrub.add(access)
        expires = data.get("expires")
        expires_in = float(expires) if isinstance(expires, (int, float)) and not isinstance(expires, bool) else None
        if expires_in is not None:
            self.flavour_hint = "grimmory"
        self.tokens.set_access(access, self._clock(), expires_in)
        new_refresh = data.get("refreshToken")
        if isinstance(new_refresh, str) and new_refresh:
            old = self.tokens.refresh
            self.tokens.refresh = new_refresh
            self._scrub.add(new_refresh)
            if new_refresh != old:
                self._save_refresh(new_refresh)
        if "isDefaultPassword" in data:
            flag = data["isDefaultPassword"]
            if isinstance(flag, bool):
                self.flavour_hint = "grimmory"
            self.default_password = str(flag).lower() == "true"

    def _refresh(self, token: str) -> bool:
        """Try ``POST /api/v1/auth/refresh``. True on success; False when the caller
        should log in instead. OfflineError propagates."""
        for attempt in range(2):
            try:
                resp = self._token_request(REFRESH, {"refreshToken": token})
            except OutcomeUnknownError:
                # the old token may have been rotated: forget it, log in (§5.1)
                log.info("token refresh got no answer; logging in instead")
                self._forget_refresh()
                return False
            if resp.status_code == 200 and is_json_response(resp):
                try:
                    self._install(body_json(resp), REFRESH)
                except NotJSONError:
                    return False
                log.info("BookLore token refreshed for user %s", self._user)
                return True
            message = extract_message(resp)
            if resp.status_code == 400 and _is_data_conflict(message) and attempt == 0:
                continue  # same-second collision: the gate spaces the retry
            if resp.status_code == 400:
                log.info("stored refresh token not accepted (%s); logging in", self._scrub(message))
                self._forget_refresh()
            else:
                log.info("token refresh failed with HTTP %s; logging in", resp.status_code)
            return False
        return False

    def _forget_refresh(self) -> None:
        self.tokens.refresh = None
        self._save_refresh(None)

    def _login(self) -> None:
        """``POST /api/v1/auth/login``. Lock held. Raises AuthError / OfflineError /
        ServerError."""
        for attempt in range(2):
            try:
                resp = self._token_request(LOGIN, {"username": self._user, "password": self._password.reveal()})
            except OutcomeUnknownError as exc:
                if attempt == 0 and is_quick_drop(exc):
                    continue  # a dropped (pooled) connection: a login is safe to repeat
                # no answer to the login: for the caller's request nothing was sent.
                raise OfflineError(
                    f"no answer from {self._t.base} to the BookLore login ({exc.message}); nothing else was sent",
                    url=self._t.base, cause="timeout", method="POST", path=LOGIN,
                ) from None
            status = resp.status_code
            if status == 200:
                if not is_json_response(resp):
                    raise NotJSONError(
                        "login answered with a non-JSON page", content_type=media_type(resp),
                        method="POST", path=LOGIN, status=status,
                    )
                self._install(body_json(resp), LOGIN)
                log.info("BookLore login for user %s", self._user)
                return
            message = self._scrub(extract_message(resp))
            kw: dict[str, Any] = {"method": "POST", "path": LOGIN, "status": status}
            if status == 400 and _is_data_conflict(message) and attempt == 0:
                log.info("login collided with another login in the same second; retrying once")
                continue
            if status == 400 and _is_data_conflict(message):
                # a second same-second collision: not a credentials problem
                raise RequestRejectedError(f"BookLore login collided: {message}", **kw)
            if status == 400:
                # "Invalid credentials" (or a blank field): a configuration error, never
                # retried in this run (each retry feeds the server's rate limiter)
                err = AuthError(f"BookLore login rejected: {message}", account="booklore", kind="rejected", **kw)
                self.block = err
                raise err
            if status == 429:
                err = AuthError("login rate-limited — wait 15 minutes", account="booklore", kind="rate_limited", **kw)
                self.block = err
                raise err
            if status == 403:
                low = message.lower()
                kind = "login_disabled" if "oidc" in low or "disabled" in low else "refused"
                err = AuthError(f"BookLore login refused: {message}", account="booklore", kind=kind, **kw)
                self.block = err
                raise err
            raise status_error(resp, method="POST", path=LOGIN, auth="none", scrub=self._scrub, url=self._t.base)
        raise AssertionError("unreachable")  # pragma: no cover

"""Check a server URL and its accounts before ``login`` saves anything (product spec
§6.1; booklore-api.md §6 probes 1–2). Returns a typed result; prints nothing."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from .errors import AuthError, BookLoreError, NotBookLoreError, OfflineError, SyncDisabledError
from .transport import RequestHook

__all__ = ["AccountCheck", "ServerCheck", "check_server"]


@dataclass(frozen=True)
class AccountCheck:
    """``ok``: accepted; ``kind``: why not (``"rejected"``, ``"rate_limited"``,
    ``"login_disabled"``, ``"not_linked"``, ``"error"``); ``message``: one line."""

    account: str
    ok: bool
    kind: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class ServerCheck:
    """The verdict on a URL and its accounts.

    ``cause`` when the URL fails: ``"dns"``, ``"refused"``, ``"timeout"``, ``"tls"``,
    ``"certificate"``, ``"unavailable"``, ``"redirect"``, ``"not_booklore"``,
    ``"wrong_base_path"``, ``"server_error"``, ``"other"``; ``message`` names the URL
    and the cause; ``hint``/``location`` suggest the URL to use instead.
    ``koreader_sync`` is False when the KOReader account's Sync switch is off (a
    warning, not a failure)."""

    url: str
    reachable: bool
    cause: str | None = None
    message: str | None = None
    hint: str | None = None
    location: str | None = None
    version: str | None = None
    server: str | None = None
    booklore: AccountCheck | None = None
    koreader: AccountCheck | None = None
    koreader_sync: bool | None = None

    @property
    def ok(self) -> bool:
        accounts = [a for a in (self.booklore, self.koreader) if a is not None]
        return self.reachable and all(a.ok for a in accounts)


def _account_failure(account: str, exc: BookLoreError) -> AccountCheck:
    kind = exc.kind if isinstance(exc, AuthError) else "error"
    name = "BookLore account" if account == "booklore" else "KOReader account"
    return AccountCheck(account, False, kind, f"{name}: {exc.message}")


def check_server(
    url: str,
    *,
    booklore_user: str | None = None,
    booklore_password: str | None = None,
    koreader_user: str | None = None,
    koreader_password: str | None = None,
    connect_timeout: float = 10,
    read_timeout: float = 30,
    transport: httpx.BaseTransport | None = None,
    on_request: RequestHook | None = None,
) -> ServerCheck:
    """Probe 1 on ``url``, then each account given (a BookLore login; the KOReader
    ``users/auth`` and the Sync switch). Never raises for a server or network problem;
    ValueError for a URL that is not an http/https URL."""
    from .client import BookLoreClient  # the facade imports every resource module

    client = BookLoreClient(
        url, booklore_user=booklore_user, booklore_password=booklore_password, koreader_user=koreader_user,
        koreader_password=koreader_password, connect_timeout=connect_timeout, read_timeout=read_timeout,
        transport=transport, retries=0, on_request=on_request,
    )
    base = client.base_url
    with client:
        try:
            health = client.healthcheck()
        except OfflineError as exc:
            return ServerCheck(base, False, exc.cause, exc.message, exc.hint)
        except NotBookLoreError as exc:
            cause = {"redirect": "redirect", "wrong_base_path": "wrong_base_path"}.get(exc.reason, "not_booklore")
            return ServerCheck(base, False, cause, exc.message, location=exc.location)
        except BookLoreError as exc:
            return ServerCheck(base, False, "server_error", f"{base} answered with an error: {exc.last_error}")
        bl: AccountCheck | None = None
        ko: AccountCheck | None = None
        sync: bool | None = None
        server: str | None = None
        if client.has_booklore_account:
            try:
                client.check_booklore_auth()
                bl = AccountCheck("booklore", True)
            except BookLoreError as exc:
                bl = _account_failure("booklore", exc)
            if client._bearer is not None and client._bearer.flavour_hint == "grimmory":
                server = "grimmory"
        if client.has_koreader_account:
            try:
                client.check_koreader_auth()
                ko = AccountCheck("koreader", True)
                try:
                    sync = client.check_koreader_sync()
                except SyncDisabledError:
                    sync = False
                except BookLoreError:
                    sync = None
            except BookLoreError as exc:
                ko = _account_failure("koreader", exc)
                if exc.status == 401 and not isinstance(exc, SyncDisabledError):
                    server = "grimmory"
        return ServerCheck(base, True, version=health.version, server=server, booklore=bl, koreader=ko,
                           koreader_sync=sync)

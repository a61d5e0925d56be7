"""What every action shares: its error type, the exit codes, and the one place
where "take the lock, open the store, make the client" happens (spec §3, §6.3).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from booklore_sync.config import Config, ConfigError
from booklore_sync.store import LockBusy, Store, StoreError, SyncLock

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_OFFLINE, EXIT_LOCKED = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130
LOCK_WAIT_SECONDS = 5.0
LOGIN_HINT = "run `booklore-sync login`"

# the error object's "type" (spec §6.4)
USAGE, CONFIG, ACCOUNT, NOT_FOUND = "usage", "config", "account", "not_found"
UNREACHABLE, OFFLINE, LOCKED, INTERRUPTED, INTERNAL = (
    "unreachable", "offline", "locked", "interrupted", "internal")


class ActionError(Exception):
    """An action ended before it had a result: a type, a one-line message, an exit code."""

    def __init__(self, kind: str, message: str, exit_code: int):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.exit_code = exit_code

    @property
    def code(self) -> int:  # the older name
        return self.exit_code

    def to_json(self) -> dict[str, Any]:
        return {"error": {"type": self.kind, "message": self.message},
                "exit_code": self.exit_code}


def locked_error(exc: LockBusy) -> ActionError:
    return ActionError(LOCKED, f"{exc}; try again when it has finished", EXIT_LOCKED)


def client_error(exc: BaseException, url: str | None, *, offline_code: int = EXIT_FAILED,
                 action: str = "nothing was changed") -> ActionError:
    """A client error (or any exception met while talking to the server) as an ActionError."""
    from booklore_sync.booklore import errors as E
    from booklore_sync.server_url import reason_only

    where = url or "the server"
    text = reason_only(getattr(exc, "message", None) or str(exc), url)
    if isinstance(exc, E.AuthError):
        who = "BookLore account" if exc.account == "booklore" else "KOReader account"
        what = {"rejected": "was rejected (wrong user name or password)",
                "rate_limited": "login is rate-limited; wait 15 minutes",
                "not_linked": "is not linked to a BookLore user",
                "sync_disabled": "has Sync switched off in BookLore",
                "login_disabled": "cannot log in: the server allows only single sign-on",
                "refused": "was refused access"}.get(exc.kind, exc.kind.replace("_", " "))
        return ActionError(ACCOUNT, f"the {who} {what}; {LOGIN_HINT}", EXIT_USAGE)
    if isinstance(exc, E.NotConfiguredError):
        who = "BookLore account" if exc.account == "booklore" else "KOReader account"
        return ActionError(CONFIG, f"this needs the {who}, which is not configured; {LOGIN_HINT}",
                           EXIT_USAGE)
    if isinstance(exc, (E.OfflineError, E.OutcomeUnknownError)):
        return ActionError(OFFLINE, f"cannot reach {where} ({text}); {action}",
                           offline_code)
    if isinstance(exc, E.NotBookLoreError):
        return ActionError(OFFLINE, f"{where} does not answer as BookLore ({text}); "
                           f"check server.url; {action}", offline_code)
    if isinstance(exc, E.BookLoreError):
        return ActionError(OFFLINE, f"the server at {where} answered with an error ({text}); "
                           f"{action}", offline_code)
    return ActionError(OFFLINE, f"the server at {where} failed ({type(exc).__name__}); {action}",
                       offline_code)


def config_error(exc: ConfigError | StoreError) -> ActionError:
    return ActionError(CONFIG, str(exc), EXIT_USAGE)


@contextmanager
def store_lock(cfg: Config, wait_seconds: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Hold the store's lock (spec §3); ActionError ``locked`` (exit 4) when held elsewhere."""
    lock = SyncLock(cfg.lock_path)
    try:
        lock.acquire(wait_seconds=wait_seconds)
    except LockBusy as exc:
        raise locked_error(exc) from None
    try:
        yield
    finally:
        lock.release()


def open_store(cfg: Config) -> Store:
    try:
        return Store.open(cfg.store_path)
    except StoreError as exc:
        raise config_error(exc) from None


def server_url(cfg: Config) -> str:
    """The configured server URL, or ActionError ``config`` when there is none."""
    try:
        url = cfg.url
    except ConfigError as exc:
        raise config_error(exc) from None
    if not url:
        raise ActionError(CONFIG, "no server URL configured: set BOOKLORE_URL or run "
                          "`booklore-sync login --url URL`", EXIT_USAGE)
    return url


def make_client(cfg: Config, store: Store | None = None) -> Any:
    """A BookLore client for the configured server and accounts (ConfigError if no URL)."""
    from booklore_sync.booklore import BookLoreClient
    from booklore_sync.config import KeyringTokenStore
    from booklore_sync.store import CapabilityCache

    url = cfg.url
    if not url:
        raise ConfigError("no server URL configured: set BOOKLORE_URL or run "
                          "`booklore-sync login --url URL`")
    booklore = cfg.account_configured("booklore")
    koreader = cfg.account_configured("koreader")
    return BookLoreClient(
        url,
        booklore_user=cfg.username("booklore") if booklore else None,
        booklore_password=cfg.password("booklore") if booklore else None,
        koreader_user=cfg.username("koreader") if koreader else None,
        koreader_password=cfg.password("koreader") if koreader else None,
        connect_timeout=float(cfg.get("http.connect_timeout_seconds")),
        read_timeout=float(cfg.get("http.read_timeout_seconds")),
        capability_cache=CapabilityCache(store) if store is not None else None,
        token_store=KeyringTokenStore(),
    )


@dataclass
class Session:
    cfg: Config
    store: Store
    client: Any  # BookLoreClient, or None when the action needs no server

    @property
    def url(self) -> str | None:
        return self.client.base_url if self.client is not None else None


@contextmanager
def session(cfg: Config, *, lock: bool = True, client: bool = True) -> Iterator[Session]:
    """The set-up every changing action shares: the store's lock (exit 4 when held),
    the store, and (when wanted) a client; configuration problems become ActionError."""
    with store_lock(cfg) if lock else _nothing():
        with open_store(cfg) as store:
            made = None
            if client:
                server_url(cfg)
                try:
                    made = make_client(cfg, store)
                except ConfigError as exc:
                    raise config_error(exc) from None
            try:
                yield Session(cfg, store, made)
            finally:
                if made is not None:
                    made.close()


@contextmanager
def _nothing() -> Iterator[None]:
    yield

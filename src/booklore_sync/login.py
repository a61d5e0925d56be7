"""`login` as a library call (spec §6.1): check the URL and each account, then save.

Nothing is written unless every check passed (or the caller asked for no check).
Prompting for what is missing is the interface's job; this module never prints.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from booklore_sync.actions.base import (
    ACCOUNT,
    CONFIG,
    EXIT_USAGE,
    UNREACHABLE,
    USAGE,
    ActionError,
)
from booklore_sync.config import (
    ACCOUNT_LABELS,
    NO_KEYRING_MESSAGE,
    USER_KEY,
    Config,
    ConfigError,
    keyring_available,
)
from booklore_sync.server_url import BadURL, normalize_url

OK, SYNC_OFF, NOT_CHECKED, NOT_CONFIGURED = "ok", "sync_off", "not_checked", "not_configured"


@dataclass
class LoginRequest:
    url: str | None = None
    username: str | None = None
    koreader_username: str | None = None
    passwords: dict[str, str] = field(default_factory=dict)
    store_in_file: bool = False
    check: bool = True
    from_env: set[str] = field(default_factory=set)  # passwords given by the environment


@dataclass
class LoginResult:
    url: str
    accounts: dict[str, str]
    stored_in: str  # keyring | file | none
    koreader_sync: bool | None
    notices: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    config_path: str = ""
    stored_places: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "accounts": self.accounts, "stored_in": self.stored_in,
                "koreader_sync": self.koreader_sync}


def prepare(cfg: Config, req: LoginRequest) -> tuple[str, list[str], list[str]]:
    """Normalise the URL and settle which accounts are named (no network, no writing):
    ``(url, named accounts, notices)``."""
    notices: list[str] = []
    raw = req.url if req.url else cfg.get("server.url")
    if not raw:
        raise ActionError(USAGE, "give the server URL with --url (e.g. http://127.0.0.1:6060)",
                          EXIT_USAGE)
    try:
        url, notices = normalize_url(str(raw))
    except BadURL as exc:
        raise ActionError(USAGE, str(exc), EXIT_USAGE) from None
    if req.username:
        cfg.file_values["server.username"] = req.username.strip()
    if req.koreader_username:
        cfg.file_values["server.koreader_username"] = req.koreader_username.strip()
    cfg.file_values["server.url"] = url
    cfg._url_cache = None
    named = [a for a, given in (("booklore", req.username), ("koreader", req.koreader_username))
             if given]
    if not named:
        named = [a for a in ("booklore", "koreader") if cfg.username(a)]
    if not named:
        raise ActionError(USAGE, "name at least one account: --username (BookLore) and/or "
                          "--koreader-username (KOReader sync)", EXIT_USAGE)
    if not req.store_in_file and not keyring_available():
        raise ActionError(CONFIG, NO_KEYRING_MESSAGE, EXIT_USAGE)
    return url, named, notices


def login(cfg: Config, req: LoginRequest) -> LoginResult:
    """Check (unless ``req.check`` is False) and save; ActionError when a check fails."""
    url, named, notices = prepare(cfg, req)
    accounts = {a: (NOT_CHECKED if a in named else NOT_CONFIGURED) for a in ("booklore",
                                                                              "koreader")}
    koreader_sync: bool | None = None
    warnings: list[str] = []
    if req.check:
        koreader_sync = check_server(cfg, url, req.passwords, accounts, warnings)
    else:
        warnings.append(f"Nothing was checked: {url} and the accounts were saved as given.")
    try:
        places = [cfg.store_password(a, pw, in_file=req.store_in_file)
                  for a, pw in req.passwords.items() if a not in req.from_env]
        cfg.save()
    except ConfigError as exc:
        raise ActionError(CONFIG, str(exc), EXIT_USAGE) from None
    stored_in = "none" if not places else ("file" if req.store_in_file else "keyring")
    return LoginResult(url, accounts, stored_in, koreader_sync, notices, warnings,
                       str(cfg.config_path), sorted(set(places)))


def url_problem(url: str, exc: Any) -> str:
    """Why the URL does not answer as BookLore, in words a user can act on."""
    from booklore_sync.booklore import errors as E
    from booklore_sync.server_url import reason_only

    text = reason_only(getattr(exc, "message", str(exc)), url)
    low = text.lower()
    if "did you mean" in low:  # the client already knows the fix
        return f"{url}: {text}"
    if isinstance(exc, E.NotBookLoreError):
        if exc.reason == "redirect":
            return f"{url} redirects elsewhere ({text}); use the URL it redirects to"
        return f"{url} answers, but not as BookLore ({text}); wrong base path or port?"
    if "ssl" in low or "tls" in low or "certificate" in low or "wrong_version" in low:
        if url.startswith("https://"):
            return (f"TLS failed at {url} ({text}); did you mean "
                    f"http://{url[len('https://'):]}?")
        return f"TLS problem at {url} ({text})"
    if any(s in low for s in ("(dns)", "name or service not known", "nodename nor servname",
                              "getaddrinfo", "name resolution", "no address associated")):
        return f"the name in {url} does not resolve (DNS): {text}"
    if "refused" in low:
        return f"{url} refused the connection (wrong port, or the server is not running)"
    if "timeout" in low or "timed out" in low:
        return f"{url} did not answer in time ({text})"
    if url.startswith("http://") and ("disconnected" in low or "reset" in low
                                      or "closed" in low):
        return (f"{url} closed the connection ({text}); did you mean "
                f"https://{url[len('http://'):]}?")
    return f"{url} cannot be reached ({text})"


def check_server(cfg: Config, url: str, passwords: dict[str, str], accounts: dict[str, str],
                 warnings: list[str]) -> bool | None:
    """Probe 1 on the URL, then each account; fills ``accounts``; returns koreader_sync."""
    from booklore_sync.booklore import BookLoreClient
    from booklore_sync.booklore import errors as E

    client = BookLoreClient(
        url,
        booklore_user=cfg.username("booklore") if "booklore" in passwords else None,
        booklore_password=passwords.get("booklore"),
        koreader_user=cfg.username("koreader") if "koreader" in passwords else None,
        koreader_password=passwords.get("koreader"),
        connect_timeout=float(cfg.get("http.connect_timeout_seconds")),
        read_timeout=float(cfg.get("http.read_timeout_seconds")),
        retries=0,
    )
    koreader_sync: bool | None = None
    with client:
        try:
            client.healthcheck()
        except E.BookLoreError as exc:
            raise ActionError(UNREACHABLE, url_problem(url, exc) + "; nothing was saved",
                              EXIT_USAGE) from None
        for account in passwords:
            label = ACCOUNT_LABELS[account]
            name = cfg.get(USER_KEY[account])
            try:
                if account == "booklore":
                    client.check_booklore_auth()
                else:
                    client.check_koreader_auth()
                    koreader_sync = _koreader_sync_on(client)
            except E.AuthError as exc:
                what = {"rejected": "was rejected (wrong user name or password)",
                        "not_linked": "is not linked to a BookLore user",
                        "rate_limited": "cannot log in now: rate-limited, wait 15 minutes",
                        "login_disabled": "cannot log in: the server allows only single "
                                          "sign-on"}.get(exc.kind, exc.kind.replace("_", " "))
                raise ActionError(ACCOUNT, f"the {label} {name!r} {what} by {url}; nothing was "
                                  "saved", EXIT_USAGE) from None
            except E.BookLoreError as exc:
                raise ActionError(UNREACHABLE, f"could not check the {label} at {url}: "
                                  f"{exc}; nothing was saved", EXIT_USAGE) from None
            accounts[account] = OK
            if account == "koreader" and koreader_sync is False:
                accounts[account] = SYNC_OFF
                warnings.append(f"Warning: the {label} {name!r} has Sync switched off in "
                                "BookLore, so reading progress cannot be sent until it is "
                                "switched on (BookLore: Settings → KOReader).")
    return koreader_sync


def _koreader_sync_on(client: Any) -> bool | None:
    """Read one unknown document's progress: a 401 "Sync is disabled" means off."""
    from booklore_sync.booklore import errors as E

    try:
        client.get_progress(secrets.token_hex(16))
    except E.AuthError as exc:
        if exc.kind == "sync_disabled":
            return False
        raise
    except (E.NotFoundError, E.UnsupportedEndpointError):
        return True
    return True

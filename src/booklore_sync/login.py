"""`booklore-sync login`: server URL, account names, passwords (spec §6.1)."""

from __future__ import annotations

import getpass
import sys

from booklore_sync.config import (
    ACCOUNT_LABELS,
    NO_KEYRING_MESSAGE,
    USER_KEY,
    Config,
    ConfigError,
    keyring_available,
)

EXIT_OK, EXIT_USAGE = 0, 2


def _err(message: str) -> None:
    sys.stderr.write(message + "\n")


def run_login(cfg: Config, *, url: str | None, username: str | None,
              koreader_username: str | None, password_stdin: bool,
              store_in_file: bool) -> int:
    if url:
        cfg.file_values["server.url"] = url.strip()
    if username:
        cfg.file_values["server.username"] = username.strip()
    if koreader_username:
        cfg.file_values["server.koreader_username"] = koreader_username.strip()
    if not cfg.url:
        _err("Error: give the server URL with --url (e.g. http://127.0.0.1:6060).")
        return EXIT_USAGE
    named = [a for a, given in (("booklore", username), ("koreader", koreader_username)) if given]
    if not named:
        named = [a for a in ("booklore", "koreader") if cfg.username(a)]
    if not named:
        _err("Error: name at least one account: --username (BookLore) and/or "
             "--koreader-username (KOReader sync).")
        return EXIT_USAGE
    if not store_in_file and not keyring_available():
        _err(f"Error: {NO_KEYRING_MESSAGE}")
        return EXIT_USAGE

    passwords: dict[str, str] = {}
    stdin_lines = sys.stdin.read().splitlines() if password_stdin else []
    for index, account in enumerate(named):
        label = ACCOUNT_LABELS[account]
        if password_stdin:
            if index >= len(stdin_lines) or not stdin_lines[index]:
                _err(f"Error: --password-stdin: no password line for the {label} "
                     "(one line each, BookLore first).")
                return EXIT_USAGE
            passwords[account] = stdin_lines[index]
        else:
            if not sys.stdin.isatty():
                _err("Error: no terminal to ask for the passwords on; use --password-stdin.")
                return EXIT_USAGE
            secret = getpass.getpass(f"Password of the {label} {cfg.get(USER_KEY[account])!r}: ")
            if not secret:
                _err(f"Error: empty password for the {label}; nothing stored.")
                return EXIT_USAGE
            passwords[account] = secret

    code = _check_accounts(cfg, passwords)
    if code != EXIT_OK:
        return code
    try:
        cfg.save()
        places = {cfg.store_password(a, pw, in_file=store_in_file) for a, pw in passwords.items()}
    except ConfigError as exc:
        _err(f"Error: {exc}")
        return EXIT_USAGE
    sys.stdout.write(f"Saved the server URL and account names to {cfg.config_path}; "
                     f"passwords stored in the {', '.join(sorted(places))}.\n")
    return EXIT_OK


def _check_accounts(cfg: Config, passwords: dict[str, str]) -> int:
    """Check each account against the server when it can be reached."""
    from booklore_sync.booklore import BookLoreClient
    from booklore_sync.booklore import errors as E

    client = BookLoreClient(
        cfg.url or "",
        booklore_user=cfg.username("booklore") if "booklore" in passwords else None,
        booklore_password=passwords.get("booklore"),
        koreader_user=cfg.username("koreader") if "koreader" in passwords else None,
        koreader_password=passwords.get("koreader"),
        connect_timeout=float(cfg.get("http.connect_timeout_seconds")),
        read_timeout=float(cfg.get("http.read_timeout_seconds")),
    )
    with client:
        try:
            client.healthcheck()
        except E.OfflineError:
            _err(f"Warning: {cfg.url} cannot be reached now; the accounts were not checked.")
            return EXIT_OK
        except E.NotBookLoreError as exc:
            _err(f"Error: {cfg.url}: {exc.message}. Nothing was stored.")
            return EXIT_USAGE
        except E.BookLoreError as exc:
            _err(f"Warning: the server answered the health check with an error ({exc}); "
                 "the accounts were not checked.")
            return EXIT_OK
        for account in passwords:
            label = ACCOUNT_LABELS[account]
            try:
                if account == "booklore":
                    client.check_booklore_auth()
                else:
                    client.check_koreader_auth()
            except E.AuthError as exc:
                _err(f"Error: the server refused the {label} ({exc.kind.replace('_', ' ')}: "
                     f"{exc.message}). Nothing was stored.")
                return EXIT_USAGE
            except E.OfflineError:
                _err(f"Warning: the server went away while checking the {label}; not checked.")
            except E.BookLoreError as exc:
                _err(f"Warning: could not check the {label} ({exc}).")
            else:
                _err(f"{label}: OK")
    return EXIT_OK

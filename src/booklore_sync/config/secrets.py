"""Passwords and refresh tokens (spec §6.1): the OS keyring, else (only when the
user asked for it with ``login --store-in-file``) an owner-only ``credentials.toml``.
Nothing here ever logs or prints a secret."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from booklore_sync.config.files import (
    KEYRING_SERVICE,
    TOKEN_SERVICE,
    ConfigError,
    make_private_dir,
)

NO_KEYRING_ALTERNATIVES = (
    "Alternatives: set the environment variables BOOKLORE_PASSWORD and "
    "BOOKLORE_KOREADER_PASSWORD, or run `booklore-sync login --store-in-file` to keep the "
    "passwords in a file readable only by you."
)
NO_KEYRING_MESSAGE = "No OS keyring is available on this system, so the passwords cannot be stored safely. " + NO_KEYRING_ALTERNATIVES


def secret_name(account: str, user: str, url: str) -> str:
    return f"{account}:{user}@{url.rstrip('/')}"


def file_secrets(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {type(exc).__name__}") from None
    return {k: v for k, v in data.get("passwords", {}).items() if isinstance(v, str)}


def write_file_secrets(path: Path, secrets: dict[str, str]) -> None:
    import tomli_w

    make_private_dir(path.parent)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(tomli_w.dumps({"passwords": secrets}))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def keyring_available() -> bool:
    try:
        import keyring
        from keyring.backends import chainer, fail
    except Exception:
        return False
    try:
        kr = keyring.get_keyring()
    except Exception:
        return False
    if isinstance(kr, fail.Keyring):
        return False
    if isinstance(kr, chainer.ChainerBackend) and not kr.backends:
        return False
    return type(kr).__module__ != "keyring.backends.null"


def keyring_get(name: str, service: str = KEYRING_SERVICE) -> str | None:
    if not keyring_available():
        return None
    import keyring

    try:
        return keyring.get_password(service, name)
    except Exception:
        return None


class KeyringTokenStore:
    """Refresh tokens, kept in the OS keyring only, and only where one exists (§6.1)."""

    def get_refresh_token(self, server_url: str, username: str) -> str | None:
        return keyring_get(f"{username}@{server_url.rstrip('/')}", TOKEN_SERVICE)

    def set_refresh_token(self, server_url: str, username: str, token: str | None) -> None:
        if not keyring_available():
            return
        import keyring

        name = f"{username}@{server_url.rstrip('/')}"
        try:
            if token is None:
                try:
                    keyring.delete_password(TOKEN_SERVICE, name)
                except Exception:
                    pass
            else:
                keyring.set_password(TOKEN_SERVICE, name, token)
        except Exception:
            pass  # a token is a convenience: the next run logs in again


def mask(value: Any) -> str:
    return "********" if value else "(not set)"

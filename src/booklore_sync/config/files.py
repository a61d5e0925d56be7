"""The configuration's files and words: where they live, the setting names, the
environment variables, and how the text of ``config KEY VALUE`` becomes a value."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from booklore_sync.server_url import BadURL, normalize_url
from booklore_sync.settings_defaults import DEFAULTS

APP_NAME = "booklore-sync"
KEYRING_SERVICE = "booklore-sync"
TOKEN_SERVICE = "booklore-sync-refresh-token"
CONFIG_FILE = "config.toml"
CREDENTIALS_FILE = "credentials.toml"
STORE_FILE = "booklore-sync.db"
LOCK_FILE = "sync.lock"
LOG_FILE = "booklore-sync.log"

ACCOUNTS = ("booklore", "koreader")
ACCOUNT_LABELS = {"booklore": "BookLore account", "koreader": "KOReader account"}
SERVER_KEYS = ("server.url", "server.username", "server.koreader_username")
ENV_FOR_KEY = {
    "server.url": "BOOKLORE_URL",
    "server.username": "BOOKLORE_USERNAME",
    "server.koreader_username": "BOOKLORE_KOREADER_USERNAME",
}
PASSWORD_ENV = {"booklore": "BOOKLORE_PASSWORD", "koreader": "BOOKLORE_KOREADER_PASSWORD"}
USER_KEY = {"booklore": "server.username", "koreader": "server.koreader_username"}
CHOICES = {
    "sessions.detection_mode": ("duration", "pages"),
    "annotations.notes_destination": ("in_book", "in_booklore", "both"),
}


class ConfigError(Exception):
    """A configuration problem the user must fix (exit code 2)."""


def home_dir(env: Mapping[str, str] | None = None) -> Path:
    """The data directory: the store, its lock and the logs."""
    explicit = (os.environ if env is None else env).get("BOOKLORE_SYNC_HOME")
    if explicit:
        return Path(explicit).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP_NAME, appauthor=False))


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """The configuration directory: ``config.toml`` and ``credentials.toml``."""
    explicit = (os.environ if env is None else env).get("BOOKLORE_SYNC_HOME")
    if explicit:
        return Path(explicit).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP_NAME, appauthor=False))


def _migrate_config_files(data: Path, conf: Path) -> list[str]:
    """Move a config or credentials file left in the data directory (where earlier
    versions kept them) to the config directory, once."""
    notices: list[str] = []
    if data.resolve() == conf.resolve():
        return notices
    for name in (CONFIG_FILE, CREDENTIALS_FILE):
        old, new = data / name, conf / name
        if old.is_file() and not new.exists():
            try:
                make_private_dir(conf)
                os.replace(old, new)
            except OSError as exc:
                raise ConfigError(f"cannot move {old} to {new}: {exc.strerror or exc}") from None
            notices.append(f"moved {old} to {new} (settings now live in the config directory)")
    return notices


def make_private_dir(path: Path) -> None:
    """Create a directory (and its parents) readable by the owner only."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key != "scan.path_map":
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return tree


def known_keys() -> list[str]:
    return [*SERVER_KEYS, *DEFAULTS]


def parse_value(key: str, raw: str) -> Any:
    """Turn the text of ``config KEY VALUE`` into a typed value, or raise ConfigError."""
    if key not in known_keys():
        raise ConfigError(f"unknown setting {key!r}; known settings: {', '.join(known_keys())}")
    if key == "server.url":
        try:
            return normalize_url(raw)[0]
        except BadURL as exc:
            raise ConfigError(f"server.url: {exc}") from None
    if key in SERVER_KEYS:
        return raw
    default = DEFAULTS[key]
    if key == "scan.path_map":
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            try:
                value = tomllib.loads(f"v = {raw}")["v"]
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(
                    f"{key} must be a table such as '{{\"/mnt/sd/\": \"/media/sdcard/\"}}': {exc}"
                ) from exc
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ConfigError(f"{key} must map device paths to local paths (strings)")
        return value
    if isinstance(default, bool):
        low = raw.strip().lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"{key} must be true or false, not {raw!r}")
    if isinstance(default, int):
        return _parse_number(key, raw)
    if key in CHOICES and raw not in CHOICES[key]:
        raise ConfigError(f"{key} must be one of {', '.join(CHOICES[key])}, not {raw!r}")
    if key == "device.timezone":
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(raw)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"{key}: unknown time zone {raw!r} (use an IANA name such as "
                              "'Europe/Berlin' or 'UTC')") from None
    return raw


def _parse_number(key: str, raw: str) -> int | float:
    """A whole number (a timeout may have a fraction); ``-5`` is a number like any other,
    refused only by the keys where it cannot work."""
    text = raw.strip()
    try:
        value: int | float = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not key.endswith("timeout_seconds") or value != value or value in (
                float("inf"), float("-inf")):
            raise ConfigError(f"{key} must be a whole number, not {raw!r}") from None
    if key.startswith("http.") and value <= 0:
        raise ConfigError(f"{key} must be greater than 0, not {raw!r}")
    if key == "sessions.progress_decimal_places" and not 0 <= value <= 10:
        raise ConfigError(f"{key} must be between 0 and 10, not {raw!r}")
    return value


def env_name_for(key: str) -> str:
    """The variable that overrides a §7 setting: ``BOOKLORE_SYNC_`` + the key upper-cased,
    ``.`` as ``_`` (e.g. ``BOOKLORE_SYNC_SYNC_SETTLE_SECONDS``)."""
    return "BOOKLORE_SYNC_" + key.upper().replace(".", "_")


def env_settings(env: Mapping[str, str]) -> dict[str, Any]:
    """The §7 settings given by ``BOOKLORE_SYNC_*`` variables, parsed; ConfigError naming
    the variable when one does not parse.  Unknown ``BOOKLORE_SYNC_*`` variables are
    ignored (``BOOKLORE_SYNC_HOME`` and ``BOOKLORE_SYNC_WEB_PASSWORD`` are not settings)."""
    out: dict[str, Any] = {}
    for key in DEFAULTS:
        name = env_name_for(key)
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        try:
            out[key] = parse_value(key, raw)
        except ConfigError as exc:
            raise ConfigError(f"{name}={raw!r} does not parse: {exc}") from None
    return out

"""Settings and credentials (spec §6.1, §7).

Precedence: environment variables > ``config.toml`` in the home directory >
defaults.  Passwords come from their environment variable, else the OS
keyring, else (only if the user asked for it with ``login --store-in-file``)
an owner-only ``credentials.toml``.  Nothing here ever logs or prints a secret.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
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


@dataclass
class Config:
    home: Path  # the data directory (store, lock, logs)
    file_values: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    conf_dir: Path | None = None  # config.toml, credentials.toml (default: home)
    notices: list[str] = field(default_factory=list)  # one-line notes for the user
    env_values: dict[str, Any] = field(default_factory=dict)  # §7 keys from BOOKLORE_SYNC_*
    _url_cache: tuple[str | None, str | None] | None = field(default=None, repr=False)

    @classmethod
    def load(cls, home: Path | None = None, env: dict[str, str] | None = None) -> Config:
        env = dict(os.environ if env is None else env)
        notices: list[str] = []
        if home is None:
            home = home_dir(env)
            conf = config_dir(env)
            notices += _migrate_config_files(home, conf)
        else:
            conf = home
        path = conf / CONFIG_FILE
        values: dict[str, Any] = {}
        if path.exists():
            try:
                values = _flatten(tomllib.loads(path.read_text(encoding="utf-8")))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read {path}: {exc}") from exc
            except OSError as exc:
                raise ConfigError(f"cannot read {path}: {exc}") from exc
        return cls(home=home, file_values=values, env=env, conf_dir=conf, notices=notices,
                   env_values=env_settings(env))

    # ---------------------------------------------------------------- paths
    @property
    def config_dir(self) -> Path:
        return self.conf_dir or self.home

    @property
    def config_path(self) -> Path:
        return self.config_dir / CONFIG_FILE

    @property
    def log_path(self) -> Path:
        return self.home / LOG_FILE

    @property
    def store_path(self) -> Path:
        return self.home / STORE_FILE

    @property
    def lock_path(self) -> Path:
        return self.home / LOCK_FILE

    @property
    def credentials_path(self) -> Path:
        return self.config_dir / CREDENTIALS_FILE

    # ------------------------------------------------------------- settings
    def get(self, key: str) -> Any:
        env_name = ENV_FOR_KEY.get(key)
        if env_name and self.env.get(env_name):
            return self.env[env_name]
        if key in self.env_values:
            return self.env_values[key]
        if key in self.file_values:
            return self.file_values[key]
        if key in SERVER_KEYS:
            return None
        if key not in DEFAULTS:
            raise ConfigError(f"unknown setting {key!r}")
        return DEFAULTS[key]

    def source(self, key: str) -> str:
        """Where the effective value of ``key`` comes from: env, file or default."""
        env_name = ENV_FOR_KEY.get(key)
        if (env_name and self.env.get(env_name)) or key in self.env_values:
            return "env"
        return "file" if key in self.file_values else "default"

    def env_variable(self, key: str) -> str:
        """The environment variable that sets ``key``."""
        return ENV_FOR_KEY.get(key) or env_name_for(key)

    def settings(self) -> dict[str, Any]:
        """The effective §7 settings as a flat dict."""
        out = {k: self.get(k) for k in DEFAULTS}
        return out

    def set(self, key: str, raw: str) -> Any:
        value = parse_value(key, raw)
        self.file_values[key] = value
        self.save()
        return value

    def save(self) -> None:
        import tomli_w

        make_private_dir(self.config_dir)
        data = {k: v for k, v in self.file_values.items() if v is not None}
        tmp = self.config_path.with_suffix(".toml.tmp")
        tmp.write_text(tomli_w.dumps(_nest(data)), encoding="utf-8")
        os.replace(tmp, self.config_path)

    @property
    def url(self) -> str | None:
        """The normalised server URL (notices about the change go to ``notices``, once);
        ConfigError when the configured value cannot be a URL."""
        raw = self.get("server.url")
        if self._url_cache is not None and self._url_cache[0] == raw:
            return self._url_cache[1]
        if not raw:
            return None
        where = "BOOKLORE_URL" if self.env.get("BOOKLORE_URL") else f"server.url in {self.config_path}"
        try:
            url, notices = normalize_url(str(raw))
        except BadURL as exc:
            raise ConfigError(f"{where}: {exc}") from None
        self.notices += notices
        self._url_cache = (raw, url)
        return url

    def username(self, account: str) -> str | None:
        return self.get(USER_KEY[account])

    # ---------------------------------------------------------- credentials
    def password(self, account: str) -> str | None:
        """The account's password: its env variable, the keyring, or the owner-only file."""
        env_value = self.env.get(PASSWORD_ENV[account])
        if env_value:
            return env_value
        user = self.username(account)
        url = self.url
        if not user or not url:
            return None
        secret = keyring_get(_secret_name(account, user, url))
        if secret:
            return secret
        return _file_secrets(self.credentials_path).get(_secret_name(account, user, url))

    def password_source(self, account: str) -> str | None:
        """Where the password comes from (for `config`), never the password itself."""
        if self.env.get(PASSWORD_ENV[account]):
            return f"environment ({PASSWORD_ENV[account]})"
        user, url = self.username(account), self.url
        if not user or not url:
            return None
        name = _secret_name(account, user, url)
        if keyring_get(name):
            return "OS keyring"
        if name in _file_secrets(self.credentials_path):
            return f"file {self.credentials_path}"
        return None

    def store_password(self, account: str, password: str, *, in_file: bool) -> str:
        user, url = self.username(account), self.url
        if not user or not url:
            raise ConfigError("the server URL and the user name must be set first")
        name = _secret_name(account, user, url)
        if in_file:
            secrets = _file_secrets(self.credentials_path)
            secrets[name] = password
            _write_file_secrets(self.credentials_path, secrets)
            return f"file {self.credentials_path} (readable by you only)"
        if not keyring_available():
            raise ConfigError(NO_KEYRING_MESSAGE)
        import keyring

        try:
            keyring.set_password(KEYRING_SERVICE, name, password)
        except Exception as exc:  # keyring backends raise many types
            raise ConfigError(f"the OS keyring refused to store the password ({type(exc).__name__})."
                              f" {NO_KEYRING_ALTERNATIVES}") from None
        return "OS keyring"

    def account_configured(self, account: str) -> bool:
        return bool(self.url and self.username(account) and self.password(account))


NO_KEYRING_ALTERNATIVES = (
    "Alternatives: set the environment variables BOOKLORE_PASSWORD and "
    "BOOKLORE_KOREADER_PASSWORD, or run `booklore-sync login --store-in-file` to keep the "
    "passwords in a file readable only by you."
)
NO_KEYRING_MESSAGE = "No OS keyring is available on this system, so the passwords cannot be stored safely. " + NO_KEYRING_ALTERNATIVES


def _secret_name(account: str, user: str, url: str) -> str:
    return f"{account}:{user}@{url.rstrip('/')}"


def _file_secrets(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {type(exc).__name__}") from None
    return {k: v for k, v in data.get("passwords", {}).items() if isinstance(v, str)}


def _write_file_secrets(path: Path, secrets: dict[str, str]) -> None:
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

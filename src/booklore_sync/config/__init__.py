"""Settings and credentials (spec §6.1, §7).

Precedence: environment variables > ``config.toml`` in the home directory >
defaults.  Passwords come from their environment variable, else the OS
keyring, else (only if the user asked for it with ``login --store-in-file``)
an owner-only ``credentials.toml``.  Nothing here ever logs or prints a secret.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from booklore_sync.config.files import (
    ACCOUNT_LABELS,
    ACCOUNTS,
    APP_NAME,
    CHOICES,
    CONFIG_FILE,
    CREDENTIALS_FILE,
    ENV_FOR_KEY,
    KEYRING_SERVICE,
    LOCK_FILE,
    LOG_FILE,
    PASSWORD_ENV,
    SERVER_KEYS,
    STORE_FILE,
    TOKEN_SERVICE,
    USER_KEY,
    ConfigError,
    _flatten,
    _migrate_config_files,
    _nest,
    config_dir,
    env_name_for,
    env_settings,
    home_dir,
    known_keys,
    make_private_dir,
    parse_value,
)
from booklore_sync.config.secrets import (
    NO_KEYRING_ALTERNATIVES,
    NO_KEYRING_MESSAGE,
    KeyringTokenStore,
    file_secrets,
    keyring_available,
    keyring_get,
    mask,
    secret_name,
    write_file_secrets,
)
from booklore_sync.server_url import BadURL, normalize_url
from booklore_sync.settings_defaults import DEFAULTS

__all__ = [
    "ACCOUNTS", "ACCOUNT_LABELS", "APP_NAME", "CHOICES", "CONFIG_FILE", "CREDENTIALS_FILE",
    "ENV_FOR_KEY", "KEYRING_SERVICE", "env_name_for", "env_settings", "LOCK_FILE", "LOG_FILE", "NO_KEYRING_ALTERNATIVES",
    "NO_KEYRING_MESSAGE", "PASSWORD_ENV", "SERVER_KEYS", "STORE_FILE", "TOKEN_SERVICE",
    "USER_KEY", "Config", "ConfigError", "KeyringTokenStore", "config_dir", "home_dir",
    "keyring_available", "keyring_get", "known_keys", "make_private_dir", "mask",
    "parse_value",
]


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
        out["server.url"] = self.get("server.url")  # scan adopts the plugin's matches by it
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
        secret = keyring_get(secret_name(account, user, url))
        if secret:
            return secret
        return file_secrets(self.credentials_path).get(secret_name(account, user, url))

    def password_source(self, account: str) -> str | None:
        """Where the password comes from (for `config`), never the password itself."""
        if self.env.get(PASSWORD_ENV[account]):
            return f"environment ({PASSWORD_ENV[account]})"
        user, url = self.username(account), self.url
        if not user or not url:
            return None
        name = secret_name(account, user, url)
        if keyring_get(name):
            return "OS keyring"
        if name in file_secrets(self.credentials_path):
            return f"file {self.credentials_path}"
        return None

    def store_password(self, account: str, password: str, *, in_file: bool) -> str:
        user, url = self.username(account), self.url
        if not user or not url:
            raise ConfigError("the server URL and the user name must be set first")
        name = secret_name(account, user, url)
        if in_file:
            secrets = file_secrets(self.credentials_path)
            secrets[name] = password
            write_file_secrets(self.credentials_path, secrets)
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

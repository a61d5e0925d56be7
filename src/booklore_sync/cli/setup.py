"""Set-up commands: login and config."""

from __future__ import annotations

import getpass
import json
import sys
from typing import Any, Optional

import typer

from booklore_sync.actions.base import CONFIG, EXIT_USAGE, USAGE, ActionError
from booklore_sync.cli.app import JSON_HELP, SETUP, app
from booklore_sync.cli.common import (
    G,
    err,
    fail,
    load_config,
    note,
    out_json,
    show_notices,
    usage,
)
from booklore_sync.config import ACCOUNT_LABELS, USER_KEY, Config, ConfigError


@app.command(rich_help_panel=SETUP, epilog="Examples:\n\n  booklore-sync login --url "
             "http://booklore.local:6060 --username me --koreader-username me\n\n"
             "  printf '%s\\n%s\\n' \"$BL_PW\" \"$KO_PW\" | booklore-sync login --url "
             "booklore.local:6060 --username me --koreader-username me --password-stdin")
def login(
    url: Optional[str] = typer.Option(None, "--url", help="BookLore base URL."),
    username: Optional[str] = typer.Option(None, "--username", help="BookLore user name."),
    koreader_username: Optional[str] = typer.Option(
        None, "--koreader-username", help="KOReader sync account name."),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="Read the passwords from stdin, one line each, "
        "BookLore first."),
    store_in_file: bool = typer.Option(
        False, "--store-in-file", help="Keep the passwords in a file readable only by you "
        "(instead of the OS keyring)."),
    no_check: bool = typer.Option(False, "--no-check", help="Save without contacting the "
                                  "server (nothing is checked)."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Store the server URL and the accounts, after checking them; passwords go to the OS keyring."""
    from booklore_sync.login import LoginRequest, prepare
    from booklore_sync.login import login as do_login

    cfg = load_config()
    interactive = sys.stdin.isatty()
    if not url and not cfg.get("server.url") and interactive and not password_stdin:
        url = typer.prompt("BookLore URL", err=True)
    req = LoginRequest(url=url, username=username, koreader_username=koreader_username,
                       store_in_file=store_in_file, check=not no_check)
    try:
        _url, named, notices = prepare(cfg, req)
    except ActionError as exc:
        fail(exc)
    for n in notices:
        note(n)
    stdin_lines = sys.stdin.read().splitlines() if password_stdin else []
    for index, account in enumerate(named):
        label = ACCOUNT_LABELS[account]
        if password_stdin:
            if index >= len(stdin_lines) or not stdin_lines[index]:
                usage(f"--password-stdin: no password line for the {label} (one line each, "
                      "BookLore first)")
            req.passwords[account] = stdin_lines[index]
            continue
        from booklore_sync.config import PASSWORD_ENV

        env_password = cfg.env.get(PASSWORD_ENV[account])
        if env_password:  # checked, never stored: it already comes from the environment
            req.passwords[account] = env_password
            req.from_env.add(account)
            continue
        if not interactive:
            if no_check:
                note(f"no password stored for the {label}: give it with --password-stdin or "
                     f"{PASSWORD_ENV[account]}")
                continue
            usage(f"no terminal to ask for the password of the {label} on; use "
                  f"--password-stdin or set {PASSWORD_ENV[account]}")
        secret = getpass.getpass(f"Password of the {label} {cfg.get(USER_KEY[account])!r}: ")
        if not secret:
            usage(f"empty password for the {label}; nothing stored")
        req.passwords[account] = secret
    try:
        result = do_login(cfg, req)
    except ActionError as exc:
        fail(exc)
    result.notices = []  # shown above
    for w in result.warnings:
        err(w)
    for account, state in result.accounts.items():
        if state in ("ok", "sync_off"):
            note(f"{ACCOUNT_LABELS[account]}: OK" + (" (Sync off)" if state == "sync_off" else ""))
    if G.json:
        out_json(result.to_json())
        return
    where = ", ".join(result.stored_places) or "nowhere (no password given)"
    typer.echo(f"Saved the server URL and account names to {result.config_path}; "
               f"passwords stored in the {where}.")


@app.command("config", rich_help_panel=SETUP,
             context_settings={"ignore_unknown_options": True},
             epilog="Examples:\n\n  booklore-sync config\n\n  booklore-sync config "
             "sessions.gap_seconds\n\n  booklore-sync config server.url booklore.local:6060")
def config_cmd(
    key: Optional[str] = typer.Argument(None, help="A setting, e.g. sessions.gap_seconds."),
    value: Optional[str] = typer.Argument(None, help="New value to write to config.toml."),
    json_out: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Print the effective settings (and where each comes from), one setting, or set one."""
    from booklore_sync.config import ACCOUNTS, known_keys, mask

    cfg = load_config()
    if key is not None and key not in known_keys():
        usage(f"unknown setting {key!r}. Known settings: {', '.join(known_keys())}")
    if key is not None and value is not None:
        if key == "server.url":
            from booklore_sync.server_url import BadURL, normalize_url

            try:
                for notice in normalize_url(value)[1]:
                    note(notice)
            except BadURL as exc:
                fail(ActionError(USAGE, f"server.url: {exc}; nothing was saved", EXIT_USAGE))
        try:
            stored = cfg.set(key, value)
        except ConfigError as exc:
            fail(ActionError(USAGE, str(exc), EXIT_USAGE))
        if G.json:
            out_json({"key": key, "value": stored, "written_to": str(cfg.config_path)})
        else:
            typer.echo(f"{key} = {_show(stored)}  (written to {cfg.config_path})")
        return
    if key is not None:
        shown = _value(cfg, key)
        if G.json:
            out_json({"key": key, "value": shown, "source": _source(cfg, key)})
        else:
            typer.echo(_show(shown))
        return
    if G.json:
        settings: dict[str, Any] = {k: {"value": _value(cfg, k), "source": _source(cfg, k)}
                                    for k in known_keys()}
        for account in ACCOUNTS:
            src = cfg.password_source(account)
            settings[f"{account}.password"] = {"value": "***" if src else None,
                                               "source": _pw_source(src)}
        out_json({"settings": settings})
        return
    typer.echo(f"# config: {cfg.config_path}")
    typer.echo(f"# data:   {cfg.home}")
    for k in known_keys():
        where = _source(cfg, k)
        if where == "env":
            where = f"env ({cfg.env_variable(k)})"
        typer.echo(f"{k} = {_show(_value(cfg, k))}  # {where}")
    for account in ACCOUNTS:
        source = cfg.password_source(account)
        typer.echo(f"# {ACCOUNT_LABELS[account]} password: {mask(source)}"
                   + (f" (from {source})" if source else ""))


def _value(cfg: Config, key: str) -> Any:
    """The effective value; the server URL normalised (its notices shown once)."""
    try:
        value = cfg.url if key == "server.url" else cfg.get(key)
    except ConfigError as exc:
        fail(ActionError(CONFIG, str(exc), EXIT_USAGE))
    show_notices(cfg)
    return value


def _source(cfg: Config, key: str) -> str:
    return cfg.source(key)


def _pw_source(src: str | None) -> str:
    if not src:
        return "default"
    return "env" if src.startswith("environment") else "file"


def _show(value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)

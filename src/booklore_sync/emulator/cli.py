"""``booklore-sync emulator``: run the emulator in the foreground (booklore-api.md §7.1)."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from . import flavours
from .server import Emulator, start_emulator
from .state import MODES, SeedError

DEFAULT_PORT = 6060


class UsageError(ValueError):
    pass


def parse_account(value: str | tuple[str, str] | None, default: tuple[str, str]) -> tuple[str, str]:
    """``NAME:PASSWORD`` (split at the first ``:``), a ``(name, password)`` pair, or None
    for the default."""
    if value is None:
        return default
    if isinstance(value, (tuple, list)):
        name, password = value
        return str(name), str(password)
    if ":" not in value or not value.split(":", 1)[0]:
        raise UsageError(f"expected NAME:PASSWORD, got {value!r}")
    name, password = value.split(":", 1)
    return name, password


def _banner(emu: Emulator) -> list[str]:
    acc = emu.state.accounts
    lines = [emu.base_url]
    if acc["user"]:
        lines.append(f"BookLore user: {acc['user'][0]} / {acc['user'][1]}")
    if acc["koreader_user"]:
        lines.append(f"KOReader account: {acc['koreader_user'][0]} / {acc['koreader_user'][1]}")
    if acc["admin"]:
        lines.append(f"Admin user: {acc['admin'][0]} / {acc['admin'][1]}")
    with emu.state.lock:
        books = sum(1 for b in emu.state.data["books"].values() if not b["deleted"])
    control = f"{emu.base_url}/__emulator/" if emu.control_enabled else "disabled"
    sync = "on" if emu.state.koreader_sync else "off"
    lines.append(f"Mode: {emu.state.mode} {emu.state.server_version}; KOReader Sync: {sync}; "
                 f"books: {books}; control API: {control}")
    return lines


def _json_line(emu: Emulator) -> str:
    """The first line of ``--json`` (sync-and-cache.md §6.4)."""
    acc = emu.state.accounts

    def account(key: str) -> dict[str, str] | None:
        pair = acc.get(key)
        return None if pair is None else {"username": pair[0], "password": pair[1]}

    return json.dumps({"url": emu.base_url, "mode": emu.state.mode,
                       "server_version": emu.state.server_version,
                       "accounts": {"user": account("user"), "koreader": account("koreader_user"),
                                    "admin": account("admin")}})


def serve_emulator(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    library: str | os.PathLike[str] | None = None,
    mode: str = "fork",
    state_file: str | os.PathLike[str] | None = None,
    user: str | tuple[str, str] | None = None,
    koreader_user: str | tuple[str, str] | None = None,
    admin: str | tuple[str, str] | None = None,
    control: bool | None = None,
    no_spa_fallback: bool = False,
    fixed_bugs: bool = False,
    seed: str | os.PathLike[str] | None = None,
    server_version: str | None = None,
    koreader_sync: bool | str = False,
    latency_ms: int = 0,
    json_output: bool = False,
) -> int:
    """Serve until SIGINT/SIGTERM.  The first stdout line is the base URL, then the
    accounts.  Returns 0 after a signal, 2 for a usage/configuration error, 1 when the
    port cannot be bound.

    ``control``: None = the control API only on a loopback address (§7.7); True = always;
    False = never.  ``koreader_sync``: the Sync switch of the KOReader accounts it
    creates (``on``/``off`` or a bool; default off, as on a real server).  ``json_output``:
    the first line is one JSON object (url, mode, server_version, accounts)."""
    done = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # installed first, so that a signal during start-up still ends in a clean exit 0
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda _s, _f: done.set())

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    try:
        if mode not in MODES:
            raise UsageError(f"--mode must be one of {', '.join(MODES)}")
        try:
            flavours.check(mode, server_version)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        sync = _on_off(koreader_sync)
        if latency_ms < 0:
            raise UsageError("--latency-ms must not be negative")
        accounts = {
            "user": parse_account(user, ("demo", "demo")),
            "koreader_user": parse_account(koreader_user, ("demo", "demo")),
            "admin": parse_account(admin, ("admin", "admin")),
        }
        if library is not None and not os.path.isdir(library):
            raise UsageError(f"--library: not a folder: {library}")
        emu = start_emulator(
            mode=mode, library=library, host=host, port=port, state_file=state_file,
            seed=seed, control=control, spa_fallback=not no_spa_fallback,
            fixed_bugs=fixed_bugs, server_version=server_version, koreader_sync=sync,
            latency_ms=latency_ms, user=accounts["user"], koreader_user=accounts["koreader_user"],
            admin=accounts["admin"],
        )
    except (UsageError, SeedError, FileNotFoundError) as exc:
        restore()
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    except OSError as exc:
        restore()
        print(f"error: cannot listen on {host}:{port}: {exc}", file=sys.stderr, flush=True)
        return 1

    try:
        if json_output:
            print(_json_line(emu), flush=True)
        else:
            for line in _banner(emu):
                print(line, flush=True)
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
        restore()
    return 0


#: the original entry point's parameters: serve_emulator's first twelve, in order
_ORIGINAL = inspect.Signature(list(inspect.signature(serve_emulator).parameters.values())[:12],
                              return_annotation="int")


def run_emulator_cli(*args: Any, **kwargs: Any) -> int:
    """The original entry point (its signature is kept: the first twelve parameters of
    ``serve_emulator``, which has every option)."""
    _ORIGINAL.bind(*args, **kwargs)  # TypeError for anything the original did not take
    return serve_emulator(*args, **kwargs)


run_emulator_cli.__signature__ = _ORIGINAL  # type: ignore[attr-defined]


def _on_off(value: bool | str) -> bool:
    if isinstance(value, bool):
        return value
    low = value.strip().lower()
    if low not in ("on", "off"):
        raise UsageError(f"--koreader-sync is on or off, got {value!r}")
    return low == "on"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m booklore_sync.emulator",
                                     description="Run the BookLore emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--library", metavar="DIR")
    parser.add_argument("--mode", default="fork", choices=MODES)
    parser.add_argument("--state", metavar="FILE", dest="state_file")
    parser.add_argument("--seed", metavar="FILE")
    parser.add_argument("--user", metavar="NAME:PASSWORD")
    parser.add_argument("--koreader-user", metavar="NAME:PASSWORD")
    parser.add_argument("--admin", metavar="NAME:PASSWORD")
    parser.add_argument("--control", action=argparse.BooleanOptionalAction, default=None,
                        help="serve /__emulator/ (default: only on a loopback address)")
    parser.add_argument("--no-spa-fallback", action="store_true")
    parser.add_argument("--fixed-bugs", action="store_true")
    parser.add_argument("--server-version", metavar="X.Y.Z",
                        help="the release to reproduce (default: the newest of the mode)")
    parser.add_argument("--koreader-sync", choices=("on", "off"), default="off",
                        help="the Sync switch of the KOReader accounts it creates (default off)")
    parser.add_argument("--latency-ms", type=int, default=0, metavar="MS",
                        help="answer every BookLore request after MS milliseconds")
    parser.add_argument("--json", action="store_true", dest="json_output",
                        help="first line: one JSON object with url, mode, version and accounts")
    args = parser.parse_args(argv)
    return serve_emulator(
        host=args.host, port=args.port, library=args.library, mode=args.mode,
        state_file=args.state_file, user=args.user, koreader_user=args.koreader_user,
        admin=args.admin, control=args.control, no_spa_fallback=args.no_spa_fallback,
        fixed_bugs=args.fixed_bugs, seed=args.seed, server_version=args.server_version,
        koreader_sync=args.koreader_sync, latency_ms=args.latency_ms, json_output=args.json_output,
    )

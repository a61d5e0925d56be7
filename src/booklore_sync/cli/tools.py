"""Tools: demo and emulator."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from booklore_sync.cli.app import TOOLS, app
from booklore_sync.cli.common import G


@app.command(rich_help_panel=TOOLS, epilog="Examples:\n\n  booklore-sync demo\n\n"
             "  booklore-sync demo --json")
def demo(
    keep: Optional[Path] = typer.Option(None, "--keep", help="Keep the sample device, home and "
                                        "store in this directory (default: a temporary one, "
                                        "removed at the end)."),
    json_out: bool = typer.Option(False, "--json", help="One JSON object on stdout: scan, sync "
                                  "and what the server holds (the story goes to stderr)."),
) -> None:
    """Run the whole pipeline on generated sample data against the emulator (it switches the demo KOReader account's Sync on, and says so)."""
    from booklore_sync.demo import run_demo

    raise typer.Exit(run_demo(keep, json_out=json_out or G.json))


@app.command(rich_help_panel=TOOLS, epilog="Examples:\n\n  booklore-sync emulator --library "
             "~/Books\n\n  booklore-sync emulator --port 0 --mode booklore")
def emulator(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(6060, "--port", help="Port (0 = a free one)."),
    library: Optional[Path] = typer.Option(None, "--library", help="Serve the book files in DIR."),
    mode: str = typer.Option("fork", "--mode", help="fork (the KOReader-plugin fork), booklore "
                             "(stock BookLore; also 'upstream'), grimmory, or fork-2675."),
    server_version: Optional[str] = typer.Option(None, "--server-version", help="The release to "
                                                 "reproduce, X.Y.Z (default: the newest of the mode)."),
    koreader_sync: str = typer.Option("off", "--koreader-sync", help="on|off: the Sync switch of "
                                      "the KOReader accounts it creates (off, as on a real server)."),
    latency_ms: int = typer.Option(0, "--latency-ms", help="Answer every request after MS ms."),
    json_out: bool = typer.Option(False, "--json", help="First line: one JSON object (url, mode, "
                                  "server_version, accounts)."),
    state: Optional[Path] = typer.Option(None, "--state", help="Keep the state in this JSON file."),
    seed: Optional[Path] = typer.Option(None, "--seed", help="Seed books/accounts from a JSON file."),
    user: str = typer.Option("demo:demo", "--user", help="BookLore user NAME:PASSWORD."),
    koreader_user: str = typer.Option("demo:demo", "--koreader-user",
                                      help="KOReader account NAME:PASSWORD."),
    admin: str = typer.Option("admin:admin", "--admin", help="Admin user NAME:PASSWORD."),
    control: Optional[bool] = typer.Option(
        None, "--control/--no-control",
        help="Serve the /__emulator/ control API (default: only when bound to loopback)."),
    no_spa_fallback: bool = typer.Option(False, "--no-spa-fallback",
                                         help="Unknown GET paths answer 404, not the web page."),
    fixed_bugs: bool = typer.Option(False, "--fixed-bugs", help="Behave as if BookLore's known "
                                    "bugs were fixed."),
) -> None:
    """Run the BookLore emulator (first stdout line: its base URL)."""
    from booklore_sync.emulator.cli import serve_emulator

    raise typer.Exit(serve_emulator(
        host=host, port=port, library=library, mode=mode, state_file=state, user=user,
        koreader_user=koreader_user, admin=admin, control=control,
        no_spa_fallback=no_spa_fallback, fixed_bugs=fixed_bugs, seed=seed,
        server_version=server_version, koreader_sync=koreader_sync, latency_ms=latency_ms,
        json_output=json_out or G.json))

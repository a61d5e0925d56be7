"""``booklore-sync serve``: the Sync & Cache menu as a web page (spec §10).

The web stack (Starlette, uvicorn, Jinja2) is imported only when ``serve``
runs, so the other commands start as fast as before.
"""

from __future__ import annotations

from pathlib import Path


def run_serve(*, source: Path | None = None, host: str = "127.0.0.1", port: int = 8765,
              interval: float = 300.0, password_file: Path | None = None,
              json_out: bool = False) -> int:
    """Serve until SIGINT/SIGTERM; the exit code (0, or 2 for a usage error)."""
    from booklore_sync.web.server import serve

    return serve(source=source, host=host, port=port, interval=interval,
                 password_file=password_file, json_out=json_out)


__all__ = ["run_serve"]

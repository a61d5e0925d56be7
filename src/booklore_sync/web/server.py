"""Start-up and shut-down of ``serve``: checks, the socket, uvicorn, the watch loop."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import socket
import sys
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any

from booklore_sync.config import Config, ConfigError
from booklore_sync.web.security import PASSWORD_ENV, PasswordError, is_loopback, load_password

EXIT_OK, EXIT_USAGE = 0, 2


def _server(config: Any) -> Any:
    """uvicorn, but a signal ends the server and nothing else: ``serve`` exits 0.  (uvicorn
    and the page are imported only once the checks have passed: a refusal is quick.)"""
    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return _Server(config)


def _fail(message: str, json_out: bool) -> int:
    sys.stderr.write(f"Error: {message}\n")
    if json_out:
        sys.stdout.write(json.dumps({"error": {"type": "usage", "message": message},
                                     "exit_code": EXIT_USAGE}) + "\n")
    sys.stdout.flush()
    return EXIT_USAGE


def _bind(host: str, port: int) -> socket.socket:
    name = host.strip("[]")
    family = socket.AF_INET6 if ":" in name else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((name, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _echo(line: str) -> None:
    """Watch cycles go to stderr: stdout carries only the URL line."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def base_url(host: str, port: int) -> str:
    name = host.strip("[]")
    shown = f"[{name}]" if ":" in name else name
    return f"http://{shown}:{port}"


def serve(*, source: Path | None, host: str, port: int, interval: float,
          password_file: Path | None, json_out: bool) -> int:
    try:
        password = load_password(password_file)
    except PasswordError as exc:
        return _fail(str(exc), json_out)
    if password is None and not is_loopback(host):
        return _fail(f"serving on {host} (not a loopback address) needs a password: give "
                     f"--password-file FILE or set {PASSWORD_ENV}", json_out)
    if source is not None and not source.exists():
        return _fail(f"{source} does not exist", json_out)
    try:
        cfg = Config.load()
    except ConfigError as exc:
        return _fail(str(exc), json_out)
    try:
        sock = _bind(host, port)
    except OSError as exc:
        return _fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}", json_out)

    import uvicorn

    from booklore_sync.web import watching
    from booklore_sync.web.app import Settings, create_app

    watch = None
    if source is not None:
        watch = watching.WatchLoop(cfg, source, interval, echo=_echo)
    app = create_app(Settings(host=host, password=password, watch=watch, source=source))
    url = base_url(host, sock.getsockname()[1])
    sys.stdout.write((json.dumps({"url": url}) if json_out else url) + "\n")
    sys.stdout.flush()
    if not json_out:
        sys.stderr.write(f"Serving the Sync & Cache page on {url} (Ctrl-C stops)\n")
        sys.stderr.flush()

    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=3, server_header=False,
                            proxy_headers=False)
    server = _server(config)
    if watch is not None:
        watch.start()
    try:
        server.run(sockets=[sock])
    finally:
        if watch is not None:
            watch.stop()
        sock.close()
    return EXIT_OK

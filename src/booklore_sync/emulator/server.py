"""The HTTP server: standard-library ``ThreadingHTTPServer`` (one thread per connection,
HTTP/1.1 keep-alive), the fault hooks of §7.7 and the request log."""

from __future__ import annotations

import io
import json
import os
import select
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .api import BookLoreApi
from .control import PREFIX, ControlApi
from .core import Identity, Request, Response
from .faults import FaultRule
from .state import REFRESH_TTL, State
from .wire import dumps, format_local

_LOOPBACK = ("127.", "::1", "localhost")


def is_loopback(host: str) -> bool:
    return host.startswith(_LOOPBACK) or host == "0:0:0:0:0:0:0:1"


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr: tuple[str, int], emulator: Emulator) -> None:
        self.emulator = emulator
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        super().__init__(addr, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (OSError, ValueError)):
            return  # a client that went away, or a connection released by stop()
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "BookLore-Emulator"
    sys_version = ""
    timeout = 300  # an idle keep-alive connection is closed after this
    disable_nagle_algorithm = True
    server: _HttpServer

    # ---- connection tracking (so stop() can release every connection)
    def setup(self) -> None:
        super().setup()
        self.server.emulator._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.server.emulator._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET  # noqa: N815

    # ---- reading
    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(length) if length > 0 else b""

    # ---- writing
    def _send(self, resp: Response) -> bool:
        try:
            self.send_response(resp.status)
            if resp.content_type:
                self.send_header("Content-Type", resp.content_type)
            for key, value in resp.headers:
                self.send_header(key, value)
            if resp.status not in (204, 304) and not (100 <= resp.status < 200):
                self.send_header("Content-Length", str(len(resp.body)))
            # headers and body in one write (no small-segment stalls)
            buffer: list[bytes] = self._headers_buffer  # type: ignore[attr-defined]
            buffer.append(b"\r\n")
            if resp.body and self.command != "HEAD" and resp.status not in (204, 304):
                buffer.append(resp.body)
            data = b"".join(buffer)
            buffer.clear()
            self.wfile.write(data)
            self.wfile.flush()
            return True
        except OSError:
            self.close_connection = True
            return False

    def _drop(self, reset: bool) -> None:
        """Close the connection with no status line (FIN; or RST when ``reset``)."""
        self.close_connection = True
        try:
            if reset:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.rfile.close()
                self.wfile.close()
                self.connection.close()  # the last reference: RST instead of FIN
                self.rfile, self.wfile = io.BytesIO(), io.BytesIO()
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _hang(self, rule: FaultRule) -> bool:
        """Hold the connection until the client closes it, the rule is deleted, the emulator
        stops or ``hang_ms`` passes.  True when the client is (apparently) still there."""
        stop = self.server.emulator._stopping
        deadline = None if rule.hang_ms is None else time.monotonic() + rule.hang_ms / 1000
        conn = self.connection
        while not stop.is_set() and not rule.deleted.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                return True
            try:
                readable, _, _ = select.select([conn], [], [], 0.05)
                if readable and not conn.recv(1, socket.MSG_PEEK):
                    return False  # the client closed the connection
                if readable:
                    time.sleep(0.05)
            except (OSError, ValueError):
                return False
        return False

    def _fault_response(self, rule: FaultRule) -> Response:
        emu = self.server.emulator
        if not rule.has_body:
            body: Any = {"status": rule.status, "message": "Injected fault",
                         "timestamp": format_local(emu.state.clock.now())}
        else:
            body = rule.body
        headers = dict(rule.headers)
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        if body is None:
            data = b""
        elif isinstance(body, str):
            data = body.encode("utf-8")
            if ctype is None:
                ctype = "text/html" if body.lstrip().startswith("<") else "text/plain"
        else:
            data = dumps(body)
            ctype = ctype or "application/json"
        return Response(rule.status, data, ctype, list(headers.items()))

    # ---- one request
    def _serve(self) -> None:
        emu = self.server.emulator
        arrived = time.monotonic()
        body = self._read_body()
        split = urlsplit(self.path)
        path = unquote(split.path) or "/"
        req = Request(
            method=self.command, path=path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=self.headers, body=body, client_ip=self.client_address[0],
        )
        if emu.control_enabled and (path == PREFIX or path.startswith(PREFIX + "/")):
            self._send(emu.control.handle(req))
            return
        state = emu.state
        rule = state.faults.take(self.command, path)
        entry: dict[str, Any] = {
            "time": state.clock.now().isoformat().replace("+00:00", "Z"),
            "method": self.command, "path": path, "query": split.query,
            "status": None, "outcome": "responded", "fault": rule.id if rule else None,
        }
        action = rule.action if rule else None
        if rule is not None and rule.delay_ms:
            emu._stopping.wait(rule.delay_ms / 1000)
        identity = Identity()
        resp: Response | None = None
        if rule is not None and action in ("status", "drop", "hang"):
            if action == "status":
                resp = self._fault_response(rule)
        else:
            resp, identity = emu.api.handle(req)
            if rule is not None and action == "commit_then_status":
                resp = self._fault_response(rule)
        # the request log
        self._describe(entry, req, identity)
        if rule is not None and action in ("drop", "commit_then_drop"):
            entry["outcome"] = "dropped"
            state.record(entry)
            self._drop(rule.reset)
            return
        if rule is not None and action in ("hang", "commit_then_hang"):
            entry["outcome"] = "hung"
            state.record(entry)
            still_there = self._hang(rule)
            if still_there and action == "commit_then_hang" and resp is not None:
                self._send(resp)  # the answer, after the client's timeout
            else:
                self._drop(False)
            return
        assert resp is not None
        entry["status"] = resp.status
        state.record(entry)
        if state.latency_ms:  # the configured latency: every answer no sooner than this
            wait = arrived + state.latency_ms / 1000 - time.monotonic()
            if wait > 0:
                emu._stopping.wait(wait)
        self._send(resp)

    def _describe(self, entry: dict[str, Any], req: Request, identity: Identity) -> None:
        sent = []
        has_ko = bool(req.header("x-auth-user") or req.header("x-auth-key"))
        auth_header = req.header("Authorization") or ""
        has_bearer = auth_header.startswith("Bearer ")
        if has_ko:
            sent.append("koreader")
        if has_bearer:
            sent.append("bearer")
        if identity.scheme != "none":
            entry["auth"], entry["username"] = identity.scheme, identity.username
        elif has_bearer:
            from . import jwt

            claims = jwt.decode_unverified(auth_header[7:].strip()) or {}
            entry["auth"], entry["username"] = "bearer", claims.get("sub")
        elif has_ko:
            entry["auth"], entry["username"] = "koreader", req.header("x-auth-user")
        else:
            entry["auth"], entry["username"] = "none", None
        entry["authenticated"] = identity.scheme != "none"
        entry["sent"] = sent
        parsed = req.parsed
        if parsed is None and req.body and not req.parse_failed:
            try:
                parsed = json.loads(req.body)
            except ValueError:
                parsed = None
        entry["body"] = parsed


class Emulator:
    """A running emulator.  ``base_url``, ``state`` (test helpers), ``stop()``; a context
    manager."""

    def __init__(self, state: State, host: str = "127.0.0.1", port: int = 0,
                 control: bool | None = None) -> None:
        self.state = state
        self.api = BookLoreApi(state)
        self.control = ControlApi(state)
        self.control_enabled = is_loopback(host) if control is None else bool(control)
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._conn_lock = threading.Lock()
        self._server = _HttpServer((host, port), self)
        self.host = host
        self.port = self._server.server_address[1]
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
            name=f"booklore-emulator:{self.port}", daemon=True)
        self._saver = threading.Thread(target=self._save_loop, name="booklore-emulator-saver", daemon=True)
        self._stopped = False
        self._thread.start()
        if state.state_file:
            self._saver.start()

    # ---- lifecycle
    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._conn_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _save_loop(self) -> None:
        while not self._stopping.wait(0.5):
            if self.state.dirty:
                try:
                    self.state.save()
                except OSError:
                    pass

    def stop(self) -> None:
        """Stop serving (new connections are refused), release hung and idle connections
        and write the state file."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        if self._saver.is_alive():
            self._saver.join(timeout=5)
        if self.state.state_file:
            self.state.save()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- conveniences (the same operations are on ``state``)
    def accounts(self) -> dict[str, tuple[str, str] | None]:
        return dict(self.state.accounts)

    def url(self, path: str) -> str:
        return self.base_url + path

    def set_mode(self, mode: str, server_version: str | None = None) -> None:
        self.state.set_mode(mode, server_version)

    def reset(self) -> None:
        self.state.reset()

    def inject_fault(self, path: str, action: str = "status", **spec: Any) -> dict[str, Any]:
        return self.state.inject_fault(path, action, **spec)

    def request_log(self, since: int = 0) -> list[dict[str, Any]]:
        return self.state.request_log(since)


def start_emulator(
    mode: str = "fork",
    library: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    state_file: str | os.PathLike[str] | None = None,
    user: tuple[str, str] | None = ("demo", "demo"),
    koreader_user: tuple[str, str] | None = ("demo", "demo"),
    admin: tuple[str, str] | None = ("admin", "admin"),
    books: list[dict[str, Any]] | None = None,
    *,
    seed: dict[str, Any] | str | os.PathLike[str] | None = None,
    control: bool | None = None,
    spa_fallback: bool = True,
    fixed_bugs: bool = False,
    access_token_ttl: int | None = None,
    refresh_token_ttl: int = REFRESH_TTL,
    server_version: str | None = None,
    koreader_sync: bool = True,
    latency_ms: int = 0,
) -> Emulator:
    """Start an emulator in this process (a background thread) and return it once it
    listens.  ``port=0`` picks a free port; ``books`` are seed book entries added after
    the library's; the KOReader account is linked to ``user``.

    ``mode``: fork, booklore (``upstream``), grimmory or fork-2675; ``server_version``:
    the release to reproduce (default the newest of the mode).  ``koreader_sync``: the
    Sync switch of the KOReader accounts it creates — on here, for tests; the command
    line's default is off, as on a real server.  ``access_token_ttl`` None = the
    flavour's (10 h; grimmory 2 h).  ``latency_ms``: answer every request after that."""
    state = State(
        mode=mode, server_version=server_version, user=user, koreader_user=koreader_user,
        admin=admin, library=library, seed=seed, books=books, state_file=state_file,
        bug_compat=not fixed_bugs, spa_fallback=spa_fallback, koreader_sync=koreader_sync,
        latency_ms=latency_ms, access_token_ttl=access_token_ttl,
        refresh_token_ttl=refresh_token_ttl,
    )
    return Emulator(state, host=host, port=port, control=control)

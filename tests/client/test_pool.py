"""The client's connection pool (booklore/pool.py): a request's head and body leave in
one send, errors come out as httpx's, and plain HTTP never builds a TLS context."""

from __future__ import annotations

import socket
import threading

import httpcore
import httpx
import pytest

from booklore_sync.booklore.pool import PooledTransport, _HeldWrites

LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=2, keepalive_expiry=2.0)


class RecordingStream(httpcore.NetworkStream):
    def __init__(self, answer: bytes = b"", fail_write: Exception | None = None) -> None:
        self.writes: list[tuple[bytes, float | None]] = []
        self.answer = answer
        self.fail_write = fail_write
        self.closed = False

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if self.fail_write is not None:
            raise self.fail_write
        self.writes.append((buffer, timeout))

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        out, self.answer = self.answer[:max_bytes], self.answer[max_bytes:]
        return out

    def close(self) -> None:
        self.closed = True


def test_writes_are_held_until_the_answer_is_read_then_sent_at_once():
    raw = RecordingStream(answer=b"HTTP/1.1 200 OK\r\n")
    held = _HeldWrites(raw)
    held.write(b"POST / HTTP/1.1\r\n\r\n", timeout=3.0)
    held.write(b"", timeout=3.0)
    held.write(b'{"a": 1}', timeout=4.0)
    assert raw.writes == []
    assert held.read(100, timeout=1.0) == b"HTTP/1.1 200 OK\r\n"
    assert raw.writes == [(b'POST / HTTP/1.1\r\n\r\n{"a": 1}', 4.0)]
    held.read(100)
    assert len(raw.writes) == 1  # nothing held: nothing more sent


def test_a_failed_send_surfaces_at_the_read_as_httpcore_raised_it():
    held = _HeldWrites(RecordingStream(fail_write=httpcore.WriteError("broken pipe")))
    held.write(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(httpcore.WriteError):
        held.read(100)


def test_closing_drops_what_was_held():
    raw = RecordingStream()
    held = _HeldWrites(raw)
    held.write(b"half a request")
    held.close()
    assert raw.closed and raw.writes == []


class OneShotServer:
    """A loopback server that reads each request with as many recv calls as it takes
    and records them, then answers 200 with a small JSON body (keep-alive)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.chunks: list[list[bytes]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            buf = b""
            while True:
                got: list[bytes] = []
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    got.append(data)
                    buf += data
                head, _, rest = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    got.append(data)
                    rest += data
                buf = rest[length:]
                self.chunks.append(got)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 2\r\n\r\n{}")

    def close(self) -> None:
        self.sock.close()


def test_requests_over_the_pool_reach_a_real_server_head_and_body_together():
    server = OneShotServer()
    try:
        with httpx.Client(transport=PooledTransport(LIMITS), timeout=5) as client:
            for n in range(3):
                resp = client.post(f"http://127.0.0.1:{server.port}/x", json={"n": n})
                assert resp.status_code == 200 and resp.json() == {}
        # one connection, kept alive; each request arrived whole in its first segment
        assert len(server.chunks) == 3
        assert all(b'"n"' in got[0] for got in server.chunks)
    finally:
        server.close()


def test_plain_http_builds_no_tls_pool():
    transport = PooledTransport(LIMITS)
    server = OneShotServer()
    try:
        with httpx.Client(transport=transport, timeout=5) as client:
            client.get(f"http://127.0.0.1:{server.port}/")
        assert transport._tls is None
    finally:
        server.close()


def test_connection_refused_is_httpx_connect_error():
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with httpx.Client(transport=PooledTransport(LIMITS), timeout=5) as client, \
            pytest.raises(httpx.ConnectError):
        client.get(f"http://127.0.0.1:{port}/")


def test_https_goes_to_a_tls_pool_made_on_first_use():
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]

    def accept_and_drop() -> None:
        conn, _ = sock.accept()
        conn.close()  # no TLS handshake: the client fails to connect

    thread = threading.Thread(target=accept_and_drop, daemon=True)
    thread.start()
    transport = PooledTransport(LIMITS)
    try:
        with httpx.Client(transport=transport, timeout=5) as client, \
                pytest.raises(httpx.ConnectError):
            client.get(f"https://127.0.0.1:{port}/")
        assert transport._tls is not None
    finally:
        sock.close()


class CookieServer(OneShotServer):
    """Answers the first request with a cookie and records every request's head."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        super().__init__()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                self.heads.append(head.lower())
                cookie = b"Set-Cookie: route=a1; Path=/\r\n" if len(self.heads) == 1 else b""
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + cookie
                             + b"Content-Length: 2\r\n\r\n{}")


def test_the_direct_path_keeps_cookies_a_server_sets(monkeypatch):
    from booklore_sync.booklore.transport import Transport

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    server = CookieServer()
    t = Transport(f"http://127.0.0.1:{server.port}")
    try:
        assert t._direct is not None
        for _ in range(3):
            assert t.exchange("GET", "/api/v1/x", idempotent=True).json() == {}
        assert b"cookie:" not in server.heads[0]
        assert all(b"cookie: route=a1" in head for head in server.heads[1:])
    finally:
        t.close()
        server.close()


def test_a_proxy_in_the_environment_leaves_requests_to_httpx(monkeypatch):
    from booklore_sync.booklore.transport import Transport

    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    t = Transport("http://books.example:6060")
    try:
        assert t._direct is None
    finally:
        t.close()

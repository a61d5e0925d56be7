"""The connection pool under the client's ``httpx.Client``: httpcore's own pool, with
two changes that cost nothing in behaviour.

* **One send per request.**  httpcore writes a request's head and its body with
  separate ``send`` calls (TCP_NODELAY is on, so they leave as two packets); the
  server then wakes up twice per request, once to find the head incomplete.  Here a
  connection holds its writes until the next read — the moment the request is
  complete and its answer is awaited — and sends them at once.  A failure to send
  surfaces then, as the same ``WriteError``/``WriteTimeout`` httpcore would raise
  (the client classifies it as before: the request may have arrived, booklore-api.md
  §5.2).
* **No certificate store for plain HTTP.**  ``https://`` requests go to a second pool
  made on first use, with httpx's own TLS context (``verify=True``, honouring
  ``SSL_CERT_FILE``/``SSL_CERT_DIR`` as httpx does); a run against an ``http://``
  server never loads the CA bundle (~50 ms per client).

Proxies from the environment are not affected: ``httpx.Client`` mounts its own
transports for them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

__all__ = ["PooledTransport"]

# httpcore's errors → httpx's (the most specific match wins), as httpx maps them
_ERRORS: tuple[tuple[type[Exception], type[httpx.HTTPError]], ...] = (
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
)


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        mapped: type[httpx.HTTPError] | None = None
        for source, target in _ERRORS:
            if isinstance(exc, source) and (mapped is None or issubclass(target, mapped)):
                mapped = target
        if mapped is None:
            raise
        raise mapped(str(exc)) from exc


class _HeldWrites(httpcore.NetworkStream):
    """A connection whose writes wait for the next read (or TLS start) and then leave
    in one send."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream
        self._held: list[bytes] = []
        self._timeout: float | None = None

    def _send(self) -> None:
        if self._held:
            data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
            self._held = []
            self._stream.write(data, self._timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            self._held.append(buffer)
            self._timeout = timeout

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._send()
        return self._stream.read(max_bytes, timeout)

    def close(self) -> None:
        self._held = []  # a request never completed is not sent while closing
        self._stream.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        self._send()
        return _HeldWrites(self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _HeldWritesBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _HeldWrites(self._backend.connect_tcp(
            host, port, timeout=timeout, local_address=local_address,
            socket_options=socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None
                            ) -> httpcore.NetworkStream:  # pragma: no cover - not used
        return _HeldWrites(self._backend.connect_unix_socket(
            path, timeout=timeout, socket_options=socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _ResponseStream(httpx.SyncByteStream):
    def __init__(self, stream: Iterable[bytes]) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _httpx_errors():
            yield from self._stream

    def close(self) -> None:
        close = getattr(self._stream, "close", None)
        if close is not None:
            close()


class PooledTransport(httpx.BaseTransport):
    """HTTP/1.1 keep-alive pools (one for ``http://``, one made on first use for
    ``https://``) for one ``httpx.Client``."""

    def __init__(self, limits: httpx.Limits, *, trust_env: bool = True) -> None:
        self._limits = limits
        self._trust_env = trust_env
        self._plain = self._pool(None)  # never asked for TLS: https goes to _tls
        self._tls: httpcore.ConnectionPool | None = None
        self._lock = threading.Lock()

    def _pool(self, ssl_context: Any) -> httpcore.ConnectionPool:
        return httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=self._limits.max_connections,
            max_keepalive_connections=self._limits.max_keepalive_connections,
            keepalive_expiry=self._limits.keepalive_expiry,
            network_backend=_HeldWritesBackend(),
        )

    def _tls_pool(self) -> httpcore.ConnectionPool:
        with self._lock:
            if self._tls is None:
                self._tls = self._pool(httpx.create_ssl_context(verify=True,
                                                                trust_env=self._trust_env))
            return self._tls

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        url = request.url
        pool = self._tls_pool() if url.scheme == "https" else self._plain
        req = httpcore.Request(
            method=request.method,
            url=httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port,
                             target=url.raw_path),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            resp = pool.handle_request(req)
        assert isinstance(resp.stream, Iterable)
        return httpx.Response(status_code=resp.status, headers=resp.headers,
                              stream=_ResponseStream(resp.stream), extensions=resp.extensions)

    def close(self) -> None:
        with _httpx_errors():
            self._plain.close()
            if self._tls is not None:
                self._tls.close()

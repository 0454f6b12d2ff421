"""Stand-ins for an outside HTTP service in fault tests: a server on 127.0.0.1 that answers
every request with a fixed error status, one that accepts connections and never answers, and
a port with nothing listening. Each records what reached it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class StandIn:
    """A running stand-in: its URL and the `(method, path)` of every request it received."""

    url: str
    requests: list[tuple[str, str]] = field(default_factory=list)


@contextmanager
def failing_server(status: int, body: bytes = b"Service Unavailable") -> Iterator[StandIn]:
    """An HTTP server that answers every request with `status` and a plain-text `body`."""
    record: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            record.append((self.command, self.path))
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _answer

        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield StandIn(f"http://127.0.0.1:{server.server_address[1]}", record)
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def silent_server() -> Iterator[StandIn]:
    """A port that accepts TCP connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    try:
        yield StandIn(f"http://127.0.0.1:{sock.getsockname()[1]}")
    finally:
        sock.close()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@dataclass
class GatedProxy:
    """A forwarding proxy that holds every request while its gate is closed (a registry that
    has become slow). `held` counts the requests waiting at the gate right now; `peak_held` the
    most that ever waited at once."""

    url: str
    gate: threading.Event
    requests: list[tuple[str, str]] = field(default_factory=list)
    held: int = 0
    peak_held: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close_gate(self) -> None:
        self.gate.clear()

    def open_gate(self) -> None:
        self.gate.set()


_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@contextmanager
def gated_proxy(upstream: str) -> Iterator[GatedProxy]:
    """An HTTP proxy on 127.0.0.1 in front of `upstream`, its gate open at first."""
    import httpx

    proxy = GatedProxy(url="", gate=threading.Event())
    proxy.gate.set()
    http = httpx.Client(base_url=upstream, timeout=120)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            with proxy.lock:
                proxy.requests.append((self.command, self.path))
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if not proxy.gate.is_set():
                with proxy.lock:
                    proxy.held += 1
                    proxy.peak_held = max(proxy.peak_held, proxy.held)
                proxy.gate.wait()
                with proxy.lock:
                    proxy.held -= 1
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            answer = http.request(self.command, self.path, content=body, headers=headers)
            self.send_response(answer.status_code)
            for key, value in answer.headers.items():
                if key.lower() not in _HOP_BY_HOP | {"content-encoding"}:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _forward

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.gate.set()  # release anything still held
        server.shutdown()
        server.server_close()
        http.close()

"""A fault-injecting HTTP proxy on 127.0.0.1, put in front of the GCS emulator by the tests.

Clients are pointed at the proxy (``STORAGE_EMULATOR_HOST``); it forwards each request to
the emulator on a fresh connection and answers with ``Connection: close``. The emulator's
own address, which it writes into upload session URLs (``Location``) and object links
(``mediaLink``), is rewritten to the proxy's so that every byte goes through it.

Faults, applied to the requests that match, in order:

``reset``      the connection is closed before the request is read (connection reset)
``refuse``     the proxy stops listening for ``seconds``: connections are refused
``503``        ``503 Service Unavailable`` without contacting the emulator
``slow``       the emulator's answer is held back for ``seconds`` (below the client's timeout: it waits)
``stall``      the request reaches the emulator, its answer is held for ``seconds`` and then
               dropped (above the client's timeout: the client gives up, the server did the work)
``drop``       half of the request body is sent to the emulator, then both connections are
               closed (an upload cut off mid-way)

A :class:`FaultPlan` is a list of ``(matcher, fault)`` items consumed once each, or a seeded
random plan (:meth:`FaultPlan.random`) that gives each request a fault with probability ``p``.
Matchers: ``"any"``, ``"upload"`` (requests under ``/upload/``), ``"download"`` (``alt=media``),
``"list"`` (object listings), ``"metadata"`` (other JSON API calls).
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = ("reset", "refuse", "503", "slow", "stall", "drop")
KINDS = ("upload", "download", "list", "metadata")


def request_kind(method: str, path: str) -> str:
    parsed = urllib.parse.urlsplit(path)
    query = urllib.parse.parse_qs(parsed.query)
    if parsed.path.startswith("/upload/"):
        return "upload"
    if query.get("alt") == ["media"] or parsed.path.startswith("/download/"):
        return "download"
    if method == "GET" and parsed.path.rstrip("/").endswith("/o"):
        return "list"
    return "metadata"


@dataclass
class FaultPlan:
    items: list[tuple[str, str, float]] = field(default_factory=list)  # (matcher, fault, seconds)
    rng: random.Random | None = None
    p: float = 0.0
    allowed: tuple[str, ...] = FAULTS
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, method path, fault)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def random(cls, seed: int, p: float = 0.3, faults: tuple[str, ...] = FAULTS) -> FaultPlan:
        return cls(rng=random.Random(seed), p=p, allowed=faults)

    def next_fault(self, kind: str, request: str) -> tuple[str, float] | None:
        with self._lock:
            for i, (matcher, fault, seconds) in enumerate(self.items):
                if matcher in ("any", kind):
                    del self.items[i]
                    self.log.append((kind, request, fault))
                    return fault, seconds
            if self.rng is not None and self.rng.random() < self.p:
                options = [f for f in self.allowed if f != "drop" or kind == "upload"]
                fault = self.rng.choice(options)
                seconds = {"refuse": 1.0, "slow": 0.5, "stall": 2.5}.get(fault, 0.0)
                self.log.append((kind, request, fault))
                return fault, seconds
        return None


class FaultProxy:
    """``FaultProxy(upstream_url, plan).start()``; ``url`` is what clients use; ``stop()`` ends it."""

    def __init__(self, upstream: str, plan: FaultPlan | None = None):
        self.upstream = upstream.rstrip("/")
        self.plan = plan or FaultPlan()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ life cycle

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        with self._lock:
            server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
            server.daemon_threads = True
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def refuse_for(self, seconds: float) -> None:
        """Stop listening now (connections are refused) and listen again after ``seconds``."""
        threading.Thread(target=self.stop, daemon=True).start()
        timer = threading.Timer(seconds, self.start)
        timer.daemon = True
        timer.start()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _reset(self) -> None:
        # SO_LINGER 0: close with RST, what a crashed or overloaded front end does.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _proxy(self) -> None:
        owner = self.owner
        kind = request_kind(self.command, self.path)
        fault = owner.plan.next_fault(kind, f"{self.command} {self.path.split('?')[0]}")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        name, seconds = fault if fault else (None, 0.0)
        if name == "reset":
            return self._reset()
        if name == "refuse":
            self._reset()
            owner.refuse_for(seconds or 2.0)
            return None
        if name == "503":
            payload = b'{"error": {"code": 503, "message": "injected: service unavailable"}}'
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
            self.close_connection = True
            return None
        up = urllib.parse.urlsplit(owner.upstream)
        conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        headers["Host"] = up.netloc
        headers["Connection"] = "close"
        if name == "drop" and body:
            conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for key, value in headers.items():
                conn.putheader(key, value)
            conn.endheaders()
            conn.send(body[: len(body) // 2])
            conn.close()
            return self._reset()
        conn.request(self.command, self.path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        conn.close()
        data = data.replace(owner.upstream.encode(), owner.url.encode())
        if name == "stall":
            time.sleep(seconds)
            return self._reset()
        if name == "slow":
            time.sleep(seconds)
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() in ("content-length", "transfer-encoding", "connection", "date", "server"):
                continue
            self.send_header(key, value.replace(owner.upstream, owner.url))
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.close_connection = True
        return None

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _proxy

"""One small HTTP server per tenant bridge, bound to fe80::a9fe:a9fe on that bridge only.

Binding per bridge (instead of [::]) keeps the service off the host's underlay and other links,
and tells each request which network it came from. The bind names the bridge by its index as
scope id: the standard IPv6 sockets API (RFC 3493), on FreeBSD as on Linux, so no driver. VMs are
hostile: connections are capped per bridge and per calling address (so one VM cannot take its
network's share), idle ones time out, and request lines and headers are bounded by http.server.
"""

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from ucloud_meta.documents import NOT_FOUND, TEXT, Answer

log = logging.getLogger(__name__)

# What socketserver hands a server per request: a TCP server's is its connected socket.
Request = socket.socket | tuple[bytes, socket.socket]

MAX_CONNECTIONS = 64  # per bridge
MAX_PER_CALLER = 8  # per source address: one VM cannot take its whole network's share
IDLE_TIMEOUT = 10.0  # seconds a connection may wait between requests


class Service(Protocol):
    def identify(self, bridge: str, source: str) -> object | None:
        """The calling NIC, checked once per connection (its source cannot change)."""

    def answer(self, caller: object, path: str) -> Answer:
        """The document at `path` for that caller."""


class _Handler(BaseHTTPRequestHandler):
    server: "BridgeServer"
    protocol_version = "HTTP/1.1"  # keep-alive: cloud-init fetches many small documents
    # Headers and body leave in one segment (flushed per request by http.server): written
    # apart, Nagle's algorithm and the client's delayed ACK cost 40 ms per keep-alive request.
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT

    def version_string(self) -> str:
        return "ucloud-meta"

    def do_GET(self) -> None:  # http.server names handlers after the method
        self._reply(with_body=True)

    def do_HEAD(self) -> None:
        self._reply(with_body=False)

    def do_PUT(self) -> None:
        # EC2's IMDSv2 token request: a 404 tells cloud-init to use plain GETs. A body is not
        # read, so the connection cannot be used for another request.
        self.close_connection = True
        self._send(NOT_FOUND, with_body=True)

    def setup(self) -> None:
        super().setup()
        self._caller: object | None = None

    def _reply(self, with_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        service = self.server.service
        try:
            if self._caller is None:
                self._caller = service.identify(self.server.bridge, self.client_address[0])
            answer = NOT_FOUND if self._caller is None else service.answer(self._caller, path)
        except Exception:
            log.exception("answering %s on %s failed", path[:100], self.server.bridge)
            answer = Answer(503, TEXT, b"metadata unavailable, try again\n")
        self._send(answer, with_body)

    def _send(self, answer: Answer, with_body: bool) -> None:
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if with_body:
            self.wfile.write(answer.body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.server.bridge, format % args)


class BridgeServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, bridge: str, address: str, port: int, service: Service) -> None:
        self.bridge = bridge
        self.service = service
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._per_caller: dict[str, int] = {}  # source address -> open connections
        self._lock = threading.Lock()
        self.index = socket.if_nametoindex(bridge)
        super().__init__((address, port, 0, self.index), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, name=f"meta-{bridge}")
        self._thread.daemon = True
        self._thread.start()

    def process_request(self, request: Request, client_address: tuple) -> None:
        source = client_address[0]
        with self._lock:
            admitted = self._per_caller.get(source, 0) < MAX_PER_CALLER
            if admitted:
                admitted = self._slots.acquire(blocking=False)
            if admitted:
                self._per_caller[source] = self._per_caller.get(source, 0) + 1
        if not admitted:
            self.shutdown_request(request)  # too many open connections: this caller or network
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Request, client_address: tuple) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                left = self._per_caller[client_address[0]] - 1
                if left:
                    self._per_caller[client_address[0]] = left
                else:
                    del self._per_caller[client_address[0]]
            self._slots.release()

    def bound(self) -> bool:
        """False once the bridge is gone or was made anew (another index): serve it again."""
        try:
            return socket.if_nametoindex(self.bridge) == self.index
        except OSError:
            return False

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(timeout=2)

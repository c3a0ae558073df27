"""One small HTTP server per tenant bridge, bound to fe80::a9fe:a9fe on that bridge only.

Binding per bridge (instead of [::]) keeps the service off the host's underlay and other links,
and tells each request which network it came from. The bind names the bridge by its index as
scope id: the standard IPv6 sockets API (RFC 3493), on FreeBSD as on Linux, so no driver. VMs are
hostile: connections are capped per bridge, per calling address and per VM (so one VM cannot
take its network's share with many connections or many addresses), idle ones time out, an
unknown caller's connection is closed after its 404, and the request line (414), the request
head's size and the number of headers (431) are bounded well below http.server's own limits
(64 KiB per line, 100 headers): cloud-init sends a short line and a handful of headers.
"""

import http.client
import logging
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BufferedIOBase
from typing import Protocol

from ucloud_meta.documents import NOT_FOUND, TEXT, Answer

log = logging.getLogger(__name__)

# What socketserver hands a server per request: a TCP server's is its connected socket.
Request = socket.socket | tuple[bytes, socket.socket]

MAX_CONNECTIONS = 64  # per bridge
MAX_PER_CALLER = 8  # per source address: one VM cannot take its whole network's share
MAX_PER_VM = 8  # per VM, whatever addresses it calls from
IDLE_TIMEOUT = 10.0  # seconds a connection may wait between requests
MAX_REQUEST_LINE = 2048  # bytes, else 414
MAX_HEAD = 8192  # bytes of header lines per request, else 431
MAX_HEADERS = 32  # header lines per request, else 431


class _HeadBudget:
    """The connection's reader while a request's headers are parsed: past `budget` bytes it
    raises http.client's LineTooLong, which http.server answers with 431."""

    def __init__(self, source: BufferedIOBase, budget: int) -> None:
        self.source = source
        self.budget = budget

    def readline(self, limit: int = -1) -> bytes:
        if self.budget <= 0:
            raise http.client.LineTooLong("request head")
        line = self.source.readline(self.budget + 1 if limit < 0 else min(limit, self.budget + 1))
        self.budget -= len(line)
        if self.budget < 0:
            raise http.client.LineTooLong("request head")
        return line


class Caller(Protocol):
    @property
    def vm(self) -> str:
        """The calling VM's uuid: connections are counted per VM."""


class Service(Protocol):
    def identify(self, bridge: str, source: str) -> Caller | None:
        """The calling NIC, checked once per connection (its source cannot change)."""

    def answer(self, caller: Caller, path: str) -> Answer:
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
        self._caller: Caller | None = None
        self._vm: str | None = None  # the VM this connection counts against
        self._source = self.rfile

    def finish(self) -> None:
        if self._vm is not None:
            self.server.release_vm(self._vm)
        super().finish()

    def handle_one_request(self) -> None:
        """http.server's, with this server's bounds on the request line and head."""
        self.raw_requestline = self._source.readline(MAX_REQUEST_LINE + 1)
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > MAX_REQUEST_LINE:
            self.requestline = self.request_version = self.command = ""
            self._refuse(HTTPStatus.REQUEST_URI_TOO_LONG)
            return
        self.rfile = _HeadBudget(self._source, MAX_HEAD)  # type: ignore[assignment]
        try:
            if not self.parse_request():  # answered 400/431/505 itself
                self.close_connection = True
                return
        finally:
            self.rfile = self._source
        if len(self.headers) > MAX_HEADERS:
            self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many headers")
            return
        handler = getattr(self, f"do_{self.command}", None)
        if handler is None:
            self._refuse(HTTPStatus.NOT_IMPLEMENTED, f"unsupported method ({self.command[:20]!r})")
            return
        handler()
        self.wfile.flush()

    def _refuse(self, status: HTTPStatus, message: str | None = None) -> None:
        self.send_error(status, message)
        self.close_connection = True

    def _reply(self, with_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        service = self.server.service
        try:
            if self._caller is None:
                self._caller = service.identify(self.server.bridge, self.client_address[0])
            if self._caller is None:
                self.close_connection = True  # nothing here for strangers: free the slot
                answer = NOT_FOUND
            elif self._vm is None and not self._count(self._caller):
                return  # this VM holds its share of connections already: closed, no answer
            else:
                answer = service.answer(self._caller, path)
        except Exception:
            log.exception("answering %s on %s failed", path[:100], self.server.bridge)
            answer = Answer(503, TEXT, b"metadata unavailable, try again\n")
        self._send(answer, with_body)

    def _count(self, caller: Caller) -> bool:
        if not self.server.claim_vm(caller.vm):
            self.close_connection = True
            return False
        self._vm = caller.vm
        return True

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
        self._per_vm: dict[str, int] = {}  # VM -> open connections identified as it
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

    def claim_vm(self, vm: str) -> bool:
        """Count one more connection of `vm`; False past its share."""
        with self._lock:
            if self._per_vm.get(vm, 0) >= MAX_PER_VM:
                return False
            self._per_vm[vm] = self._per_vm.get(vm, 0) + 1
            return True

    def release_vm(self, vm: str) -> None:
        with self._lock:
            left = self._per_vm[vm] - 1
            if left:
                self._per_vm[vm] = left
            else:
                del self._per_vm[vm]

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

"""Serving the site with uvicorn: on a socket bound here (so a taken port is one clear `OSError`, before anything
starts), with two guards uvicorn lacks.

- A deadline for each request's head: a connection that sends nothing, or trickles its request a byte at a time
  (slowloris), is closed `timeout` seconds after it opened or after its last answer. uvicorn only closes idle
  connections after an answer, so each such connection would otherwise hold a file descriptor for ever.
- The security headers on the 400 that uvicorn itself sends for a malformed request, which no app sees.

Hostile load: the listen backlog takes a burst of LISTEN_BACKLOG connections; endpoints run in a thread pool, and
photos are decoded for thumbnails one per core at a time (`PhotoSite`), so a flood of thumbnail requests queues
rather than filling the memory.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from pathlib import Path

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from jerseynum.web.guard import SECURITY_HEADERS

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 1024  # connections the kernel queues before accept()
REQUEST_TIMEOUT = 10.0  # seconds for a request's head to arrive


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for each request's head, and secured 400 answers."""

    request_timeout = REQUEST_TIMEOUT  # set per server on a subclass
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_deadline()  # the next request on this connection gets its own deadline

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _arm_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.request_timeout, self._close_if_no_request)

    def _close_if_no_request(self) -> None:
        # A request whose head arrived in time has a cycle still answering it: that one is left alone.
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"connection", b"close"),
                   *((name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items())]  # fmt: skip
        for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                      h11.Data(data=msg.encode("ascii")), h11.EndOfMessage()):  # fmt: skip
            self.transport.write(self.conn.send(event))
        self.transport.close()


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: a free one) and listening; raises OSError (a taken port, an address
    that is not this machine's)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]  # fmt: skip
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait for TIME_WAIT
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


class WebServer:
    """The site on a bound socket: `serve_forever()` in this thread (Ctrl-C stops it), or `start()` in a
    background one and `stop()`."""

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, timeout: float = REQUEST_TIMEOUT) -> None:
        self.socket = listening_socket(host, port)
        protocol = type("BoundProtocol", (GuardedH11Protocol,), {"request_timeout": timeout})
        config = uvicorn.Config(app, http=protocol, lifespan="off", log_config=None, access_log=False,
                                timeout_keep_alive=max(1, round(timeout)), backlog=LISTEN_BACKLOG, server_header=False)  # fmt: skip
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.socket.getsockname()[1]

    @property
    def url(self) -> str:
        host = self.socket.getsockname()[0]
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def serve_forever(self) -> None:
        try:
            self._server.run(sockets=[self.socket])
        finally:
            self.socket.close()

    def start(self) -> WebServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True, name="jerseynum-web")
        self._thread.start()
        while not self._server.started and self._thread.is_alive():
            self._thread.join(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.socket.close()


def make_server(index_path: Path, photos_root: Path, host: str = "127.0.0.1", port: int = 0,
                allowed_hosts: tuple[str, ...] = (), timeout: float = REQUEST_TIMEOUT, selfie_search: bool = False,
                review_password: str | None = None) -> WebServer:  # fmt: skip
    """The site of an index, bound but not yet serving; port 0 picks a free port. Raises OSError where the
    address cannot be bound.

    Requests must name the server by IP address, `localhost`, `host`, or one of `allowed_hosts` (host names,
    any case); `timeout` is the seconds a connection has to send each request's head."""
    from jerseynum.web.app import create_app
    from jerseynum.web.site import PhotoSite

    names = {"localhost", host, *allowed_hosts}
    host_names = frozenset(name.strip().lower().removesuffix(".") for name in names if name.strip())
    site = PhotoSite(index_path, photos_root, selfie_search, review_password)
    return WebServer(create_app(site, host_names), host, port, timeout)


def serve_forever(index_path: Path, photos_root: Path, host: str, port: int, allowed_hosts: tuple[str, ...] = (),
                  selfie_search: bool = False, review_password: str | None = None) -> None:  # fmt: skip
    """Serve the site until Ctrl-C; raises OSError where the address cannot be bound."""
    server = make_server(index_path, photos_root, host, port, allowed_hosts, selfie_search=selfie_search,
                         review_password=review_password)  # fmt: skip
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # not its start-up chatter: the line below says it
    log.info("searching %s at %s/ (Ctrl-C to stop)", photos_root, server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # uvicorn shuts down on Ctrl-C, then raises it again
        pass

"""What every response of the site passes through: the Host check against DNS rebinding, the security headers,
and one error page for whatever an endpoint failed to answer.

A pure ASGI middleware rather than a Starlette `BaseHTTPMiddleware`: it streams file responses untouched, and it
sits inside Starlette's outermost error middleware, so even a crashed endpoint's 500 gets the headers.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    # Inline style attributes place each number's box over its photo; no script runs on the site at all.
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
# A Host header: a bracketed IPv6 literal or a name (or IPv4 literal), then an optional port.
HOST_HEADER = re.compile(r"(?:\[(?P<ipv6>[^\]]+)\]|(?P<name>[^:\[\]]+))(?::[0-9]{1,5})?")
UNKNOWN_HOST = "unknown host name: start jerseynum serve with --allow-host NAME to use this name"


def _is_ip_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def host_allowed(header: str | None, names: frozenset[str]) -> bool:
    """Whether a request's Host header names this server: any IP address, or one of `names` (lower case).

    A DNS-rebinding page reaches the server under its own domain name, which is in its Host header; an IP address
    involves no DNS, so it is always safe. No header at all (an HTTP/1.0 client, never a browser) is allowed."""
    if header is None:
        return True
    match = HOST_HEADER.fullmatch(header.strip())
    if match is None:
        return False
    if match["ipv6"]:
        return _is_ip_address(match["ipv6"])
    name = match["name"].lower().removesuffix(".")  # "localhost." is the same name, fully qualified
    return _is_ip_address(name) or name in names


ErrorPage = Callable[[str, str], tuple[bytes, str]]  # (path, message) -> (an HTML page or JSON, its content type)


class Guard:
    """Refuses unknown Host headers (400), adds SECURITY_HEADERS to every response, and answers 500 with the
    site's error page where an endpoint raised before answering."""

    def __init__(self, app: ASGIApp, host_names: frozenset[str], error_page: ErrorPage) -> None:
        self.app = app
        self.host_names = host_names
        self.error_page = error_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        hosts = [value.decode("latin-1") for name, value in scope["headers"] if name == b"host"] or [None]
        if len(hosts) > 1 or not host_allowed(hosts[0], self.host_names):  # two: which one was meant is a guess
            return await self._answer(send, scope["path"], 400, UNKNOWN_HOST)
        started = False

        async def send_secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        try:
            await self.app(scope, receive, send_secured)
        except Exception:
            log.exception("error serving %s", scope["path"])  # the query (a selfie's bytes never are) is not logged
            if not started:
                await self._answer(send, scope["path"], 500, "something went wrong")

    async def _answer(self, send: Callable[[Message], Awaitable[None]], path: str, status: int, message: str) -> None:
        body, content_type = self.error_page(path, message)
        headers = [(b"content-type", content_type.encode()),
                   (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store"),
                   *((name.lower().encode(), value.encode()) for name, value in SECURITY_HEADERS.items())]  # fmt: skip
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

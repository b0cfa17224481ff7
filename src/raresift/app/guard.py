"""Request checks of the local server: DNS rebinding, cross-site requests, forged writes.

A page on another site cannot read from or write to the labeling server through the user's
browser because

- the ``Host`` header must name this server: a loopback address or ``localhost`` (or, when bound
  elsewhere, an IP literal or the ``--host`` name) with the server's port. A DNS-rebinding page
  reaches the server under its own domain name, which is refused;
- a request that carries an ``Origin`` must come from one of those same addresses;
- every request that changes state (anything but GET/HEAD) must carry the server's token in the
  ``X-CSRF-Token`` header. The token is made when the server starts and only its own pages hold
  it; another origin can neither read it nor send a custom header without a CORS preflight,
  which the server never grants.

>>> hosts = HostPolicy("127.0.0.1", 8765)
>>> hosts.allows("127.0.0.1:8765"), hosts.allows("localhost:8765"), hosts.allows("evil.com:8765")
(True, True, False)
>>> hosts.allows("127.0.0.1:9999")
False
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from urllib.parse import urlsplit

log = logging.getLogger("raresift")

SAFE_METHODS = frozenset({"GET", "HEAD"})
TOKEN_HEADER = "x-csrf-token"
MAX_BODY = 1 << 20  # bytes of a request body: an answer is a few dozen
BODY_SECONDS = 20.0  # a request body that has not arrived by then is refused (408)
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split_host(value: str) -> tuple[str, int | None] | None:
    """``"[::1]:80"`` -> ``("::1", 80)``; None when the value is not a host[:port]."""
    try:
        parts = urlsplit(f"//{value}")
        return (parts.hostname or "", parts.port)
    except ValueError:
        return None


class HostPolicy:
    """Which ``Host`` values (and so which origins) name this server."""

    def __init__(self, bind_host: str, port: int):
        self.bind_host = bind_host.strip("[]").lower()
        self.port = int(port)
        self.loopback_only = is_loopback(self.bind_host)

    def allows(self, value: str | None) -> bool:
        if not value:
            return False
        parsed = _split_host(value.strip().lower())
        if parsed is None:
            return False
        name, port = parsed
        if (port if port is not None else 80) != self.port:
            return False
        if is_loopback(name):
            return True
        if self.loopback_only:
            return False
        if name == self.bind_host:
            return True
        try:  # reached by address on the network: an IP literal, never a foreign domain name
            ipaddress.ip_address(name)
            return True
        except ValueError:
            return False

    def allows_origin(self, origin: str) -> bool:
        parts = urlsplit(origin)
        return parts.scheme == "http" and self.allows(parts.netloc)


class Guard:
    """ASGI middleware applying :class:`HostPolicy` and the CSRF token to every request."""

    def __init__(
        self,
        app,
        policy: HostPolicy,
        token: str,
        max_body: int = MAX_BODY,
        body_seconds: float = BODY_SECONDS,
    ):
        self.app = app
        self.policy = policy
        self.token = token.encode()
        self.max_body = max_body
        self.body_seconds = body_seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope["method"], headers)
        if refusal is None:
            refusal = self.body_refusal(headers)
        if refusal is None and scope["method"] not in SAFE_METHODS:
            body, refusal = await read_body(receive, self.max_body, self.body_seconds)
            if refusal is None:
                return await self.app(scope, replay(body, receive), send)
        if refusal is None:
            return await self.app(scope, receive, send)
        log.warning("refused %s %s: %s", scope["method"], scope.get("path"), refusal[1])
        body = json.dumps({"error": refusal[1]}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": refusal[0],
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def body_refusal(self, headers: dict[str, str]) -> tuple[int, str] | None:
        """413 when the declared body is over the limit (refused before a byte of it is read,
        so a declared length with no body does not hold the connection); 400 when the length
        is not a number."""
        declared = headers.get("content-length")
        if declared is None:
            return None
        if not declared.strip().isdigit() or not declared.strip().isascii():
            return 400, "the Content-Length header is not a number"
        if int(declared) > self.max_body:
            return 413, (
                f"the request body of {int(declared)} bytes is over the limit of "
                f"{self.max_body} bytes"
            )
        return None

    def refusal(self, method: str, headers: dict[str, str]) -> tuple[int, str] | None:
        """``(status, reason)`` when the request must be refused, else None."""
        if not self.policy.allows(headers.get("host")):
            return 421, "unexpected Host header (open the app at the address the server printed)"
        origin = headers.get("origin")
        if origin is not None and not self.policy.allows_origin(origin):
            return 403, "cross-origin request refused"
        if method not in SAFE_METHODS:
            sent = headers.get(TOKEN_HEADER, "").encode()
            if not hmac.compare_digest(sent, self.token):
                return 403, "missing or wrong CSRF token (reload the page)"
        return None


async def read_body(
    receive, limit: int, seconds: float = BODY_SECONDS
) -> tuple[bytes, tuple[int, str] | None]:
    """The request body, read whole up to ``limit`` bytes (a body sent without a declared
    length, or longer than declared, is cut off at the limit with a 413); a body that has not
    all arrived within ``seconds`` is refused with a 408, so a client that declares a length and
    sends nothing does not hold the connection."""
    import asyncio

    parts, size = [], 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            return b"", (408, f"the request body did not arrive within {seconds:g} s")
        if message["type"] == "http.disconnect":
            return b"", (400, "the client left before sending its request body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return b"", (413, f"the request body is over the limit of {limit} bytes")
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts), None


def replay(body: bytes, receive):
    """An ASGI ``receive`` that gives ``body`` once, then what ``receive`` gives."""
    sent = False

    async def receive_again():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return receive_again

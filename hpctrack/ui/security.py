"""The dashboard's gate: read-only methods, the Host header, the access token, security headers.

A plain ASGI middleware in front of the whole app, so no route can forget a check. In order:

1. a method other than GET and HEAD is answered 405 (nothing else is looked at);
2. a ``Host`` header that is not a loopback name, the bound host or an ``--allow-host`` is
   answered 400 (DNS rebinding: a page of another site resolving its name to 127.0.0.1);
3. ``?token=T`` matching the token sets the cookie and redirects (303) to the same URL
   without the token, so it does not stay in the browser's history; the cookie or an
   ``Authorization: Bearer T`` header lets a request through; anything else is 401, but for
   the paths of :data:`OPEN_PATHS` (the favicon), which need no token.

Every response, the gate's own included, carries the security headers of :data:`SECURITY_HEADERS`.
Tokens are compared with :func:`hmac.compare_digest`.

The app may be served under a prefix (``--root-path``, behind Open OnDemand or
jupyter-server-proxy). uvicorn prepends the prefix to the path it receives; a proxy that
passes the prefix on (instead of stripping it) would give it twice, so the gate takes one
copy off: both kinds of proxy reach the same routes.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any, Awaitable, Callable, Dict, FrozenSet, Iterable, List, MutableMapping, Optional, Tuple
from urllib.parse import parse_qsl, urlencode

__all__ = ["Gate", "GateConfig", "SECURITY_HEADERS", "LOOPBACK_HOSTS", "OPEN_PATHS", "host_name"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Sent with every response. No inline script or style can run; no other site may frame the page.
SECURITY_HEADERS: Tuple[Tuple[str, str], ...] = (
    (
        "content-security-policy",
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    ),  # fmt: skip
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
)

#: Host names always accepted (with any port): the loopback names a browser on this machine uses.
LOOPBACK_HOSTS: FrozenSet[str] = frozenset({"127.0.0.1", "localhost", "[::1]"})

#: Paths served without the token (still behind the method and Host checks). A browser asks for
#: ``/favicon.ico`` at the host's root, where a cookie of ``--root-path`` is not sent; it reveals nothing.
OPEN_PATHS: FrozenSet[str] = frozenset({"/favicon.ico"})

_READ_METHODS = ("GET", "HEAD")


@dataclass(frozen=True)
class GateConfig:
    """What the gate lets through.

    Attributes
    ----------
    token:
        The access token (``hpctrack ui`` prints it in the URL).
    allowed_hosts:
        Host names (without port) accepted besides :data:`LOOPBACK_HOSTS`; IPv6 addresses in brackets.
    cookie_name:
        The cookie holding the token (``hpctrack_ui_<port>``: two dashboards on one machine keep theirs).
    root_path:
        The prefix the app is served under (``""``: none); the cookie's path.
    """

    token: str
    allowed_hosts: FrozenSet[str]
    cookie_name: str
    root_path: str = ""


def host_name(host_header: str) -> str:
    """The host of a ``Host`` header without its port, lower-case (``[::1]:8765`` -> ``[::1]``)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class Gate:
    """The ASGI middleware enforcing :class:`GateConfig` around ``app``."""

    def __init__(self, app: ASGIApp, config: GateConfig) -> None:
        self.app = app
        self.config = config
        self._token = config.token.encode()
        self._hosts = LOOPBACK_HOSTS | {h.lower() for h in config.allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan; websockets are not served
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        bare = self._at_bare_prefix(scope)
        scope = self._within_prefix(scope)
        send = _with_headers(send, SECURITY_HEADERS)
        route = _route_path(scope)
        api = route.startswith("/api/") or route == "/api"
        if scope["method"] not in _READ_METHODS:
            await _answer(send, 405, "read-only: only GET and HEAD are served", api, [("allow", "GET, HEAD")])
            return
        headers = _headers(scope)
        if host_name(headers.get("host", "")) not in self._hosts:
            host = host_name(headers.get("host", ""))[:100] or "(none)"
            await _answer(send, 400, f"invalid Host header {host!r} (start hpctrack ui with --allow-host {host} to "
                                     "accept this host name or IP address)", api)  # fmt: skip
            return
        if route in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = [v for k, v in query if k == "token"]
        if given:
            if not self._matches(given[-1]):
                await _answer(send, 401, "wrong token: open the URL printed by hpctrack ui", api)
                return
            await self._enter(send, route, [(k, v) for k, v in query if k != "token"], bare)
            return
        if self._matches(_cookie(headers.get("cookie", ""), self.config.cookie_name)) or self._matches(
            _bearer(headers.get("authorization", ""))
        ):
            await self.app(scope, receive, send)
            return
        await _answer(send, 401, "not signed in: open the URL printed by hpctrack ui (it carries the access "
                                 "token), or send Authorization: Bearer TOKEN", api)  # fmt: skip

    def _matches(self, candidate: Optional[str]) -> bool:
        return candidate is not None and hmac.compare_digest(candidate.encode("utf-8", "replace"), self._token)

    async def _enter(self, send: Send, route: str, query: List[Tuple[str, str]], bare: bool = False) -> None:
        """The cookie, and a 303 to the same resource without the token, by a relative URL (any prefix).

        ``bare``: the browser asked for the prefix itself without its slash (``/node/x/8765?token=``),
        against which ``./`` would resolve to ``/node/x/``: the page is then ``8765/``.
        """
        target = self.config.root_path.rsplit("/", 1)[-1] + "/" if bare else "./" + route.rsplit("/", 1)[-1]
        location = target + (f"?{urlencode(query)}" if query else "")
        cookie = (f"{self.config.cookie_name}={self.config.token}; HttpOnly; SameSite=Strict; "
                  f"Path={self.config.root_path or '/'}")  # fmt: skip
        await _answer(send, 303, "signed in", route.startswith("/api/"), [("location", location),
                                                                          ("set-cookie", cookie)])  # fmt: skip

    def _at_bare_prefix(self, scope: Scope) -> bool:
        """Whether the browser's path is the prefix without a slash after it (uvicorn's copy of the prefix aside)."""
        prefix = self.config.root_path
        return bool(prefix) and scope["path"] in (prefix, prefix + prefix)

    def _within_prefix(self, scope: Scope) -> Scope:
        """The scope with ``root_path`` set and the path holding the prefix once (see the module's docstring)."""
        prefix = self.config.root_path
        if not prefix:
            return scope
        path = scope["path"]
        for _ in range(2):  # uvicorn's copy, then a non-stripping proxy's
            if path == prefix or path.startswith(prefix + "/"):
                path = path[len(prefix) :]
        path = prefix + (path or "/")
        return {**scope, "root_path": prefix, "path": path, "raw_path": path.encode("utf-8")}


def _route_path(scope: Scope) -> str:
    path, prefix = scope["path"], scope.get("root_path", "")
    return path[len(prefix) :] or "/" if prefix and path.startswith(prefix) else path


def _headers(scope: Scope) -> Dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookie(header: str, name: str) -> Optional[str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed Cookie header is no token
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def _bearer(header: str) -> Optional[str]:
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _with_headers(send: Send, extra: Iterable[Tuple[str, str]]) -> Send:
    encoded = [(k.encode(), v.encode()) for k, v in extra]

    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            message["headers"] = [*message.get("headers", []), *(h for h in encoded if h[0] not in present)]
        await send(message)

    return sender


async def _answer(send: Send, status: int, message: str, api: bool, headers: Iterable[Tuple[str, str]] = ()) -> None:
    """A short answer: ``{"error": ...}`` for the API, one line of text for a person otherwise."""
    if api and status >= 400:
        body, kind = json.dumps({"error": message}).encode(), "application/json"
    else:
        body, kind = (message + "\n").encode(), "text/plain; charset=utf-8"
    raw = [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode()),
           (b"cache-control", b"no-store"), *((k.encode(), v.encode()) for k, v in headers)]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})

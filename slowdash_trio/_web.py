"""HTTP: hypercorn's Trio worker serving an ASGI front that answers ``/api`` and
``/ws/attach/{topic}`` itself and hands everything else (pages, static files) to a quart-trio
app.

The API is answered by our dispatcher in a few lines of ASGI rather than through Quart's
routing: Quart adds about half again the server CPU per request (reference/toolchain.md), and
the dispatcher already does routing and merging. WebSockets (`attach`) are plain ASGI too.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import struct
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    Scope,
    WebsocketScope,
)
from quart import request as page_request
from quart import send_file, send_from_directory
from quart_trio import QuartTrio

from ._auth import CHALLENGE, Role, User, required_role
from ._dispatch import error_response, render
from ._hub import Subscriber
from ._origin import SAFE_METHODS, OriginPolicy
from ._streaming_api import accept_current, check_topic, parse_current
from ._userhtml import Refused, resolve, user_dir
from .webapi import Request, Response

if TYPE_CHECKING:
    from ._server import Server

logger = logging.getLogger("slowdash_trio.web")


class ApiFront:
    """ASGI application: ``/api/...`` HTTP requests go to the server's dispatcher."""

    def __init__(
        self, server: Server, fallback: ASGIFramework, stopping: trio.Event | None = None
    ) -> None:
        system = server.project.config.system
        self.server = server
        self.fallback = fallback
        self.max_body = system.max_request_body
        self.max_websockets = system.max_websockets
        self.websockets = 0
        self.origins = OriginPolicy.from_config(system.allowed_origins)
        self.stopping = stopping if stopping is not None else trio.Event()

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await self.fallback(scope, receive, send)
            return
        headers = _header_dict(scope)
        if self._is_preflight(scope, headers):
            # a browser sends a CORS preflight without credentials: it is answered for a
            # configured origin before authentication, and grants nothing by itself
            await _send(send, self._preflight(headers["origin"]))
            return
        user = await self._authenticate(scope, headers, receive, send)
        if user is False:
            return  # refused
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == "/api" or path.startswith("/api/"):
                await self._api(scope, headers, user, receive, send)
                return
        elif scope["type"] == "websocket" and scope["path"].startswith("/ws/attach/"):
            why = self.origins.refusal("GET", headers, scope["scheme"], websocket=True)
            if why is not None:
                logger.warning("WebSocket %s refused: %s", scope["path"], why)
                await _refuse_websocket(receive, send)
                return
            if self.websockets >= self.max_websockets:
                await _close_at_once(
                    receive, send, _TRY_LATER, f"too many WebSockets ({self.max_websockets})"
                )
                return
            self.websockets += 1
            try:
                await attach(self.server, self.stopping, scope, receive, send, user)
            finally:
                self.websockets -= 1
            return
        await self.fallback(scope, receive, send)

    async def _authenticate(
        self,
        scope: HTTPScope | WebsocketScope,
        headers: dict[str, str],
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
    ) -> User | Literal[False] | None:
        """The request's user (None without authentication); False when it was refused
        (answered here: 401 without valid credentials, 403 for a role too low)."""
        auth = self.server.auth
        if auth is None:
            return None
        user = await auth.authenticate(headers.get("authorization"))
        websocket = scope["type"] == "websocket"
        method = scope["method"] if scope["type"] == "http" else "GET"
        if user is None:
            if "authorization" in headers:
                peer = _peer(scope)
                logger.warning("%s %s: bad credentials from %s", method, scope["path"], peer)
            refusal = error_response(401, "authentication required")
            refusal.headers.update({"WWW-Authenticate": CHALLENGE, "Connection": "close"})
            if websocket:  # answered as HTTP, so that a browser can retry with credentials
                if (await receive())["type"] == "websocket.connect":
                    await _send(send, refusal, upgrade=True)
            else:
                await _send(send, refusal)
            return False
        needed = required_role(method, scope["path"])
        if user.role >= needed:
            return user
        message = f"{method} {scope['path']} needs role {needed}; user {user.name} is {user.role}"
        logger.warning("forbidden: %s", message)
        if method not in SAFE_METHODS:
            self.server.audit.record(
                user=user.name,
                client=_peer(scope),
                action=f"{method} {scope['path']}",
                status=403,
                outcome=f"forbidden: needs role {needed}",
            )
        refusal = error_response(403, f"forbidden: {message}")
        refusal.headers["Connection"] = "close"  # its body was not read
        await _send(send, refusal)
        return False

    async def _api(
        self,
        scope: HTTPScope,
        headers: dict[str, str],
        user: User | None,
        receive: ASGIReceiveCallable,
        send: ASGISendCallable,
    ) -> None:
        method, origin = scope["method"], headers.get("origin")
        why = self.origins.refusal(method, headers, scope["scheme"])
        if why is not None:
            logger.warning("%s %s refused: %s", method, scope["path"], why)
            refusal = error_response(403, why)
            refusal.headers["Connection"] = "close"  # its body was not read
            await _send(send, refusal)
            return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await _send(send, self._too_large())
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _send(send, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        query = urllib.parse.parse_qsl(
            scope["query_string"].decode("latin-1"), keep_blank_values=True, errors="replace"
        )
        request = Request(
            scope["method"],
            scope["path"][4:],
            dict(query),
            b"".join(chunks),
            headers=headers,
            client=_peer(scope),
            user=user.name if user is not None else None,
        )
        response = await self._answer(request, receive)
        if response is not None:
            if self.origins.configured(origin):  # a configured other origin may read it
                response.headers.update(self._cors(str(origin)))
            await _send(send, response)

    async def _answer(self, request: Request, receive: ASGIReceiveCallable) -> Response | None:
        """The response, or None if the client went away first (its queries are cancelled:
        a long data query nobody waits for is not left running)."""
        response: Response | None = None
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                logger.info("%s /api%s: the client went away", request.method, request.path)
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            try:
                response = await self.server.handle(request)
            except Exception as exc:
                logger.exception("%s /api%s failed", request.method, request.path)
                response = error_response(500, f"internal error: {type(exc).__name__}: {exc}")
            nursery.cancel_scope.cancel()
        return response

    def _is_preflight(self, scope: Scope, headers: dict[str, str]) -> bool:
        """A CORS preflight (``OPTIONS`` with ``Access-Control-Request-Method``) to the API
        from one of ``system.allowed_origins``."""
        return (
            scope["type"] == "http"
            and scope["method"] == "OPTIONS"
            and scope["path"].startswith("/api/")
            and "access-control-request-method" in headers
            and self.origins.configured(headers.get("origin"))
        )

    def _cors(self, origin: str) -> dict[str, str]:
        """What lets a page of a configured other ``origin`` read the answer (with
        authentication on: send its credentials)."""
        headers = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        if self.server.auth is not None:
            headers["Access-Control-Allow-Credentials"] = "true"
        return headers

    def _preflight(self, origin: str) -> Response:
        """The CORS preflight answer for a configured origin."""
        response = Response(None, status=204)
        response.headers.update(self._cors(origin))
        allowed = "Content-Type, Authorization" if self.server.auth is not None else "Content-Type"
        response.headers.update(
            {
                "Access-Control-Allow-Methods": "GET, POST, DELETE",
                "Access-Control-Allow-Headers": allowed,
                "Access-Control-Max-Age": "600",
            }
        )
        return response

    def _too_large(self) -> Response:
        response = error_response(
            413, f"request body larger than system.max_request_body ({self.max_body} bytes)"
        )
        # answered before the body was read: this connection cannot carry another request
        response.headers["Connection"] = "close"
        return response


def _header_dict(scope: HTTPScope | WebsocketScope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _peer(scope: HTTPScope | WebsocketScope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


async def _refuse_websocket(receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
    """Refuse the upgrade itself (the client sees HTTP 403)."""
    if (await receive())["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": _POLICY, "reason": ""})


async def _close_at_once(
    receive: ASGIReceiveCallable, send: ASGISendCallable, code: int, reason: str
) -> None:
    """Accept, then close with ``code`` and ``reason`` (which a browser can show)."""
    if (await receive())["type"] == "websocket.connect":
        await send({"type": "websocket.accept", "subprotocol": None, "headers": []})
        await send({"type": "websocket.close", "code": code, "reason": _reason(reason)})


async def _send(send: ASGISendCallable, response: Response, *, upgrade: bool = False) -> None:
    """Send ``response`` (``upgrade``: as the answer to a WebSocket upgrade, by the ASGI
    extension hypercorn has)."""
    status, content_type, body = render(response)
    headers: list[tuple[bytes, bytes]] = [(b"content-length", str(len(body)).encode())]
    if content_type is not None:
        headers.append((b"content-type", content_type.encode("latin-1")))
    headers.extend(
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()
    )
    if upgrade:
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
        return
    await send(
        {"type": "http.response.start", "status": status, "headers": headers, "trailers": False}
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


STATIC = Path(__file__).parent / "static"
HOME_PAGE = "slowhome.html"
# the original's canvas page is the layout page (it shows a canvas file as a one-panel layout)
# (and browsers ask for /favicon.ico on pages that name none: user pages, JSON documents)
ALIASES = {"slowdash.html": "slowplot.html", "favicon.ico": "favicon.svg"}
VENDOR_CHECK = "vendor/uPlot.esm.js"  # copied by the build (setup.py) from the npm registry
MISSING_VENDOR = (
    "slowdash-trio's browser libraries are missing (static/vendor): reinstall the package; "
    "its build fetches them with npm and needs Node.js 20+"
)
# ES modules must come with a JavaScript type; Python before 3.12 does not know ".mjs"
_TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".css": "text/css"}


def build_pages(server: Server) -> QuartTrio:
    """The quart-trio app for everything that is not ``/api``: the dashboard's pages and
    their static files (``slowdash_trio/static``, served at ``/``)."""
    pages = QuartTrio("slowdash_trio", static_folder=None)
    pages.config["MAX_CONTENT_LENGTH"] = server.project.config.system.max_request_body
    built = (STATIC / VENDOR_CHECK).is_file()  # once, at start-up
    if not built:
        logger.error("%s", MISSING_VENDOR)

    @pages.route("/")
    async def home() -> Any:
        return await _static(HOME_PAGE, built)

    @pages.route("/<path:filename>")
    async def static_file(filename: str) -> Any:
        return await _static(filename, built)

    @pages.route("/userhtml/<path:filename>")
    async def user_page(filename: str) -> Any:
        if filename == "api" or filename.startswith("api/"):  # a page's relative ./api/...
            query = urllib.parse.parse_qsl(
                page_request.query_string.decode("latin-1"), keep_blank_values=True
            )
            answer = await server.handle(Request("GET", filename[3:] or "/", dict(query)))
            status, content_type, body = render(answer)
            headers = {"Content-Type": content_type} if content_type else {}
            return body, status, {**headers, **answer.headers}
        try:
            path = await trio.to_thread.run_sync(resolve, user_dir(server), filename)
        except Refused as exc:
            return {"status": "error", "message": exc.message}, exc.status
        response = await send_file(path)
        response.cache_control.no_cache = True
        return response

    return pages


async def _static(filename: str, built: bool) -> Any:
    """A file of the dashboard, revalidated by the browser on every use (``no-cache`` with
    an ETag), so that an upgraded server is never mixed with stale modules."""
    if not built:
        return MISSING_VENDOR, 503, {"Content-Type": "text/plain; charset=utf-8"}
    response = await send_from_directory(STATIC, ALIASES.get(filename, filename))
    suffix = Path(filename).suffix
    if suffix in _TYPES:
        response.mimetype = _TYPES[suffix]
    response.cache_control.no_cache = True
    return response


async def serve_web(
    server: Server,
    host: str,
    port: int,
    shutdown_trigger: Callable[[], Awaitable[None]],
    *,
    tls: tuple[str, str] | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve HTTP on ``host:port`` until ``shutdown_trigger`` returns; HTTPS with
    ``tls=(certfile, keyfile)``."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 3.0
    config.include_server_header = False
    # a message up to the limit is answered with an error frame; far beyond it the connection
    # is closed (1009) without reading it
    config.websocket_max_message_size = FRAME_FACTOR * server.hub.limits.max_message
    if tls is not None:
        config.certfile, config.keyfile = tls
    stopping = trio.Event()

    async def stop() -> None:
        await shutdown_trigger()
        stopping.set()  # WebSockets close at once instead of holding the graceful timeout

    front = ApiFront(server, build_pages(server), stopping)
    await serve(front, config, shutdown_trigger=stop, task_status=task_status)


# ---------------------------------------------------------------------------------------------
# WebSockets: /ws/attach/{topic}

FRAME_FACTOR = 4  # hypercorn closes the connection (1009) on messages this many times the limit
CLOSE_GRACE = 1.0  # seconds a closing frame may take before the connection is cut
_GOING_AWAY, _POLICY, _TRY_LATER = 1001, 1008, 1013


async def attach(
    server: Server,
    stopping: trio.Event,
    scope: WebsocketScope,
    receive: ASGIReceiveCallable,
    send: ASGISendCallable,
    user: User | None = None,
) -> None:
    """One browser attached to a topic: frames from the hub out, emits in (from an
    operator or above, when there is authentication).

    One task sends what the subscriber's buffer holds (so a slow peer only ever delays its own
    buffer), one reads. A peer dropped by the hub, or still attached at shutdown, gets a close
    frame; if that cannot be written within `CLOSE_GRACE` (a peer that stopped reading), the
    TCP connection is cut: hypercorn shields its socket writes from cancellation.
    """
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept", "subprotocol": None, "headers": []})
    topic = scope["path"].removeprefix("/ws/attach/")
    try:
        check_topic(topic)
    except ValueError as exc:
        await send({"type": "websocket.close", "code": _POLICY, "reason": _reason(str(exc))})
        return
    hub = server.hub
    subscriber = hub.subscribe(topic)
    code = _TRY_LATER
    try:
        async with trio.open_nursery() as nursery:

            def cut_later(reason: str = "") -> None:
                nursery.start_soon(_cut_after, CLOSE_GRACE, scope)

            async def watch_stopping() -> None:
                nonlocal code
                await stopping.wait()
                code = _GOING_AWAY
                subscriber.close("server shutting down")
                cut_later()

            async def read() -> None:
                await _read(server, subscriber, receive, user, _peer(scope))
                nursery.cancel_scope.cancel()  # the peer went away

            subscriber.on_drop = cut_later
            nursery.start_soon(watch_stopping)
            nursery.start_soon(read)
            while (message := await subscriber.next_message()) is not None:
                await send({"type": "websocket.send", "bytes": None, "text": message})
            reason = _reason(subscriber.close_reason)
            await send({"type": "websocket.close", "code": code, "reason": reason})
            nursery.cancel_scope.cancel()
    finally:
        hub.unsubscribe(subscriber)


async def _read(
    server: Server,
    subscriber: Subscriber,
    receive: ASGIReceiveCallable,
    user: User | None,
    client: str | None,
) -> None:
    """Emit what the peer sends; answer bad messages with ``{"error": ...}``; return when the
    peer goes away."""
    limit = server.hub.limits.max_message
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        data: str | bytes | None = message.get("text")
        if data is None:
            data = message.get("bytes") or b""
        if not data:
            continue
        if user is not None and user.role < Role.OPERATOR:
            refusal = f"forbidden: sending needs role operator; user {user.name} is {user.role}"
            subscriber.notify(json.dumps({"error": refusal}))
            continue
        try:
            if subscriber.topic == "current_data":
                values = parse_current(data, limit)
                user_name = user.name if user is not None else None
                await accept_current(server, values, None, user=user_name, client=client)
            elif len(data) > limit:
                raise ValueError(f"message larger than {limit} bytes")
            else:
                text = data if isinstance(data, str) else data.decode("utf-8")
                server.hub.publish(subscriber.topic, text)
        except (ValueError, UnicodeDecodeError) as exc:
            subscriber.notify(json.dumps({"error": str(exc)}))
        except Exception as exc:
            logger.exception("a %s message failed", subscriber.topic)
            subscriber.notify(json.dumps({"error": f"internal error: {type(exc).__name__}"}))


def _reason(text: str) -> str:
    """A close reason within the protocol's 123 bytes."""
    encoded = text.encode("utf-8")[:120]
    return encoded.decode("utf-8", errors="ignore")


async def _cut_after(delay: float, scope: WebsocketScope) -> None:
    await trio.sleep(delay)
    server, client = scope.get("server"), scope.get("client")
    if server is None or client is None:
        logger.warning("could not cut the connection of %s: no addresses", client)
        return
    # the descriptor table is searched with blocking system calls: off the Trio thread
    if not await trio.to_thread.run_sync(cut_connection, tuple(server), tuple(client)):
        logger.warning("could not cut the connection of %s", client)


def cut_connection(local: tuple[Any, ...], peer: tuple[Any, ...]) -> bool:
    """Reset this process's TCP connection ``local`` <-> ``peer`` (both ``(host, port)``).

    Found by its addresses among the process's descriptors (Linux ``/proc/self/fd``, else
    ``/dev/fd``): a duplicate is shut down with a zero linger, which wakes a writer blocked on
    it with an error and resets the connection when the server closes it.
    """
    fd_dir = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    try:
        entries = os.listdir(fd_dir)
    except OSError:
        return False
    for entry in entries:
        try:
            fd = int(entry)
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            with socket.socket(fileno=os.dup(fd)) as sock:
                if sock.type != socket.SOCK_STREAM:
                    continue
                if (
                    tuple(sock.getsockname()[:2]) != local[:2]
                    or tuple(sock.getpeername()[:2]) != peer[:2]
                ):
                    continue
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
                return True
        except (OSError, ValueError):
            continue
    return False

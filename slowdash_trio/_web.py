"""HTTP: hypercorn's Trio worker serving an ASGI front that answers ``/api`` and
``/ws/attach/{topic}`` itself and hands everything else (pages, static files) to a quart-trio
app.

The API is answered by our dispatcher in a few lines of ASGI rather than through Quart's
routing: Quart adds about half again the server CPU per request (reference/toolchain.md), and
the dispatcher already does routing and merging. WebSockets (`attach`) are plain ASGI too.
"""

from __future__ import annotations

import html
import json
import logging
import os
import socket
import stat
import struct
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

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
from quart_trio import QuartTrio

from ._dispatch import error_response, render
from ._hub import Subscriber
from ._streaming_api import accept_current, check_topic, parse_current
from .webapi import Request, Response

if TYPE_CHECKING:
    from ._server import Server

logger = logging.getLogger("slowdash_trio.web")


class ApiFront:
    """ASGI application: ``/api/...`` HTTP requests go to the server's dispatcher."""

    def __init__(
        self, server: Server, fallback: ASGIFramework, stopping: trio.Event | None = None
    ) -> None:
        self.server = server
        self.fallback = fallback
        self.max_body = server.project.config.system.max_request_body
        self.stopping = stopping if stopping is not None else trio.Event()

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == "/api" or path.startswith("/api/"):
                await self._api(scope, receive, send)
                return
        elif scope["type"] == "websocket" and scope["path"].startswith("/ws/attach/"):
            await attach(self.server, self.stopping, scope, receive, send)
            return
        await self.fallback(scope, receive, send)

    async def _api(
        self, scope: HTTPScope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
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
        client = scope.get("client")
        request = Request(
            scope["method"],
            scope["path"][4:],
            dict(query),
            b"".join(chunks),
            headers=headers,
            client=client[0] if client else None,
        )
        response = await self._answer(request, receive)
        if response is not None:
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

    def _too_large(self) -> Response:
        response = error_response(
            413, f"request body larger than system.max_request_body ({self.max_body} bytes)"
        )
        # answered before the body was read: this connection cannot carry another request
        response.headers["Connection"] = "close"
        return response


async def _send(send: ASGISendCallable, response: Response) -> None:
    status, content_type, body = render(response)
    headers: list[tuple[bytes, bytes]] = [(b"content-length", str(len(body)).encode())]
    if content_type is not None:
        headers.append((b"content-type", content_type.encode("latin-1")))
    headers.extend(
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()
    )
    await send(
        {"type": "http.response.start", "status": status, "headers": headers, "trailers": False}
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def build_pages(server: Server) -> QuartTrio:
    """The quart-trio app for everything that is not ``/api``."""
    pages = QuartTrio("slowdash_trio")
    pages.config["MAX_CONTENT_LENGTH"] = server.project.config.system.max_request_body

    @pages.route("/")
    async def home() -> tuple[str, int, dict[str, str]]:
        project = server.project
        rows = "".join(
            f"<tr><td>{html.escape(m.name)}</td><td>{html.escape(str(m.status.state))}</td>"
            f"<td>{html.escape(m.status.error.message if m.status.error else '')}</td></tr>"
            for m in server.modules
        )
        body = (
            f"<!doctype html><meta charset=utf-8><title>{html.escape(project.title)}</title>"
            f"<h1>{html.escape(project.title)}</h1>"
            "<p>slowdash-trio is running. The web API is under <a href=api/config>api/</a>: "
            "<a href=api/channels>channels</a>, <a href=api/config/contentlist>contents</a>.</p>"
            f"<table><tr><th>module</th><th>state</th><th>last error</th></tr>{rows}</table>"
        )
        return body, 200, {"Content-Type": "text/html; charset=utf-8"}

    return pages


async def serve_web(
    server: Server,
    host: str,
    port: int,
    shutdown_trigger: Callable[[], Awaitable[None]],
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve HTTP on ``host:port`` until ``shutdown_trigger`` returns."""
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.graceful_timeout = 3.0
    config.include_server_header = False
    config.websocket_max_message_size = MAX_FRAME
    stopping = trio.Event()

    async def stop() -> None:
        await shutdown_trigger()
        stopping.set()  # WebSockets close at once instead of holding the graceful timeout

    front = ApiFront(server, build_pages(server), stopping)
    await serve(front, config, shutdown_trigger=stop, task_status=task_status)


# ---------------------------------------------------------------------------------------------
# WebSockets: /ws/attach/{topic}

MAX_FRAME = 4 << 20  # hypercorn closes the connection (1009) on larger messages
CLOSE_GRACE = 1.0  # seconds a closing frame may take before the connection is cut
_GOING_AWAY, _POLICY, _TRY_LATER = 1001, 1008, 1013


async def attach(
    server: Server,
    stopping: trio.Event,
    scope: WebsocketScope,
    receive: ASGIReceiveCallable,
    send: ASGISendCallable,
) -> None:
    """One browser attached to a topic: frames from the hub out, emits in.

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
                await _read(server, subscriber, receive)
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


async def _read(server: Server, subscriber: Subscriber, receive: ASGIReceiveCallable) -> None:
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
        try:
            if subscriber.topic == "current_data":
                values = parse_current(data, limit)
                await accept_current(server, values, None)
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

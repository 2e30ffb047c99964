"""HTTP: hypercorn's Trio worker serving an ASGI front that answers ``/api`` itself and hands
everything else (pages; later static files and WebSockets) to a quart-trio app.

The API is answered by our dispatcher in a few lines of ASGI rather than through Quart's
routing: Quart adds about half again the server CPU per request (reference/toolchain.md), and
the dispatcher already does routing and merging. Pages and WebSockets stay with Quart.
"""

from __future__ import annotations

import html
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    Scope,
)
from quart_trio import QuartTrio

from ._dispatch import error_response, render
from .webapi import Request, Response

if TYPE_CHECKING:
    from ._server import Server

logger = logging.getLogger("slowdash_trio.web")


class ApiFront:
    """ASGI application: ``/api/...`` HTTP requests go to the server's dispatcher."""

    def __init__(self, server: Server, fallback: ASGIFramework) -> None:
        self.server = server
        self.fallback = fallback
        self.max_body = server.project.config.system.max_request_body

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if path == "/api" or path.startswith("/api/"):
                await self._api(scope, receive, send)
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
    front = ApiFront(server, build_pages(server))
    await serve(front, config, shutdown_trigger=shutdown_trigger, task_status=task_status)

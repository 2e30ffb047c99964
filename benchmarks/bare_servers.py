"""The baselines: what the stack answers with no slowdash-trio code in the way.

``quart``: a bare quart-trio app; ``asgi``: a plain ASGI callable. Both run on hypercorn's Trio
worker with the same hypercorn settings as slowdash-trio's server, and answer the same JSON as
slowdash-trio does for ``GET /api/ping`` (``["pong"]``) and ``GET /api/data/CH?length=L`` (one
small record per channel, as a user module's current value)::

    python bare_servers.py quart --port 8001

With ``--thread`` the data route fetches its value with ``trio.to_thread.run_sync``, as
slowdash-trio calls a user module's sync ``_get_data``: that isolates the price of the worker
thread from the price of slowdash-trio's own routing and merging.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def current_value() -> float:
    return 1.0


def data_reply(channels: str, length: float, value: float) -> dict[str, Any]:
    now = time.time()
    start = now - length
    return {
        name: {"start": start, "length": length, "t": now - start, "x": value}
        for name in channels.split(",")
        if name
    }


async def fetch_value(in_thread: bool) -> float:
    if in_thread:
        return await trio.to_thread.run_sync(current_value)
    return current_value()


def quart_app(in_thread: bool) -> Any:
    from quart import request
    from quart_trio import QuartTrio

    app = QuartTrio("bare_quart")

    @app.route("/api/ping")
    async def ping() -> Any:
        return ["pong"]

    @app.route("/api/data/<channels>")
    async def data(channels: str) -> Any:
        length = float(request.args.get("length", 3600.0))
        return data_reply(channels, length, await fetch_value(in_thread))

    return app


def asgi_app(in_thread: bool) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await asgi(scope, receive, send, in_thread)

    return app


async def asgi(scope: Scope, receive: Receive, send: Send, in_thread: bool) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path: str = scope["path"]
    status = 200
    if path == "/api/ping":
        body = b'["pong"]'
    elif path.startswith("/api/data/"):
        query = dict(
            item.split("=", 1) for item in scope["query_string"].decode().split("&") if "=" in item
        )
        length = float(query.get("length", 3600.0))
        reply = data_reply(path[len("/api/data/") :], length, await fetch_value(in_thread))
        body = json.dumps(reply, separators=(",", ":")).encode()
    else:
        status, body = 404, b'{"status":"error","message":"not found"}'
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=["quart", "asgi"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--thread", action="store_true", help="data values from a worker thread")
    args = parser.parse_args()
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.accesslog = None
    config.graceful_timeout = 3.0
    config.include_server_header = False  # as slowdash-trio's server
    app = quart_app(args.thread) if args.kind == "quart" else asgi_app(args.thread)
    trio.run(serve, app, config)


if __name__ == "__main__":
    main()

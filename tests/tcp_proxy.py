"""A TCP proxy on 127.0.0.1 that cuts its connections: lost links made in a test, without
ever stopping or reconfiguring the shared server behind it.

    async with postgres_proxy(pg_url) as proxy:
        url = proxied(pg_url, proxy.port)   # the same database, reached through the proxy
        proxy.refuse = True                 # new connections are closed at once
        proxy.cut_all()                     # the open ones are cut
"""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio


class Proxy:
    """A TCP proxy to the server that can cut its connections in several ways."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.refuse = False
        self.commit_cut: str | None = None  # "after" or "client-only", once
        self.scopes: set[trio.CancelScope] = set()
        self.lingering: list[trio.SocketStream] = []
        self.connections = 0
        self.refused = 0
        self.commit_cuts = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    def cut_all(self) -> int:
        """Cut every open connection; how many there were."""
        for scope in list(self.scopes):
            scope.cancel()
        return len(self.scopes)

    async def _handle(self, client: trio.SocketStream) -> None:
        server: trio.SocketStream | None = None
        keep_server: list[bool] = []
        try:
            if self.refuse:
                self.refused += 1
                return
            self.connections += 1
            server = await trio.open_tcp_stream(*self.target)
            with trio.CancelScope() as scope:
                self.scopes.add(scope)
                try:
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._upstream, client, server, scope, keep_server)
                        nursery.start_soon(self._pump, server, client, scope)
                finally:
                    self.scopes.discard(scope)
        finally:
            with trio.CancelScope(shield=True):
                await client.aclose()
                if server is not None and keep_server:  # half-open: the server is not told
                    self.lingering.append(server)
                elif server is not None:
                    await server.aclose()

    async def _upstream(
        self,
        source: trio.SocketStream,
        sink: trio.SocketStream,
        scope: trio.CancelScope,
        keep_server: list[bool],
    ) -> None:
        try:
            async for data in source:
                if self.commit_cut is not None and b"COMMIT" in data:
                    how, self.commit_cut = self.commit_cut, None
                    self.commit_cuts += 1
                    if how == "after":  # the server commits; its answer never arrives
                        await sink.send_all(data)
                    else:  # the client is cut off; the server's transaction stays open
                        keep_server.append(True)
                    return
                await sink.send_all(data)
        except trio.BrokenResourceError:
            pass
        finally:
            scope.cancel()

    async def _pump(
        self, source: trio.SocketStream, sink: trio.SocketStream, scope: trio.CancelScope
    ) -> None:
        try:
            async for data in source:
                await sink.send_all(data)
        except trio.BrokenResourceError:
            pass
        finally:
            scope.cancel()

    async def aclose(self) -> None:
        for stream in self.lingering:
            await stream.aclose()
        self.lingering.clear()


@asynccontextmanager
async def running_proxy(host: str, port: int) -> AsyncIterator[Proxy]:
    """A proxy to ``host:port``, listening on 127.0.0.1 (``proxy.port``) until the block ends."""
    proxy = Proxy(host, port)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(proxy.run)
            yield proxy
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await proxy.aclose()


@asynccontextmanager
async def postgres_proxy(pg_url: str) -> AsyncIterator[Proxy]:
    """A proxy to the PostgreSQL server of ``pg_url``."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(pg_url)
    host = str(params.get("host") or "127.0.0.1")
    async with running_proxy(host, int(str(params.get("port") or 5432))) as proxy:
        yield proxy


def proxied(pg_url: str, port: int) -> str:
    """``pg_url`` with the host and port of the proxy listening on ``port``."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(pg_url)
    params.update(host="127.0.0.1", port=str(port))
    return make_conninfo("", **params)


def proxied_url(pg_url: str, port: int) -> str:
    """The same as a ``postgresql://`` URL (what a ``data_source`` entry takes)."""
    from psycopg.conninfo import conninfo_to_dict

    params = {k: str(v) for k, v in conninfo_to_dict(pg_url).items() if v is not None}
    user = urllib.parse.quote(params.pop("user", ""), safe="")
    password = params.pop("password", None)
    if password is not None:
        user += ":" + urllib.parse.quote(password, safe="")
    dbname = urllib.parse.quote(params.pop("dbname", ""), safe="")
    params.pop("host", None)
    params.pop("port", None)
    query = urllib.parse.urlencode(params)
    return f"postgresql://{user}{'@' if user else ''}127.0.0.1:{port}/{dbname}" + (
        f"?{query}" if query else ""
    )

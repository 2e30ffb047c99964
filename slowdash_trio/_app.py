"""The object user modules receive in ``_setup(app)``: the server's web API, in-process."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._errors import ApiError
from .webapi import Request

if TYPE_CHECKING:
    from ._project import Project
    from ._server import Server


class App:
    """``await app.request_channels()`` and friends, answered through the same routes (and
    the same merging) as HTTP requests, without a socket."""

    def __init__(self, server: Server) -> None:
        self._server = server

    @property
    def project(self) -> Project:
        return self._server.project

    @property
    def is_command(self) -> bool:
        """True in query mode (``python -m slowdash_trio channels``)."""
        return self._server.command_mode

    is_cgi = False
    is_async = True

    async def request(self, url: str, doc: Any = None) -> Any:
        """GET ``url`` (POST ``doc`` if given) and return the answer's content.

        ``url`` is relative to ``/api`` (a leading ``/api`` is accepted). Raises `ApiError`
        when the answer is an error (4xx/5xx).
        """
        parts = urllib.parse.urlsplit(url)
        path = parts.path
        if path == "/api" or path.startswith("/api/"):
            path = path[4:]
        query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        if doc is None:
            request = Request("GET", path, query, internal=True)
        else:
            if isinstance(doc, str):
                body = doc.encode()
            elif isinstance(doc, bytes | bytearray):
                body = bytes(doc)
            else:
                body = json.dumps(doc).encode()
            request = Request("POST", path, query, body, internal=True)
        response = await self._server.handle(request)
        if response.status >= 400:
            content = response.content
            message = content.get("message") if isinstance(content, dict) else None
            raise ApiError(response.status, str(message or content))
        return response.content

    async def request_publish(self, topic: str, message: Any, sender: str | None = None) -> Any:
        """Publish ``message`` on ``topic`` as ``POST /api/emit/TOPIC`` does: for
        ``current_data`` a ``{CH: {"t": T, "x": X}}`` document reaches every attached browser
        and the tasks' exported variables."""
        url = f"/emit/{urllib.parse.quote(topic, safe='')}"
        if sender is not None:
            url += "?" + urllib.parse.urlencode({"sender": sender})
        return await self.request(url, message)

    #: the original's name for `request_publish`
    request_emit = request_publish

    async def request_config(self) -> Any:
        return await self.request("/config")

    async def request_channels(self) -> Any:
        return await self.request("/channels")

    async def request_data(
        self,
        channels: str | Iterable[str],
        length: float | None = None,
        to: float | None = None,
        resample: float | None = None,
        reducer: str | None = None,
        envelope: int | None = None,
    ) -> Any:
        names = channels if isinstance(channels, str) else ",".join(channels)
        options = {
            "length": length,
            "to": to,
            "resample": resample,
            "reducer": reducer,
            "envelope": envelope,
        }
        query = urllib.parse.urlencode({k: v for k, v in options.items() if v is not None})
        return await self.request(f"/data/{names}" + (f"?{query}" if query else ""))

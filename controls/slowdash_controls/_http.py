"""HTTP nodes (``ctrl.http(url)``) and the SlowDash-server node (``ctrl.http(url).slowdash()``).

::

    http = ctrl.http("http://127.0.0.1:18881")
    http.path("/api/ping").json().get()            # ['pong']
    http.path("/api/data/V0", length=60).json()    # query values are URL-encoded
    hv = http.path("/hv/ch0").value()              # decoded text; setpoint()/ramping() work
    hv.setpoint(limits=(0, 1500)).set(1000)        # POSTs "1000.0"
    sd = http.slowdash()                           # the SlowDash web API, read with JSON nodes
    sd.data(["V0", "V1"], length=600).get()

All requests of one :class:`HttpNode` and of the nodes made from it share one
``httpx.AsyncClient`` (keep-alive connections). The client lives in the node's :class:`Link`,
which makes it lazily in the Trio loop that uses it and never reuses it from another loop;
``node.link.status`` tells whether the last request reached the server. The client is closed
by ``aclose()``, after a broken connection (a new one is made for the next request), when the
node is dropped (garbage-collected), or when its loop ends.

Every request runs under the node's ``timeout`` (seconds, the whole exchange: connect, send,
receive), mapped to :class:`DeviceTimeout`. A server that cannot be reached is a
:class:`DeviceConnectionError`; a reply with a status other than 2xx is an
:class:`HttpStatusError` carrying the status code and the server's message (SlowDash's
``{"status": "error", "message": ...}`` or the start of the body). Redirects are followed.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

import httpx
import trio

from ._errors import (
    DeviceConnectionError,
    DeviceTimeout,
    HttpStatusError,
    LocalProtocolError,
    NodeAccessError,
    RemoteProtocolError,
)
from ._link import Link, release_when_collected
from ._node import ControlNode, ControlValueNode

__all__ = [
    "HttpJsonNode",
    "HttpNode",
    "HttpPathNode",
    "HttpStatusError",
    "HttpValueNode",
    "SlowdashConfigFileNode",
    "SlowdashNode",
]

#: how long closing a client may take (its keep-alive connections)
CLOSE_GRACE = 1.0

#: how much of an error reply's body goes into the exception message
BODY_EXCERPT = 200

logger = logging.getLogger("slowdash_controls")

QueryValue = str | int | float | bool | None
Auth = tuple[str, str] | httpx.Auth


def _error_message(response: httpx.Response) -> str:
    """The server's explanation of an error reply, kept short."""
    content = response.content
    try:
        doc = json.loads(content)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        text: str = doc["message"]
    else:
        text = content[: BODY_EXCERPT * 4].decode("utf-8", errors="replace")
    text = " ".join(text.split())
    if not text:
        text = response.reason_phrase
    return text if len(text) <= BODY_EXCERPT else text[: BODY_EXCERPT - 3] + "..."


def _body(value: Any) -> bytes:
    """What ``set(value)`` sends: bytes as they are, anything else as UTF-8 text."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    return str(value).encode()


def _join(base: str, path: str) -> str:
    if base.endswith("/") and path.startswith("/"):
        return base + path[1:]
    return base + path


def _query(query: Mapping[str, QueryValue]) -> dict[str, str]:
    """Query values as the SlowDash API reads them (``None`` leaves the parameter out)."""
    params: dict[str, str] = {}
    for name, value in query.items():
        if value is None:
            continue
        if isinstance(value, bool):
            params[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            params[name] = str(value)
        else:
            raise TypeError(
                f"query parameter {name!r}: expected str, int, float or bool, "
                f"got {type(value).__name__}"
            )
    return params


class _Client:
    """An ``httpx.AsyncClient`` and the system task that closes it: when the link closes it,
    or when the Trio loop it belongs to ends (so no connection is left to the garbage
    collector)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.stop = trio.Event()
        self.done = trio.Event()
        self.finalizer: weakref.finalize[[], object] | None = None

    async def guard(self) -> None:
        try:
            await self.stop.wait()
        finally:
            with trio.move_on_after(CLOSE_GRACE, shield=True):
                try:
                    await self.client.aclose()
                except Exception:  # closing only: nothing waits for this outcome
                    logger.debug("closing an HTTP client failed", exc_info=True)
            self.done.set()


class HttpNode(ControlNode):
    """An HTTP server (or a base URL on one): ``get()`` GETs it, ``set(v)`` POSTs ``v``.

    ``get()`` returns the reply body as bytes; ``set()`` returns the status code. ``auth`` is
    ``(user, password)`` for basic authentication, or any ``httpx.Auth``.
    """

    def __init__(
        self,
        base_url: str,
        auth: Auth | None = None,
        *,
        timeout: float = 10.0,
    ) -> None:
        try:
            url = httpx.URL(base_url)
        except (httpx.InvalidURL, TypeError) as exc:
            raise ValueError(f"http(): not a URL: {base_url!r} ({exc})") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"http(): expected an http:// or https:// URL, got {base_url!r}")
        if not timeout > 0:
            raise ValueError(f"http(): timeout must be positive, got {timeout!r}")
        self.base_url = base_url
        self.timeout = float(timeout)
        if isinstance(auth, tuple | list) and len(auth) == 2:
            self._auth: httpx.Auth | None = httpx.BasicAuth(*auth)
        elif auth is None or isinstance(auth, httpx.Auth):
            self._auth = auth
        else:
            raise TypeError(f"http(): auth is (user, password) or an httpx.Auth, got {auth!r}")
        self.link: Link[_Client] = Link(
            base_url, self._open_client, self._close_client, connect_timeout=self.timeout
        )

    # ---- the client -----------------------------------------------------------------------
    async def _open_client(self) -> _Client:
        client = httpx.AsyncClient(
            auth=self._auth,
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=True,
        )
        holder = _Client(client)
        trio.lowlevel.spawn_system_task(
            holder.guard, name=f"slowdash-controls http {self.base_url}"
        )
        holder.finalizer = release_when_collected(self, holder.stop)
        return holder

    @staticmethod
    async def _close_client(holder: _Client) -> None:
        if holder.finalizer is not None:
            holder.finalizer.detach()
        holder.stop.set()
        await holder.done.wait()

    async def aclose(self) -> None:
        """Close the client (and its keep-alive connections); later requests fail."""
        await self.link.aclose()

    async def request(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request under the node's deadline; a non-2xx reply raises HttpStatusError."""
        where = str(url)
        client = (await self.link.connect()).client
        try:
            with trio.fail_after(self.timeout):
                response = await client.request(method, url, content=content, headers=headers)
        except (trio.TooSlowError, httpx.TimeoutException) as exc:
            raise DeviceTimeout(
                "no answer", address=where, timeout=self.timeout, command=method
            ) from exc
        except httpx.LocalProtocolError as exc:
            raise LocalProtocolError(f"{method} {where}: {exc}") from exc
        except (httpx.DecodingError, httpx.TooManyRedirects) as exc:
            raise RemoteProtocolError(f"{method} {where}: {exc}") from exc
        except (httpx.TransportError, httpx.StreamError) as exc:
            # refused, reset, dropped mid-reply, unreadable reply: the link is gone
            await self.link.mark_broken(exc)
            raise DeviceConnectionError(
                f"{method} failed: {type(exc).__name__}: {exc}", address=where
            ) from exc
        if not response.is_success:
            raise HttpStatusError(response.status_code, method, where, _error_message(response))
        return response

    def url(self, path: str = "", query: Mapping[str, QueryValue] | None = None) -> httpx.URL:
        """The URL of ``path`` (appended to the base URL) with ``query`` encoded."""
        try:
            url = httpx.URL(_join(self.base_url, path))
        except httpx.InvalidURL as exc:
            raise ValueError(f"not a valid path for {self.base_url}: {path!r} ({exc})") from exc
        return url.copy_merge_params(_query(query)) if query else url

    # ---- the node ---------------------------------------------------------------------------
    async def aio_get(self) -> bytes:
        return (await self.request("GET", self.url())).content

    async def aio_set(self, value: Any) -> int:
        return (await self.request("POST", self.url(), content=_body(value))).status_code

    def path(self, path: str, **query: QueryValue) -> HttpPathNode:
        """The resource at ``base_url + path``, with ``query`` as URL parameters."""
        return HttpPathNode(self, path, query)

    def slowdash(self) -> SlowdashNode:
        """The web API of a SlowDash (or slowdash-trio) server at this URL."""
        return SlowdashNode(self)

    def _label(self) -> str:
        return f"http({self.base_url})"


class HttpPathNode(ControlNode):
    """``http.path(p, **query)``: ``get()`` returns the body (bytes), ``set(v)`` POSTs ``v``."""

    def __init__(self, http: HttpNode, path: str, query: Mapping[str, QueryValue]) -> None:
        self.http = http
        self.url = http.url(path, query)  # checked now, not at the first request
        self.path_text = path

    async def aio_get(self) -> bytes:
        return (await self.http.request("GET", self.url)).content

    async def aio_set(self, value: Any) -> int:
        return (await self.http.request("POST", self.url, content=_body(value))).status_code

    def json(self) -> HttpJsonNode:
        """This resource as JSON: ``get()`` parses the reply, ``set(v)`` POSTs ``v`` as JSON."""
        return HttpJsonNode(self.http, self.url)

    def value(self) -> HttpValueNode:
        """This resource as a value (decoded text), with ``setpoint()`` and ``ramping()``."""
        return HttpValueNode(self.http, self.url)

    def _label(self) -> str:
        return f"{self.http._label()}.path({self.path_text!r})"


class HttpJsonNode(ControlNode):
    """A JSON resource: ``get()`` returns the parsed reply, ``set(v)`` POSTs ``json(v)``."""

    def __init__(self, http: HttpNode, url: httpx.URL, *, writable: bool = True) -> None:
        self.http = http
        self.url = url
        self.writable = writable

    async def aio_get(self) -> Any:
        response = await self.http.request("GET", self.url)
        try:
            return json.loads(response.content)
        except ValueError as exc:
            excerpt = response.content[:BODY_EXCERPT].decode("utf-8", errors="replace")
            raise RemoteProtocolError(
                f"GET {self.url}: the reply is not valid JSON ({exc}): {excerpt!r}"
            ) from exc

    async def aio_set(self, value: Any) -> int:
        if not self.writable:
            raise NodeAccessError(f"{self._label()} is read-only")
        try:
            body = json.dumps(value).encode()
        except (TypeError, ValueError) as exc:
            raise NodeAccessError(f"{self._label()}: cannot encode as JSON: {exc}") from exc
        response = await self.http.request(
            "POST", self.url, content=body, headers={"content-type": "application/json"}
        )
        return response.status_code

    def _label(self) -> str:
        return f"{self.http._label()}.json({self.url.raw_path.decode()!r})"


class HttpValueNode(ControlValueNode):
    """A resource holding one value: ``get()`` returns the body as text, ``set(v)`` POSTs
    ``str(v)``. ``float(node)``, ``setpoint()`` and ``ramping()`` work on it."""

    def __init__(self, http: HttpNode, url: httpx.URL) -> None:
        self.http = http
        self.url = url

    async def aio_get(self) -> str:
        return (await self.http.request("GET", self.url)).text

    async def aio_set(self, value: Any) -> int:
        return (await self.http.request("POST", self.url, content=_body(value))).status_code

    def _label(self) -> str:
        return f"{self.http._label()}.value({self.url.raw_path.decode()!r})"


class SlowdashNode(ControlNode):
    """The web API of a SlowDash server: ``ping()``, ``channels()``, ``data()``, ``config()``,
    ``config_file(name)``. ``get()`` is ``ping()``'s answer."""

    def __init__(self, http: HttpNode) -> None:
        self.http = http

    def _api(self, path: str, query: Mapping[str, QueryValue] | None = None) -> HttpJsonNode:
        return HttpJsonNode(self.http, self.http.url("/api/" + path, query), writable=False)

    async def aio_get(self) -> Any:
        return await self.ping().aio_get()

    def ping(self) -> HttpJsonNode:
        """``GET /api/ping`` (read-only): ``['pong']`` from a live server."""
        return self._api("ping")

    def channels(self) -> HttpJsonNode:
        """``GET /api/channels`` (read-only): ``[{"name": ..., "type": ...}, ...]``."""
        return self._api("channels")

    def config(self) -> HttpJsonNode:
        """``GET /api/config`` (read-only): the project's public configuration."""
        return self._api("config")

    def data(
        self, channels: str | Iterable[str], length: float = 3600, **query: QueryValue
    ) -> HttpJsonNode:
        """``GET /api/data/CH1,CH2?length=...`` (read-only); ``query`` takes ``to``,
        ``resample``, ``reducer``... Channel names are URL-encoded."""
        names = [channels] if isinstance(channels, str) else list(channels)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ValueError(f"data(): channel names expected, got {channels!r}")
        bad = [n for n in names if "," in n or "/" in n]
        if bad:
            raise ValueError(f"data(): channel names cannot contain ',' or '/': {bad}")
        path = "data/" + ",".join(quote(n, safe="") for n in names)
        return self._api(path, {"length": length, **query})

    def config_file(self, name: str) -> SlowdashConfigFileNode:
        """A file of the project's ``config/`` directory: ``get()`` downloads it (bytes),
        ``set(content)`` uploads it, replacing the file (``overwrite=yes``)."""
        return SlowdashConfigFileNode(self.http, name)

    def _label(self) -> str:
        return f"{self.http._label()}.slowdash()"


class SlowdashConfigFileNode(ControlNode):
    """``slowdash().config_file(name)``: ``get()`` -> bytes; ``set(content)`` uploads ``content``
    (bytes, text, or a dict/list written as JSON) and returns the status code (201)."""

    def __init__(self, http: HttpNode, name: str) -> None:
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"config_file(): a file name without '/' expected, got {name!r}")
        self.http = http
        self.name = name
        self._url = http.url("/api/config/file/" + quote(name, safe=""))

    async def aio_get(self) -> bytes:
        return (await self.http.request("GET", self._url)).content

    async def aio_set(self, value: Any) -> int:
        if isinstance(value, dict | list):
            body = json.dumps(value, indent=4).encode()
        else:
            body = _body(value)
        url = self._url.copy_merge_params({"overwrite": "yes"})
        return (await self.http.request("POST", url, content=body)).status_code

    def _label(self) -> str:
        return f"{self.http._label()}.slowdash().config_file({self.name!r})"

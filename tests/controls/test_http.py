"""HTTP nodes against a real local server (quart-trio on hypercorn, 127.0.0.1:0), and the
SlowDash node against a running slowdash-trio server."""

from __future__ import annotations

import base64
import functools
import gc
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from quart import Response, request
from quart_trio import QuartTrio
from support import EXAMPLES, MakeProject, serving

from slowdash_controls import (
    ControlException,
    ControlSystem,
    DeviceConnectionError,
    DeviceTimeout,
    LinkState,
    NodeAccessError,
    RemoteProtocolError,
    WrongThreadError,
)
from slowdash_controls._http import HttpNode, HttpStatusError, SlowdashNode


class Device:
    """What the test server holds: one value, the requests it saw, and a gate for /slow."""

    def __init__(self) -> None:
        self.value = "20.5"
        self.posts: list[tuple[str, bytes, str]] = []
        self.slow_entered = trio.Event()
        self.release_slow = trio.Event()


def make_app(device: Device) -> QuartTrio:
    app = QuartTrio(__name__)

    @app.route("/value", methods=["GET", "POST"])
    async def value() -> Any:
        if request.method == "POST":
            body = await request.get_data()
            device.posts.append(("/value", body, request.headers.get("content-type", "")))
            device.value = body.decode()
            return "", 204
        return device.value + "\n"

    @app.route("/", methods=["GET", "POST"])
    async def root() -> Any:
        if request.method == "POST":
            device.posts.append(("/", await request.get_data(), ""))
            return "created", 201
        return Response(b"\x00\x01root\xff", content_type="application/octet-stream")

    @app.route("/doc", methods=["GET", "POST"])
    async def doc() -> Any:
        if request.method == "POST":
            body = await request.get_data()
            device.posts.append(("/doc", body, request.headers.get("content-type", "")))
            return {"received": json.loads(body)}
        return {"a": 1, "b": [1, 2.5, None], "c": "é"}

    @app.route("/query")
    async def query() -> Any:
        return {"args": request.args.to_dict(flat=False), "raw": request.query_string.decode()}

    @app.route("/missing")
    async def missing() -> Any:
        return {"status": "error", "message": "no such channel: X"}, 404

    @app.route("/boom")
    async def boom() -> Any:
        return "Traceback: " + "very long explanation " * 100, 500

    @app.route("/badjson")
    async def badjson() -> Any:
        return Response("{not json", content_type="application/json")

    @app.route("/slow")
    async def slow() -> Any:
        device.slow_entered.set()
        await device.release_slow.wait()
        return "late"

    @app.route("/secret")
    async def secret() -> Any:
        expected = "Basic " + base64.b64encode(b"user:pa ss").decode()
        if request.headers.get("authorization") != expected:
            return "who are you?", 401
        return "the secret"

    @app.route("/moved")
    async def moved() -> Any:
        return "", 302, {"location": "/doc"}

    return app


def config() -> Config:
    cfg = Config()
    cfg.bind = ["127.0.0.1:0"]
    cfg.accesslog = None
    cfg.errorlog = None
    return cfg


@pytest.fixture
def device() -> Device:
    return Device()


@pytest.fixture
async def url(nursery: trio.Nursery, device: Device) -> AsyncIterator[str]:
    binds = await nursery.start(serve, make_app(device), config())
    yield binds[0]
    device.release_slow.set()


@pytest.fixture
async def http(url: str) -> AsyncIterator[HttpNode]:
    node = HttpNode(url, timeout=10)
    yield node
    await node.aclose()


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# ---- plain requests ---------------------------------------------------------------------------


async def test_get_returns_bytes_and_set_posts_the_body(http: HttpNode, device: Device) -> None:
    assert await http.aio_get() == b"\x00\x01root\xff"
    assert await http.aio_set("hello") == 201
    assert await http.aio_set(b"\xff\x00") == 201
    assert await http.aio_set(12.5) == 201
    assert [body for _, body, _ in device.posts] == [b"hello", b"\xff\x00", b"12.5"]
    assert http.link.status.state is LinkState.UP


async def test_path_node_gets_and_posts(http: HttpNode, device: Device) -> None:
    node = http.path("/value")
    assert await node.aio_get() == b"20.5\n"
    assert await node.aio_set("21") == 204
    assert device.value == "21"


async def test_value_node_decodes_text_and_is_a_number(http: HttpNode, device: Device) -> None:
    value = http.path("/value").value()
    assert await value.aio_get() == "20.5\n"
    assert await trio.to_thread.run_sync(float, value) == 20.5
    await value.aio_set(3)
    assert device.posts[-1][:2] == ("/value", b"3")


async def test_value_setpoint_limits_are_checked_before_posting(
    http: HttpNode, device: Device
) -> None:
    setpoint = http.path("/value").value().setpoint(limits=(0, 100))
    await setpoint.aio_set(42)
    assert device.value == "42.0"
    with pytest.raises(NodeAccessError, match="above the limit"):
        await setpoint.aio_set(101)
    with pytest.raises(NodeAccessError, match="numeric value is expected"):
        await setpoint.aio_set("lots")
    assert [body for _, body, _ in device.posts] == [b"42.0"]
    assert await setpoint.aio_get() == 42.0


async def test_value_ramping_posts_each_step(http: HttpNode, device: Device) -> None:
    device.value = "1"
    ramp = http.path("/value").value().ramping(100, tick=0.01)  # 1 per step
    with trio.fail_after(30):
        assert await ramp.aio_set(4) is True
    assert [body for _, body, _ in device.posts] == [b"2.0", b"3.0", b"4.0"]


async def test_json_node_parses_and_posts_json(http: HttpNode, device: Device) -> None:
    node = http.path("/doc").json()
    assert await node.aio_get() == {"a": 1, "b": [1, 2.5, None], "c": "é"}
    assert await node.aio_set({"x": [1, "two"]}) == 200
    _, body, content_type = device.posts[-1]
    assert json.loads(body) == {"x": [1, "two"]}
    assert content_type == "application/json"
    with pytest.raises(NodeAccessError, match="JSON"):
        await node.aio_set({"not": object()})
    assert len(device.posts) == 1


async def test_query_is_url_encoded(http: HttpNode) -> None:
    tricky = "a b&c=d/é?#%"
    reply = await http.path("/query", name=tricky, n=3, flag=True, skipped=None).json().aio_get()
    assert reply["args"] == {"name": [tricky], "n": ["3"], "flag": ["true"]}
    assert " " not in reply["raw"] and "#" not in reply["raw"]
    merged = await http.path("/query?fixed=1", extra="2").json().aio_get()
    assert merged["args"] == {"fixed": ["1"], "extra": ["2"]}


async def test_redirects_are_followed(http: HttpNode) -> None:
    assert (await http.path("/moved").json().aio_get())["a"] == 1


async def test_basic_auth(url: str) -> None:
    anonymous = HttpNode(url)
    with pytest.raises(HttpStatusError) as info:
        await anonymous.path("/secret").aio_get()
    assert info.value.status_code == 401
    node = HttpNode(url, ("user", "pa ss"))
    assert await node.path("/secret").value().aio_get() == "the secret"
    await anonymous.aclose()
    await node.aclose()


# ---- errors -----------------------------------------------------------------------------------


async def test_404_carries_status_and_the_servers_message(http: HttpNode) -> None:
    with pytest.raises(HttpStatusError) as info:
        await http.path("/missing").json().aio_get()
    error = info.value
    assert isinstance(error, ControlException)
    assert (error.status_code, error.method) == (404, "GET")
    assert error.url.endswith("/missing")
    assert error.message == "no such channel: X"
    assert "HTTP 404: no such channel: X" in str(error)
    with pytest.raises(HttpStatusError, match="HTTP 404"):
        await http.path("/nowhere").aio_set("x")


async def test_500_message_is_an_excerpt_of_the_body(http: HttpNode) -> None:
    with pytest.raises(HttpStatusError) as info:
        await http.path("/boom").aio_get()
    assert info.value.status_code == 500
    assert info.value.message.startswith("Traceback: very long explanation")
    assert len(info.value.message) <= 200
    assert http.link.status.state is LinkState.UP  # the server answered: the link is fine


async def test_bad_json_from_the_server_is_a_protocol_error(http: HttpNode) -> None:
    with pytest.raises(RemoteProtocolError, match="not valid JSON") as info:
        await http.path("/badjson").json().aio_get()
    assert "{not json" in str(info.value)


async def test_refused_is_a_connection_error_and_shows_in_the_link_status() -> None:
    node = HttpNode(f"http://127.0.0.1:{closed_port()}/api")
    with pytest.raises(DeviceConnectionError) as info:
        await node.path("/ping").aio_get()
    assert "127.0.0.1" in str(info.value)
    assert node.link.status.state is LinkState.DOWN
    assert "ConnectError" in (node.link.status.last_error or "")
    await node.aclose()


async def test_a_server_hanging_up_without_a_reply_is_a_connection_error(
    nursery: trio.Nursery,
) -> None:
    requests_seen: list[bytes] = []

    async def hang_up(stream: trio.SocketStream) -> None:
        requests_seen.append(await stream.receive_some(65536))
        await stream.aclose()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, hang_up, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    node = HttpNode(f"http://127.0.0.1:{port}")
    with pytest.raises(DeviceConnectionError, match="RemoteProtocolError") as info:
        await node.path("/x").aio_get()
    assert requests_seen and requests_seen[0].startswith(b"GET /x HTTP/1.1")
    assert "disconnected" in str(info.value)
    assert node.link.status.state is LinkState.DOWN
    await node.aclose()


async def test_timeout_is_a_device_timeout(url: str, device: Device) -> None:
    node = HttpNode(url, timeout=0.5)
    with trio.fail_after(20), pytest.raises(DeviceTimeout) as info:
        await node.path("/slow").aio_get()
    assert device.slow_entered.is_set()  # the request reached the server and hung there
    assert info.value.timeout == 0.5 and info.value.command == "GET"
    assert await node.path("/value").value().aio_get() == "20.5\n"  # and the node recovers
    await node.aclose()


async def test_closed_node_refuses_further_requests(url: str) -> None:
    node = HttpNode(url)
    assert await node.path("/value").aio_get() == b"20.5\n"
    await node.aclose()
    with pytest.raises(DeviceConnectionError, match="closed"):
        await node.aio_get()


async def test_a_node_dropped_without_aclose_closes_its_client(url: str) -> None:
    node = HttpNode(url)
    assert await node.path("/value").aio_get() == b"20.5\n"
    holder = node.link._resource
    assert holder is not None and not holder.client.is_closed
    del node
    gc.collect()
    with trio.fail_after(10):
        await holder.done.wait()
    assert holder.client.is_closed


def test_constructor_and_paths_refuse_bad_input() -> None:
    with pytest.raises(ValueError, match="http"):
        HttpNode("ftp://example.org/")
    with pytest.raises(ValueError, match="URL"):
        HttpNode("not a url")
    with pytest.raises(ValueError, match="timeout"):
        HttpNode("http://127.0.0.1:1", timeout=0)
    with pytest.raises(TypeError, match="auth"):
        HttpNode("http://127.0.0.1:1", "user:password")  # type: ignore[arg-type]
    node = HttpNode("http://127.0.0.1:1")
    with pytest.raises(TypeError, match="query parameter 'x'"):
        node.path("/a", x=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="channel names"):
        node.slowdash().data("a,b")
    with pytest.raises(ValueError, match="channel names"):
        node.slowdash().data([])
    with pytest.raises(ValueError, match="file name"):
        node.slowdash().config_file("../SlowdashProject.yaml")
    with pytest.raises(NodeAccessError, match="read-only"):
        node.slowdash().ping().set("x")


# ---- the sync facade --------------------------------------------------------------------------


async def test_sync_facade_from_a_worker_thread(http: HttpNode, device: Device) -> None:
    node = http.path("/value")
    assert await trio.to_thread.run_sync(node.get) == b"20.5\n"
    assert await trio.to_thread.run_sync(node.set, "7") == 204
    assert device.value == "7"
    with pytest.raises(WrongThreadError, match="aio_get"):
        node.get()


@contextmanager
def server_thread(device_holder: list[Device]) -> Iterator[str]:
    """The test app served from its own thread and loop, for plain-script tests."""
    ready = threading.Event()
    urls: list[str] = []
    token: list[trio.lowlevel.TrioToken] = []
    stop: list[trio.Event] = []

    async def main() -> None:
        device_holder.append(Device())
        stop.append(trio.Event())
        token.append(trio.lowlevel.current_trio_token())
        async with trio.open_nursery() as nursery:
            urls.extend(await nursery.start(serve, make_app(device_holder[0]), config()))
            ready.set()
            await stop[0].wait()
            nursery.cancel_scope.cancel()

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield urls[0]
    finally:
        token[0].run_sync_soon(stop[0].set)
        thread.join(30)


def test_a_client_is_not_reused_across_loops() -> None:
    holder: list[Device] = []
    with server_thread(holder) as url:
        node = HttpNode(url).path("/value")
        assert node.get() == b"20.5\n"  # plain script: the shared background loop
        assert node.set("8") == 204

        async def in_another_loop() -> bytes:
            return await node.aio_get()

        assert trio.run(in_another_loop) == b"8\n"
        assert node.get() == b"8\n"
        # one client per loop: the background loop's, this run's, then the background's again
        assert node.http.link.status.connects == 3


# ---- the SlowDash node ------------------------------------------------------------------------

WORLDCLOCK = (EXAMPLES / "worldclock" / "worldclock.py").read_text()


async def test_slowdash_node_against_a_running_server(make_project: MakeProject) -> None:
    project = make_project({"worldclock": WORLDCLOCK})
    async with serving(project) as (_, client):
        http = ControlSystem().http(str(client.base_url))
        assert http.load_control_module("Slowdash") is http  # built in: a check only
        sd = http.slowdash()
        assert isinstance(sd, SlowdashNode)
        assert await sd.ping().aio_get() == ["pong"]
        assert await sd.aio_get() == ["pong"]
        channels = await sd.channels().aio_get()
        assert [(c["name"], c["type"]) for c in channels] == [("WorldClock", "tree")]
        data = await sd.data("WorldClock", length=60).aio_get()
        assert data["WorldClock"]["length"] == 60.0
        assert "UTC" in data["WorldClock"]["x"]["tree"]
        both = await sd.data(["WorldClock", "no such channel"], length=60, to=0).aio_get()
        assert list(both) == ["WorldClock"]
        config = await sd.config().aio_get()
        assert config["project"]["name"] == "TestProject"
        with pytest.raises(HttpStatusError) as info:
            await sd.data("WorldClock", length="long").aio_get()
        assert info.value.status_code == 400
        assert "length" in info.value.message
        await http.aclose()


async def test_slowdash_config_file_upload_and_download(make_project: MakeProject) -> None:
    project = make_project({"worldclock": WORLDCLOCK})
    async with serving(project) as (_, client):
        sd = HttpNode(str(client.base_url)).slowdash()
        layout = sd.config_file("slowplot-Test.json")
        assert await layout.aio_set({"meta": {"title": "Test"}}) == 201
        assert json.loads(await layout.aio_get()) == {"meta": {"title": "Test"}}
        assert await layout.aio_set(b'{"meta": {"title": "Again"}}') == 201  # overwrite=yes
        stored = await trio.Path(project.directory, "config", "slowplot-Test.json").read_bytes()
        assert json.loads(stored) == {"meta": {"title": "Again"}}
        assert await trio.to_thread.run_sync(layout.get) == stored
        with pytest.raises(HttpStatusError) as refused:
            await sd.config_file("script.exe").aio_set(b"MZ")
        assert refused.value.status_code == 403
        with pytest.raises(HttpStatusError) as missing:
            await sd.config_file("nothing-here.json").aio_get()
        assert missing.value.status_code == 404
        await sd.http.aclose()

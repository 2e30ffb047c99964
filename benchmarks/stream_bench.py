"""Live streaming: ``await node.deliver()`` in a server-side loop to WebSocket clients,
against a bare hypercorn + quart-trio WebSocket broadcast of the same load in the same run.

The load (defaults): 100 channels x 10 Hz (1,000 channel updates/s) to 50 clients on
127.0.0.1 (5 client processes x 10 connections, so the clients are not the bottleneck), plus one
client that never reads, connected throughout, for ``--seconds`` (20). Both servers run in a
process of their own:

- ``slowdash``: slowdash-trio serving a project whose user module delivers 100 ``ValueNode``s
  every 100 ms (``await node.deliver("chNNN")``); the hub's lag bounds are raised above the run
  time so the stalled client stays attached (and coalesces) throughout;
- ``bare``: a quart-trio app whose loop builds the same 100 values into one frame every 100 ms
  and hands it to every connection's bounded queue (full queue: the frame is dropped for that
  connection), each connection's handler sending from its queue.

Reported per server: the lag of every channel value at every client (receive time minus the
``t`` the publisher put in it; p50, p99, and the worst client's p99), values delivered against
values published times clients, updates a reading client missed (gaps in each channel's
sequence of values), values coalesced (slowdash: counted by the hub; bare: frames
dropped x channels), frames/s and values/s received, the server's CPU time and peak resident
memory (``VmHWM``), and its resident memory at the start and at the end of the run.

    python benchmarks/stream_bench.py [--seconds S] [--clients N] [--procs P] [--channels C]
        [--rate HZ] [--servers slowdash,bare] [--gc-freeze] [--json PATH]

``--gc-freeze`` has the slowdash server call ``gc.freeze()`` once serving: without it, Python's
full collections scan the server's start-up objects and pause it for 40-90 ms now and then,
which shows in the lag's tail.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results-stream-latest.json"

PUBLISHER = """
import trio
from slowdash_controls import ControlSystem

CHANNELS, RATE = {channels}, {rate}
nodes = [ControlSystem().value(0.0) for _ in range(CHANNELS)]
names = ["ch%03d" % i for i in range(CHANNELS)]

async def _run():
    tick = trio.current_time()
    k = 0
    while True:
        for node, name in zip(nodes, names):
            node.set(float(k))
            await node.deliver(name)
        k += 1
        tick += 1 / RATE
        await trio.sleep_until(tick)
"""


# ----------------------------------------------------------------------------------------------
# servers (each in a process of its own)


def serve_slowdash(port: int, channels: int, rate: float, freeze: bool) -> None:
    import gc

    import trio

    from slowdash_trio._project import load_project
    from slowdash_trio._server import Server

    directory = Path(tempfile.mkdtemp(prefix="stream-bench-"))
    (directory / "publisher.py").write_text(PUBLISHER.format(channels=channels, rate=rate))
    (directory / "SlowdashProject.yaml").write_text(
        "slowdash_project:\n  name: StreamBench\n  module:\n    file: publisher.py\n"
    )
    server = Server(load_project(directory))
    server.hub.limits.lag_timeout = 1e9  # keep the stalled client attached throughout
    server.hub.limits.max_lag_updates = 1 << 62

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: server.serve(port=port, task_status=task_status)
            )
            if freeze:  # what the collector then scans stays small (see --gc-freeze)
                gc.collect()
                gc.freeze()
            with trio.open_signal_receiver(signal.SIGUSR1, signal.SIGTERM) as signals:
                async for signum in signals:
                    if signum == signal.SIGTERM:
                        server.request_shutdown()
                        break
                    stats = [
                        {"offered": s.offered, "taken": s.taken, "coalesced": s.coalesced}
                        for s in server.hub.subscribers()
                    ]
                    print(json.dumps({"coalesced": server.hub.coalesced, "subscribers": stats}))
                    sys.stdout.flush()

    trio.run(main)


def serve_bare(port: int, channels: int, rate: float) -> None:
    import trio
    from hypercorn.config import Config
    from hypercorn.trio import serve
    from quart import websocket
    from quart_trio import QuartTrio

    app = QuartTrio("bare_stream")
    queues: set[trio.MemorySendChannel[str]] = set()
    dropped = [0]
    names = [f"ch{i:03d}" for i in range(channels)]

    @app.websocket("/ws/attach/current_data")
    async def attach() -> None:
        send, receive = trio.open_memory_channel[str](64)
        queues.add(send)
        try:
            async for frame in receive:
                await websocket.send(frame)
        finally:
            queues.discard(send)

    async def publish() -> None:
        tick = trio.current_time()
        k = 0
        while True:
            now = time.time()
            frame = json.dumps({name: {"t": now, "x": float(k)} for name in names})
            for queue in list(queues):
                try:
                    queue.send_nowait(frame)
                except trio.WouldBlock:
                    dropped[0] += 1
            k += 1
            tick += 1 / rate
            await trio.sleep_until(tick)

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    stop = trio.Event()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(publish)
            nursery.start_soon(lambda: serve(app, config, shutdown_trigger=stop.wait))
            with trio.open_signal_receiver(signal.SIGUSR1, signal.SIGTERM) as signals:
                async for signum in signals:
                    if signum == signal.SIGTERM:
                        nursery.cancel_scope.cancel()
                        break
                    print(json.dumps({"coalesced": dropped[0] * channels, "subscribers": []}))
                    sys.stdout.flush()

    trio.run(main)


# ----------------------------------------------------------------------------------------------
# clients


def run_clients(port: int, count: int, start: float, seconds: float) -> None:
    """``count`` connections; lags of values whose ``t`` falls in [start, start + seconds]."""
    import gc

    import trio

    gc.disable()  # a bounded run: no collector pauses in the measurement
    import trio_websocket

    url = f"ws://127.0.0.1:{port}/ws/attach/current_data"
    results: list[dict[str, Any]] = []

    async def client() -> None:
        lags: list[int] = []
        frames = values = gaps = 0
        last: dict[str, float] = {}  # x is the publisher's tick number
        async with trio_websocket.open_websocket_url(url, max_message_size=1 << 24) as ws:
            with trio.move_on_at(trio.current_time() + (start + seconds - time.time()) + 1):
                while True:
                    text = await ws.get_message()
                    now = time.time()
                    frame = json.loads(text)
                    counted = 0
                    for name, packet in frame.items():
                        t, x = packet["t"], packet["x"]
                        previous = last.get(name)
                        if previous is not None and x > previous + 1:
                            gaps += int(x - previous - 1)
                        last[name] = x
                        if start <= t <= start + seconds:
                            lags.append(int((now - t) * 1e6))
                            counted += 1
                    if counted:
                        frames += 1
                        values += counted
        results.append({"lags_us": lags, "frames": frames, "values": values, "gaps": gaps})

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(client)

    trio.run(main)
    print(json.dumps(results))


def run_stalled(port: int, seconds: float) -> None:
    """One connection that completes the handshake and then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        b"GET /ws/attach/current_data HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert sock.recv(12) == b"HTTP/1.1 101", "no WebSocket upgrade"
    print("stalled", flush=True)
    time.sleep(seconds)
    sock.close()


# ----------------------------------------------------------------------------------------------
# one run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_port(port: int, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def proc_status(pid: int, key: str) -> float:
    """A ``/proc/PID/status`` memory figure in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return math.nan


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[int], q: float) -> float:
    if not values:
        return math.nan
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] / 1e6


def measure(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    me = [sys.executable, __file__]
    shape = ["--channels", str(args.channels), "--rate", str(args.rate)]
    freeze = ["--gc-freeze"] if args.gc_freeze else []
    server = subprocess.Popen(
        [*me, f"serve-{kind}", "--port", str(port), *shape, *freeze],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        wait_port(port)
        stalled = subprocess.Popen(
            [*me, "stall", "--port", str(port), "--seconds", str(args.seconds + 15)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert stalled.stdout is not None
        assert stalled.stdout.readline().strip() == "stalled"
        start = time.time() + 3  # every client connected by then
        per_proc = -(-args.clients // args.procs)
        timing = ["--start", repr(start), "--seconds", str(args.seconds)]
        clients = []
        remaining = args.clients
        while remaining > 0:
            n = min(per_proc, remaining)
            remaining -= n
            clients.append(
                subprocess.Popen(
                    [*me, "clients", "--port", str(port), "--count", str(n), *timing],
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        time.sleep(max(0.0, start - time.time()))
        cpu0, rss0 = cpu_seconds(server.pid), proc_status(server.pid, "VmRSS")
        time.sleep(args.seconds)
        cpu1, rss1 = cpu_seconds(server.pid), proc_status(server.pid, "VmRSS")
        outputs = [c.communicate(timeout=60)[0] for c in clients]
        peak = proc_status(server.pid, "VmHWM")
        assert server.stdout is not None
        server.send_signal(signal.SIGUSR1)
        stats = json.loads(server.stdout.readline())
        # the stalled client goes first: a server writing to it cannot stop (hypercorn shields
        # its socket writes from cancellation), the bare one included
        stalled.kill()
        stalled.wait()
        server.terminate()
        server.communicate(timeout=30)
    finally:
        server.kill()
    per_client = [r for out in outputs for r in json.loads(out)]
    lags = [lag for r in per_client for lag in r["lags_us"]]
    published = int(args.seconds * args.rate) * args.channels
    values = sum(r["values"] for r in per_client)
    frames = sum(r["frames"] for r in per_client)
    subscribers = stats["subscribers"]
    stalled_sub = max(subscribers, key=lambda s: s["coalesced"]) if subscribers else None
    return {
        "server": kind,
        "clients": len(per_client),
        "published_values": published,
        "expected_values": published * len(per_client),
        "delivered_values": values,
        "missed_values": sum(r["gaps"] for r in per_client),
        "coalesced_values": stats["coalesced"],
        "stalled_client_coalesced": stalled_sub["coalesced"] if stalled_sub else None,
        "stalled_client_sent": stalled_sub["taken"] if stalled_sub else None,
        "frames_per_s": frames / args.seconds,
        "values_per_s": values / args.seconds,
        "lag_p50_s": percentile(lags, 0.50),
        "lag_p99_s": percentile(lags, 0.99),
        "lag_max_s": percentile(lags, 1.0),
        "worst_client_p99_s": max(percentile(r["lags_us"], 0.99) for r in per_client),
        "client_p99_s": [percentile(r["lags_us"], 0.99) for r in per_client],
        "server_cpu_s": cpu1 - cpu0,
        "server_rss_start_mb": rss0,
        "server_rss_end_mb": rss1,
        "server_peak_rss_mb": peak,
    }


def report(results: dict[str, Any]) -> None:
    runs = results["runs"]
    print(
        f"\nstreaming: {results['channels']} channels x {results['rate']:g} Hz to "
        f"{results['clients']} clients + 1 stalled, {results['seconds']:g} s, "
        f"Python {results['python']}, {results['date']}"
    )
    rows = [
        ("lag p50 (ms)", "lag_p50_s", 1e3, ".1f"),
        ("lag p99 (ms)", "lag_p99_s", 1e3, ".1f"),
        ("lag max (ms)", "lag_max_s", 1e3, ".1f"),
        ("worst client's p99 (ms)", "worst_client_p99_s", 1e3, ".1f"),
        ("values expected (±1 tick)", "expected_values", 1, ",.0f"),
        ("values delivered", "delivered_values", 1, ",.0f"),
        ("values missed by readers", "missed_values", 1, ",.0f"),
        ("values coalesced/dropped", "coalesced_values", 1, ",.0f"),
        ("frames/s received", "frames_per_s", 1, ",.0f"),
        ("values/s received", "values_per_s", 1, ",.0f"),
        ("server CPU (s)", "server_cpu_s", 1, ".1f"),
        ("server RSS start (MB)", "server_rss_start_mb", 1, ".0f"),
        ("server RSS end (MB)", "server_rss_end_mb", 1, ".0f"),
        ("server peak RSS (MB)", "server_peak_rss_mb", 1, ".0f"),
    ]
    names = [run["server"] for run in runs]
    print(f"  {'':28s}" + "".join(f"{name:>14s}" for name in names))
    for label, key, scale, fmt in rows:
        cells = "".join(f"{format(run[key] * scale, fmt):>14s}" for run in runs)
        print(f"  {label:28s}{cells}")
    ours = next((r for r in runs if r["server"] == "slowdash"), None)
    if ours is not None and ours["stalled_client_coalesced"] is not None:
        print(
            f"  stalled client (slowdash): {ours['stalled_client_sent']:,} values sent before "
            f"its buffer filled, {ours['stalled_client_coalesced']:,} coalesced"
        )
    print(f"  results written to {results['json']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="bench")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--procs", type=int, default=5)
    parser.add_argument("--channels", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--port", type=int)
    parser.add_argument("--count", type=int)
    parser.add_argument("--start", type=float)
    parser.add_argument("--servers", default="slowdash,bare")
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="slowdash: gc.freeze() once serving (full collections then skip the start-up "
        "objects; without it they pause the server for 40-90 ms now and then)",
    )
    args = parser.parse_args()
    if args.mode == "serve-slowdash":
        serve_slowdash(args.port, args.channels, args.rate, args.gc_freeze)
    elif args.mode == "serve-bare":
        serve_bare(args.port, args.channels, args.rate)
    elif args.mode == "clients":
        run_clients(args.port, args.count, args.start, args.seconds)
    elif args.mode == "stall":
        run_stalled(args.port, args.seconds)
    else:
        runs = [measure(kind, args) for kind in args.servers.split(",")]
        results = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "channels": args.channels,
            "rate": args.rate,
            "clients": args.clients,
            "seconds": args.seconds,
            "gc_freeze": args.gc_freeze,
            "runs": runs,
            "json": str(args.json),
        }
        report(results)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

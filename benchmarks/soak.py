"""Soak: one server under a bounded, realistic load for a long time; its memory, open files and
threads must stay flat (``nox -s soak``; not part of the default sessions or CI).

The server is ``python -m slowdash_trio serve`` in a process of its own, on 127.0.0.1, with a
project made in a temporary directory:

- a user module ``gauges`` answering ``_get_channels``/``_get_data`` (a number, a tree, a
  histogram);
- a task ``stream`` delivering three values (one a graph) at about 10 Hz, with a sync and an
  async function for form calls;
- a task ``recorder`` appending four channels at 2 Hz to ``soak.db`` with ``DataStore_SQLite``;
- an SQLite data source on ``soak.db``, filled beforehand with two hours of the same channels
  at the same rate, so that the live windows asked for are full from the start (a window that
  fills up during the run would look like growth).

The load, for ``--minutes`` (default 10), every loop bounded in count and time: WebSocket
clients attaching, reading for a few seconds and detaching (and two attached throughout);
``/api/data`` queries of varied windows (raw, resampled, tier-aligned, past windows) over
recorded and current channels; ``/api/channels``; the task list's long poll; task function
calls (plain and ``await``); the recorder stopped and started and the stream task reloaded;
layout files written, read back, listed and deleted through ``/api/config/file``.

Every ``--sample`` seconds the server's resident memory (``VmRSS``), open file descriptors
(``/proc/PID/fd``) and threads are sampled. After the warm-up (a quarter of the run, at least
a minute) each is fitted: the least-squares slope per hour, and the median of the last quarter
of the samples against the median of the first. A metric is *growing* when both its slope and
its change pass the limits printed in the report; the run then exits with status 1 (2 if the
server died or did not stop cleanly on SIGTERM at the end). ``--inject-leak`` adds a module
that leaks memory, a file descriptor and a thread at a steady pace, to see the verdict turn;
``--load`` runs only some kinds of load, to find which one makes something grow.

The server runs with ``MALLOC_ARENA_MAX=2`` (``--malloc-arena-max``; 0 leaves glibc's
default). With glibc's default, each thread that allocates may get an arena of its own (up to
8 per CPU), and the resident size creeps up for tens of minutes as the worker threads take
turns: bounded, and returned now and then, but a slope that no leak made. Two arenas measure
what the program keeps.

    python benchmarks/soak.py [--minutes M] [--sample S] [--load KINDS] [--inject-leak]
        [--malloc-arena-max N] [--json PATH]
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import trio
import trio_websocket

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results-soak-latest.json"

RECORDED = ["temp", "pressure", "flow", "rate"]  # what the recorder writes, at RECORD_HZ
RECORD_HZ = 2.0
HISTORY_S = 7200.0  # written before the start: longer than the longest live window asked for
CURRENT = ["gauge.temp", "gauge.tree", "gauge.hist", "stream.level", "stream.phase"]
LIVE_LENGTHS = [60.0, 600.0, 3600.0]
LAYOUTS = 5  # layout files cycled through by the config writer
LOADS = ["data", "websocket", "channels", "longpoll", "calls", "cycles", "config"]

# limits: a metric is growing when its slope AND its change (last-quarter median minus
# first-quarter median) are both beyond these
LIMITS: dict[str, tuple[float, float]] = {
    "rss_mb": (10.0, 2.0),  # MB per hour, MB
    "fds": (10.0, 2.0),  # descriptors per hour, descriptors
    "threads": (10.0, 2.0),  # threads per hour, threads
}
UNITS = {"rss_mb": "MB", "fds": "", "threads": ""}
LABELS = {"rss_mb": "resident memory", "fds": "open fds", "threads": "threads"}

GAUGES = '''\
"""Current values for the dashboard: a number, a tree and a histogram."""

import math
import time

def _get_channels():
    return [
        {"name": "gauge.temp", "type": "numeric"},
        {"name": "gauge.tree", "type": "tree"},
        {"name": "gauge.hist", "type": "histogram"},
    ]


def _get_data(channel):
    t = time.time()
    if channel == "gauge.temp":
        return 20 + math.sin(t / 30)
    if channel == "gauge.tree":
        return {"tree": {"state": "ok", "since": int(t) // 60 * 60, "count": int(t) % 1000}}
    if channel == "gauge.hist":
        counts = [int(50 * math.exp(-((k - 10 + math.sin(t)) ** 2) / 8)) for k in range(20)]
        return {"bins": {"min": 0, "max": 20}, "counts": counts}
    return None
'''

STREAM = '''\
"""Streams three values at about 10 Hz; functions for form calls."""

import math
import time

import trio

ctrl = ControlSystem()  # noqa: F821 -- every task gets ControlSystem without an import
level = ctrl.value(0.0)
phase = ctrl.value(0.0)
trace = ctrl.value({"x": [], "y": []})


def _export():
    return [("level", level), ("phase", phase)]


def set_level(value: float):
    level.set(value)
    return value


async def probe(n: int = 0):
    await trio.sleep(0.01)
    return {"n": n, "level": level.get()}


async def _loop():
    t = time.time()
    phase.set(math.sin(t))
    xs = [k / 20 for k in range(40)]
    trace.set({"x": xs, "y": [math.sin(6.28 * (x + t)) for x in xs]})
    await phase.deliver()
    await level.deliver()
    await trace.deliver("stream.trace")
    await trio.sleep(0.1)
'''

RECORDER = '''\
"""Records four channels at RATE Hz into soak.db, as a slow-control logger does."""

import math
import time

from slowdash_stores import DataStore_SQLite

store = None


def _initialize():
    global store
    store = DataStore_SQLite("sqlite:///soak", "data")


def _loop():
    t = time.time()
    store.append(
        {
            "temp": 20 + math.sin(t / 60),
            "pressure": 1000 + 5 * math.cos(t / 45),
            "flow": 3 + math.sin(t / 7),
            "rate": float(int(t) % 97),
        },
        timestamp=t,
    )
    ControlSystem().sleep(1 / RATE)  # noqa: F821 -- a task's global


def _finalize():
    store.close()
'''.replace("RATE", repr(RECORD_HZ))

LEAKER = '''\
"""Leaks on purpose (--inject-leak): 64 kB a second, a file every 5 s, a thread every 10 s."""

import os
import threading
import time

hoard = []
files = []
parked = threading.Event()
ticks = 0


def _loop():
    global ticks
    ticks += 1
    hoard.append(b"\\x01" * 65536)  # touched, so resident
    if ticks % 5 == 0:
        files.append(open(os.devnull, "rb"))
    if ticks % 10 == 0:
        threading.Thread(target=parked.wait, daemon=True).start()
    time.sleep(1)
'''


# ----------------------------------------------------------------------------------------------
# the project and the server


def write_project(directory: Path, *, leak: bool) -> None:
    (directory / "config").mkdir(parents=True)
    (directory / "gauges.py").write_text(GAUGES)
    (directory / "config" / "slowtask-stream.py").write_text(STREAM)
    (directory / "config" / "slowtask-recorder.py").write_text(RECORDER)
    modules = "    - file: gauges.py\n"
    if leak:
        (directory / "leaker.py").write_text(LEAKER)
        modules += "    - file: leaker.py\n"
    (directory / "SlowdashProject.yaml").write_text(
        "slowdash_project:\n"
        "  name: Soak\n"
        "  title: slowdash-trio soak\n"
        f"  module:\n{modules}"
        "  task:\n"
        "    - {name: stream, auto_load: true}\n"
        "    - {name: recorder, auto_load: true}\n"
        "  data_source:\n"
        "    url: sqlite:///soak\n"
        "    time_series: data[channel]@timestamp(unix)=value\n"
    )


def prefill(db: Path, now: float) -> int:
    """HISTORY_S seconds of the recorder's channels at its rate, ending now; rows written."""
    from slowdash_stores import DataStore_SQLite

    step = 1 / RECORD_HZ
    count = int(HISTORY_S * RECORD_HZ)
    with DataStore_SQLite(f"sqlite:///{db}", "data") as store:
        for k in range(count):
            t = now - HISTORY_S + k * step
            store.append(
                {
                    "temp": 20 + math.sin(t / 60),
                    "pressure": 1000 + 5 * math.cos(t / 45),
                    "flow": 3 + math.sin(t / 7),
                    "rate": float(int(t) % 97),
                },
                timestamp=t,
            )
    return count * len(RECORDED)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(project: Path, port: int, log: Path, arenas: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "slowdash_trio", "serve", "--port", str(port)]
    command += ["--project-dir", str(project), "--logging", "warning"]
    env = dict(os.environ)
    if arenas > 0:
        env["MALLOC_ARENA_MAX"] = str(arenas)
    with open(log, "wb") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/ping", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"the server exited at start:\n{log.read_text()}")
        time.sleep(0.1)  # polling a process we do not control, bounded by the deadline
    process.kill()
    raise SystemExit("the server did not answer within 60 s")


def stop_server(process: subprocess.Popen[bytes]) -> tuple[int | None, float]:
    """SIGTERM; the exit status (None: killed after 20 s) and the seconds it took."""
    if process.poll() is not None:
        return process.returncode, 0.0
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        returncode: int | None = process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(20)
        returncode = None
    return returncode, time.monotonic() - started


# ----------------------------------------------------------------------------------------------
# sampling


@dataclass
class Sample:
    t: float  # seconds since the load started
    rss_mb: float
    fds: int
    threads: int
    cpu_s: float


def sample(pid: int, t: float) -> Sample:
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return Sample(
        t=t,
        rss_mb=int(fields["VmRSS"].split()[0]) / 1024,
        fds=len(os.listdir(f"/proc/{pid}/fd")),
        threads=int(fields["Threads"]),
        cpu_s=(int(stat[11]) + int(stat[12])) / ticks,  # utime + stime
    )


@dataclass
class Trend:
    metric: str
    first: float  # median of the first quarter after the warm-up
    last: float  # median of the last quarter
    low: float
    high: float
    slope_per_hour: float
    growing: bool

    @property
    def change(self) -> float:
        return self.last - self.first


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0


def trends(samples: list[Sample], warmup: float) -> list[Trend]:
    kept = [s for s in samples if s.t >= warmup]
    quarter = max(1, len(kept) // 4)
    out = []
    for metric, (max_slope, max_change) in LIMITS.items():
        xs = [s.t for s in kept]
        ys = [float(getattr(s, metric)) for s in kept]
        per_hour = slope(xs, ys) * 3600
        first, last = statistics.median(ys[:quarter]), statistics.median(ys[-quarter:])
        growing = per_hour > max_slope and last - first > max_change
        out.append(Trend(metric, first, last, min(ys), max(ys), per_hour, growing))
    return out


# ----------------------------------------------------------------------------------------------
# the load


@dataclass
class Count:
    ok: int = 0
    refused: int = 0  # an expected refusal (a call to a task being restarted: 409)
    failed: int = 0
    last_failure: str = ""
    seconds: list[tuple[float, float]] = field(default_factory=list)  # (when, how long)


class Load:
    def __init__(
        self, base: str, pid: int, duration: float, sample_every: float, kinds: set[str]
    ) -> None:
        self.base = base
        self.kinds = kinds
        self.pid = pid
        self.duration = duration
        self.start = trio.current_time()  # set again once primed
        self.end = self.start + duration
        self.sample_every = sample_every
        self.counts: dict[str, Count] = {}
        self.samples: list[Sample] = []
        self.ws_sessions = 0
        self.ws_frames = 0
        self.server_died = False
        self.rng = random.Random(20251121)

    def count(self, kind: str) -> Count:
        return self.counts.setdefault(kind, Count())

    def running(self) -> bool:
        return trio.current_time() < self.end and not self.server_died

    async def request(
        self,
        client: httpx.AsyncClient,
        kind: str,
        method: str,
        path: str,
        *,
        refusals: tuple[int, ...] = (),
        check: Callable[[httpx.Response], bool] | None = None,
        timed: bool = True,
        **kwargs: Any,
    ) -> httpx.Response | None:
        count = self.count(kind)
        started = trio.current_time()
        try:
            response = await client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            count.failed += 1
            count.last_failure = f"{type(exc).__name__}: {exc}"
            return None
        took = trio.current_time() - started
        if response.status_code in refusals:
            count.refused += 1
        elif response.status_code >= 400 or (check is not None and not check(response)):
            count.failed += 1
            count.last_failure = f"{response.status_code} {response.text[:200]}"
        else:
            count.ok += 1
            if timed:
                count.seconds.append((started - self.start, took))
        return response

    async def every(self, period: float, most: int, step: Callable[[], Awaitable[None]]) -> None:
        """``step()`` every ``period`` seconds (jittered), at most ``most`` times, until the
        end of the run."""
        for _ in range(most):
            if not self.running():
                return
            await step()
            await trio.sleep(period * self.rng.uniform(0.5, 1.5))

    # -- the actors ----------------------------------------------------------------------------

    async def sampler(self) -> None:
        for _ in range(1_000_000):
            if not self.running():
                return
            try:
                found = await trio.to_thread.run_sync(
                    sample, self.pid, trio.current_time() - self.start
                )
            except FileNotFoundError:  # the process is gone
                self.server_died = True
                return
            self.samples.append(found)
            await trio.sleep(self.sample_every)

    async def data_queries(self, client: httpx.AsyncClient) -> None:
        async def step() -> None:
            channels = self.rng.sample(RECORDED, self.rng.randint(1, 4))
            channels += self.rng.sample(CURRENT, self.rng.randint(0, 2))
            choice = self.rng.random()
            params: dict[str, Any]
            if choice < 0.4:  # a live raw window (the row cache answers)
                params = {"length": self.rng.choice(LIVE_LENGTHS)}
            elif choice < 0.7:  # live, resampled, aligned (the tiers may answer)
                params = {
                    "length": self.rng.choice(LIVE_LENGTHS),
                    "resample": self.rng.choice([0, 10, 60]),
                    "reducer": self.rng.choice(["mean", "last", "max", "median"]),
                    "align": self.rng.choice([0, 1]),
                }
            elif choice < 0.9:  # a past window
                params = {"length": 600, "to": -self.rng.uniform(600, HISTORY_S - 900)}
            else:  # a past window, resampled with the envelope
                params = {
                    "length": 1800,
                    "to": -self.rng.uniform(1800, HISTORY_S - 1800),
                    "resample": 60,
                    "reducer": "mean",
                    "envelope": 2,
                }

            def recorded(response: httpx.Response) -> bool:
                answered = set(response.json())
                if not answered <= set(channels):
                    return False
                # an aligned window may end in the future and hold no row yet
                return bool(answered & set(RECORDED)) or params.get("align") == 1

            await self.request(
                client,
                "data",
                "GET",
                "/api/data/" + ",".join(channels),
                params=params,
                check=recorded,
            )

        await self.every(0.25, 1_000_000, step)

    async def channels(self, client: httpx.AsyncClient) -> None:
        def complete(response: httpx.Response) -> bool:
            names = {entry["name"] for entry in response.json()}
            return set(RECORDED) <= names and "gauge.temp" in names

        async def step() -> None:
            await self.request(client, "channels", "GET", "/api/channels", check=complete)

        await self.every(5, 100_000, step)

    async def long_poll(self, client: httpx.AsyncClient) -> None:
        revision = 0
        for _ in range(100_000):
            if not self.running():
                return
            response = await self.request(
                client,
                "task long poll",
                "GET",
                "/api/control/task",
                params={"since": revision},
                timed=False,  # it waits for a change
            )
            if response is None or response.status_code != 200:
                await trio.sleep(1)
                continue
            revision = response.json()["revision"]

    async def task_calls(self, client: httpx.AsyncClient) -> None:
        k = 0

        async def step() -> None:
            nonlocal k
            k += 1
            if k % 5:
                doc: dict[str, Any] = {"stream.set_level()": True, "value": k % 50}
                await self.request(client, "task call", "POST", "/api/control", json=doc)
            else:  # awaited: the answer carries the async function's result
                doc = {f"await stream.probe(n={k})": True}

                def answered(response: httpx.Response) -> bool:
                    return bool(response.json().get("result", {}).get("n") == k)

                await self.request(
                    client,
                    "task call (await)",
                    "POST",
                    "/api/control",
                    json=doc,
                    refusals=(409,),
                    check=answered,
                )

        await self.every(1, 100_000, step)

    async def task_cycles(self, client: httpx.AsyncClient) -> None:
        k = 0

        async def step() -> None:
            nonlocal k
            k += 1
            if k % 2:  # the recorder: stopped (its store closed), then started again
                for action in ("stop", "start"):
                    await self.request(
                        client,
                        f"task {action}",
                        "POST",
                        "/api/control/task/recorder",
                        json={"action": action},
                    )
            else:  # the stream task: reloaded (its file loaded afresh)
                await self.request(
                    client,
                    "task reload",
                    "POST",
                    "/api/control/task/stream",
                    json={"action": "reload"},
                )

        await trio.sleep(10)
        await self.every(15, 100_000, step)

    async def config_files(self, client: httpx.AsyncClient) -> None:
        k = 0

        async def step() -> None:
            nonlocal k
            k += 1
            name = f"slowplot-soak{k % LAYOUTS}.json"
            layout = {
                "meta": {"title": f"soak {k}"},
                "panels": [{"type": "timeaxis", "plots": [{"channel": ch} for ch in RECORDED]}],
            }
            body = json.dumps(layout).encode()
            path = f"/api/config/file/{name}"
            await self.request(
                client, "config write", "POST", path, params={"overwrite": "yes"}, content=body
            )
            await self.request(
                client, "config read", "GET", path, check=lambda r: r.content == body
            )
            await self.request(client, "config list", "GET", "/api/config/contentlist")
            if k % 10 == 0:
                await self.request(client, "config delete", "DELETE", path)

        await self.every(3, 100_000, step)

    async def websocket(self, seconds: tuple[float, float], sessions: int) -> None:
        """``sessions`` times: attach, read for a while (or a bounded count of frames),
        detach; ``seconds`` bounds how long each stays."""
        url = self.base.replace("http://", "ws://") + "/ws/attach/current_data"
        for _ in range(sessions):
            if not self.running():
                return
            count = self.count("websocket")
            stay = min(self.rng.uniform(*seconds), max(0.0, self.end - trio.current_time()))
            try:
                async with trio_websocket.open_websocket_url(url) as ws:
                    self.ws_sessions += 1
                    with trio.move_on_after(stay):
                        for _ in range(int(stay * 100) + 10):
                            await ws.get_message()
                            self.ws_frames += 1
                count.ok += 1
            except (OSError, trio_websocket.HandshakeError, trio_websocket.ConnectionClosed) as exc:
                count.failed += 1
                count.last_failure = f"{type(exc).__name__}: {exc}"
                await trio.sleep(1)
            await trio.sleep(self.rng.uniform(0.2, 1.0))

    async def prime(self, client: httpx.AsyncClient) -> None:
        """Before the clock starts: the whole history read, raw and resampled, on every
        pooled connection of the source at once, and the live windows cached, so that the
        database's page caches and the row cache start full (their filling is not growth)."""
        everything = "/api/data/" + ",".join(RECORDED)
        queries: list[dict[str, Any]] = [
            {"length": HISTORY_S + 60},
            {"length": HISTORY_S + 60, "resample": 60, "reducer": "mean", "envelope": 2},
            {"length": HISTORY_S + 60, "resample": 600, "reducer": "median"},
            *({"length": length} for length in LIVE_LENGTHS),
        ]
        for _ in range(2):
            for params in queries:
                async with trio.open_nursery() as nursery:
                    for _ in range(4):  # the SQLite source's pool size
                        nursery.start_soon(
                            functools.partial(
                                self.request,
                                client,
                                "prime",
                                "GET",
                                everything,
                                params=params,
                                timed=False,
                            )
                        )

    async def run(self) -> None:
        limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
        async with httpx.AsyncClient(base_url=self.base, timeout=60, limits=limits) as client:
            await self.prime(client)
            self.start = trio.current_time()
            self.end = self.start + self.duration
            await self.load(client)

    async def load(self, client: httpx.AsyncClient) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.sampler)
            on = self.kinds.__contains__
            for _ in range(2):
                if on("data"):
                    nursery.start_soon(self.data_queries, client)
                if on("websocket"):  # attached throughout
                    nursery.start_soon(self.websocket, (1e9, 1e9), 1_000)
            for _ in range(3 if on("websocket") else 0):  # attaching, detaching
                nursery.start_soon(self.websocket, (1.0, 5.0), 100_000)
            for kind, actor in [
                ("channels", self.channels),
                ("longpoll", self.long_poll),
                ("calls", self.task_calls),
                ("cycles", self.task_cycles),
                ("config", self.config_files),
            ]:
                if on(kind):
                    nursery.start_soon(actor, client)
            await trio.sleep_until(self.end)
            nursery.cancel_scope.cancel()


# ----------------------------------------------------------------------------------------------
# the report


def fmt(value: float, unit: str) -> str:
    text = (
        f"{value:.1f}"
        if unit == "MB"
        else f"{value:.0f}"
        if value == int(value)
        else f"{value:.1f}"
    )
    return f"{text} {unit}".strip()


def median_latency(count: Count, lo: float, hi: float) -> float:
    values = [took for t, took in count.seconds if lo <= t < hi]
    return statistics.median(values) * 1000 if values else math.nan


def limit_text(metric: str) -> str:
    max_slope, max_change = LIMITS[metric]
    unit = f" {UNITS[metric]}" if UNITS[metric] else ""
    return f"> {max_slope:g}{unit}/h and > {max_change:g}{unit}"


def report(result: dict[str, Any], load: Load, found: list[Trend]) -> None:
    print()
    print(
        f"soak: {result['minutes']:g} min of load on slowdash-trio (pid {result['pid']}), "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs; "
        f"{len(load.samples)} samples every {result['sample_s']:g} s, "
        f"warm-up {result['warmup_s']:.0f} s; server CPU {result['cpu_pct']:.0f} %; "
        f"MALLOC_ARENA_MAX={result['malloc_arena_max'] or 'unset'}"
    )
    duration = result["minutes"] * 60
    q = (duration - result["warmup_s"]) / 4
    print()
    print(f"{'load':<18} {'ok':>7} {'refused':>8} {'failed':>7}   median ms, first / last quarter")
    for kind, count in sorted(load.counts.items()):
        first = median_latency(count, result["warmup_s"], result["warmup_s"] + q)
        last = median_latency(count, duration - q, duration + 1)
        latency = f"{first:.1f} / {last:.1f}" if count.seconds else ""
        print(f"{kind:<18} {count.ok:>7} {count.refused:>8} {count.failed:>7}   {latency}")
        if count.failed:
            print(f"{'':<18} last failure: {count.last_failure}")
    print(f"websocket: {load.ws_sessions} sessions, {load.ws_frames} frames received")
    print()
    print(
        f"{'metric':<16} {'first q.':>9} {'last q.':>9} {'change':>7} {'min':>9} {'max':>9} "
        f"{'slope/h':>8}   {'growing when slope, change':<28} verdict"
    )
    for trend in found:
        unit = UNITS[trend.metric]
        print(
            f"{LABELS[trend.metric]:<16} {fmt(trend.first, unit):>9} {fmt(trend.last, unit):>9} "
            f"{trend.change:>+7.1f} {fmt(trend.low, unit):>9} {fmt(trend.high, unit):>9} "
            f"{trend.slope_per_hour:>+8.1f}   {limit_text(trend.metric):<28} "
            f"{'GROWING' if trend.growing else 'flat'}"
        )
    print()
    print(
        f"server log: {result['log_warnings']} warnings, {result['log_errors']} errors; "
        f"stopped on SIGTERM with status {result['exit_status']} in {result['stop_s']:.2f} s"
    )
    for line in result["log_sample"]:
        print(f"  {line[:200]}")
    print(f"verdict: {result['verdict']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="load duration (default 10)")
    parser.add_argument(
        "--sample",
        type=float,
        help="seconds between samples (default: 5, or less for runs under 6 minutes)",
    )
    parser.add_argument("--inject-leak", action="store_true", help="add a module that leaks")
    parser.add_argument(
        "--malloc-arena-max",
        type=int,
        default=2,
        help="MALLOC_ARENA_MAX for the server (default 2; 0: glibc's own, up to 8 per CPU, "
        "whose per-thread arenas make the resident size creep up for a long while)",
    )
    parser.add_argument(
        "--load",
        default=",".join(LOADS),
        help=f"the kinds of load, comma-separated (default all: {','.join(LOADS)}); "
        "fewer to find which one makes something grow",
    )
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"results file ({RESULTS.name})")
    args = parser.parse_args()
    if not 0.5 <= args.minutes <= 24 * 60:
        parser.error("--minutes: 0.5 to 1440")
    if args.sample is not None and not 0.2 <= args.sample <= 600:
        parser.error("--sample: 0.2 to 600 seconds")
    kinds = set(args.load.split(","))
    if not kinds <= set(LOADS):
        parser.error(f"--load: unknown {','.join(sorted(kinds - set(LOADS)))}")
    duration = args.minutes * 60
    every = args.sample or min(5.0, max(1.0, duration / 72))
    warmup = min(duration / 2, max(60.0, duration / 4))

    with tempfile.TemporaryDirectory(prefix="slowdash-soak-") as tmp:
        directory = Path(tmp) / "project"
        write_project(directory, leak=args.inject_leak)
        print(f"prefilling {HISTORY_S:.0f} s of history...", flush=True)
        rows = prefill(directory / "soak.db", time.time())
        log = Path(tmp) / "server.log"
        port = free_port()
        process = start_server(directory, port, log, args.malloc_arena_max)
        print(f"server pid {process.pid} on 127.0.0.1:{port}; load for {args.minutes:g} min")
        load: Load | None = None

        async def drive() -> None:
            nonlocal load
            load = Load(f"http://127.0.0.1:{port}", process.pid, duration, every, kinds)
            await load.run()

        try:
            trio.run(drive)
        finally:
            exit_status, stop_s = stop_server(process)
        assert load is not None
        lines = log.read_text(errors="replace").splitlines()

    died = load.server_died or len(load.samples) < 8
    found = trends(load.samples, warmup) if len(load.samples) >= 8 else []
    growing = [t.metric for t in found if t.growing]
    if died:
        verdict = "FAILED: the server died during the run"
    elif exit_status != 0:
        verdict = f"FAILED: the server did not stop cleanly on SIGTERM (status {exit_status})"
    elif growing:
        verdict = "GROWING: " + ", ".join(LABELS[m] for m in growing)
    else:
        verdict = "flat"
    cpu = (load.samples[-1].cpu_s - load.samples[0].cpu_s) if len(load.samples) > 1 else 0.0
    span = (load.samples[-1].t - load.samples[0].t) if len(load.samples) > 1 else 1.0
    result: dict[str, Any] = {
        "minutes": args.minutes,
        "sample_s": every,
        "warmup_s": warmup,
        "pid": process.pid,
        "inject_leak": args.inject_leak,
        "malloc_arena_max": args.malloc_arena_max,
        "load": sorted(kinds),
        "prefilled_rows": rows,
        "cpu_pct": 100 * cpu / span if span > 0 else 0.0,
        "exit_status": exit_status,
        "stop_s": stop_s,
        "log_warnings": sum(" WARNING: " in line for line in lines),
        "log_errors": sum(" ERROR: " in line for line in lines),
        "log_sample": [line for line in lines if " ERROR: " in line or " WARNING: " in line][:8],
        "verdict": verdict,
        "limits": LIMITS,
        "trends": [asdict(t) | {"change": t.change} for t in found],
        "counts": {
            kind: {"ok": c.ok, "refused": c.refused, "failed": c.failed, "last": c.last_failure}
            for kind, c in load.counts.items()
        },
        "websocket": {"sessions": load.ws_sessions, "frames": load.ws_frames},
        "samples": [asdict(s) for s in load.samples],
    }
    report(result, load, found)
    args.json.write_text(json.dumps(result, indent=1))
    if died or exit_status != 0:
        return 2
    return 1 if growing else 0


if __name__ == "__main__":
    sys.exit(main())

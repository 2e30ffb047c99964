"""The server-core benchmarks, all in one run (``nox -s bench``).

What is measured (every server is a separate process on 127.0.0.1; docs/performance.md says
what each figure means and records them):

- requests/s, latency and server CPU per request of ``GET /api/ping`` and of a small
  ``GET /api/data/bench`` (one user module's sync ``_get_data`` returning a float) with 8
  concurrent keep-alive clients, for slowdash-trio and, in the same run, for a bare quart-trio
  app answering the same JSON on hypercorn's Trio worker (`bare_servers.py`); for context also a
  plain ASGI callable (``/api/ping``), the bare app fetching its value from a worker thread, and
  slowdash-trio with an ``async def _get_data`` module;
- ``/api/ping`` latency (8 clients and 1 client) while another module's sync ``_get_data``
  sleeps for a second (a client keeps requesting ``/api/data/slow``), and ``/api/data/bench``
  in that state;
- start-up (process spawn to the first answered ``/api/ping``) and resident memory after it.

Each load figure is the median of ``--repeats`` runs of ``--duration`` seconds, the servers
taking turns within each round; ratios are taken within each round, then their median. The
load client is wrk if installed, else a pure-Python client (whose own CPU use then lowers the
figures: not comparable with wrk's). The table is printed and written, with every single run,
to ``results-latest.json`` next to this file.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadgen import LoadResult, run_load, wrk_path, wrk_version

HERE = Path(__file__).resolve().parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# The original SlowDash (uvicorn + its own router) on this machine, from the issue: quoted, not
# measured here.
ORIGINAL = {"ping_rps": 4100.0, "data_rps": 1600.0, "startup_s": 0.22, "rss_mb": 34.0}

# Goals (from the issue).
MAX_COST_OVER_BARE = 0.15  # our time per request at most 15 % above the bare quart-trio app's
MAX_STARTUP_S = 1.0
MAX_PING_P99_MS_WHILE_SLOW = 10.0

# CPU time per request is given only over this many requests (the clock ticks are 10 ms)
MIN_CPU_REQUESTS = 500

PING = "/api/ping"
DATA = "/api/data/bench?length=60"
SLOW = "/api/data/slow?length=60"

BENCH_MODULE = '''\
"""Benchmark module: one channel whose current value is a float."""


def _get_channels():
    return [{"name": "bench", "type": "numeric"}]


def _get_data(channel):
    if channel == "bench":
        return 1.0
    return None
'''

ASYNC_MODULE = '''\
"""Benchmark module: the same channel from an async _get_data (runs on the Trio thread)."""


async def _get_channels():
    return [{"name": "bench", "type": "numeric"}]


async def _get_data(channel):
    if channel == "bench":
        return 1.0
    return None
'''

SLOW_MODULE = '''\
"""Benchmark module: a sync _get_data that takes a second for channel "slow"."""

import time


def _get_channels():
    return [{"name": "slow", "type": "numeric"}]


def _get_data(channel):
    if channel == "slow":
        time.sleep(1.0)
        return 2.0
    return None
'''


def write_project(directory: Path, modules: dict[str, str]) -> Path:
    """A project directory with one user module per entry of ``modules`` (file stem: source)."""
    directory.mkdir(parents=True)
    entries = "".join(f"    - file: {name}.py\n" for name in modules)
    header = "slowdash_project:\n  name: Bench\n  title: slowdash-trio benchmark\n  module:\n"
    (directory / "SlowdashProject.yaml").write_text(header + entries, encoding="utf-8")
    for name, source in modules.items():
        (directory / f"{name}.py").write_text(source, encoding="utf-8")
    return directory


# ---------------------------------------------------------------------------------------------
# server processes


@dataclass(frozen=True)
class ServerSpec:
    key: str
    label: str
    command: Callable[[int], list[str]]


@dataclass
class Running:
    spec: ServerSpec
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def rss_mb(self) -> float | None:
        """VmRSS of the server process, from /proc (None where there is no /proc)."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return None

    def cpu_seconds(self) -> float | None:
        """User + system CPU time of the server process (all its threads), from /proc."""
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def ours(project: Path) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "slowdash_trio",
            "serve",
            "--port",
            str(port),
            "--project-dir",
            str(project),
            "--logging",
            "warning",
        ]

    return command


def bare(kind: str, *options: str) -> Callable[[int], list[str]]:
    def command(port: int) -> list[str]:
        script = str(HERE / "bare_servers.py")
        return [sys.executable, script, kind, "--port", str(port), *options]

    return command


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ping_once(port: int, timeout: float = 1.0) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", PING)
        response = conn.getresponse()
        return response.status == 200 and json.loads(response.read()) == ["pong"]
    except (OSError, ValueError):
        return False
    finally:
        conn.close()


class Servers:
    """Starts servers and stops every one of them (process group, TERM then KILL)."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[Running] = []
        self.count = 0

    def start(self, spec: ServerSpec, timeout: float = 30.0) -> tuple[Running, float]:
        """Spawn a server; return it and the seconds from spawn to the first answered ping."""
        port = free_port()
        self.count += 1
        log = self.logs / f"{spec.key}-{self.count}.log"
        with log.open("wb") as stderr:
            started = time.perf_counter()
            process = subprocess.Popen(
                spec.command(port),
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                start_new_session=True,
            )
        server = Running(spec, process, port, log)
        self.running.append(server)
        deadline = started + timeout
        while not ping_once(port):
            if process.poll() is not None:
                raise RuntimeError(
                    f"{spec.label} exited with status {process.returncode} before answering:\n"
                    + server.log_tail()
                )
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{spec.label} did not answer within {timeout:g} s")
            time.sleep(0.005)
        return server, time.perf_counter() - started

    def stop(self, server: Running) -> None:
        process = server.process
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        else:
            _signal_group(process.pid, signal.SIGKILL)  # anything it left behind
        if server in self.running:
            self.running.remove(server)

    def stop_all(self) -> None:
        for server in list(self.running):
            try:
                self.stop(server)
            except Exception as exc:
                print(f"could not stop {server.spec.label}: {exc}", file=sys.stderr)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


# ---------------------------------------------------------------------------------------------
# a client that keeps a slow request in flight


@dataclass
class SlowClient:
    """Requests ``path`` again and again on one keep-alive connection, in a thread."""

    port: int
    path: str
    max_requests: int = 1000
    calls: list[tuple[float, float, int]] = field(default_factory=list)  # (start, end, status)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> SlowClient:
        self._thread = threading.Thread(target=self._loop, name="slow-client", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _loop(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            while not self._stop.is_set() and len(self.calls) < self.max_requests:
                begin = time.perf_counter()
                try:
                    conn.request("GET", self.path)
                    response = conn.getresponse()
                    response.read()
                    status = response.status
                except (OSError, http.client.HTTPException):
                    status = 0
                    conn.close()
                    time.sleep(0.05)
                self.calls.append((begin, time.perf_counter(), status))
        finally:
            conn.close()

    def coverage(self, begin: float, end: float) -> float:
        """Fraction of ``[begin, end]`` during which a slow request was in flight."""
        covered = sum(max(0.0, min(end, b) - max(begin, a)) for a, b, _ in list(self.calls))
        return covered / (end - begin)

    def calls_between(self, begin: float, end: float) -> list[tuple[float, float, int]]:
        return [call for call in list(self.calls) if begin <= call[1] <= end]


# ---------------------------------------------------------------------------------------------
# measuring


@dataclass
class Series:
    """Repeated load runs of one server and path, with the server's CPU time per request."""

    key: str
    server: str
    label: str
    path: str
    connections: int
    runs: list[LoadResult] = field(default_factory=list)
    cpu_us: list[float | None] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)

    def median(self, attribute: str) -> float:
        return statistics.median(float(getattr(run, attribute)) for run in self.runs)

    def median_cpu_us(self) -> float | None:
        values = [value for value in self.cpu_us if value is not None]
        return statistics.median(values) if values else None

    def to_json(self) -> dict[str, Any]:
        names = ("rps", "p50_ms", "p90_ms", "p99_ms", "max_ms")
        return {
            "label": self.label,
            "server": self.server,
            "path": self.path,
            "connections": self.connections,
            "median": {name: self.median(name) for name in names}
            | {"cpu_us_per_request": self.median_cpu_us()},
            "errors": sum(run.errors for run in self.runs),
            "runs": [
                run.to_json() | {"server_cpu_us_per_request": cpu}
                for run, cpu in zip(self.runs, self.cpu_us, strict=True)
            ],
            "notes": self.notes,
        }


def measure(series: Series, server: Running, args: argparse.Namespace) -> LoadResult:
    cpu_before = server.cpu_seconds()
    result = run_load(
        server.url(series.path),
        client=args.client,
        connections=series.connections,
        duration=args.duration,
        max_requests=args.max_requests,
    )
    cpu_after = server.cpu_seconds()
    cpu_us = None
    if cpu_before is not None and cpu_after is not None and result.requests >= MIN_CPU_REQUESTS:
        cpu_us = (cpu_after - cpu_before) / result.requests * 1e6
    series.runs.append(result)
    series.cpu_us.append(cpu_us)
    errors = f", {result.errors} ERRORS" if result.errors else ""
    print(
        f"  {series.label:<46} {result.rps:7.0f} req/s  p50 {result.p50_ms:7.2f} ms"
        f"  p99 {result.p99_ms:7.2f} ms  CPU {_fmt(cpu_us, '4.0f')} us/req{errors}",
        flush=True,
    )
    return result


def measure_startup(
    servers: Servers, specs: list[ServerSpec], starts: int
) -> dict[str, dict[str, Any]]:
    """Start each server ``starts`` times (taking turns): spawn-to-first-ping and RSS."""
    out: dict[str, dict[str, Any]] = {
        spec.key: {"label": spec.label, "seconds": [], "rss_mb": []} for spec in specs
    }
    for _ in range(starts):
        for spec in specs:
            server, seconds = servers.start(spec)
            rss = server.rss_mb()
            servers.stop(server)
            out[spec.key]["seconds"].append(seconds)
            out[spec.key]["rss_mb"].append(rss)
    for entry in out.values():
        entry["median_seconds"] = statistics.median(entry["seconds"])
        rss_values = [value for value in entry["rss_mb"] if value is not None]
        entry["median_rss_mb"] = statistics.median(rss_values) if rss_values else None
        print(
            f"  {entry['label']:<46} {entry['median_seconds']:6.3f} s"
            f"  (runs: {', '.join(f'{s:.3f}' for s in entry['seconds'])})"
            f"  RSS {_fmt(entry['median_rss_mb'], '.1f')} MB",
            flush=True,
        )
    return out


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def choose_client(requested: str) -> tuple[str, str]:
    if requested == "wrk" and wrk_path() is None:
        sys.exit("--client wrk: wrk is not installed")
    if requested == "wrk" or (requested == "auto" and wrk_path() is not None):
        return "wrk", f"wrk ({wrk_version()}), 2 threads (1 for 1 connection)"
    why = "--client python" if requested == "python" else "wrk is not installed"
    return "python", f"pure-Python client ({why}): its own CPU use lowers the figures"


# ---------------------------------------------------------------------------------------------
# the run

# server keys
ASGI, QUART, QUART_THREAD, OURS, OURS_ASYNC, OURS_SLOW = (
    "bare-asgi",
    "bare-quart",
    "bare-quart-thread",
    "slowdash-trio",
    "slowdash-trio-async",
    "slowdash-trio-slow",
)


def run(args: argparse.Namespace, servers: Servers, work: Path) -> dict[str, Any]:
    single = write_project(work / "project-bench", {"bench": BENCH_MODULE})
    asynchronous = write_project(work / "project-async", {"bench_async": ASYNC_MODULE})
    pair = write_project(work / "project-slow", {"bench": BENCH_MODULE, "slow": SLOW_MODULE})
    specs = {
        ASGI: ServerSpec(ASGI, "bare ASGI callable", bare("asgi")),
        QUART: ServerSpec(QUART, "bare quart-trio app", bare("quart")),
        QUART_THREAD: ServerSpec(
            QUART_THREAD, "bare quart-trio app, value from a thread", bare("quart", "--thread")
        ),
        OURS: ServerSpec(OURS, "slowdash-trio (module 'bench')", ours(single)),
        OURS_ASYNC: ServerSpec(OURS_ASYNC, "slowdash-trio (async module)", ours(asynchronous)),
        OURS_SLOW: ServerSpec(OURS_SLOW, "slowdash-trio (modules 'bench', 'slow')", ours(pair)),
    }

    print(f"\nstart-up: spawn to the first answered {PING}, {args.starts} starts", flush=True)
    startup = measure_startup(servers, [specs[ASGI], specs[QUART], specs[OURS]], args.starts)

    running = {key: servers.start(spec)[0] for key, spec in specs.items()}
    rss_started = {key: server.rss_mb() for key, server in running.items()}
    n = args.connections
    rounds = [
        Series("ping/asgi", ASGI, f"{PING}, {n} conn: bare ASGI", PING, n),
        Series("ping/quart", QUART, f"{PING}, {n} conn: bare quart-trio", PING, n),
        Series("ping/ours", OURS, f"{PING}, {n} conn: slowdash-trio", PING, n),
        Series("data/quart", QUART, f"/api/data, {n} conn: bare quart-trio", DATA, n),
        Series(
            "data/quart-thread", QUART_THREAD, f"/api/data, {n} conn: quart-trio + thread", DATA, n
        ),
        Series("data/ours", OURS, f"/api/data, {n} conn: slowdash-trio", DATA, n),
        Series("data/ours-async", OURS_ASYNC, f"/api/data, {n} conn: ours, async module", DATA, n),
        Series("ping1/ours", OURS_SLOW, f"{PING}, 1 conn: slowdash-trio", PING, 1),
    ]
    print(
        f"\nload: medians of {args.repeats} rounds of {args.duration:g} s; the servers take turns",
        flush=True,
    )
    for series in rounds:  # warm-up (imports, caches, first connections); not recorded
        run_load(
            running[series.server].url(series.path),
            client=args.client,
            connections=series.connections,
            duration=0.5,
            max_requests=10_000,
        )
    for index in range(args.repeats):
        print(f" round {index + 1}/{args.repeats}", flush=True)
        for series in rounds:
            measure(series, running[series.server], args)

    print(
        f"\nwhile module 'slow' sleeps 1 s in _get_data (a client keeps requesting {SLOW})",
        flush=True,
    )
    busy = [
        Series("slow/ping", OURS_SLOW, f"{PING}, {n} conn: slowdash-trio", PING, n),
        Series("slow/ping1", OURS_SLOW, f"{PING}, 1 conn: slowdash-trio", PING, 1),
    ]
    blocked = Series("slow/data", OURS_SLOW, f"/api/data/bench, {n} conn (1 run)", DATA, n)
    server = running[OURS_SLOW]
    with SlowClient(server.port, SLOW) as slow:
        time.sleep(0.3)  # the first slow call is under way
        for index in range(args.repeats):
            print(f" round {index + 1}/{args.repeats}", flush=True)
            for series in [*busy, blocked] if index == 0 else busy:
                begin = time.perf_counter()
                result = measure(series, server, args)
                done = slow.calls_between(begin, time.perf_counter())
                note = {
                    "slow_call_in_flight_fraction": slow.coverage(begin, begin + result.duration),
                    "slow_calls_completed": len(done),
                    "slow_call_seconds": [round(b - a, 3) for a, b, _ in done],
                    "slow_call_statuses": sorted({status for _, _, status in done}),
                }
                series.notes.append(note)
                print(
                    f"  {'':<46} (a slow call was in flight "
                    f"{note['slow_call_in_flight_fraction']:.0%} of the run; "
                    f"{len(done)} completed)",
                    flush=True,
                )
    failed = [call for call in slow.calls if call[2] != 200]
    if len(failed) == len(slow.calls):
        raise RuntimeError(f"no request for {SLOW} succeeded: the module did not sleep")
    if failed:
        print(f"WARNING: {len(failed)} of {len(slow.calls)} requests for {SLOW} failed", flush=True)
    rss_loaded = {key: server.rss_mb() for key, server in running.items()}
    for server in running.values():
        servers.stop(server)
    by_key = {s.key: s for s in [*rounds, *busy, blocked]}
    return summarize(args, startup, by_key, rss_started, rss_loaded)


def round_ratios(numerator: Series, denominator: Series, cpu: bool = False) -> float | None:
    """Median over rounds of numerator/denominator (req/s, or CPU per request)."""
    if cpu:
        pairs = zip(numerator.cpu_us, denominator.cpu_us, strict=True)
        ratios = [a / b for a, b in pairs if a is not None and b]
    else:
        pairs_rps = zip(numerator.runs, denominator.runs, strict=True)
        ratios = [a.rps / b.rps for a, b in pairs_rps if b.rps]
    return statistics.median(ratios) if ratios else None


def summarize(
    args: argparse.Namespace,
    startup: dict[str, dict[str, Any]],
    series: dict[str, Series],
    rss_started: dict[str, float | None],
    rss_loaded: dict[str, float | None],
) -> dict[str, Any]:
    vs_quart: dict[str, float | None] = {}
    vs_quart_cpu: dict[str, float | None] = {}
    for key, value in series.items():
        what = key.split("/")[0]
        if what in ("ping", "data"):
            vs_quart[key] = round_ratios(value, series[f"{what}/quart"])
            vs_quart_cpu[key] = round_ratios(value, series[f"{what}/quart"], cpu=True)
    pairs = {
        "ping: ours/asgi": ("ping/ours", "ping/asgi"),
        "data: ours/quart-thread": ("data/ours", "data/quart-thread"),
        "data: ours-async/ours": ("data/ours-async", "data/ours"),
    }
    others = {
        name: {
            "rps": round_ratios(series[a], series[b]),
            "cpu_per_request": round_ratios(series[a], series[b], cpu=True),
        }
        for name, (a, b) in pairs.items()
    }
    ping_ratio = vs_quart["ping/ours"] or 0.0
    data_ratio = vs_quart["data/ours"] or 0.0
    thread_ratio = others["data: ours/quart-thread"]["rps"] or 0.0
    floor = 1 / (1 + MAX_COST_OVER_BARE)
    p99 = series["slow/ping"].median("p99_ms")
    p99_1 = series["slow/ping1"].median("p99_ms")
    ours_start = startup[OURS]["median_seconds"]
    goals = {
        "cost_over_bare_quart": {
            "goal": "routing and merging cost at most 15% over the bare quart-trio app "
            f"(req/s ratio ours/bare >= {floor:.2f})",
            "ping_rps_ratio": ping_ratio,
            "data_rps_ratio": data_ratio,
            "data_rps_ratio_vs_quart_with_thread": thread_ratio,
            "ping_met": ping_ratio >= floor,
            "data_met": data_ratio >= floor,
            "data_vs_quart_with_thread_met": thread_ratio >= floor,
        },
        "startup": {
            "goal": f"start-up to the first /api/ping under {MAX_STARTUP_S:g} s",
            "seconds": ours_start,
            "met": ours_start < MAX_STARTUP_S,
        },
        "ping_p99_while_slow": {
            "goal": f"/api/ping p99 under {MAX_PING_P99_MS_WHILE_SLOW:g} ms while a module's "
            "sync _get_data sleeps for a second",
            f"p99_ms_{args.connections}_connections": p99,
            f"p99_ms_{args.connections}_connections_idle": series["ping/ours"].median("p99_ms"),
            "p99_ms_1_connection": p99_1,
            "p99_ms_1_connection_idle": series["ping1/ours"].median("p99_ms"),
            f"met_{args.connections}_connections": p99 < MAX_PING_P99_MS_WHILE_SLOW,
            "met_1_connection": p99_1 < MAX_PING_P99_MS_WHILE_SLOW,
        },
    }
    return {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "client": args.client,
            "client_description": args.client_description,
            "connections": args.connections,
            "duration_s": args.duration,
            "repeats": args.repeats,
            "starts": args.starts,
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "loadavg_before_after": [args.loadavg_before, _loadavg()],
        },
        "original_quoted": ORIGINAL,
        "startup": startup,
        "rss_mb_after_start": rss_started,
        "rss_mb_after_load": rss_loaded,
        "series": {key: value.to_json() for key, value in series.items()},
        "ratios": {
            "rps_over_bare_quart": vs_quart,
            "cpu_per_request_over_bare_quart": vs_quart_cpu,
            "others": others,
        },
        "goals": goals,
    }


def _loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# the table


def table(results: dict[str, Any]) -> str:
    series = results["series"]
    ratios = results["ratios"]
    startup = results["startup"]
    goals = results["goals"]
    meta = results["meta"]

    def row(key: str, original: str = "") -> str:
        s = series[key]
        m = s["median"]
        rps = _fmt(ratios["rps_over_bare_quart"].get(key), ".2f")
        cpu = _fmt(ratios["cpu_per_request_over_bare_quart"].get(key), ".2f")
        if key not in ratios["rps_over_bare_quart"]:
            rps = cpu = ""
        return (
            f"  {s['label']:<46} {m['rps']:7.0f} {m['p50_ms']:8.2f} {m['p99_ms']:8.2f}"
            f" {_fmt(m['cpu_us_per_request'], '.0f'):>8} {rps:>8} {cpu:>8} {original:>8}"
        )

    def other(name: str) -> str:
        entry = ratios["others"][name]
        return f"{_fmt(entry['rps'], '.2f')}x req/s, {_fmt(entry['cpu_per_request'], '.2f')}x CPU"

    lines = [
        "",
        "=" * 96,
        f"slowdash-trio server-core benchmarks, {meta['date']}",
        f"client: {meta['client_description']}",
        f"medians of {meta['repeats']} runs of {meta['duration_s']:g} s; "
        f"machine: {meta['cpus']} CPUs, Python {meta['python']}; load average before/after: "
        + " / ".join(_fmt(x[0] if x else None, ".2f") for x in meta["loadavg_before_after"]),
        "",
        f"  {'':<46} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'CPU us':>8} "
        f"{'req/s÷q':>8} {'CPU÷q':>8} {'original':>8}",
        row("ping/asgi"),
        row("ping/quart"),
        row("ping/ours", f"{ORIGINAL['ping_rps']:.0f}"),
        row("data/quart"),
        row("data/quart-thread"),
        row("data/ours", f"{ORIGINAL['data_rps']:.0f}"),
        row("data/ours-async"),
        row("ping1/ours"),
        " while module 'slow' sleeps 1 s in its sync _get_data:",
        row("slow/ping"),
        row("slow/ping1"),
        row("slow/data"),
        "",
        "  CPU us: the server's CPU time per request; ÷q: over bare quart-trio's, same path, same",
        "  round (median of the rounds' ratios); original: the original SlowDash's req/s (quoted).",
        f"  /api/ping, slowdash-trio over bare ASGI: {other('ping: ours/asgi')}",
        f"  /api/data, slowdash-trio over quart-trio + thread: {other('data: ours/quart-thread')}",
        f"  /api/data, async module over sync module: {other('data: ours-async/ours')}",
        "",
        f"  {'start-up (median of ' + str(meta['starts']) + ')':<46} {'to ping':>8} {'RSS MB':>8}",
    ]
    lines.extend(
        f"  {entry['label']:<46} {entry['median_seconds']:7.3f}s "
        f"{_fmt(entry['median_rss_mb'], '8.1f')}"
        for entry in startup.values()
    )
    lines.append(
        f"  {'original SlowDash (quoted)':<46} {ORIGINAL['startup_s']:7.3f}s "
        f"{ORIGINAL['rss_mb']:8.1f}"
    )
    loaded = results["rss_mb_after_load"].get(OURS)
    lines += [f"  slowdash-trio RSS after the load runs: {_fmt(loaded, '.1f')} MB", "", "goals:"]

    def mark(ok: bool) -> str:
        return "[met]    " if ok else "[NOT MET]"

    cost = goals["cost_over_bare_quart"]
    lines += [
        f"  {mark(cost['ping_met'])} routing cost over bare quart-trio <= 15%, /api/ping: "
        f"ours/bare {cost['ping_rps_ratio']:.2f}x req/s",
        f"  {mark(cost['data_met'])} routing and merging cost over bare quart-trio <= 15%, "
        f"/api/data: ours/bare {cost['data_rps_ratio']:.2f}x req/s",
        f"  {mark(cost['data_vs_quart_with_thread_met'])}   the same against quart-trio fetching "
        f"its value from a thread too: {_fmt(cost['data_rps_ratio_vs_quart_with_thread'], '.2f')}x",
    ]
    start = goals["startup"]
    lines.append(f"  {mark(start['met'])} {start['goal']}: {start['seconds']:.3f} s")
    slow = goals["ping_p99_while_slow"]
    n = meta["connections"]
    lines += [
        f"  {mark(slow[f'met_{n}_connections'])} {slow['goal']}, {n} connections: "
        f"{slow[f'p99_ms_{n}_connections']:.2f} ms (no sleeping module: "
        f"{slow[f'p99_ms_{n}_connections_idle']:.2f} ms)",
        f"  {mark(slow['met_1_connection'])}   the same, 1 connection: "
        f"{slow['p99_ms_1_connection']:.2f} ms (no sleeping module: "
        f"{slow['p99_ms_1_connection_idle']:.2f} ms)",
        "=" * 96,
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="See docs/performance.md for what each figure means.",
    )
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (5)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (3)")
    parser.add_argument("--starts", type=int, default=5, help="starts timed per server (5)")
    parser.add_argument("--connections", type=int, default=8, help="concurrent clients (8)")
    parser.add_argument(
        "--max-requests", type=int, default=500_000, help="cap per run (Python client)"
    )
    parser.add_argument("--json", type=Path, default=HERE / "results-latest.json")
    args = parser.parse_args(argv)
    if not (0.5 <= args.duration <= 60 and 1 <= args.repeats <= 20 and 1 <= args.starts <= 50):
        parser.error("--duration 0.5..60, --repeats 1..20, --starts 1..50")
    if not 1 <= args.connections <= 256:
        parser.error("--connections 1..256")
    args.client, args.client_description = choose_client(args.client)
    args.loadavg_before = _loadavg()
    print(f"load client: {args.client_description}", flush=True)

    # SIGTERM (nox interrupted, a CI timeout) unwinds through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="slowdash-bench-") as tmp:
        work = Path(tmp)
        logs = work / "logs"
        logs.mkdir()
        servers = Servers(logs)
        try:
            results = run(args, servers, work)
        finally:
            servers.stop_all()
    print(table(results))
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

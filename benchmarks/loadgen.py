"""HTTP load for the benchmarks: wrk when it is installed, else a pure-Python client.

Both keep ``connections`` keep-alive connections busy on one URL for ``duration`` seconds (one
request in flight per connection) and report requests/s and latency percentiles.

wrk (C) is the accurate one. The Python client runs in a process of its own (so that it does
not share a GIL with the caller) and drives every connection from one ``selectors`` loop; on a
2-core machine its own CPU use lowers the figures, so results of the two are not comparable.

As a script (used by `python_load`)::

    python loadgen.py URL --connections 8 --duration 5 --max-requests 200000
"""

from __future__ import annotations

import argparse
import json
import re
import selectors
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import asdict, dataclass

WRK_THREADS = 2


@dataclass
class LoadResult:
    """One load run: completed requests, failures and latency percentiles in milliseconds."""

    client: str
    url: str
    connections: int
    duration: float
    requests: int
    errors: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def wrk_path() -> str | None:
    return shutil.which("wrk")


def wrk_version() -> str:
    path = wrk_path()
    if path is None:
        return "absent"
    done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    first = (done.stdout or done.stderr).strip().splitlines()
    return first[0] if first else "wrk"


def run_load(
    url: str,
    *,
    client: str,
    connections: int = 8,
    duration: float = 5.0,
    max_requests: int = 500_000,
) -> LoadResult:
    """Load ``url``; ``client`` is ``"wrk"`` or ``"python"``."""
    if client == "wrk":
        return wrk_load(url, connections=connections, duration=duration)
    return python_load(url, connections=connections, duration=duration, max_requests=max_requests)


# ---------------------------------------------------------------------------------------------
# wrk

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TIME = r"([\d.]+)(us|ms|s|m|h)"


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS[unit]


def wrk_load(url: str, *, connections: int, duration: float) -> LoadResult:
    path = wrk_path()
    if path is None:
        raise RuntimeError("wrk is not installed")
    seconds = max(1, round(duration))
    command = [
        path,
        f"-t{min(WRK_THREADS, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout, url=url, connections=connections)


def parse_wrk(text: str, *, url: str, connections: int) -> LoadResult:
    """Read wrk's ``--latency`` report."""
    percentiles: dict[str, float] = {}
    for pct, value, unit in re.findall(r"^\s+(\d+)%\s+" + _TIME + r"\s*$", text, re.M):
        percentiles[pct] = _ms(value, unit)
    total = re.search(r"(\d+) requests in " + _TIME, text)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    latency = re.search(r"Latency\s+\S+\s+\S+\s+" + _TIME, text)
    if total is None or rate is None or not percentiles:
        raise RuntimeError(f"cannot read wrk's report:\n{text}")
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
        text,
    )
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    return LoadResult(
        client="wrk",
        url=url,
        connections=connections,
        duration=_ms(total.group(2), total.group(3)) / 1e3,
        requests=int(total.group(1)),
        errors=errors,
        rps=float(rate.group(1)),
        p50_ms=percentiles.get("50", float("nan")),
        p90_ms=percentiles.get("90", float("nan")),
        p99_ms=percentiles.get("99", float("nan")),
        max_ms=_ms(latency.group(1), latency.group(2)) if latency else float("nan"),
    )


# ---------------------------------------------------------------------------------------------
# pure Python


def python_load(url: str, *, connections: int, duration: float, max_requests: int) -> LoadResult:
    """The Python client, run in a child process."""
    command = [
        sys.executable,
        __file__,
        url,
        "--connections",
        str(connections),
        "--duration",
        str(duration),
        "--max-requests",
        str(max_requests),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0:
        raise RuntimeError(f"the Python load client failed: {done.stderr.strip()}")
    return LoadResult(**json.loads(done.stdout))


class _Connection:
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, host: str, port: int, request: bytes) -> None:
        self.host = host
        self.port = port
        self.request = request
        self.sock: socket.socket | None = None
        self.buffer = b""
        self.sent_at = 0.0

    def open(self) -> socket.socket:
        self.sock = socket.create_connection((self.host, self.port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def send(self) -> None:
        assert self.sock is not None
        self.sent_at = time.perf_counter()
        self.sock.sendall(self.request)

    def response(self) -> tuple[int, bool] | None:
        """(status, keep alive) once a whole response is buffered, else None."""
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return None
        head = self.buffer[:head_end].decode("latin-1").split("\r\n")
        status = int(head[0].split(" ", 2)[1])
        length = 0
        keep_alive = True
        for line in head[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                keep_alive = False
            elif name == "transfer-encoding":
                raise RuntimeError("chunked responses are not supported by this client")
        end = head_end + 4 + length
        if len(self.buffer) < end:
            return None
        self.buffer = self.buffer[end:]
        return status, keep_alive


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _python_main(url: str, connections: int, duration: float, max_requests: int) -> LoadResult:
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode("latin-1")
    latencies: list[float] = []
    errors = 0
    selector = selectors.DefaultSelector()
    pool = [_Connection(host, port, request) for _ in range(connections)]
    started = time.perf_counter()
    deadline = started + duration
    for conn in pool:
        selector.register(conn.open(), selectors.EVENT_READ, conn)
        conn.send()
    try:
        while len(latencies) + errors < max_requests:
            now = time.perf_counter()
            if now >= deadline:
                break
            for key, _ in selector.select(timeout=min(1.0, deadline - now)):
                conn = key.data
                assert conn.sock is not None
                try:
                    chunk = conn.sock.recv(65536)
                except OSError:
                    chunk = b""
                reopen = not chunk
                if chunk:
                    conn.buffer += chunk
                    answer = conn.response()
                    if answer is None:
                        continue
                    status, keep_alive = answer
                    latencies.append(time.perf_counter() - conn.sent_at)
                    if not 200 <= status < 400:
                        errors += 1
                    reopen = not keep_alive
                else:
                    errors += 1
                if reopen:
                    selector.unregister(conn.sock)
                    conn.close()
                    selector.register(conn.open(), selectors.EVENT_READ, conn)
                conn.send()
    finally:
        elapsed = time.perf_counter() - started
        for conn in pool:
            conn.close()
        selector.close()
    ordered = sorted(latencies)
    return LoadResult(
        client="python",
        url=url,
        connections=connections,
        duration=elapsed,
        requests=len(latencies),
        errors=errors,
        rps=len(latencies) / elapsed,
        p50_ms=_percentile(ordered, 0.50) * 1e3,
        p90_ms=_percentile(ordered, 0.90) * 1e3,
        p99_ms=_percentile(ordered, 0.99) * 1e3,
        max_ms=(ordered[-1] if ordered else float("nan")) * 1e3,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="keep-alive HTTP GET load on one URL")
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--max-requests", type=int, default=500_000)
    args = parser.parse_args()
    result = _python_main(args.url, args.connections, args.duration, args.max_requests)
    json.dump(result.to_json(), sys.stdout)


if __name__ == "__main__":
    main()

"""``/api/data`` on a large SQLite table: our server against floors measured in the same run.

The database is SlowDash's long format as the original SlowPy writes it
(``TABLE(timestamp REAL, channel VARCHAR(100), value REAL, PRIMARY KEY(timestamp, channel))``),
16 channels, one sample per second each, ``--days`` days (7 by default: about 9.7 million
rows) ending now, random walks. It is generated into ``--dir`` at every run (about a minute;
``--reuse`` keeps an earlier run's). Its downsampling tiers are built
with ``slowdash_stores.tiers.build_tiers`` (the command a user runs for an existing table).

Measured, each as the median of ``--repeats`` requests over HTTP to
``python -m slowdash_trio serve`` on 127.0.0.1 (a process of its own):

- ``raw-1h``: 16 channels x the last hour, raw, against the floor: the same rows fetched with
  the ``sqlite3`` module (one ``SELECT`` over the time range) in this process;
- ``raw-1h-cached``: the same request repeated while a writer appends one row per channel
  every 100 ms (answered from the row cache, refreshed by what the writer wrote);
- ``last-600``: 16 channels x the whole table, ``resample=600&reducer=last``, against the floor
  of one indexed look-up per channel and bucket with ``sqlite3``;
- ``mean-600-tiers``: the same with ``reducer=mean&align=1`` (buckets on tier boundaries);
- ``mean-600-raw``: ``reducer=mean`` on a misaligned window (no tier fits: the raw rows),
  against the floor of a plain ``GROUP BY`` mean over the same rows with ``sqlite3``;
- ``ping-during``: ``/api/ping`` latencies (p50, p99) while ``mean-600-raw`` requests run;
- the server's peak resident memory (``VmHWM``) over the whole run.

The original SlowDash server's figures on this machine (quoted, not re-measured: it is not
installed here): 15 ms for 1 channel x 1 hour raw, 152 ms for 16 channels x 1 hour raw, 26 s
and 2.4 GB for 16 channels x 7 days resampled to 600 s, and a ping waiting 25 s meanwhile.

    python benchmarks/query_bench.py [--days D] [--repeats N] [--dir DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results-query-latest.json"
CHANNELS = [f"ch{i:02d}" for i in range(16)]
TABLE = "data"
BUCKET = 600.0


# ----------------------------------------------------------------------------------------------
# the database


def generate(path: Path, days: float, reuse: bool) -> tuple[float, float]:
    """Make (or, with ``reuse``, reuse) the database; returns (first, last) timestamps."""
    seconds = int(days * 86400)
    expected = seconds * len(CHANNELS)
    if path.exists() and reuse:
        conn = sqlite3.connect(path)  # a run of the same size less than 6 hours old is reused
        try:
            (n,) = conn.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
            first, last = conn.execute(
                f"SELECT min(timestamp), max(timestamp) FROM {TABLE}"
            ).fetchone()
        except sqlite3.Error:
            n = -1
        conn.close()
        if n >= expected and time.time() - last < 6 * 3600:  # (+ a live writer's rows)
            return first, last
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)
    print(f"generating {expected:,} rows into {path} ...", flush=True)
    started = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute(
        f"CREATE TABLE {TABLE}(timestamp REAL, channel VARCHAR(100), value REAL, "
        "PRIMARY KEY(timestamp, channel))"
    )
    end = math.floor(time.time())
    first = float(end - seconds + 1)
    rng = random.Random(7)
    walk = [0.0] * len(CHANNELS)

    def rows() -> Any:
        for i in range(seconds):
            t = first + i
            for c, name in enumerate(CHANNELS):
                walk[c] += rng.gauss(0, 1)
                yield (t, name, round(walk[c], 3))

    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO {TABLE} VALUES(?,?,?)", rows())
    conn.execute("COMMIT")
    conn.close()
    print(f"  {time.perf_counter() - started:.0f} s", flush=True)
    return first, float(end)


def build_tiers(path: Path) -> float:
    from slowdash_stores.tiers import build_tiers as build

    started = time.perf_counter()
    build(str(path), TABLE)
    return time.perf_counter() - started


# ----------------------------------------------------------------------------------------------
# floors (sqlite3 in this process)


def floor_raw(path: Path, to: float, length: float) -> float:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    marks = ",".join("?" * len(CHANNELS))
    started = time.perf_counter()
    rows = conn.execute(
        f"SELECT timestamp, channel, value FROM {TABLE} WHERE timestamp >= ? AND timestamp < ? "
        f"AND channel IN ({marks})",
        [to - length, to, *CHANNELS],
    ).fetchall()
    elapsed = time.perf_counter() - started
    conn.close()
    assert len(rows) > 0
    return elapsed


def floor_last(path: Path, start: float, count: int) -> float:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    sql = (
        f"SELECT value FROM {TABLE} WHERE timestamp >= ? AND timestamp < ? AND channel = ? "
        "ORDER BY timestamp DESC LIMIT 1"
    )
    started = time.perf_counter()
    for name in CHANNELS:
        for k in range(count):
            conn.execute(sql, (start + k * BUCKET, start + (k + 1) * BUCKET, name)).fetchone()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def floor_mean(path: Path, start: float, end: float) -> float:
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    marks = ",".join("?" * len(CHANNELS))
    started = time.perf_counter()
    conn.execute(
        f"SELECT channel, CAST((timestamp - ?) / ? AS INTEGER) AS k, avg(value) FROM {TABLE} "
        f"WHERE timestamp >= ? AND timestamp < ? AND channel IN ({marks}) GROUP BY channel, k",
        [start, BUCKET, start, end, *CHANNELS],
    ).fetchall()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


# ----------------------------------------------------------------------------------------------
# the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(project: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
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
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/ping", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit("the server exited at start")
        time.sleep(0.1)  # polling a process we do not control: bounded by the deadline
    proc.kill()
    raise SystemExit("the server did not answer within 60 s")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return math.nan


def timed(client: httpx.Client, url: str, params: dict[str, Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    response = client.get(url, params=params, timeout=600)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed, response.json()


def median_of(n: int, fn: Any) -> float:
    return statistics.median(fn() for _ in range(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=HERE / ".data")
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse a database of an earlier run (less than 6 h old; its live window is then "
        "partly the earlier run's writes)",
    )
    args = parser.parse_args()
    repeats = max(1, min(args.repeats, 50))

    args.dir.mkdir(parents=True, exist_ok=True)
    db = args.dir / f"querybench-{args.days:g}d.db"
    first, last = generate(db, args.days, args.reuse)
    from slowdash_stores.tiers import state

    with sqlite3.connect(db) as conn:
        built = state(conn, TABLE)
    if not args.reuse or not built or any(v is None for v in built.values()):
        tier_build_s = build_tiers(db)
    else:
        tier_build_s = math.nan  # built by an earlier run on the same data
    project = args.dir / "project"
    if project.exists():
        shutil.rmtree(project)
    project.mkdir()
    (project / "SlowdashProject.yaml").write_text(
        "slowdash_project:\n  name: QueryBench\n  data_source:\n"
        f"    url: sqlite:///{db.with_suffix('')}\n"
        "    time_series:\n      schema: data[channel]@timestamp(unix)=value\n"
        "      tags:\n        list: [" + ", ".join(CHANNELS) + "]\n"
    )
    port = free_port()
    server = start_server(project, port)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "rows": int((last - first + 1) * len(CHANNELS)),
        "tier_build_s": tier_build_s,
    }
    base = f"http://127.0.0.1:{port}/api/data/" + ",".join(CHANNELS)
    span = last - first + 1
    try:
        with httpx.Client() as client:
            # raw, one hour, a fixed window in the past (not cached)
            to_fixed = last - 7200
            # floor and ours take turns; the ratio is taken per round (the machine's speed
            # drifts between rounds more than between neighbours)
            floors, ours = [], []
            for _ in range(max(repeats, 7)):
                floors.append(floor_raw(db, to_fixed, 3600))
                ours.append(timed(client, base, {"length": 3600, "to": to_fixed})[0])
            results["floor_raw_1h_s"] = statistics.median(floors)
            results["raw_1h_s"] = statistics.median(ours)
            results["raw_1h_ratio"] = statistics.median(
                o / f for o, f in zip(ours, floors, strict=True)
            )
            one = f"http://127.0.0.1:{port}/api/data/{CHANNELS[0]}"
            results["raw_1h_1ch_s"] = median_of(
                repeats, lambda: timed(client, one, {"length": 3600, "to": to_fixed})[0]
            )
            # raw, live, repeated while a writer appends
            stop = threading.Event()
            writer = threading.Thread(target=live_writer, args=(db, stop), daemon=True)
            writer.start()
            # a live window (to=0) holding the generated data's last hour, however long ago
            # the database was generated
            live = {"length": math.ceil(time.time() - (last - 3600)), "to": 0}
            try:
                first_live = timed(client, base, live)
                results["raw_1h_live_first_s"] = first_live[0]
                results["raw_1h_live_points"] = sum(len(v["t"]) for v in first_live[1].values())
                cached = [timed(client, base, live)[0] for _ in range(max(20, repeats))]
            finally:
                stop.set()
                writer.join(10)
            results["raw_1h_cached_s"] = statistics.median(cached)
            # resampled over the whole table
            nb = int(span // BUCKET)
            start = last + 1 - nb * BUCKET
            results["floor_last_600_s"] = floor_last(db, start, nb)
            last_params = {
                "length": nb * BUCKET,
                "to": last + 1,
                "resample": BUCKET,
                "reducer": "last",
            }
            results["last_600_s"] = median_of(repeats, lambda: timed(client, base, last_params)[0])
            aligned_to = math.floor(last / BUCKET) * BUCKET
            mean_params = {
                "length": math.floor(span / BUCKET) * BUCKET - BUCKET,
                "to": aligned_to,
                "resample": BUCKET,
                "reducer": "mean",
                "align": 1,
            }
            results["mean_600_tiers_s"] = median_of(
                repeats, lambda: timed(client, base, mean_params)[0]
            )
            raw_params = dict(mean_params, to=aligned_to - 0.5, align=0)
            results["floor_mean_600_s"] = floor_mean(
                db, aligned_to - 0.5 - raw_params["length"], aligned_to - 0.5
            )
            results["mean_600_raw_s"] = timed(client, base, raw_params)[0]
            # ping while the raw mean runs
            pings: list[float] = []
            done = threading.Event()

            def heavy() -> None:
                try:
                    with httpx.Client() as other:
                        timed(other, base, raw_params)
                finally:
                    done.set()

            worker = threading.Thread(target=heavy, daemon=True)
            worker.start()
            deadline = time.monotonic() + 120
            while not done.is_set() and time.monotonic() < deadline and len(pings) < 10_000:
                started = time.perf_counter()
                client.get(f"http://127.0.0.1:{port}/api/ping", timeout=30)
                pings.append(time.perf_counter() - started)
                done.wait(0.02)  # a ping every 20 ms while the query runs
            worker.join(120)
            pings.sort()
            results["ping_during_n"] = len(pings)
            results["ping_during_p50_s"] = pings[len(pings) // 2] if pings else math.nan
            results["ping_during_p99_s"] = (
                pings[min(len(pings) - 1, int(len(pings) * 0.99))] if pings else math.nan
            )
            results["server_peak_rss_mb"] = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
    results.update(in_process(db, last, repeats))
    report(results)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


def in_process(db: Path, last: float, repeats: int) -> dict[str, float]:
    """The server's own share, without HTTP: the SQLite source's answer plus its JSON."""
    import trio

    from slowdash_trio._dispatch import encode_json
    from slowdash_trio._sources import build_source, parse_query

    entry = {"url": f"sqlite:///{db.with_suffix('')}"}
    entry["time_series"] = {"schema": "data[channel]@timestamp(unix)=value"}  # type: ignore[assignment]
    source = build_source(entry, project_dir=db.parent)
    out: dict[str, float] = {}

    async def answer(**params: Any) -> float:
        query = parse_query(CHANNELS, now=time.time(), **params)
        started = time.perf_counter()
        encode_json(await source.data(query))
        return time.perf_counter() - started

    async def main() -> None:
        await source.open()
        try:
            fixed, floors = [], []
            for _ in range(max(repeats, 7)):
                floors.append(floor_raw(db, last - 7200, 3600))
                fixed.append(await answer(length=3600, to=last - 7200))
            out["inproc_raw_1h_s"] = statistics.median(fixed)
            out["inproc_floor_raw_1h_s"] = statistics.median(floors)
            out["inproc_raw_1h_ratio"] = statistics.median(
                o / f for o, f in zip(fixed, floors, strict=True)
            )
            live = {"length": math.ceil(time.time() - (last - 3600)), "to": 0}
            await answer(**live)
            cached = [await answer(**live) for _ in range(max(20, repeats))]
            out["inproc_raw_1h_cached_s"] = statistics.median(cached)
        finally:
            await source.aclose()

    trio.run(main)
    return out


def live_writer(db: Path, stop: threading.Event) -> None:
    """One row per channel every 100 ms, through our store (as a live experiment would)."""
    from slowdash_stores import DataStore_SQLite

    with DataStore_SQLite(f"sqlite:///{db.with_suffix('')}", TABLE, tiers=()) as store:
        for _ in range(3000):
            if stop.wait(0.1):
                break
            store.append({name: random.gauss(0, 1) for name in CHANNELS})


def report(r: dict[str, Any]) -> None:
    ms = 1000.0
    print(f"\n/api/data on {r['rows']:,} rows (16 channels), Python {r['python']}, {r['date']}")
    print(f"  tiers built in {r['tier_build_s']:.1f} s")
    print(f"  live window: {r['raw_1h_live_points']:,} points")
    rows = [
        ("16 ch x 1 h raw", r["raw_1h_s"], r["floor_raw_1h_s"], "floor: sqlite3 fetch", 1.3),
        (
            "16 ch x 1 h raw, in-process + JSON",
            r["inproc_raw_1h_s"],
            r["inproc_floor_raw_1h_s"],
            "",
            None,
        ),
        ("1 ch x 1 h raw", r["raw_1h_1ch_s"], None, "", None),
        ("16 ch x 1 h raw, live, first", r["raw_1h_live_first_s"], None, "", None),
        ("16 ch x 1 h raw, live, repeated", r["raw_1h_cached_s"], None, "goal < 10 ms", None),
        ("  the same, in-process answer + JSON", r["inproc_raw_1h_cached_s"], None, "", None),
        (
            "16 ch x 7 d, 600 s, last",
            r["last_600_s"],
            r["floor_last_600_s"],
            "floor: look-ups",
            None,
        ),
        ("16 ch x 7 d, 600 s, mean, tiers", r["mean_600_tiers_s"], None, "goal < 1 s", None),
        (
            "16 ch x 7 d, 600 s, mean, raw",
            r["mean_600_raw_s"],
            r["floor_mean_600_s"],
            "floor: GROUP BY",
            None,
        ),
    ]
    for name, ours, floor, note, _ in rows:
        ratio = f"{ours / floor:5.2f}x floor" if floor else ""
        floor_text = f"{floor * ms:9.1f} ms" if floor else " " * 12
        print(f"  {name:36s} {ours * ms:9.1f} ms  {floor_text}  {ratio:14s} {note}")
    print(
        f"  ping during the raw mean: p50 {r['ping_during_p50_s'] * ms:.1f} ms, "
        f"p99 {r['ping_during_p99_s'] * ms:.1f} ms over {r['ping_during_n']} pings"
    )
    print(f"  server peak memory (VmHWM): {r['server_peak_rss_mb']:.0f} MB")
    print(
        "  the original SlowDash server (quoted): 15 ms 1 ch x 1 h, 152 ms 16 ch x 1 h, "
        "26 s and 2.4 GB for 16 ch x 7 d at 600 s, ping waiting 25 s"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()

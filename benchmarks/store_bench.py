"""The stores' write speed against the original SlowPy, measured in one run.

What is measured (docs/performance.md, section "Data stores", says what each figure means and
records them): ``append`` of one 16-channel dict per call to an SQLite long-format table, each
call committed before it returns, timestamps 1 ms apart (given explicitly, so that no two calls
share a primary key). Every run is a process of its own writing to a fresh database file.

Configurations:

- ``slowpy``: the original ``slowpy.store.DataStore_SQLite('sqlite:///FILE', table=...)``
  (SQLite's defaults: rollback journal, ``synchronous=FULL``; a commit per call);
- ``ours``: ``slowdash_stores``' ``DataStore_SQLite`` as it comes (WAL, ``synchronous=NORMAL``:
  what ``append`` returned for survives the process being killed);
- ``ours-durable``: ``durable=True`` (``synchronous=FULL``: it also survives a power loss);
- ``ours-channel-index``: the default durability, with ``LongTableFormat(channel_index=True)``
  (an index on ``(channel, timestamp)`` besides the primary key);
- ``ours-aio``: the default store driven by ``await store.aio_append(...)`` from a Trio task
  (each call a hop to a worker thread and back).

The figure is rows per second (16 per call) over ``--duration`` seconds after one warm-up call
(which creates the table); each configuration's median over ``--repeats`` rounds is shown. In
each round the configurations take turns (the order rotates from round to round), and the
ratio to ``slowpy`` is taken within each round, then its median. Every loop is bounded in count
(``--max-calls``) and in time. The table is printed, and written with every single run to
``results-store-latest.json`` next to this file (or ``--json PATH``).

    python benchmarks/store_bench.py [--duration S] [--repeats N] [--max-calls N]
                                     [--dir DIR] [--json PATH] [--only NAME ...]

The database files go to a temporary directory under ``--dir`` (default: the system's). Run it
on the disk your data will live on: on tmpfs an fsync costs nothing and ``ours-durable`` (and
``slowpy``) look much faster than on a real disk. Needs ``slowpy==0.4.0`` for the baseline
(slowdash-trio itself never imports it; without it that row is skipped) and slowdash-trio.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results-store-latest.json"

CHANNELS = 16
T0 = 1_700_000_000.0
STEP = 0.001  # seconds between calls' timestamps: one primary key per call and channel
CHILD_TIMEOUT_EXTRA_S = 60.0
GOAL_VS_SLOWPY = 10.0  # the issue: >= 10x SlowPy's rows/s at the default durability

# The issue's own figure, for the record (measured there, not here)
QUOTED = {"slowpy DataStore_SQLite.append, 16-channel dict": "~900 calls/s (~15,000 rows/s)"}


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    promise: str
    needs: tuple[str, ...] = ()


CONFIGS = [
    Config("slowpy", "slowpy 0.4.0 DataStore_SQLite", "rollback journal, FULL", ("slowpy",)),
    Config("ours", "ours (default)", "survives process kill"),
    Config("ours-durable", "ours durable=True", "survives power loss"),
    Config("ours-channel-index", "ours + (channel, timestamp) index", "survives process kill"),
    Config("ours-aio", "ours, await aio_append", "survives process kill"),
]


# ============================================================================================
# the writer (child process)
# ============================================================================================


def record(i: int) -> dict[str, float]:
    return {f"ch{k:02d}": float(i) for k in range(CHANNELS)}


def write_sync(store: Any, duration: float, max_calls: int) -> tuple[int, float]:
    store.append(record(0), timestamp=T0)  # warm-up: connects and creates the table
    calls = 1
    start = time.perf_counter()
    end = start + duration
    while calls <= max_calls and time.perf_counter() < end:
        store.append(record(calls), timestamp=T0 + calls * STEP)
        calls += 1
    return calls - 1, time.perf_counter() - start


def write_aio(store: Any, duration: float, max_calls: int) -> tuple[int, float]:
    import trio

    async def main() -> tuple[int, float]:
        await store.aio_append(record(0), timestamp=T0)
        calls = 1
        start = time.perf_counter()
        end = start + duration
        while calls <= max_calls and time.perf_counter() < end:
            await store.aio_append(record(calls), timestamp=T0 + calls * STEP)
            calls += 1
        elapsed = time.perf_counter() - start
        await store.aio_close()
        return calls - 1, elapsed

    return trio.run(main)


def child(kind: str, directory: str, duration: float, max_calls: int) -> dict[str, Any]:
    path = os.path.join(directory, kind)
    url = "sqlite:///" + path
    if kind == "slowpy":
        from slowpy.store import DataStore_SQLite as SlowPyStore  # type: ignore[import-untyped]

        store: Any = SlowPyStore(url, table="data")
    else:
        from slowdash_stores._sql import DataStore_SQLite, LongTableFormat

        fmt = LongTableFormat(channel_index=True) if kind == "ours-channel-index" else None
        store = DataStore_SQLite(url, "data", fmt, durable=kind == "ours-durable")
    if kind == "ours-aio":
        calls, elapsed = write_aio(store, duration, max_calls)
    else:
        calls, elapsed = write_sync(store, duration, max_calls)
        store.close()
    import sqlite3

    conn = sqlite3.connect(path + ".db")
    try:
        stored = conn.execute("SELECT COUNT(*) FROM data").fetchone()[0]
    finally:
        conn.close()
    return {
        "calls": calls,
        "seconds": elapsed,
        "rows_per_s": calls * CHANNELS / elapsed,
        "calls_per_s": calls / elapsed,
        "rows_stored": stored,
        "rows_expected": (calls + 1) * CHANNELS,
    }


# ============================================================================================
# the orchestration
# ============================================================================================


def have_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def filesystem_of(path: str) -> str:
    """The mount's file-system type (from /proc/mounts), or '?'."""
    best, kind = "", "?"
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) >= 3 and path.startswith(fields[1]) and len(fields[1]) > len(best):
                    best, kind = fields[1], fields[2]
    except OSError:
        pass
    return kind


def run_child(config: Config, directory: str, duration: float, max_calls: int) -> dict[str, Any]:
    rundir = tempfile.mkdtemp(prefix=config.key + "-", dir=directory)
    try:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "_child",
                config.key,
                rundir,
                str(duration),
                str(max_calls),
            ],
            capture_output=True,
            text=True,
            timeout=duration + CHILD_TIMEOUT_EXTRA_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"error": "timed out"}
    finally:
        shutil.rmtree(rundir, ignore_errors=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed"}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["rows_stored"] != result["rows_expected"]:
        result["error"] = f"stored {result['rows_stored']} of {result['rows_expected']} rows"
    return result


def summarize(
    configs: list[Config], runs: list[dict[str, Any]], repeats: int
) -> tuple[dict[str, Any], dict[str, float]]:
    summary: dict[str, Any] = {}
    for config in configs:
        ok = [r for r in runs if r["config"] == config.key and "error" not in r]
        if ok:
            summary[config.key] = {
                "rows_per_s": statistics.median(r["rows_per_s"] for r in ok),
                "calls_per_s": statistics.median(r["calls_per_s"] for r in ok),
                "runs": len(ok),
            }
    ratios: dict[str, float] = {}
    for config in configs:
        per_round = []
        for round_index in range(repeats):
            mine = [r for r in runs if r["round"] == round_index and r["config"] == config.key]
            base = [r for r in runs if r["round"] == round_index and r["config"] == "slowpy"]
            if mine and base and "error" not in mine[0] and "error" not in base[0]:
                per_round.append(mine[0]["rows_per_s"] / base[0]["rows_per_s"])
        if per_round:
            ratios[config.key] = statistics.median(per_round)
    return summary, ratios


def print_table(
    configs: list[Config], summary: dict[str, Any], ratios: dict[str, float], facts: dict[str, Any]
) -> None:
    print()
    print(
        f"SQLite append of a {CHANNELS}-channel dict per call, a commit per call "
        f"(medians; {facts['python']}, SQLite {facts['sqlite']}, {facts['cpus']} CPUs, "
        f"files on {facts['filesystem']})"
    )
    print()
    header = f"| {'configuration':<36} | {'rows/s':>9} | {'calls/s':>8} | {'x slowpy':>8} |"
    print(header + f" {'durability':<24} |")
    print(f"|{'-' * 38}|{'-' * 11}|{'-' * 10}|{'-' * 10}|{'-' * 26}|")
    for config in configs:
        row = summary.get(config.key)
        if row is None:
            print(f"| {config.label:<36} | {'failed':>9} | {'':>8} | {'':>8} | {'':<24} |")
            continue
        ratio = ratios.get(config.key)
        shown = f"{ratio:.1f}" if ratio is not None else "-"
        print(
            f"| {config.label:<36} | {row['rows_per_s']:>9,.0f} | {row['calls_per_s']:>8,.0f} "
            f"| {shown:>8} | {config.promise:<24} |"
        )
    ours = ratios.get("ours")
    if ours is not None:
        verdict = "met" if ours >= GOAL_VS_SLOWPY else "NOT met"
        print(f"\ngoal: ours >= {GOAL_VS_SLOWPY:g}x slowpy's rows/s: {ours:.1f}x, {verdict}")


def orchestrate(args: argparse.Namespace) -> int:
    configs, skipped = [], []
    for config in CONFIGS:
        if args.only and not any(name in config.key for name in args.only):
            continue
        missing = [name for name in config.needs if not have_module(name)]
        if missing:
            skipped.append(
                f"{config.label}: needs {', '.join(missing)} (pip install slowpy==0.4.0)"
            )
        else:
            configs.append(config)
    for line in skipped:
        print(f"skipped: {line}", file=sys.stderr)
    directory = tempfile.mkdtemp(prefix="store-bench-", dir=args.dir)
    import sqlite3

    facts = {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "filesystem": filesystem_of(os.path.realpath(directory)),
    }
    runs: list[dict[str, Any]] = []
    try:
        for round_index in range(args.repeats):
            shift = round_index % len(configs) if configs else 0
            for config in configs[shift:] + configs[:shift]:
                result = run_child(config, directory, args.duration, args.max_calls)
                runs.append({"round": round_index, "config": config.key, **result})
                shown = (
                    f"{result['rows_per_s']:,.0f} rows/s"
                    if "error" not in result
                    else result["error"][:90]
                )
                print(
                    f"round {round_index + 1}/{args.repeats}  {config.label:<36} {shown}",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    summary, ratios = summarize(configs, runs, args.repeats)
    print_table(configs, summary, ratios, facts)
    for line in skipped:
        print(f"skipped: {line}")
    output = Path(args.json) if args.json else RESULTS
    output.write_text(
        json.dumps(
            {
                "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "machine": facts,
                "args": {
                    "duration": args.duration,
                    "repeats": args.repeats,
                    "max_calls": args.max_calls,
                    "only": args.only,
                },
                "channels": CHANNELS,
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
    print(f"\nall runs: {output}")
    failed = [r for r in runs if "error" in r]
    return 1 if failed else 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        _, _, kind, directory, duration, max_calls = sys.argv
        print(json.dumps(child(kind, directory, float(duration), int(max_calls))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run (3)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (5); medians are shown")
    parser.add_argument(
        "--max-calls", type=int, default=500_000, help="calls per run at most (500000)"
    )
    parser.add_argument("--dir", default=None, help="where the temporary databases go")
    parser.add_argument("--json", default=None, help=f"where to write all runs ({RESULTS.name})")
    parser.add_argument(
        "--only", nargs="*", default=[], help="run only configurations whose key contains NAME"
    )
    args = parser.parse_args()
    if args.duration <= 0 or args.repeats < 1 or args.max_calls < 1:
        parser.error("--duration must be > 0, --repeats and --max-calls >= 1")
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())

"""The browser dashboard in Chromium (Playwright): load time of a 7-day plot, and the page's
main-thread time while 16 channels stream.

**Load.** The data path's benchmark database (``query_bench.generate``: 16 channels at 1 Hz,
``--days`` days ending now, with its downsampling tiers) served by ``python -m slowdash_trio
serve`` on 127.0.0.1, and a layout ``slowplot-Bench.json`` with one time-axis panel of the 16
channels over the last ``--days`` days. Each of ``--repeats`` rounds opens the page in a new
browser context (no cache) and takes, from the page itself:

- navigation start -> ``performance.mark('sd-timeaxis-drawn')`` (the panel's first draw with
  data; its body's ``data-points`` is the number of points drawn);
- the ``/api/data`` request the plot was drawn from (Resource Timing): when the page issued it,
  how long it waited for it, and the time from its answer to the draw; every ``/api/data``
  request the page made (Playwright's request events), aborted ones included.

Baselines in the same rounds: the same ``/api/data`` URL fetched with httpx, and the same
window at a width the tiers answer (rounded up to a multiple of 60 s, ``reducer=mean``); a
navigation to ``/api/ping`` (``loadEventEnd``); the same page with a layout of no panels
(navigation start -> the end of the feed's first answer, ``/api/ping``).

**Streaming.** A second project whose task ``bench`` publishes 16 ``ValueNode``s every 100 ms
(``await node.deliver("bench.sNN")``) and records them (``DataStore_SQLite``, the project's
data source), and a layout with one time-axis panel of them, 60 s live. The page is opened,
data must flow, a warm-up fills the window (``--warmup``), then over ``--seconds`` the
renderer's main thread is read through CDP (``Performance.getMetrics``: TaskDuration,
ScriptDuration, LayoutDuration, RecalcStyleDuration against the wall time), with the
WebSocket frames received (``sdLayout.feed.frameCount``), the feed's ``update`` events and
the plot's redraws (its body's ``data-draws``: live plots redraw at most 4 times a second).
Baseline: the same page on the same server before the task starts (idle). Then, over
``--profile`` seconds each, a CPU profile lists the functions with the most self time and a
trace splits the main thread's time (frames, canvas raster, JS).

    python benchmarks/dashboard_bench.py [--days D] [--repeats N] [--seconds S] [--warmup S]
        [--profile S] [--reuse] [--quick] [--dir DIR] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from query_bench import CHANNELS, TABLE, build_tiers, free_port, generate, start_server

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results-dashboard-latest.json"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
LOAD_TIMEOUT_MS = 60_000
STREAM_CHANNELS = [f"bench.s{i:02d}" for i in range(16)]
STREAM_RANGE = 60  # seconds shown by the streaming layout
TASK = '''"""16 channels at 10 Hz: every 100 ms each ValueNode takes a step and is delivered as
bench.sNN; the 16 values are also recorded (the project's data source), as an experiment
would."""

import random

import trio

from slowdash_controls import ValueNode
from slowdash_stores import DataStore_SQLite

PERIOD = 0.1
nodes = [ValueNode(0.0) for _ in range(16)]
state = {"next": None, "store": None}


def _initialize(params):
    state["store"] = DataStore_SQLite(params["db"], "data", tiers=())


def _finalize():
    if state["store"] is not None:
        state["store"].close()


async def _loop():
    if state["next"] is None:
        state["next"] = trio.current_time()
    values = {}
    for i, node in enumerate(nodes):
        await node.aio_set(await node.aio_get() + random.gauss(0, 1))
        # published by name, not exported: an exported name would be answered by the task
        # (its current value) instead of the data source's records
        values[f"bench.s{i:02d}"] = await node.deliver(f"bench.s{i:02d}")
    await state["store"].aio_append(values)
    now = trio.current_time()
    state["next"] += PERIOD
    if state["next"] <= now:  # behind: no burst of catch-up ticks
        state["next"] = now + PERIOD
    await trio.sleep_until(state["next"])
'''

DRAWN_JS = """() => performance.getEntriesByName('sd-timeaxis-drawn').length > 0
    && Number(document.querySelector('.sd-panel-body')?.dataset.points) > 0"""
LOAD_TIMING_JS = """() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const mark = performance.getEntriesByName('sd-timeaxis-drawn')[0];
    return {
        drawn: mark ? mark.startTime : null,
        points: Number(document.querySelector('.sd-panel-body')?.dataset.points ?? 0),
        nav: {responseEnd: nav.responseEnd, domContentLoaded: nav.domContentLoadedEventEnd,
              load: nav.loadEventEnd},
        resources: performance.getEntriesByType('resource').map((e) => ({
            name: e.name, start: e.startTime, responseStart: e.responseStart, end: e.responseEnd,
            size: e.encodedBodySize})),
    };
}"""
READY_JS = "() => !!window.sdLayout && window.sdLayout.feed.fetchCount > 0"
COUNTERS_JS = """() => ({frames: window.sdLayout.feed.frameCount, updates: window.__sdUpdates,
    redraws: Number(document.querySelector('.sd-panel-body')?.dataset.draws ?? 0),
    points: Number(document.querySelector('.sd-panel-body')?.dataset.points ?? 0)})"""
COUNT_REDRAWS_JS = """() => { window.__sdUpdates = 0;
    window.sdLayout.feed.addEventListener('update', () => { window.__sdUpdates += 1; }); }"""
METRICS = ["TaskDuration", "ScriptDuration", "LayoutDuration", "RecalcStyleDuration"]


# ----------------------------------------------------------------------------------------------
# projects


def layout(title: str, channels: list[str], length: float, reload: float) -> str:
    panels = []
    if channels:
        plots = [{"type": "timeseries", "channel": ch} for ch in channels]
        panels.append({"type": "timeaxis", "title": title, "plots": plots})
    doc = {
        "meta": {"title": title},
        "control": {
            "range": {"length": length, "to": 0},
            "reload": reload,
            "grid": {"rows": 1, "columns": 1},
        },
        "panels": panels,
    }
    return json.dumps(doc, indent=2) + "\n"


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    (path / "config").mkdir(parents=True)
    return path


def load_project(directory: Path, db: Path, length: float) -> Path:
    project = fresh_dir(directory)
    (project / "SlowdashProject.yaml").write_text(
        "slowdash_project:\n  name: DashboardBench\n  data_source:\n"
        f"    url: sqlite:///{db.with_suffix('')}\n"
        "    time_series:\n      schema: data[channel]@timestamp(unix)=value\n"
        "      tags:\n        list: [" + ", ".join(CHANNELS) + "]\n"
    )
    config = project / "config"
    (config / "slowplot-Bench.json").write_text(layout("16 channels", CHANNELS, length, 60))
    (config / "slowplot-Empty.json").write_text(layout("no panels", [], length, 60))
    return project


def stream_project(directory: Path) -> Path:
    project = fresh_dir(directory)
    db = f"sqlite:///{project / 'StreamBench'}"
    (project / "SlowdashProject.yaml").write_text(
        "slowdash_project:\n  name: StreamBench\n  data_source:\n"
        f"    url: {db}\n"
        "    time_series:\n      schema: data[channel]@timestamp(unix)=value\n"
        "      tags:\n        list: [" + ", ".join(STREAM_CHANNELS) + "]\n"
        "  task:\n    name: bench\n    auto_load: false\n"
        f"    parameters:\n      db: {json.dumps(db)}\n"
    )
    with sqlite3.connect(project / "StreamBench.db") as conn:  # SlowPy's layout, as generate()
        conn.execute(
            f"CREATE TABLE {TABLE}(timestamp REAL, channel VARCHAR(100), value REAL, "
            "PRIMARY KEY(timestamp, channel))"
        )
    conn.close()
    (project / "config" / "slowtask-bench.py").write_text(TASK)
    (project / "config" / "slowplot-Stream.json").write_text(
        layout("16 channels at 10 Hz", STREAM_CHANNELS, STREAM_RANGE, 60)
    )
    return project


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(20)


# ----------------------------------------------------------------------------------------------
# statistics


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


def med(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


# ----------------------------------------------------------------------------------------------
# load time


def new_page(browser: Any) -> tuple[Any, Any, list[str]]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    return context, page, errors


def load_once(browser: Any, url: str) -> dict[str, Any]:
    """One fresh-context load of the plot page: timings from the page, in ms."""
    context, page, errors = new_page(browser)
    issued: list[str] = []
    failed: list[str] = []
    page.on("request", lambda r: issued.append(r.url) if "/api/data/" in r.url else None)
    page.on("requestfailed", lambda r: failed.append(r.url) if "/api/data/" in r.url else None)
    try:
        page.goto(url, wait_until="commit")
        page.wait_for_function(DRAWN_JS, timeout=LOAD_TIMEOUT_MS)
        timing = page.evaluate(LOAD_TIMING_JS)
    finally:
        context.close()
    drawn = timing["drawn"]
    data = [r for r in timing["resources"] if "/api/data/" in r["name"] and 0 < r["end"] <= drawn]
    if not data:
        raise SystemExit(f"no /api/data request answered before the draw: {timing['resources']}")
    used = max(data, key=lambda r: r["end"])
    return {
        "drawn_ms": drawn,
        "points": timing["points"],
        "data_url": used["name"],
        "data_bytes": used["size"],
        "data_start_ms": used["start"],
        "data_wait_ms": used["end"] - used["start"],
        "data_ttfb_ms": used["responseStart"] - used["start"],
        "after_data_ms": drawn - used["end"],
        "data_requests": len(issued),
        "data_requests_failed": len(failed),
        "dom_content_loaded_ms": timing["nav"]["domContentLoaded"],
        "resources": [
            (r["name"].split("/", 3)[-1][:70], round(r["start"], 1), round(r["end"], 1))
            for r in timing["resources"]
        ],
        "page_errors": errors,
    }


def ping_navigation(browser: Any, base: str) -> float:
    context, page, _ = new_page(browser)
    try:
        page.goto(base + "api/ping", wait_until="load")
        return float(
            page.evaluate("() => performance.getEntriesByType('navigation')[0].loadEventEnd")
        )
    finally:
        context.close()


def empty_layout(browser: Any, url: str) -> float:
    """Navigation start -> the end of the first feed answer (/api/ping) of a layout of no panels."""
    context, page, _ = new_page(browser)
    try:
        page.goto(url, wait_until="commit")
        page.wait_for_function(READY_JS, timeout=LOAD_TIMEOUT_MS)
        ends = page.evaluate(
            "() => performance.getEntriesByType('resource')"
            ".filter((e) => e.name.includes('/api/ping')).map((e) => e.responseEnd)"
        )
        return float(min(ends))
    finally:
        context.close()


def httpx_once(client: httpx.Client, url: str) -> float:
    started = time.perf_counter()
    response = client.get(url, timeout=600)
    response.read()
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed * 1000


def tier_aligned(url: str) -> str:
    """The page's data URL with the resample width rounded up to a multiple of 60 s and
    ``reducer=mean``: a request the server's downsampling tiers (60/600/3600 s) answer."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    width = float(query.get("resample", "-1"))
    if width > 0:
        query["resample"] = f"{math.ceil(width / 60) * 60:g}"
        query["reducer"] = "mean"
    return urlunsplit(parts._replace(query=urlencode(query)))


def measure_load(browser: Any, base: str, repeats: int) -> dict[str, Any]:
    url = base + "slowplot.html?config=slowplot-Bench.json"
    empty_url = base + "slowplot.html?config=slowplot-Empty.json"
    warm = load_once(browser, url)  # the first load warms the server and the OS caches
    runs, direct, aligned, pings, empties = [], [], [], [], []
    with httpx.Client() as client:
        httpx_once(client, warm["data_url"])
        httpx_once(client, tier_aligned(warm["data_url"]))
        for _ in range(repeats):
            runs.append(load_once(browser, url))
            direct.append(httpx_once(client, runs[-1]["data_url"]))
            aligned.append(httpx_once(client, tier_aligned(runs[-1]["data_url"])))
            pings.append(ping_navigation(browser, base))
            empties.append(empty_layout(browser, empty_url))
    drawn = [r["drawn_ms"] for r in runs]
    middle = sorted(runs, key=lambda r: r["drawn_ms"])[len(runs) // 2]
    return {
        "repeats": repeats,
        "drawn_ms": drawn,
        "drawn_median_ms": med(drawn),
        "drawn_p90_ms": p90(drawn),
        "points": middle["points"],
        "data_bytes": middle["data_bytes"],
        "data_url": middle["data_url"].split("/", 3)[-1],
        "data_start_median_ms": med([r["data_start_ms"] for r in runs]),
        "data_wait_median_ms": med([r["data_wait_ms"] for r in runs]),
        "data_ttfb_median_ms": med([r["data_ttfb_ms"] for r in runs]),
        "after_data_median_ms": med([r["after_data_ms"] for r in runs]),
        "dom_content_loaded_median_ms": med([r["dom_content_loaded_ms"] for r in runs]),
        "data_requests": Counter(r["data_requests"] for r in runs),
        "data_requests_failed": Counter(r["data_requests_failed"] for r in runs),
        "httpx_data_median_ms": med(direct),
        "httpx_tier_aligned_median_ms": med(aligned),
        "tier_aligned_url": tier_aligned(middle["data_url"]).split("/", 3)[-1],
        "ping_navigation_median_ms": med(pings),
        "empty_layout_median_ms": med(empties),
        "drawn_over_httpx": med([r["drawn_ms"] / d for r, d in zip(runs, direct, strict=True)]),
        "wait_over_httpx": med([r["data_wait_ms"] / d for r, d in zip(runs, direct, strict=True)]),
        "drawn_over_empty": med([r["drawn_ms"] / e for r, e in zip(runs, empties, strict=True)]),
        "median_run_timeline": middle["resources"],
        "page_errors": sorted({e for r in runs for e in r["page_errors"]}),
    }


# ----------------------------------------------------------------------------------------------
# main-thread time while streaming


def metrics(cdp: Any) -> dict[str, float]:
    reply = cdp.send("Performance.getMetrics")
    return {m["name"]: float(m["value"]) for m in reply["metrics"]}


def main_thread(
    browser: Any, url: str, seconds: float, warmup: float, profile_s: float = 0.0
) -> dict[str, Any]:
    """Main-thread time of a fresh page over ``seconds`` after ``warmup``; with ``profile_s``,
    the data must flow first and a CPU profile of that many seconds follows."""
    live = profile_s > 0
    context, page, errors = new_page(browser)
    try:
        page.goto(url, wait_until="commit")
        page.wait_for_function(READY_JS, timeout=LOAD_TIMEOUT_MS)
        page.evaluate(COUNT_REDRAWS_JS)
        if live:  # data flows: frames arrive and the plot shows them
            page.wait_for_function(
                "() => window.sdLayout.feed.frameCount >= 10 && window.__sdUpdates >= 5"
                " && Number(document.querySelector('.sd-panel-body').dataset.points) > 0",
                timeout=15_000,
            )
        page.wait_for_timeout(warmup * 1000)  # the measured interval's lead-in, not a sync
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable", {"timeDomain": "timeTicks"})
        before, counted = metrics(cdp), page.evaluate(COUNTERS_JS)
        page.wait_for_timeout(seconds * 1000)  # the measured interval
        after, counts = metrics(cdp), page.evaluate(COUNTERS_JS)
        wall = after["Timestamp"] - before["Timestamp"]
        out: dict[str, Any] = {"wall_s": wall}
        for name in METRICS:
            out[name] = (after[name] - before[name]) / wall
        out["frames_per_s"] = (counts["frames"] - counted["frames"]) / wall
        out["updates_per_s"] = (counts["updates"] - counted["updates"]) / wall
        out["redraws_per_s"] = (counts["redraws"] - counted["redraws"]) / wall
        out["points"] = counts["points"]
        out["heap_mb"] = after["JSHeapUsedSize"] / 2**20
        out["page_errors"] = errors
        out["profile"] = profile(cdp, page, profile_s) if live else []
        out["trace"] = trace(browser, page, profile_s) if live else {}
        return out
    finally:
        context.close()


def profile(cdp: Any, page: Any, seconds: float) -> list[tuple[str, float]]:
    """Self time (ms per second) of the hottest functions over ``seconds`` of streaming."""
    cdp.send("Profiler.enable")
    cdp.send("Profiler.setSamplingInterval", {"interval": 200})
    cdp.send("Profiler.start")
    page.wait_for_timeout(seconds * 1000)
    prof = cdp.send("Profiler.stop")["profile"]
    cdp.send("Profiler.disable")
    nodes = {n["id"]: n for n in prof["nodes"]}
    deltas = prof.get("timeDeltas", [])
    span = (prof["endTime"] - prof["startTime"]) / 1e6
    self_ms: Counter[str] = Counter()
    for sample, delta in zip(prof.get("samples", []), deltas, strict=False):
        frame = nodes[sample]["callFrame"]
        name = frame["functionName"] or "(anonymous)"
        where = frame["url"].rsplit("/", 1)[-1]
        key = f"{name} {where}:{frame['lineNumber'] + 1}" if where else name
        self_ms[key] += delta / 1000
    skip = {"(idle)", "(root)"}
    return [(k, v / span) for k, v in self_ms.most_common(30) if k not in skip][:14]


TRACED = [
    ("RunTask", "every task"),
    ("ProxyMain::BeginMainFrame", "  frames (each redraw's frame)"),
    ("FireAnimationFrame", "    JS in animation frames (the panel's update and uPlot)"),
    ("Commit", "    commit to the compositor"),
    ("LayerTreeHost::DoUpdateLayers", "      of which layer updates (the canvas's raster)"),
    ("other", "  other tasks (WebSocket messages, timers, GC)"),
]


def trace(browser: Any, page: Any, seconds: float) -> dict[str, float]:
    """Inclusive time of some trace events on the page's main thread (``CrRendererMain``)
    over ``seconds``, as shares of its tasks' time (tracing slows the page, so absolute
    figures are inflated): where the time the JS profile leaves out goes."""
    categories = ["devtools.timeline", "disabled-by-default-devtools.timeline", "toplevel", "cc"]
    browser.start_tracing(page=page, categories=categories)
    started = time.monotonic()
    page.wait_for_timeout(seconds * 1000)
    events = json.loads(browser.stop_tracing())
    wall = time.monotonic() - started
    events = events["traceEvents"] if isinstance(events, dict) else events
    main = {
        (e["pid"], e["tid"])
        for e in events
        if e.get("ph") == "M"
        and e.get("name") == "thread_name"
        and e["args"].get("name") == "CrRendererMain"
    }
    totals: Counter[str] = Counter()
    for e in events:
        if e.get("ph") == "X" and (e.get("pid"), e.get("tid")) in main:
            totals[e["name"]] += e.get("dur", 0) / 1000
    totals["other"] = totals["RunTask"] - totals["ProxyMain::BeginMainFrame"]
    out = {name: totals[name] / max(totals["RunTask"], 1e-9) for name, _ in TRACED}
    out["RunTask_ms_per_s"] = totals["RunTask"] / wall
    return out


def measure_stream(
    browser: Any, directory: Path, seconds: float, warmup: float, profile_s: float
) -> dict[str, Any]:
    project = stream_project(directory)
    port = free_port()
    server = start_server(project, port)
    base = f"http://127.0.0.1:{port}/"
    url = base + "slowplot.html?config=slowplot-Stream.json"
    try:
        idle = main_thread(browser, url, seconds, 0)
        reply = httpx.post(base + "api/control/task/bench", json={"action": "start"}, timeout=60)
        reply.raise_for_status()
        if reply.json().get("state") != "running":
            raise SystemExit(f"the streaming task did not start: {reply.text}")
        live = main_thread(browser, url, seconds, warmup, max(0.1, profile_s))
    finally:
        stop(server)
    return {"idle": idle, "live": live, "profile_s": profile_s}


# ----------------------------------------------------------------------------------------------
# report


def report(r: dict[str, Any]) -> None:
    load, idle, live = r["load"], r["stream"]["idle"], r["stream"]["live"]
    print(
        f"\nDashboard in Chromium {r['chromium']}, Python {r['python']}, {r['date']}, "
        f"{r['cpus']} CPUs"
    )
    print(f"\nLoad: 16 channels x {r['days']:g} d, {load['repeats']} fresh-context page loads")
    print(f"  data request: {load['data_url'][:110]}")
    print(f"  points drawn: {load['points']:,}; reply {load['data_bytes'] / 1024:.0f} kB")
    rows = [
        ("navigation -> plot drawn, median", load["drawn_median_ms"], "goal < 1500 ms"),
        ("navigation -> plot drawn, p90", load["drawn_p90_ms"], ""),
        ("  /api/data issued at (median)", load["data_start_median_ms"], ""),
        ("  waiting for /api/data (median)", load["data_wait_median_ms"], ""),
        ("    of which to the first byte", load["data_ttfb_median_ms"], ""),
        ("  answer -> drawn (median)", load["after_data_median_ms"], "parse + draw"),
        ("the same /api/data with httpx", load["httpx_data_median_ms"], "baseline"),
        ("  tier-aligned width, mean (httpx)", load["httpx_tier_aligned_median_ms"], "(a)"),
        ("navigation to /api/ping (load)", load["ping_navigation_median_ms"], "baseline"),
        ("layout of no panels, first answer", load["empty_layout_median_ms"], "baseline"),
    ]
    for name, ms, note in rows:
        print(f"  {name:38s} {ms:9.1f} ms  {note}")
    print(
        f"  ratios: drawn / httpx {load['drawn_over_httpx']:.2f}, data wait / httpx "
        f"{load['wait_over_httpx']:.2f}, drawn / empty layout {load['drawn_over_empty']:.2f}"
    )
    print(
        f"  /api/data requests per load: {dict(load['data_requests'])}, "
        f"failed or aborted: {dict(load['data_requests_failed'])}"
    )
    print(f"  (a) {load['tier_aligned_url'][-110:]}")
    print("  the median load's requests (start -> end, ms):")
    for name, start, end in load["median_run_timeline"]:
        print(f"    {start:8.1f} -> {end:8.1f}  {name}")
    print(
        f"\nStreaming: 16 channels x 10 Hz, {STREAM_RANGE} s window, "
        f"{live['wall_s']:.1f} s measured"
    )
    print(f"  {'main thread (per second of wall)':38s} {'streaming':>10s} {'idle':>10s}")
    for name in METRICS:
        print(f"  {name:38s} {live[name] * 100:9.2f}% {idle[name] * 100:9.2f}%")
    print(f"  {'WebSocket frames/s':38s} {live['frames_per_s']:10.1f} {idle['frames_per_s']:10.1f}")
    print(f"  {'feed updates/s':38s} {live['updates_per_s']:10.1f} {idle['updates_per_s']:10.1f}")
    print(f"  {'plot redraws/s':38s} {live['redraws_per_s']:10.1f} {idle['redraws_per_s']:10.1f}")
    print(f"  {'points drawn at the end':38s} {live['points']:10,d} {idle['points']:10,d}")
    print(f"  {'JS heap used, MB':38s} {live['heap_mb']:10.1f} {idle['heap_mb']:10.1f}")
    ratio = live["TaskDuration"] / idle["TaskDuration"] if idle["TaskDuration"] else math.inf
    print(f"  TaskDuration streaming / idle: {ratio:.1f}  (goal: streaming < 10%)")
    if live["profile"]:
        print(f"  self time while streaming ({r['stream']['profile_s']:g} s profile), ms/s:")
        for name, ms in live["profile"]:
            print(f"    {ms:6.1f}  {name}")
    if live["trace"]:
        shares = live["trace"]
        print(
            f"  main thread by trace events ({r['stream']['profile_s']:g} s traced, "
            f"{shares['RunTask_ms_per_s']:.0f} ms/s with tracing on), share of task time:"
        )
        for name, label in TRACED:
            print(f"    {shares[name] * 100:5.1f}%  {label} [{name}]")
    errors = load["page_errors"] + idle["page_errors"] + live["page_errors"]
    if errors:
        print(f"  page errors: {errors}")


def chromium_path() -> str:
    real = Path("/usr/lib/chromium/chromium")
    if real.is_file() and os.access(real, os.X_OK):
        return str(real)
    found = shutil.which("chromium")
    if found is None:
        raise SystemExit("chromium is not installed (Debian/Ubuntu: apt-get install chromium)")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--repeats", type=int, default=9, help="page loads (default 9)")
    parser.add_argument("--seconds", type=float, default=20.0, help="streaming measured (20)")
    parser.add_argument("--warmup", type=float, default=float(STREAM_RANGE), help="seconds (60)")
    parser.add_argument("--profile", type=float, default=5.0, help="seconds (5)")
    parser.add_argument("--dir", type=Path, default=HERE / ".data")
    parser.add_argument("--json", type=Path, default=RESULTS)
    parser.add_argument("--reuse", action="store_true", help="reuse an earlier run's database")
    parser.add_argument("--quick", action="store_true", help="1 day, 3 loads, 5 s: a check")
    args = parser.parse_args()
    if args.quick:
        args.days, args.repeats, args.seconds, args.warmup = 1.0, 3, 5.0, 5.0
        args.profile = min(args.profile, 2.0)
    repeats = max(1, min(args.repeats, 50))
    seconds = max(1.0, min(args.seconds, 600.0))
    warmup = max(0.0, min(args.warmup, 600.0))
    profile_s = max(0.0, min(args.profile, 60.0))

    from playwright.sync_api import sync_playwright

    args.dir.mkdir(parents=True, exist_ok=True)
    db = args.dir / f"querybench-{args.days:g}d.db"
    generate(db, args.days, args.reuse)
    from slowdash_stores.tiers import state

    with sqlite3.connect(db) as conn:
        built = state(conn, TABLE)
    if not args.reuse or not built or any(v is None for v in built.values()):
        print(f"  tiers built in {build_tiers(db):.0f} s", flush=True)
    project = load_project(args.dir / "dashboard-project", db, args.days * 86400)

    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "days": args.days,
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            results["chromium"] = browser.version
            port = free_port()
            server = start_server(project, port)
            try:
                results["load"] = measure_load(browser, f"http://127.0.0.1:{port}/", repeats)
            finally:
                stop(server)
            results["stream"] = measure_stream(
                browser, args.dir / "dashboard-stream-project", seconds, warmup, profile_s
            )
        finally:
            browser.close()
    report(results)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()

"""SIGTERM to ``python -m slowdash_trio serve``, as a service manager sends it: the server
stops by itself within a few seconds with status 0, and nothing that a store acknowledged is
lost.

The server runs as a subprocess on 127.0.0.1 (port 0; the URL is read from its log). The
writers in the project print a line, flushed, after each ``append`` has returned: those are
the acknowledged calls, counted against the database file after the server has exited.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import trio
import trio_websocket
from support import write
from trio_websocket import ConnectionClosed

T0 = 1_700_000_000.0
ACKED = 1000  # calls acknowledged by each writer before the signal
EXIT_WITHIN = 10.0  # seconds from SIGTERM to exit (the sync-code stop grace is 5 s)

# a task whose _loop appends one call (two channels) per call, as fast as the server calls it
BURST_TASK = """
import sys

from slowdash_stores import DataStore_SQLite

store = DataStore_SQLite("sqlite:///burst", "data", tiers=())
seq = 0


def _loop():
    global seq
    store.append({"a": float(seq), "b": float(seq)}, timestamp=T0 + seq * 0.001)
    sys.stdout.write(f"burst {seq}\\n")  # one write: the two writers' lines never mix
    sys.stdout.flush()
    seq += 1


def _finalize():
    store.close()
    sys.stdout.write("burst closed\\n")
    sys.stdout.flush()
""".replace("T0", repr(T0))

# a module whose _run appends in a tight loop until its stop is requested
STEADY_MODULE = """
import sys

from slowdash_controls import ControlSystem
from slowdash_stores import DataStore_SQLite

store = DataStore_SQLite("sqlite:///steady", "data")


def _run():
    seq = 0
    while not ControlSystem.is_stop_requested():
        store.append({"a": float(seq), "b": float(seq)}, timestamp=T0 + seq * 0.001)
        sys.stdout.write(f"steady {seq}\\n")
        sys.stdout.flush()
        seq += 1


def _finalize():
    store.close()
    sys.stdout.write("steady closed\\n")
    sys.stdout.flush()
""".replace("T0", repr(T0))


class ServerProcess:
    """``python -m slowdash_trio serve`` on a project; its output read as it comes."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.log = b""
        self.url = ""
        self.lines: list[str] = []
        self.acked: Counter[str] = Counter()  # writer -> calls acknowledged
        self.last: dict[str, int] = {}
        self.served = trio.Event()
        self._waiters: list[tuple[Callable[[], bool], trio.Event]] = []
        self.process: trio.Process | None = None
        self.terminating = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        command = [sys.executable, "-m", "slowdash_trio", "serve", "--port", "0"]
        command += ["--project-dir", str(self.project), "--logging", "info"]
        process = await trio.lowlevel.open_process(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.process = process
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_stdout)
                nursery.start_soon(self._read_stderr)
                task_status.started()
                await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                with trio.CancelScope(shield=True):
                    await process.wait()

    async def _read_stdout(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        pending = b""
        async for chunk in self.process.stdout:
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                self._line(line.decode())

    def _line(self, line: str) -> None:
        self.lines.append(line)
        name, _, seq = line.partition(" ")
        if seq.isdigit():
            assert int(seq) == self.last.get(name, -1) + 1, f"{name}: {seq} out of order"
            self.last[name] = int(seq)
            self.acked[name] += 1
        for waiter in [w for w in self._waiters if w[0]()]:
            self._waiters.remove(waiter)
            waiter[1].set()

    async def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for chunk in self.process.stderr:
            self.log += chunk
            if b"Traceback" in self.log and not self.terminating:  # fail now, not at the bound
                raise AssertionError(self.log.decode(errors="replace"))
            if not self.served.is_set():
                match = re.search(rb"is served at (http://127\.0\.0\.1:\d+)", self.log)
                if match is not None:
                    self.url = match.group(1).decode()
                    self.served.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds, checked at each line the server prints."""
        if condition():
            return
        event = trio.Event()
        self._waiters.append((condition, event))
        await event.wait()

    async def acknowledged(self, name: str, count: int) -> None:
        await self.until(lambda: self.acked[name] >= count)

    async def terminate(self) -> tuple[int, float]:
        """SIGTERM; the exit status and the seconds it took to exit (bounded)."""
        assert self.process is not None
        sent = trio.current_time()
        self.terminating = True
        self.process.send_signal(signal.SIGTERM)
        with trio.fail_after(EXIT_WITHIN):
            returncode = await self.process.wait()
        return returncode, trio.current_time() - sent


def project(directory: Path, yaml: str, files: dict[str, str]) -> Path:
    write(directory / "SlowdashProject.yaml", yaml)
    for name, text in files.items():
        write(directory / name, text)
    return directory


def stored_calls(path: Path) -> list[int]:
    """The call numbers in a writer's database, each checked complete (both channels, its own
    value); the file must be a sound SQLite database."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = conn.execute("SELECT timestamp, channel, value FROM data").fetchall()
    per_call: Counter[int] = Counter()
    for t, channel, value in rows:
        call = round((t - T0) / 0.001)
        assert value == float(call) and channel in ("a", "b")
        per_call[call] += 1
    assert set(per_call.values()) <= {2}, "a call was stored in part, or twice"
    return sorted(per_call)


async def test_sigterm_during_a_write_burst(tmp_path: Path) -> None:
    project(
        tmp_path,
        """
        slowdash_project:
          name: Burst
          module:
            file: steady.py
          task:
            name: burst
            auto_load: true
        """,
        {"config/slowtask-burst.py": BURST_TASK, "steady.py": STEADY_MODULE},
    )
    server = ServerProcess(tmp_path)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            await server.acknowledged("burst", ACKED)
            await server.acknowledged("steady", ACKED)
            returncode, took = await server.terminate()
    log = server.log.decode(errors="replace")
    assert returncode == 0, log
    assert took < EXIT_WITHIN
    assert "SIGTERM: shutting down" in log and "Traceback" not in log, log
    # every call a writer acknowledged is on disk, and nothing else: a graceful stop lets the
    # call in progress finish (and be acknowledged); the stores were closed by _finalize
    for name in ("burst", "steady"):
        assert f"{name} closed" in server.lines
        assert stored_calls(tmp_path / f"{name}.db") == list(range(server.acked[name]))
        assert server.acked[name] >= ACKED


# a task streaming values to the WebSocket clients; a module whose _get_data never returns
STREAM_TASK = """
import trio
from slowdash_controls import ControlSystem

level = ControlSystem().value(0.0)


async def _loop():
    level.set(level.get() + 1)
    await level.deliver("stream.level")
    await trio.sleep(0.02)
"""

STUCK_MODULE = """
import threading

released = threading.Event()


def _get_channels():
    return [{"name": "stuck"}]


def _get_data(channel):
    if channel == "stuck":
        print("stuck entered", flush=True)
        released.wait(600)  # a device that never answers
    return None
"""


async def test_sigterm_with_clients_attached_and_requests_in_flight(tmp_path: Path) -> None:
    project(
        tmp_path,
        """
        slowdash_project:
          name: Busy
          module:
            file: stuck.py
            call_timeout: 60
          task:
            name: stream
            auto_load: true
        """,
        {"config/slowtask-stream.py": STREAM_TASK, "stuck.py": STUCK_MODULE},
    )
    server = ServerProcess(tmp_path)
    closes: list[int | None] = []
    answers: dict[str, str] = {}

    async def websocket(task_status: trio.TaskStatus[None]) -> None:
        host, port = server.url.removeprefix("http://").split(":")
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream, trio.open_nursery() as nursery:
            path = "/ws/attach/current_data"
            ws = await trio_websocket.wrap_client_stream(nursery, stream, host, path)
            while "stream.level" not in json.loads(await ws.get_message()):
                pass
            task_status.started()  # attached and streaming
            try:
                while True:
                    await ws.get_message()
            except ConnectionClosed as exc:
                closes.append(exc.reason.code if exc.reason is not None else None)
            nursery.cancel_scope.cancel()  # the TCP connection is closed on leaving

    async def long_poll(revision: int, task_status: trio.TaskStatus[None]) -> None:
        """The task list's long poll (answered when a task changes, else after 30 s), sent
        whole before ``started``; what came back, read to the end."""
        host, port = server.url.removeprefix("http://").split(":")
        stream = await trio.open_tcp_stream(host, int(port))
        async with stream:
            request = f"GET /api/control/task?since={revision} HTTP/1.1\r\nHost: {host}\r\n"
            await stream.send_all(f"{request}Connection: close\r\n\r\n".encode())
            task_status.started()
            reply = b""
            with contextlib.suppress(trio.BrokenResourceError):
                async for chunk in stream:
                    reply += chunk
        answers["long poll"] = reply.split(b"\r\n", 1)[0].decode() or "closed"

    async def stuck(client: httpx.AsyncClient) -> None:
        try:
            response = await client.get("/api/data/stuck")
        except httpx.TransportError as exc:  # the server went away without answering
            answers["stuck"] = type(exc).__name__
        else:
            answers["stuck"] = str(response.status_code)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            await server.served.wait()
            async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
                revision = (await client.get("/api/control/task")).json()["revision"]
                async with trio.open_nursery() as clients:
                    for _ in range(3):
                        await clients.start(websocket)
                    await clients.start(long_poll, revision)
                    clients.start_soon(stuck, client)
                    # the stuck request has reached the module (the long poll, sent whole
                    # before it on a connection of its own, is waiting by then)
                    await server.until(lambda: "stuck entered" in server.lines)
                    returncode, took = await server.terminate()
    log = server.log.decode(errors="replace")
    assert returncode == 0, log
    assert took < EXIT_WITHIN, log
    assert closes == [1001, 1001, 1001]  # "going away": each client was told
    # both requests ended (the long poll is not woken by the shutdown: it is dropped, unanswered,
    # when the web server's 3 s graceful timeout ends; the stuck call's thread is abandoned)
    assert answers.keys() == {"long poll", "stuck"}, answers

"""Test helpers: projects built in a temporary directory, servers on 127.0.0.1:0."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
import trio

from slowdash_trio._config import ProjectConfig
from slowdash_trio._project import Project
from slowdash_trio._server import Server

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
POSTGRES_DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


# ---------------------------------------------------------------------------------------------
# services (PostgreSQL, Redis) and ports


def service_missing(reason: str) -> NoReturn:
    """Skip a test whose service is absent; fail it when SLOWDASH_TRIO_REQUIRE_SERVICES=1."""
    if os.environ.get("SLOWDASH_TRIO_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (SLOWDASH_TRIO_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def reachable(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextlib.contextmanager
def redis_prefix(dbs: Sequence[int], letter: str = "t") -> Iterator[str]:
    """A key prefix of a test's own on the shared Redis at 127.0.0.1:6379 (skip/fail if it
    is absent); its keys and channel-registry entries in ``dbs`` are deleted afterwards
    (never FLUSHDB: other tests share the server)."""
    if not reachable(6379):
        service_missing("no Redis server at 127.0.0.1:6379")
    prefix = f"{letter}{uuid.uuid4().hex[:12]}."
    try:
        yield prefix
    finally:
        import redis

        from slowdash_stores import RedisLayout

        for db in dbs:
            with redis.Redis(host="127.0.0.1", port=6379, db=db, decode_responses=True) as r:
                keys = list(r.scan_iter(match=f"*{prefix}*", count=1000))
                if keys:
                    r.delete(*keys)
                for kind in RedisLayout.KINDS:
                    key = RedisLayout.channels_key(kind)
                    mine = [name for name in r.smembers(key) if prefix in name]
                    if mine:
                        r.srem(key, *mine)


@functools.cache
def _postgres_problem(url: str) -> str | None:
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install 'slowdash-trio[postgresql]')"
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL server at {url}: {exc}"
    return None


def postgres_url() -> str:
    """The test server (``SLOWDASH_TRIO_TEST_POSTGRES_URL``), or skip/fail as the rule says."""
    url = os.environ.get("SLOWDASH_TRIO_TEST_POSTGRES_URL", POSTGRES_DEFAULT_URL)
    problem = _postgres_problem(url)
    if problem is not None:
        service_missing(problem)
    return url


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


MakeProject = Callable[..., Project]


def build_project(
    directory: Path,
    modules: dict[str, str] | None = None,
    *,
    parameters: dict[str, Any] | None = None,
    entries: dict[str, dict[str, Any]] | None = None,
    system: dict[str, Any] | None = None,
    **config: Any,
) -> Project:
    """A Project built in code (not through YAML), so that parameters can carry live Python
    objects, such as an event list or a threading.Event, into user modules."""
    module_entries = []
    for name, source in (modules or {}).items():
        write(directory / f"{name}.py", source)
        entry = {"file": f"{name}.py", "parameters": dict(parameters or {})}
        entry.update((entries or {}).get(name, {}))
        module_entries.append(entry)
    validated = ProjectConfig.model_validate(
        {"module": module_entries, "system": system or {}, **config}
    )
    return Project(
        directory=directory,
        file=directory / "SlowdashProject.yaml",
        config=validated,
        name=config.get("name", "TestProject"),
        title=config.get("title", "Test Project"),
    )


@asynccontextmanager
async def serving(project: Project) -> AsyncIterator[tuple[Server, httpx.AsyncClient]]:
    """The project served on 127.0.0.1:0; yields the server and a client for it."""
    server = Server(project)
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(
            lambda task_status: server.serve(host="127.0.0.1", port=0, task_status=task_status)
        )
        async with httpx.AsyncClient(base_url=urls[0], timeout=30) as client:
            try:
                yield server, client
            finally:
                server.request_shutdown()


@asynccontextmanager
async def running(project: Project, *, run_routines: bool = True) -> AsyncIterator[Server]:
    """The project's data sources open and its modules running, without HTTP; requests go
    through ``server.handle``."""
    server = Server(project)
    async with trio.open_nursery() as outer:
        await outer.start(server._sources_run)
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: server.supervisor.run(
                    run_routines=run_routines, task_status=task_status
                )
            )
            try:
                yield server
            finally:
                server.supervisor.request_stop()
        outer.cancel_scope.cancel()


def interrupt_plain_script(
    script: Path, *, wait_for: str, env: dict[str, str] | None = None, timeout: float = 30
) -> tuple[int, str, str]:
    """Run ``script`` with python as a user would, wait for the line ``wait_for`` on its
    stdout, press Ctrl-C (SIGINT), and return ``(returncode, rest of stdout, stderr)``."""
    path = os.pathsep.join([str(ROOT / "controls"), str(ROOT / "stores"), str(ROOT)])
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {}), "PYTHONPATH": path},
        # a child of a non-interactive shell may inherit SIGINT ignored; restore the default
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler),
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        assert first == wait_for, (first, proc.stderr.read() if proc.stderr else "")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=timeout)
    finally:
        proc.kill()
    return proc.returncode, out, err


# a WebSocket upgrade as a plain HTTP request: a refused upgrade is read as an HTTP answer
# (trio-websocket keeps the socket of a refused handshake open)
UPGRADE_HEADERS = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


async def until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll a condition that the server's own tasks make true (states and counters that have
    no event to wait on), within ``timeout`` seconds."""
    with trio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 (polling, with a deadline)
            await trio.sleep(0.005)

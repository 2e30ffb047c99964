"""The command line, run as a user runs it: ``python -m slowdash_trio ...`` in a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import trio
from support import EXAMPLES, write

WORLDCLOCK = EXAMPLES / "worldclock"


def cli(
    *args: str, cwd: Path = WORLDCLOCK, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "slowdash_trio", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "SLOWDASH_PROJECT": ""},
        check=False,
    )


def test_worldclock_data_has_the_seeds_shape_with_corrections() -> None:
    before = time.time()
    done = cli("data/WorldClock", "--indent=4")
    after = time.time()
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('{\n    "WorldClock": {\n        "start": ')  # indented
    reply = json.loads(done.stdout)
    assert list(reply) == ["WorldClock"]
    entry = reply["WorldClock"]
    assert set(entry) == {"start", "length", "t", "x"}
    assert entry["length"] == 3600.0
    assert entry["t"] == pytest.approx(3600.0)  # relative to start...
    assert before <= entry["start"] + entry["t"] <= after  # ...so that start + t is now
    tree = entry["x"]["tree"]
    assert list(tree) == ["UnixWorldClock", "UTC", "Local", "-9h"]  # the keys the code writes
    assert before <= tree["UnixWorldClock"] <= after
    assert tree["UTC"].endswith("+00:00") and tree["-9h"].endswith("-09:00")


def test_worldclock_channels_config_and_ping() -> None:
    channels = cli("channels")
    assert channels.returncode == 0, channels.stderr
    assert json.loads(channels.stdout) == [{"name": "WorldClock", "type": "tree", "current": True}]
    config = json.loads(cli("config").stdout)
    assert config["project"]["name"] == "WorldClock" and config["project"]["is_command"] is True
    assert config["user_module"]["worldclock"]["state"] == "running"
    assert json.loads(cli("ping").stdout) == ["pong"]
    suffixed = json.loads(cli("data/WorldClock.worldclock?length=60").stdout)
    assert list(suffixed) == ["WorldClock.worldclock"]
    assert suffixed["WorldClock.worldclock"]["length"] == 60.0


def test_a_failing_query_exits_1_with_the_message_on_stderr() -> None:
    done = cli("data/NoSuchChannel")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "HTTP 404: unknown channel: NoSuchChannel" in done.stderr
    bad = cli("data/WorldClock?length=abc")
    assert bad.returncode == 1 and "'length'" in bad.stderr


def test_bad_project_or_arguments_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    write(bad / "SlowdashProject.yaml", "slowdash_project:\n  module:\n    file: x.txt\n")
    bad_project = cli("channels", cwd=bad)
    assert bad_project.returncode == 2
    assert f"{bad / 'SlowdashProject.yaml'}:3: slowdash_project.module.file: " in bad_project.stderr
    none = tmp_path / "none"
    none.mkdir()
    no_project = cli("channels", cwd=none)
    assert no_project.returncode == 2
    assert "no SlowdashProject.yaml in" in no_project.stderr
    assert cli("channels", "--port", "80").returncode == 2
    assert cli().returncode == 2
    assert cli("serve", "--port", "99999").returncode == 2


def test_query_mode_initializes_and_finalizes_but_does_not_loop(tmp_path: Path) -> None:
    write(
        tmp_path / "SlowdashProject.yaml",
        """
        slowdash_project:
          module:
            - file: probe.py
            - file: skipped.py
              enabled_for_commandline: false
        """,
    )
    write(
        tmp_path / "probe.py",
        """
        from pathlib import Path
        def _initialize(params):
            Path("initialized").touch()      # relative paths resolve in the project directory
        def _loop():
            Path("looped").touch()
        def _run():
            Path("ran").touch()
        def _finalize():
            Path("finalized").touch()
        def _get_channels():
            return [{"name": "probe"}]
        """,
    )
    write(tmp_path / "skipped.py", "raise SystemExit('must not be loaded')\n")
    done = cli("--project-dir", str(tmp_path), "channels", cwd=Path("/"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"name": "probe", "current": True}]
    assert (tmp_path / "initialized").exists() and (tmp_path / "finalized").exists()
    assert not (tmp_path / "looped").exists() and not (tmp_path / "ran").exists()


async def test_serve_answers_and_stops_on_sigterm() -> None:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "slowdash_trio", "serve", "--port", "0", "--logging", "info"],
        cwd=WORLDCLOCK,
        stderr=subprocess.PIPE,
    )
    log = b""
    try:
        with trio.fail_after(30):
            assert process.stderr is not None
            while (match := re.search(rb"is served at (http://127\.0\.0\.1:\d+)", log)) is None:
                chunk = await process.stderr.receive_some(4096)
                assert chunk, f"server ended early: {log.decode()}"
                log += chunk
            url = match.group(1).decode()
            async with httpx.AsyncClient(base_url=url) as client:
                assert (await client.get("/api/ping")).json() == ["pong"]
                data = (await client.get("/api/data/WorldClock")).json()
                assert "UnixWorldClock" in data["WorldClock"]["x"]["tree"]
            process.send_signal(signal.SIGTERM)
            async for chunk in process.stderr:
                log += chunk
            assert await process.wait() == 0
        assert b"SIGTERM: shutting down" in log and b"stopped" in log
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()

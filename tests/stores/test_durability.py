"""What ``append`` returned for is on disk after the writer is killed.

A writer process appends a 16-channel dict per call (one millisecond apart) and prints, flushed,
how many calls have returned. The test lets it run, kills it mid-stream with SIGTERM, SIGKILL
or SIGINT, and counts what is on disk against the last count printed: every acknowledged call
must be there, complete; at most one more call (committed, killed before it could print) may be
there too, and no call may be there in part.
"""

from __future__ import annotations

import contextlib
import csv
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from support import ROOT

T0 = 1_700_000_000.0
CHANNELS = 16

WRITER = textwrap.dedent(
    """
    import sys
    from slowdash_stores._csv import DataStore_CSV
    from slowdash_stores._sql import DataStore_SQLite

    kind, target, durable = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    if kind == "sqlite":
        store = DataStore_SQLite("sqlite:///" + target, "data", durable=durable)
    else:
        store = DataStore_CSV("csv:///" + target, "data", durable=durable, time_decimals=3)
    print("ready", flush=True)
    for i in range(2_000_000):
        store.append({f"ch{k:02d}": float(i) for k in range(16)}, timestamp=T0 + i * 0.001)
        print(i + 1, flush=True)
    """
).replace("T0", repr(T0))


def run_and_kill(tmp_path: Path, kind: str, durable: bool, sig: int, after: int) -> int:
    """Run the writer until ``after`` calls returned, send ``sig``; the last count printed."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    target = str(tmp_path / ("db" if kind == "sqlite" else "csv.d"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "stores"), str(ROOT)])}
    with (
        open(tmp_path / "stderr.txt", "w") as stderr,
        subprocess.Popen(
            [sys.executable, str(script), kind, target, "1" if durable else "0"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        ) as proc,
    ):
        assert proc.stdout is not None
        acked = 0
        for line in proc.stdout:
            if line.strip().isdigit():
                acked = int(line)
                if acked >= after:
                    break
        proc.send_signal(sig)
        for line in proc.stdout:  # what it printed before it died
            if line.strip().isdigit():
                acked = int(line)
        returncode = proc.wait(timeout=60)
    assert acked >= after, (tmp_path / "stderr.txt").read_text()
    assert returncode != 0  # it was killed, it did not finish
    return acked


def calls_in_sqlite(path: Path) -> list[int]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = conn.execute("SELECT timestamp, channel, value FROM data").fetchall()
    return calls_of(stored)


def calls_in_csv(path: Path) -> list[int]:
    text = path.read_text()
    assert text.endswith("\n")  # no torn last line
    rows = list(csv.reader(text.splitlines()))
    assert rows[0] == ["timestamp", "channel", "value"]
    return calls_of([(float(t), channel, float(value)) for t, channel, value in rows[1:]])


def calls_of(stored: list[tuple[float, str, float]]) -> list[int]:
    """The call numbers found, each checked to be complete (16 channels, its own values)."""
    per_call: Counter[int] = Counter()
    for t, channel, value in stored:
        call = round((t - T0) / 0.001)
        assert value == float(call) and channel.startswith("ch")
        per_call[call] += 1
    assert all(count == CHANNELS for count in per_call.values()), "a call was stored in part"
    return sorted(per_call)


@pytest.mark.parametrize(
    ("kind", "durable", "sig", "after"),
    [
        ("sqlite", False, signal.SIGTERM, 3000),
        ("sqlite", False, signal.SIGKILL, 3000),
        ("sqlite", False, signal.SIGINT, 3000),
        ("sqlite", True, signal.SIGKILL, 100),
        ("csv", False, signal.SIGTERM, 3000),
        ("csv", False, signal.SIGKILL, 3000),
        ("csv", True, signal.SIGKILL, 100),
    ],
    ids=[
        "sqlite-SIGTERM",
        "sqlite-SIGKILL",
        "sqlite-SIGINT",
        "sqlite-durable-SIGKILL",
        "csv-SIGTERM",
        "csv-SIGKILL",
        "csv-durable-SIGKILL",
    ],
)
def test_acknowledged_calls_survive_the_writer_being_killed(
    tmp_path: Path, kind: str, durable: bool, sig: int, after: int
) -> None:
    acked = run_and_kill(tmp_path, kind, durable, sig, after)
    if kind == "sqlite":
        calls = calls_in_sqlite(tmp_path / "db.db")
    else:
        calls = calls_in_csv(tmp_path / "csv.d" / "data.csv")
    assert calls == list(range(len(calls)))  # no gaps
    assert acked <= len(calls) <= acked + 1
    if kind == "sqlite" and sig == signal.SIGINT:
        # KeyboardInterrupt: the store was closed at exit, the WAL checkpointed and removed
        assert not (tmp_path / "db.db-wal").exists()

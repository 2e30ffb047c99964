"""Shell-command nodes: output, arguments, quoting, exit codes, deadlines, value nodes."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest
import trio

from slowdash_controls import (
    ControlException,
    ControlSystem,
    DeviceTimeout,
    NodeAccessError,
    WrongThreadError,
)
from slowdash_controls._shell import ShellCommandError, ShellNode

PYTHON = shlex.quote(sys.executable)

# A device stand-in: without an argument it prints the stored value, with one it stores it
# and appends it to a log, so a test sees every value that was written, in order.
DEVICE = """\
import sys, pathlib
store = pathlib.Path(sys.argv[1])
if len(sys.argv) > 2:
    store.write_text(sys.argv[2])
    with open(str(store) + ".log", "a") as log:
        log.write(sys.argv[2] + "\\n")
else:
    print(store.read_text())
"""


@pytest.fixture
def device(tmp_path: Path) -> tuple[ShellNode, Path]:
    script = tmp_path / "device.py"
    script.write_text(DEVICE)
    store = tmp_path / "value"
    store.write_text("0")
    return ShellNode(f"{PYTHON} {shlex.quote(str(script))} {shlex.quote(str(store))}"), store


def log_of(store: Path) -> list[str]:
    return Path(str(store) + ".log").read_text().split()


async def test_get_returns_stripped_decoded_output() -> None:
    assert await ShellNode("echo '  hello  '").aio_get() == "hello"
    assert await ShellNode("printf ' x \\n'", strip=False).aio_get() == " x \n"
    assert await ShellNode("printf ' x \\n'", decode=False).aio_get() == b"x"
    raw = await ShellNode("printf ' x \\n'", decode=False, strip=False).aio_get()
    assert raw == b" x \n"


async def test_undecodable_output_is_replaced_not_an_error() -> None:
    assert await ShellNode("printf 'a\\377b'").aio_get() == "a\ufffdb"


async def test_arg_appends_arguments_and_its_get_returns_the_output() -> None:
    base = ShellNode("echo", "one")
    node = base.arg("two").arg(3)  # the original returned '' here
    assert await node.aio_get() == "one two 3"
    assert await base.aio_get() == "one"  # the parent is unchanged


def _injected(*directories: Path) -> list[Path]:
    return [path for directory in directories for path in directory.glob("pwned*")]


async def test_set_appends_the_value_quoted_so_nothing_is_injected(
    device: tuple[ShellNode, Path], tmp_path: Path
) -> None:
    node, store = device
    hostile = "x; touch pwned1 $(touch pwned2) `touch pwned3` 'q\"' *"
    await node.aio_set(hostile)
    assert store.read_text() == hostile
    assert await node.aio_get() == hostile
    assert not _injected(tmp_path, Path.cwd())


async def test_shell_false_passes_each_argument_as_one_argv_item(tmp_path: Path) -> None:
    node = ShellNode(
        sys.executable, "-c", "import sys; print(sys.argv[1:])", shell=False, cwd=tmp_path
    )
    assert await node.arg("a b", "$HOME", ";ls").aio_get() == "['a b', '$HOME', ';ls']"
    assert node.command_line("v") == [sys.executable, "-c", "import sys; print(sys.argv[1:])", "v"]


async def test_keyword_arguments_reach_the_process(tmp_path: Path) -> None:
    assert await ShellNode("pwd", cwd=tmp_path).aio_get() == str(tmp_path)
    env = {**os.environ, "SLOWDASH_TEST_VALUE": "42"}
    assert await ShellNode("echo $SLOWDASH_TEST_VALUE", env=env).aio_get() == "42"


async def test_the_process_reads_an_empty_stdin_instead_of_hanging() -> None:
    with trio.fail_after(20):
        assert await ShellNode("cat").aio_get() == ""


async def test_non_zero_exit_raises_with_status_and_stderr() -> None:
    with pytest.raises(ShellCommandError) as info:
        await ShellNode("echo partial; echo 'it broke' >&2; exit 3").aio_get()
    assert isinstance(info.value, ControlException)
    assert info.value.returncode == 3
    assert info.value.stderr == "it broke"
    assert "exited with status 3: it broke" in str(info.value)

    with pytest.raises(ShellCommandError) as failed_set:
        await ShellNode("exit 5;").aio_set(1)
    assert failed_set.value.returncode == 5


async def test_long_stderr_is_cut_to_its_end() -> None:
    with pytest.raises(ShellCommandError) as info:
        await ShellNode(
            f"{PYTHON} -c \"import sys; sys.stderr.write('x' * 5000 + 'END'); sys.exit(1)\""
        ).aio_get()
    assert info.value.stderr.endswith("END")
    assert len(info.value.stderr) <= 500


async def test_missing_command_is_a_clear_error_with_and_without_a_shell() -> None:
    with pytest.raises(ShellCommandError) as shell:
        await ShellNode("slowdash-no-such-command-xyz").aio_get()
    assert shell.value.returncode == 127
    assert "not found" in shell.value.stderr

    with pytest.raises(ShellCommandError) as direct:
        await ShellNode("slowdash-no-such-command-xyz", shell=False).aio_get()
    assert direct.value.returncode is None
    assert "FileNotFoundError" in str(direct.value)


async def wait_for_exit(pid: int) -> None:
    """Return when process ``pid`` (not necessarily our child) has terminated."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return  # already gone
    try:
        await trio.lowlevel.wait_readable(pidfd)  # readable once the process has terminated
    finally:
        os.close(pidfd)


async def test_timeout_kills_the_command_and_what_it_started(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    started = tmp_path / "started"
    # the shell starts a background grandchild and waits: both must go at the deadline
    node = ShellNode(f"sleep 60 & echo $$ $! > {pids}; touch {started}; wait", timeout=1.0)
    with trio.fail_after(30), pytest.raises(DeviceTimeout) as info:
        await node.aio_get()
    assert info.value.timeout == 1.0
    assert "sleep 60" in str(info.value)
    assert started.exists()  # the deadline hit a running command, not a slow start
    shell_pid, child_pid = (int(p) for p in pids.read_text().split())
    with trio.fail_after(10):
        await wait_for_exit(shell_pid)
        await wait_for_exit(child_pid)


async def test_value_node_setpoint_checks_limits_before_running(
    device: tuple[ShellNode, Path],
) -> None:
    node, store = device
    value = node.value()
    assert float(await value.aio_get()) == 0.0
    setpoint = value.setpoint(limits=(0, 10))
    await setpoint.aio_set(5)
    assert store.read_text() == "5.0"
    assert await setpoint.aio_get() == 5.0
    with pytest.raises(NodeAccessError, match="above the limit"):
        await setpoint.aio_set(11)
    with pytest.raises(NodeAccessError, match="numeric value is expected"):
        await setpoint.aio_set("eleven")
    assert log_of(store) == ["5.0"]  # refused values never reached the command


async def test_value_node_ramps_through_the_command(device: tuple[ShellNode, Path]) -> None:
    node, store = device
    ramp = node.value().ramping(10, tick=0.01)  # 0.1 per step
    with trio.fail_after(30):
        assert await ramp.aio_set(0.3) is True
    assert [round(float(v), 6) for v in log_of(store)] == [0.1, 0.2, 0.3]


async def test_sync_facade_from_a_worker_thread(device: tuple[ShellNode, Path]) -> None:
    node, _ = device
    await trio.to_thread.run_sync(node.set, 2.5)
    assert await trio.to_thread.run_sync(node.get) == "2.5"
    assert await trio.to_thread.run_sync(float, node.value()) == 2.5
    with pytest.raises(WrongThreadError, match="aio_get"):
        node.get()  # on the Trio thread: refused, never blocks the loop


def test_sync_facade_in_a_plain_script(device: tuple[ShellNode, Path]) -> None:
    node, _ = device
    node.set("7")
    assert node.get() == "7"
    assert int(node) == 7


def test_constructor_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="command"):
        ShellNode("")
    with pytest.raises(ValueError, match="timeout"):
        ShellNode("true", timeout=0)
    with pytest.raises(TypeError, match="stdout"):
        ShellNode("true", stdout=None)


def test_control_system_shell_builds_a_shell_node() -> None:
    node = ControlSystem().shell("echo", "a", timeout=3)
    assert isinstance(node, ShellNode)
    assert node.timeout == 3.0
    assert node.get() == "a"

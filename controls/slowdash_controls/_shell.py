"""Shell-command nodes (``ctrl.shell(cmd)``): run a program, read its output.

::

    adc0 = ctrl.shell("read_adc", "--timeout=0").arg("--ch=0")
    adc0.get()                       # runs `read_adc --timeout=0 --ch=0`, returns its output
    dac = ctrl.shell("write_dac --ch=1")
    dac.set(1.5)                     # runs `write_dac --ch=1 1.5`
    dac.value().ramping(0.1).set(3)  # value(): setpoint()/ramping() over the command

- ``get()`` runs ``cmd args...`` and returns its standard output, decoded as UTF-8 (undecodable
  bytes replaced) and stripped of surrounding white space; ``decode=False`` gives bytes,
  ``strip=False`` keeps the white space.
- ``set(v)`` runs ``cmd args... v``; its standard output is not captured (it goes where this
  process's output goes) and ``set()`` returns None.
- With ``shell=True`` (the default, as in SlowPy) the command line is ``cmd args...`` as shell
  text, so ``cmd`` may hold arguments, pipes and quotes of its own; the *value* given to
  ``set()`` is always quoted (``shlex.quote``), so a value can never inject shell syntax.
  With ``shell=False`` nothing goes through a shell: ``cmd`` is the program and every argument
  is passed as one argv item, as given.
- Every run has a deadline (``timeout``, seconds); when it passes, the process (and, with the
  default ``start_new_session=True``, everything it started) is terminated, then killed, and
  :class:`DeviceTimeout` is raised. A non-zero exit status, or a program that cannot be started,
  raises :class:`ShellCommandError` with the status and the end of its standard error.
- The process reads an empty standard input, so a program that asks a question fails rather
  than hanging. Other keyword arguments go to :func:`trio.run_process` (``cwd``, ``env``...).
"""

from __future__ import annotations

import os
import shlex
import signal
from typing import Any

import trio

from ._errors import DeviceTimeout, ShellCommandError
from ._node import ControlNode, ControlValueNode

__all__ = ["ShellCommandError", "ShellNode", "ShellValueNode"]

#: how much of standard error goes into an error message
STDERR_EXCERPT = 500

#: after the deadline: SIGTERM, then SIGKILL if the process is still there after this long
KILL_GRACE = 2.0

_RESERVED = (
    "stdin",
    "stdout",
    "stderr",
    "capture_stdout",
    "capture_stderr",
    "check",
    "shell",
    "deliver_cancel",
)


def _excerpt(stderr: bytes) -> str:
    text = stderr.decode("utf-8", errors="replace").strip()
    if len(text) > STDERR_EXCERPT:
        text = "..." + text[-(STDERR_EXCERPT - 3) :]
    return text


async def _terminate_group(process: trio.Process) -> None:
    """Cancel delivery: SIGTERM to the process group, SIGKILL after ``KILL_GRACE``."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with trio.move_on_after(KILL_GRACE):
        await process.wait()
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


async def _terminate(process: trio.Process) -> None:
    process.terminate()
    with trio.move_on_after(KILL_GRACE):
        await process.wait()
        return
    process.kill()


class ShellNode(ControlNode):
    """A command: ``get()`` runs it and returns its output; ``set(v)`` runs it with ``v``
    appended. See the module docstring for quoting, deadlines and errors."""

    def __init__(
        self,
        cmd: str,
        *args: Any,
        decode: bool = True,
        strip: bool = True,
        shell: bool = True,
        timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        if not isinstance(cmd, str) or not cmd.strip():
            raise ValueError(f"shell(): a command is needed, got {cmd!r}")
        if not timeout > 0:
            raise ValueError(f"shell(): timeout must be positive, got {timeout!r}")
        reserved = sorted(set(kwargs) & set(_RESERVED))
        if reserved:
            raise TypeError(f"shell(): {', '.join(reserved)} cannot be given here")
        self.cmd = cmd
        self.args = tuple(str(a) for a in args)
        self.decode = decode
        self.strip = strip
        self.shell = shell
        self.timeout = float(timeout)
        self.process_kwargs = kwargs
        self.process_kwargs.setdefault("start_new_session", True)

    # ---- running ----------------------------------------------------------------------------
    def command_line(self, *extra: Any) -> str | list[str]:
        """What runs: a shell command line (``shell=True``) or an argv list."""
        if self.shell:
            return " ".join([self.cmd, *self.args, *(shlex.quote(str(x)) for x in extra)])
        return [self.cmd, *self.args, *(str(x) for x in extra)]

    async def run(self, *extra: Any, capture: bool = True) -> bytes:
        """Run the command with ``extra`` arguments; its standard output if ``capture``."""
        command = self.command_line(*extra)
        shown = command if isinstance(command, str) else shlex.join(command)
        deliver = _terminate_group if self.process_kwargs.get("start_new_session") else _terminate
        try:
            with trio.fail_after(self.timeout):
                done = await trio.run_process(
                    command,
                    shell=self.shell,
                    stdin=b"",
                    capture_stdout=capture,
                    capture_stderr=True,
                    check=False,
                    deliver_cancel=deliver,
                    **self.process_kwargs,
                )
        except trio.TooSlowError as exc:
            raise DeviceTimeout(
                "the command did not finish", timeout=self.timeout, command=shown
            ) from exc
        except OSError as exc:  # no such program, not executable, bad cwd...
            raise ShellCommandError(shown, None, f"{type(exc).__name__}: {exc}") from exc
        if done.returncode != 0:
            raise ShellCommandError(shown, done.returncode, _excerpt(done.stderr))
        return done.stdout if capture else b""

    def _output(self, stdout: bytes) -> str | bytes:
        if self.decode:
            text = stdout.decode("utf-8", errors="replace")
            return text.strip() if self.strip else text
        return stdout.strip() if self.strip else stdout

    # ---- the node -----------------------------------------------------------------------------
    async def aio_get(self) -> str | bytes:
        return self._output(await self.run())

    async def aio_set(self, value: Any) -> None:
        await self.run(value, capture=False)

    def arg(self, *args: Any) -> ShellNode:
        """The same command with ``args`` appended (``get()`` returns its output)."""
        return ShellNode(
            self.cmd,
            *self.args,
            *args,
            decode=self.decode,
            strip=self.strip,
            shell=self.shell,
            timeout=self.timeout,
            **self.process_kwargs,
        )

    def value(self) -> ShellValueNode:
        """This command as a value, with ``setpoint()`` and ``ramping()``."""
        return ShellValueNode(self)

    def _label(self) -> str:
        command = self.command_line()
        return f"shell({command if isinstance(command, str) else shlex.join(command)!r})"


class ShellValueNode(ControlValueNode):
    """``shell(...).value()``: ``get()``/``set()`` of the command, as a quantity."""

    def __init__(self, command: ShellNode) -> None:
        self.command = command

    async def aio_get(self) -> str | bytes:
        return await self.command.aio_get()

    async def aio_set(self, value: Any) -> None:
        await self.command.aio_set(value)

    def _label(self) -> str:
        return f"{self.command._label()}.value()"

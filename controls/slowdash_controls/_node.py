"""Control nodes: one async core, the seed's sync API on top.

A node's logic lives in its ``aio_`` methods (``aio_get``, ``aio_set``, ``aio_has_data``).
The sync methods (``get``, ``set``, ``node()``, ``float(node)``, ``print(node)``...) forward to
them: inline for operations that do no I/O (``_local_get`` / ``_local_set``), otherwise through
the portal (``_portal.run_sync``), which refuses to block the Trio thread.

A user subclass may instead override the sync ``get()`` / ``set()`` (as SlowPy scripts and
plugins do); its ``aio_`` twins then run that code in a worker thread, never on the Trio thread.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import math
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import trio

from . import _deliver, _plugins
from ._errors import NodeAccessError
from ._portal import on_trio_thread, run_inline, run_sync
from ._stop import StopScope, _current_scope, _owning_token, current_stop_scope

logger = logging.getLogger("slowdash_controls")

_MISSING: Any = object()


def _overrides(node: object, name: str) -> bool:
    return getattr(type(node), name) is not getattr(ControlNode, name)


def _condition_arity(condition: Callable[..., Any]) -> int:
    try:
        parameters = inspect.signature(condition).parameters.values()
    except (TypeError, ValueError):
        return 1
    positional = [
        p
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return 1 if positional else 0


class ControlNode:
    """Base of every control node: ``set()``/``get()`` and their ``aio_`` twins.

    Subclasses that talk to devices implement the async methods; the sync API comes for free.
    """

    #: operations that complete without I/O run inline on any thread, the Trio thread included
    _local_get: bool = False
    _local_set: bool = False

    # ---- the async core (override these) ------------------------------------------------
    async def aio_get(self) -> Any:
        """Read the node's value."""
        if _overrides(self, "get"):
            return await trio.to_thread.run_sync(self.get)
        raise NodeAccessError(f"{self._label()} cannot be read")

    async def aio_set(self, value: Any) -> Any:
        """Write ``value`` to the node."""
        if _overrides(self, "set"):
            return await trio.to_thread.run_sync(self.set, value)
        raise NodeAccessError(f"{self._label()} cannot be written")

    async def aio_has_data(self) -> bool:
        """True when a value is available for ``get()`` without waiting."""
        if _overrides(self, "has_data"):
            return bool(await trio.to_thread.run_sync(self.has_data))
        raise NodeAccessError(f"{self._label()} has no has_data(); give wait() a condition instead")

    # ---- the sync facade ----------------------------------------------------------------
    def get(self) -> Any:
        """Read the node's value (sync; see ``aio_get``)."""
        if not _overrides(self, "aio_get"):
            raise NodeAccessError(f"{self._label()} cannot be read")
        return self._sync(self.aio_get, local=self._local_get, aio_name="aio_get")

    def set(self, value: Any) -> Any:
        """Write ``value`` to the node (sync; see ``aio_set``)."""
        if not _overrides(self, "aio_set"):
            raise NodeAccessError(f"{self._label()} cannot be written")
        if self._local_set and isinstance(value, ControlNode):
            value = value.get()  # a node argument may need I/O to read: not inline
        return self._sync(self.aio_set, value, local=self._local_set, aio_name="aio_set")

    def has_data(self) -> bool:
        """True when a value is available for ``get()`` without waiting."""
        return bool(self._sync(self.aio_has_data, local=self._local_get, aio_name="aio_has_data"))

    def _sync(
        self,
        afn: Callable[..., Coroutine[Any, Any, Any]],
        *args: Any,
        local: bool,
        aio_name: str,
    ) -> Any:
        if local:
            return run_inline(afn(*args))
        return run_sync(
            afn,
            *args,
            what=lambda: f"{self._label()}.{aio_name.removeprefix('aio_')}()",
            aio_name=aio_name,
        )

    # ---- waiting and stopping -----------------------------------------------------------
    def is_stop_requested(self) -> bool:
        """True once a stop was requested for the task (or script) running this code."""
        return current_stop_scope().is_stop_requested()

    async def aio_sleep(self, duration_sec: float) -> bool:
        """Sleep; return False at once when a stop is requested, True otherwise."""
        scope = current_stop_scope()
        if scope.is_stop_requested():
            return False
        with trio.move_on_after(max(0.0, float(duration_sec))):
            await scope.wait()
            return False
        return True

    def sleep(self, duration_sec: float) -> bool:
        """Sleep; return False at once when a stop is requested, True otherwise."""
        return bool(self._sync(self.aio_sleep, duration_sec, local=False, aio_name="aio_sleep"))

    async def aio_wait(
        self,
        condition_lambda: Callable[..., Any] | None = None,
        polling_interval: float = 1.0,
        timeout: float = 0,
        *,
        poll_interval: float | None = None,
    ) -> bool | None:
        """Wait until ``condition_lambda(value)`` is true (or ``has_data()`` without one).

        Returns True when it is, None when ``timeout`` (seconds, if > 0) passes first, and False
        when a stop is requested. ``poll_interval`` is SlowPy's spelling of ``polling_interval``.
        """
        interval = float(poll_interval if poll_interval is not None else polling_interval)
        scope = current_stop_scope()
        deadline = trio.current_time() + timeout if timeout and timeout > 0 else math.inf
        arity = _condition_arity(condition_lambda) if condition_lambda is not None else 0
        while True:
            if scope.is_stop_requested():
                return False
            if condition_lambda is None:
                ready = await self.aio_has_data()
            elif arity:
                ready = condition_lambda(await self.aio_get())
            else:
                ready = condition_lambda()
            if ready:
                return True
            now = trio.current_time()
            if now >= deadline:
                return None
            with trio.move_on_at(min(now + interval, deadline)):
                await scope.wait()

    def wait(
        self,
        condition_lambda: Callable[..., Any] | None = None,
        polling_interval: float = 1.0,
        timeout: float = 0,
        *,
        poll_interval: float | None = None,
    ) -> bool | None:
        """Sync ``aio_wait``: True when the condition holds, None on timeout, False on stop."""
        result: bool | None = self._sync(
            functools.partial(self.aio_wait, poll_interval=poll_interval),
            condition_lambda,
            polling_interval,
            timeout,
            local=False,
            aio_name="aio_wait",
        )
        return result

    # ---- publishing ---------------------------------------------------------------------
    async def deliver(self, name: str | None = None) -> Any:
        """Read the value and publish it to receivers (browsers, inside the server).

        In a plain script nobody receives it and this only reads. Returns the value.
        """
        value = await self.aio_get()
        await _deliver.publish(self, value, name)
        return value

    # ---- control modules (on the class or on a node) --------------------------------------
    #: ``node.load_control_module(name, search_dirs=())``: add a module's branches (``_plugins``)
    load_control_module = _plugins.either(_plugins.load_control_module)
    import_control_module = _plugins.either(_plugins.load_control_module)
    add_node = _plugins.either(_plugins.add_node)

    # ---- sub-nodes ----------------------------------------------------------------------
    def readonly(self) -> ReadonlyNode:
        """A view of this node that can only be read."""
        return ReadonlyNode(self)

    def writeonly(self) -> WriteonlyNode:
        """A view of this node that can only be written."""
        return WriteonlyNode(self)

    # ---- Python protocol ----------------------------------------------------------------
    def __call__(self, value: Any = _MISSING) -> Any:
        """``node(v)`` sets (a node argument is read first); ``node()`` gets."""
        if value is _MISSING:
            return self.get()
        if isinstance(value, ControlNode):
            value = value.get()
        return self.set(value)

    def __float__(self) -> float:
        value = self.get()
        try:
            return float(value)
        except (TypeError, ValueError):
            return math.nan

    def __int__(self) -> int:
        value = self.get()
        try:
            return int(value)
        except (TypeError, ValueError):
            try:
                return int(float(value))
            except (TypeError, ValueError) as exc:
                raise NodeAccessError(f"{self._label()}: {value!r} is not a number") from exc

    def __str__(self) -> str:
        if not (_overrides(self, "aio_get") or _overrides(self, "get")):
            return repr(self)  # a branch point such as ControlSystem: nothing to read
        return str(self.get())

    def __format__(self, spec: str) -> str:
        return format(self.get(), spec)

    def __repr__(self) -> str:
        return f"<{self._label()}>"

    def _label(self) -> str:
        return type(self).__name__


class ReadonlyNode(ControlNode):
    """``node.readonly()``: reads pass through, writes are refused."""

    def __init__(self, parent: ControlNode) -> None:
        self.parent = parent
        self._local_get = parent._local_get

    async def aio_get(self) -> Any:
        return await self.parent.aio_get()

    async def aio_has_data(self) -> bool:
        return await self.parent.aio_has_data()

    async def aio_set(self, value: Any) -> Any:
        raise NodeAccessError(f"{self.parent._label()} is read-only here")

    def set(self, value: Any) -> Any:
        raise NodeAccessError(f"{self.parent._label()} is read-only here")

    def _label(self) -> str:
        return f"{self.parent._label()}.readonly()"


class WriteonlyNode(ControlNode):
    """``node.writeonly()``: writes pass through, reads are refused."""

    def __init__(self, parent: ControlNode) -> None:
        self.parent = parent
        self._local_set = parent._local_set

    async def aio_set(self, value: Any) -> Any:
        return await self.parent.aio_set(value)

    async def aio_get(self) -> Any:
        raise NodeAccessError(f"{self.parent._label()} is write-only here")

    def get(self) -> Any:
        raise NodeAccessError(f"{self.parent._label()} is write-only here")

    def _label(self) -> str:
        return f"{self.parent._label()}.writeonly()"


def _as_number(node: ControlNode, value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise NodeAccessError(f"{node._label()}: numeric value is expected, got {value!r}") from exc


class ControlValueNode(ControlNode):
    """A node holding a quantity: adds ``setpoint()`` and ``ramping()`` (SlowPy's
    ``ControlVariableNode``)."""

    _setpoint_node: SetpointNode | None = None
    _ramping_node: RampingNode | None = None

    def setpoint(self, limits: tuple[float | None, float | None] | None = None) -> SetpointNode:
        """The node holding this quantity's set-point, within ``limits`` (lower, upper)."""
        if self._setpoint_node is None:
            self._setpoint_node = SetpointNode(self, limits)
        elif limits is not None:
            self._setpoint_node.limits = _limits(limits)
        return self._setpoint_node

    def ramping(self, change_per_sec: float | None = None, *, tick: float = 1.0) -> RampingNode:
        """The node that ramps this quantity to a target at ``change_per_sec`` units/s."""
        if self._ramping_node is None:
            self._ramping_node = RampingNode(self, change_per_sec, tick=tick)
        else:
            if change_per_sec is not None:
                self._ramping_node.change_per_sec = change_per_sec
            self._ramping_node.tick = tick
        return self._ramping_node


ControlVariableNode = ControlValueNode


def _limits(
    limits: tuple[float | None, float | None] | list[float | None] | None,
) -> tuple[float | None, float | None]:
    if limits is None:
        return (None, None)
    low, high = limits
    return (None if low is None else float(low), None if high is None else float(high))


class SetpointNode(ControlValueNode):
    """``node.setpoint(limits)``: holds the last value written and forwards it to the parent.

    ``get()`` answers the held value without I/O; ``set(v)`` checks that ``v`` is numeric and
    within the limits before anything is written.
    """

    _local_get = True

    def __init__(
        self, parent: ControlNode, limits: tuple[float | None, float | None] | None = None
    ) -> None:
        self.parent = parent
        self.limits = _limits(limits)
        self.value: float | None = None
        self._local_set = parent._local_set

    def check(self, value: Any) -> float:
        """The value as a float, or NodeAccessError when it is not numeric or out of limits."""
        number = _as_number(self, value)
        low, high = self.limits
        if math.isnan(number) or (low is not None and number < low):
            raise NodeAccessError(f"{self._label()}: {number:g} is below the limit {low}")
        if high is not None and number > high:
            raise NodeAccessError(f"{self._label()}: {number:g} is above the limit {high}")
        return number

    async def aio_set(self, value: Any) -> Any:
        number = self.check(value)
        self.value = number
        return await self.parent.aio_set(number)

    async def aio_get(self) -> Any:
        return self.value

    async def aio_has_data(self) -> bool:
        return self.value is not None

    def current(self) -> ControlNode:
        """The node whose set-point this is."""
        return self.parent

    def _label(self) -> str:
        return f"{self.parent._label()}.setpoint()"


class RampingNode(ControlValueNode):
    """``node.ramping(change_per_sec)``: ``set(target)`` walks the set-point to the target.

    Every ``tick`` seconds (1 s by default) the parent's set-point moves by
    ``change_per_sec * tick`` towards the target, starting from the parent's present value, so a
    ramp of distance ``d`` takes ``ceil(d / (change_per_sec * tick)) * tick`` seconds. The call
    returns when the target is reached, when ``status().set(0)`` halts the ramp, or when a stop
    is requested. ``get()`` reads the parent, as the seed documents.
    """

    def __init__(
        self, parent: ControlValueNode, change_per_sec: float | None, *, tick: float = 1.0
    ) -> None:
        self.parent = parent
        self.change_per_sec = change_per_sec
        self.tick = tick
        self.target: float | None = None
        self._halt: StopScope | None = None
        self._status = RampingStatusNode(self)

    @property
    def is_ramping(self) -> bool:
        return self._halt is not None and not self._halt.is_stop_requested()

    def status(self) -> RampingStatusNode:
        """``get()``: True while a ramp runs; ``set(0)``: halt the running ramp."""
        return self._status

    def halt(self) -> None:
        """Stop the running ramp where it is (any thread)."""
        if self._halt is not None:
            self._halt.request_stop("ramping halted")

    async def aio_get(self) -> Any:
        return await self.parent.aio_get()

    async def aio_set(self, value: Any) -> Any:
        speed = self.change_per_sec
        if speed is None or speed <= 0:
            raise NodeAccessError(f"{self._label()}: a positive ramping speed is needed")
        if self.tick <= 0:
            raise NodeAccessError(f"{self._label()}: tick must be positive")
        setpoint = self.parent.setpoint()
        target = setpoint.check(value)
        present = _as_number(self, await self.parent.aio_get())
        self.halt()
        halt = StopScope("ramping", parent=current_stop_scope(), kind="thread")
        self._halt = halt
        self.target = target
        step = speed * self.tick
        try:
            while present != target:
                with trio.move_on_after(self.tick):
                    await halt.wait()
                    return False
                present = (
                    target
                    if abs(target - present) <= step
                    else (present + math.copysign(step, target - present))
                )
                await setpoint.aio_set(present)
            return True
        finally:
            if self._halt is halt:
                halt.request_stop("ramping finished")

    def _label(self) -> str:
        return f"{self.parent._label()}.ramping()"


class RampingStatusNode(ControlNode):
    """``ramping().status()``: True while ramping; ``set(0)`` (or any false value) halts."""

    _local_get = True
    _local_set = True

    def __init__(self, ramping: RampingNode) -> None:
        self.ramping = ramping

    async def aio_get(self) -> Any:
        return self.ramping.is_ramping

    async def aio_set(self, value: Any) -> Any:
        if not value:
            self.ramping.halt()
        return None

    def _label(self) -> str:
        return f"{self.ramping._label()}.status()"


class ValueNode(ControlValueNode):
    """A value held in memory (no device): answers sync calls anywhere, the Trio thread included.

    ``set()`` converts to the type of the first non-None value it held (keeping the raw value
    when conversion fails), as SlowPy does.
    """

    _local_get = True
    _local_set = True

    def __init__(self, initial_value: Any = None, *, name: str | None = None) -> None:
        self._value = initial_value
        self._type: type | None = type(initial_value) if initial_value is not None else None
        self.name = name

    async def aio_get(self) -> Any:
        return self._value

    async def aio_set(self, value: Any) -> Any:
        if isinstance(value, ControlNode):
            value = await value.aio_get()
        if self._type is None:
            if value is not None:
                self._type = type(value)
        elif value is not None and not isinstance(value, self._type):
            try:
                value = self._type(value)
            except (TypeError, ValueError):
                pass
        self._value = value
        return None

    async def aio_has_data(self) -> bool:
        return self._value is not None

    def _label(self) -> str:
        return f"ValueNode({self.name})" if self.name else "ValueNode"


class ControlThreadNode(ControlNode):
    """A node with its own thread: ``start()`` runs ``run()`` once, then ``loop()`` repeatedly.

    The thread runs in a stop scope nested in the caller's, so ``stop()`` ends this node's
    thread only, while a stop of the task or script ends it too. Inside the thread,
    ``self.sleep()`` and ``self.is_stop_requested()`` see both.
    """

    _thread: threading.Thread | None = None
    _scope: StopScope | None = None
    error: BaseException | None = None

    def start(self) -> None:
        """Start the thread (no-op while it runs)."""
        if self._thread is not None and self._thread.is_alive():
            return
        has_run = callable(getattr(self, "run", None))
        has_loop = callable(getattr(self, "loop", None))
        if not (has_run or has_loop):
            raise NodeAccessError(f"{self._label()} has neither run() nor loop() to start")
        scope = StopScope(f"{self._label()} thread", parent=current_stop_scope(), kind="thread")
        context = contextvars.copy_context()
        context.run(_current_scope.set, scope)
        token = _calling_loop_token()
        if token is not None:
            context.run(_owning_token.set, token)
        self._scope = scope
        self.error = None
        self._thread = threading.Thread(
            target=context.run,
            args=(self._thread_main, has_run, has_loop),
            name=f"slowdash-{self._label()}",
            daemon=True,
        )
        self._thread.start()

    def _thread_main(self, has_run: bool, has_loop: bool) -> None:
        scope = current_stop_scope()
        try:
            if has_run:
                self.run()  # type: ignore[attr-defined]
            while has_loop and not scope.is_stop_requested():
                self.loop()  # type: ignore[attr-defined]
        except Exception as exc:
            self.error = exc
            logger.exception("%s: the node's thread failed", self._label())

    def stop(self, timeout: float | None = 10.0) -> None:
        """Ask the thread to stop and wait for it (not on the Trio thread, which must not block)."""
        if self._scope is not None:
            self._scope.request_stop(f"{self._label()}.stop()")
        thread = self._thread
        if thread is None or thread is threading.current_thread() or on_trio_thread():
            return
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("%s: the thread did not stop within %s s", self._label(), timeout)

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def is_stop_requested(self) -> bool:
        if threading.current_thread() is self._thread and self._scope is not None:
            return self._scope.is_stop_requested()
        if self._scope is not None and self._scope.is_stop_requested():
            return True
        return current_stop_scope().is_stop_requested()


def _calling_loop_token() -> trio.lowlevel.TrioToken | None:
    """The loop the caller belongs to: its own (Trio thread), its host's (worker) or None."""
    if on_trio_thread():
        return trio.lowlevel.current_trio_token()
    try:
        return trio.from_thread.run_sync(trio.lowlevel.current_trio_token)
    except RuntimeError:
        return None

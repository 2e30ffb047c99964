"""Task functions called from forms: the command key, argument binding, and the runner.

A form posts ``{"V0": "3.5", "ramping": 1, "parallel test.set_V0()": true}``. The key that
contains ``(`` and ends with ``)`` names the call (the last such key if several do)::

    [await ][parallel |reentrant |async ]PREFIX FUNC SUFFIX(k1=v1, k2=v2)

The other fields, and the ``k=v`` pairs in the parentheses (which win), are bound to the
function's parameters by name and converted by their annotations (`convert`). Nothing is
called unless every parameter binds.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import time
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

import outcome
import trio

from ._usercode import SlowStep, guarded, is_async_callable

QUALIFIERS = {
    "await": "await",
    "parallel": "parallel",
    "reentrant": "parallel",
    "async": "parallel",
}


class CallError(Exception):
    """A call that cannot be made; ``status`` is the HTTP status of the answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Command:
    """A parsed command key."""

    key: str  # the form field as sent
    name: str  # PREFIX FUNC SUFFIX, without qualifiers and arguments
    args: dict[str, Any] = field(default_factory=dict)
    wait: bool = False  # "await": answer when the function returns
    parallel: bool = False  # may run beside other calls of the task


def find_command(doc: Mapping[str, Any]) -> str | None:
    """The command key of a control document (the last key like ``x.f()``), or None."""
    found = None
    for key in doc:
        if isinstance(key, str) and len(key) > 2 and "(" in key and key.endswith(")"):
            found = key
    return found


def parse_command(key: str) -> Command:
    """``await parallel test.set_V0(V0=3)`` -> Command; `CallError` naming the key if bad."""
    head, _, rest = key.partition("(")
    words = head.split()
    if not words:
        raise CallError(f"field {key!r}: no function name")
    flags: set[str] = set()
    for word in words[:-1]:
        flag = QUALIFIERS.get(word)
        if flag is None:
            raise CallError(
                f"field {key!r}: unknown qualifier {word!r} "
                "(use await, parallel, reentrant or async)"
            )
        flags.add(flag)
    args = parse_args(key, rest[:-1])
    return Command(key, words[-1], args, "await" in flags, "parallel" in flags)


def parse_args(key: str, text: str) -> dict[str, Any]:
    """``k1=v1, k2="a, b", k3=[1, 2]``: values as JSON where they parse, else as text."""
    args: dict[str, Any] = {}
    for item in _split_top(key, text):
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or not name.isidentifier():
            raise CallError(f"field {key!r}: bad argument {item.strip()!r} (expected name=value)")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            args[name] = value[1:-1]
            continue
        try:
            args[name] = json.loads(value)
        except ValueError:
            args[name] = value
    return args


def _split_top(key: str, text: str) -> list[str]:
    """Split at commas outside quotes and brackets."""
    items, depth, quote, start = [], 0, "", 0
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
            if depth < 0:
                raise CallError(f"field {key!r}: unbalanced brackets in the argument list")
        elif char == "," and depth == 0:
            items.append(text[start:index])
            start = index + 1
    if quote or depth:
        raise CallError(f"field {key!r}: unclosed quote or bracket in the argument list")
    items.append(text[start:])
    if len(items) == 1 and not items[0].strip():
        return []
    return items


# ---------------------------------------------------------------------------------------------
# conversion


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off", ""):
            return False
    raise ValueError(f"{value!r} is not a boolean (true/false, 1/0, yes/no, on/off)")


def _to_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a number")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not an integer")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{value!r} is not an integer")
    try:
        return int(value.strip() if isinstance(value, str) else value)
    except ValueError:
        raise ValueError(f"{value!r} is not an integer") from None


def _to_str(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


CONVERTERS: dict[Any, Callable[[Any], Any]] = {
    float: _to_float,
    int: _to_int,
    bool: _to_bool,
    str: _to_str,
    "float": _to_float,
    "int": _to_int,
    "bool": _to_bool,
    "str": _to_str,
}


def plain_type(annotation: Any) -> Any:
    """``float | None`` -> ``float``; other annotations unchanged."""
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    if isinstance(annotation, str):  # from `from __future__ import annotations`, unresolved
        text = annotation.replace(" ", "")
        if text.startswith("Optional[") and text.endswith("]"):
            text = text[len("Optional[") : -1]
        return text.removesuffix("|None").removeprefix("None|")
    return annotation


def convert(value: Any, annotation: Any) -> Any:
    """``value`` as ``annotation`` says (float, int, bool, str); anything else as given.

    Raises ValueError when it cannot be converted. ``bool`` takes "false", "0", "no", "off"
    and "" as False (unlike Python's ``bool("false")``).
    """
    if value is None:
        return None
    converter = CONVERTERS.get(plain_type(annotation))
    return value if converter is None else converter(value)


def convert_like(value: Any, current: Any) -> Any:
    """``value`` converted to the type of ``current`` (bool, int, float, str); else as given."""
    if current is None or value is None:
        return value
    for kind in (bool, int, float, str):
        if type(current) is kind:
            return convert(value, kind)
    return value


def bind(fn: Callable[..., Any], fields: Mapping[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Positional and keyword arguments for ``fn`` from ``fields``, converted by annotation.

    A missing or blank field falls back to the parameter's default (a ``bool`` parameter takes
    "" as False); `CallError` names the first field that cannot be bound.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError) as exc:
        raise CallError(f"cannot inspect the function: {exc}", 500) from None
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable names in annotations: use them as written
        hints = {}
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    var_kw = False
    for name, parameter in signature.parameters.items():
        if parameter.kind == parameter.VAR_KEYWORD:
            var_kw = True
            continue
        if parameter.kind == parameter.VAR_POSITIONAL:
            continue
        annotation = hints.get(name, parameter.annotation)
        kind = plain_type(annotation)
        value = fields.get(name, _ABSENT)
        blank = isinstance(value, str) and not value.strip() and kind not in (str, "str", bool)
        if value is _ABSENT or blank:
            if parameter.default is parameter.empty:
                raise CallError(f"missing parameter {name!r}")
            continue
        try:
            converted = convert(value, annotation)
        except (TypeError, ValueError) as exc:
            raise CallError(f"field {name!r}: {exc}") from None
        if parameter.kind == parameter.POSITIONAL_ONLY:
            args.append(converted)
        else:
            kwargs[name] = converted
    if var_kw:
        declared = set(signature.parameters)
        kwargs.update((k, v) for k, v in fields.items() if k not in declared)
    return args, kwargs


_ABSENT: Any = object()


# ---------------------------------------------------------------------------------------------
# running


class Busy(CallError):
    def __init__(self, running: str) -> None:
        super().__init__(f"busy: command already running: {running}", 409)


@dataclass
class _Running:
    label: str
    parallel: bool
    is_async: bool
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    done: trio.Event = field(default_factory=trio.Event)
    result: outcome.Outcome[Any] | None = None


class FunctionRunner:
    """Runs one task's functions: async ones in its nursery, sync ones in worker threads.

    One non-parallel call at a time (a second one gets `Busy`); parallel calls beside it.
    At `stop`, async calls are cancelled at once and sync ones get ``grace`` seconds to
    return before they are abandoned. Every call runs inside ``enter()`` (the task's stop
    scope and identity, which worker threads inherit).
    """

    def __init__(
        self,
        label: str,
        *,
        enter: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
        limiter: trio.CapacityLimiter | None = None,
        grace: float = 5.0,
        watchdog_threshold: float = 0.05,
        on_error: Callable[[str, BaseException], None] | None = None,
        on_change: Callable[[], None] | None = None,
        on_slow: Callable[[SlowStep], None] | None = None,
    ) -> None:
        self.label = label
        self.enter = enter
        self.limiter = limiter
        self.grace = grace
        self.watchdog_threshold = watchdog_threshold
        self.on_error = on_error
        self.on_change = on_change or (lambda: None)
        self.on_slow = on_slow or (lambda step: None)
        self.running: list[_Running] = []
        self.last_command: str | None = None
        self.last_command_time: float | None = None
        self._nursery: trio.Nursery | None = None
        self._stop = trio.Event()
        self._stopped = trio.Event()
        self._idle = trio.Event()
        self._idle.set()

    @property
    def accepting(self) -> bool:
        return self._nursery is not None and not self._stop.is_set()

    @property
    def busy_with(self) -> str | None:
        return next((r.label for r in self.running if not r.parallel), None)

    async def host(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The nursery calls run in; returns once stopped and every call has ended."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await self._stop.wait()
                for call in self.running:
                    if call.is_async:
                        call.scope.cancel()
                with trio.move_on_after(self.grace):
                    await self._idle.wait()
                nursery.cancel_scope.cancel()
        finally:
            self._nursery = None
            self._stopped.set()

    def stop(self) -> None:
        self._stop.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def call(
        self,
        label: str,
        fn: Callable[..., Any],
        args: list[Any],
        kwargs: dict[str, Any],
        *,
        parallel: bool = False,
        wait: bool = False,
    ) -> outcome.Outcome[Any] | None:
        """Start ``fn``; with ``wait``, return its outcome once it ends (else None at once)."""
        nursery = self._nursery
        if nursery is None or self._stop.is_set():
            raise CallError(f"{self.label} is not running", 409)
        if not parallel:
            busy = self.busy_with
            if busy is not None:
                raise Busy(busy)
        call = _Running(label, parallel, is_async_callable(fn))
        self.running.append(call)
        self._idle = trio.Event()
        self.last_command, self.last_command_time = label, time.time()
        self.on_change()
        nursery.start_soon(self._run, call, fn, args, kwargs, name=label)
        if not wait:
            return None
        await call.done.wait()
        return call.result

    async def _run(
        self, call: _Running, fn: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]
    ) -> None:
        try:
            with call.scope, self.enter():
                try:
                    if call.is_async:
                        value = await guarded(
                            fn(*args, **kwargs), call.label, self.watchdog_threshold, self.on_slow
                        )
                    else:
                        value = await trio.to_thread.run_sync(
                            lambda: fn(*args, **kwargs),
                            limiter=self.limiter,
                            abandon_on_cancel=True,
                        )
                except (Exception, SystemExit) as exc:
                    call.result = outcome.Error(exc)
                    if self.on_error is not None:
                        self.on_error(call.label, exc)
                else:
                    call.result = outcome.Value(value)
        finally:
            if call.result is None:  # cancelled at stop
                call.result = outcome.Error(
                    CallError(f"{self.label} stopped while {call.label} ran", 409)
                )
            self.running.remove(call)
            if not self.running:
                self._idle.set()
            call.done.set()
            self.on_change()

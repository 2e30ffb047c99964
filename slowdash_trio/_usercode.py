"""Calling user code: argument conventions, and the guard every user coroutine runs under.

The guard drives a user coroutine step by step on the Trio loop. It

- times each step; a step longer than the threshold held the event loop (nothing else ran)
  and is reported with the module and callback names (the watchdog);
- turns asyncio-only awaits (``await asyncio.sleep(1)``, common in files written for the
  original, which ran async code on asyncio) into `AsyncioInTrio` naming the Trio equivalent,
  instead of Trio's internal error.

Everything else passes through unchanged: what the coroutine yields goes to Trio, and what
Trio sends or throws (cancellation included) goes back into the coroutine.
"""

from __future__ import annotations

import asyncio
import importlib.machinery
import importlib.util
import inspect
import sys
import time
import types
from collections.abc import Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import AsyncioInTrio, ModuleError

USER_PACKAGE = "slowdash_user"


@dataclass(frozen=True)
class SlowStep:
    """One step of user async code that held the event loop too long."""

    callback: str
    seconds: float


def is_async_callable(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 -- callable objects with async __call__
    return call is not None and inspect.iscoroutinefunction(call)


def positional_arity(fn: Callable[..., Any]) -> int:
    """How many positional arguments ``fn`` accepts (a large number for ``*args``)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 0
    count = 0
    for parameter in parameters:
        if parameter.kind == parameter.VAR_POSITIONAL:
            return 1 << 16
        if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            count += 1
    return count


def leading_args(fn: Callable[..., Any], *candidates: Any) -> tuple[Any, ...]:
    """The first N ``candidates`` that ``fn`` takes: ``_setup(app)`` or ``_setup(app, params)``."""
    return candidates[: positional_arity(fn)]


_ASYNCIO_HINT = (
    "slowdash-trio runs async user code on Trio, not asyncio: use `await trio.sleep(s)` "
    "for `await asyncio.sleep(s)`, a trio nursery for asyncio.gather/create_task, and "
    "trio.to_thread.run_sync for blocking calls"
)


def _asyncio_error(callback: str, detail: str) -> AsyncioInTrio:
    return AsyncioInTrio(f"{callback}: awaited an asyncio-only object ({detail}). {_ASYNCIO_HINT}")


@types.coroutine
def guarded(
    coro: Coroutine[Any, Any, Any],
    callback: str,
    threshold: float,
    on_slow: Callable[[SlowStep], None],
) -> Generator[Any, Any, Any]:
    """``await guarded(user_fn(...), "_loop", 0.05, report)``: run a user coroutine, watched."""
    send: Any = None
    throw: BaseException | None = None
    try:
        while True:
            started = time.perf_counter()
            try:
                if throw is None:
                    yielded = coro.send(send)
                else:
                    yielded, throw = coro.throw(throw), None
            except StopIteration as stop:
                _check(started, callback, threshold, on_slow)
                return stop.value
            except RuntimeError as exc:
                if "no running event loop" in str(exc):
                    raise _asyncio_error(callback, str(exc)) from exc
                raise
            _check(started, callback, threshold, on_slow)
            if isinstance(yielded, asyncio.Future):
                # An asyncio future reached us: Trio would fail with an internal error.
                yielded.cancel()
                send, throw = None, _asyncio_error(callback, f"{type(yielded).__name__}")
                continue
            try:
                send = yield yielded
            except GeneratorExit:
                raise
            except BaseException as exc:  # delivered into the user coroutine, not swallowed
                throw = exc
    finally:
        coro.close()


def _check(
    started: float, callback: str, threshold: float, on_slow: Callable[[SlowStep], None]
) -> None:
    elapsed = time.perf_counter() - started
    if elapsed > threshold:
        on_slow(SlowStep(callback, elapsed))


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compiles the source at every import: a file edited within the same second, keeping its
    size, is not run from stale bytecode, and no ``__pycache__`` lands in the project."""

    def get_code(self, fullname: str) -> types.CodeType:
        path = self.get_filename(fullname)
        return compile(self.get_data(path), path, "exec", dont_inherit=True)


def import_user_file(
    name: str, file: Path, preset: Mapping[str, Any] | None = None
) -> types.ModuleType:
    """Import ``file`` as ``slowdash_user.<name>``: a private namespace, no ``sys.path`` change,
    always from source. ``preset`` names are placed in the module's namespace before its
    code runs.

    Registered in ``sys.modules`` (dataclasses and pickle look modules up there).
    """
    if USER_PACKAGE not in sys.modules:
        package = types.ModuleType(USER_PACKAGE, "User code loaded by slowdash-trio")
        package.__path__ = []
        sys.modules[USER_PACKAGE] = package
    qualname = f"{USER_PACKAGE}.{name}"
    loader = _SourceOnlyLoader(qualname, str(file))
    spec = importlib.util.spec_from_file_location(qualname, file, loader=loader)
    if spec is None:
        raise ModuleError(f"cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    if preset:
        vars(module).update(preset)
    sys.modules[qualname] = module
    try:
        loader.exec_module(module)
    except BaseException:
        sys.modules.pop(qualname, None)
        raise
    return module

"""The publishing hook behind ``await node.deliver()``.

``slowdash_controls`` only defines the hook; in a plain script it does nothing. The server
installs its own (the streaming hub) with :func:`set_deliver_hook`, so a value delivered by a
task reaches every open browser.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._node import ControlNode

#: ``await hook(node, value, name)``: ``node`` is the delivering node (None for a bare value),
#: ``name`` the channel name the caller gave, if any.
DeliverHook = Callable[["ControlNode | None", Any, "str | None"], Awaitable[None]]

_hook: DeliverHook | None = None

#: ``hook(obj, name) -> channel``: makes ``obj`` (a node, a data object, a dict, a dataclass)
#: a channel of the running task; returns the channel name it got.
ExportHook = Callable[[Any, "str | None"], str]

_export_hook: ExportHook | None = None
_unnamed = 0


def set_export_hook(hook: ExportHook | None) -> ExportHook | None:
    """Install ``hook`` for every later ``ControlSystem.export()``; returns the previous one."""
    global _export_hook
    previous, _export_hook = _export_hook, hook
    return previous


def export(obj: Any, name: str | None = None) -> str:
    """Make ``obj`` a channel (inside the server); in a plain script only names it."""
    global _unnamed
    hook = _export_hook
    if hook is not None:
        return hook(obj, name)
    if name is None:
        _unnamed += 1
        name = f"unnamed{_unnamed:02d}"
    return name


def set_deliver_hook(hook: DeliverHook | None) -> DeliverHook | None:
    """Install ``hook`` for every later ``deliver()``; returns the one it replaces."""
    global _hook
    previous, _hook = _hook, hook
    return previous


def get_deliver_hook() -> DeliverHook | None:
    """The hook in place, or None (a plain script)."""
    return _hook


@contextlib.contextmanager
def deliver_hook(hook: DeliverHook) -> Iterator[DeliverHook]:
    """Install ``hook`` for the enclosed block, then restore the previous one."""
    previous = set_deliver_hook(hook)
    try:
        yield hook
    finally:
        set_deliver_hook(previous)


async def publish(node: ControlNode | None, value: Any, name: str | None = None) -> None:
    """Hand ``value`` to the installed hook; nothing happens without one."""
    hook = _hook
    if hook is not None:
        await hook(node, value, name)

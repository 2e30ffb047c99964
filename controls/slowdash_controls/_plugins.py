"""Control modules: the registry of built-in ones and loading users' ``control_NAME.py``.

A control module adds branches to the node it is loaded onto (SlowPy's plugin mechanism): each
class in the file with a ``_node_creator_method()`` class method gives the loading node's class a
factory method. Built-in modules need no loading; asking for one checks its dependencies.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from ._errors import PluginError

logger = logging.getLogger("slowdash_controls")

#: extra directories searched for ``control_NAME.py`` (``ControlSystem.search_dirs``)
SEARCH_DIRS: list[Path] = []

#: built-in control modules: name -> (our module, third-party modules it needs, pip extra)
BUILTIN_MODULES: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "ethernet": ("slowdash_controls._ethernet", (), None),
    "serial": ("slowdash_controls._serial", ("serial",), None),
    "http": ("slowdash_controls._http", ("httpx",), None),
    "slowdash": ("slowdash_controls._http", ("httpx",), None),
    "shell": ("slowdash_controls._shell", (), None),
    "redis": ("slowdash_controls._redis", ("coredis",), "redis"),
    "mqtt": ("slowdash_controls._messaging", ("aiomqtt",), "messaging"),
    "nats": ("slowdash_controls._messaging", ("nats",), "messaging"),
    "amqp": ("slowdash_controls._messaging", ("aio_pika",), "messaging"),
    "rabbitmq": ("slowdash_controls._messaging", ("aio_pika",), "messaging"),
    "dummydevice": ("slowdash_controls._dummy", (), None),
}


class either:
    """A method callable on the class or on an instance; gets whichever it was called on."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        functools.update_wrapper(self, func)  # type: ignore[arg-type]

    def __get__(self, instance: object, owner: type) -> Callable[..., Any]:
        return functools.partial(self.func, owner if instance is None else instance)


def import_builtin(name: str) -> ModuleType:
    module_name, needs, extra = BUILTIN_MODULES[name.lower()]
    for dependency in needs:
        try:
            importlib.import_module(dependency)
        except ImportError as exc:
            hint = f"pip install 'slowdash-trio[{extra}]'" if extra else f"pip install {dependency}"
            raise PluginError(
                f"control module {name!r} needs the Python package {dependency!r}: {hint}"
            ) from exc
    return importlib.import_module(module_name)


def _find_plugin(name: str, search_dirs: Iterable[str | Path]) -> Path:
    looked: list[str] = []
    for directory in search_dirs:
        path = Path(directory) / f"control_{name}.py"
        looked.append(str(path))
        if path.is_file():
            return path
    raise PluginError(
        f"no control module {name!r}: it is not built in, and there is no "
        f"control_{name}.py in {', '.join(looked) or 'any search directory'}"
    )


def _load_plugin_file(name: str, path: Path) -> ModuleType:
    module_name = f"control_{name}"
    loaded = sys.modules.get(module_name)
    if loaded is not None and Path(getattr(loaded, "__file__", "")) == path:
        return loaded
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"cannot load control module {name!r} from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise PluginError(f"control module {name!r} ({path}) failed to load: {exc}") from exc
    return module


def add_node_to(target: type, node_class: type, name: str | None = None) -> None:
    """Give ``target`` (a node class) a branch method made by ``node_class``.

    ``node_class._node_creator_method()`` returns the factory ``def branch(parent, ...)``,
    whose name is the method name unless ``name`` is given. An existing method is kept.
    """
    make = getattr(node_class, "_node_creator_method", None)
    if make is None:
        raise PluginError(f"{node_class.__name__} has no _node_creator_method()")
    factory = make()
    method_name = name or factory.__name__
    if not hasattr(target, method_name):
        setattr(target, method_name, factory)


def load_control_module(
    node_or_class: object,
    name: str,
    search_dirs: Iterable[str | Path] = (),
) -> Any:
    """Load control module ``name`` onto a node (or node class); returns it for chaining.

    Built-in modules (``Ethernet``, ``Serial``, ``HTTP``, ``Slowdash``, ``Shell``, ``Redis``,
    ``MQTT``, ``NATS``, ``AMQP``, ``DummyDevice``) only need their dependencies checked. Other
    names load ``control_NAME.py`` from ``search_dirs``, then ``ControlSystem.search_dirs``,
    then the current directory; each class in it with ``_node_creator_method()`` adds a branch
    to the class of the node this was called on.
    """
    if name.lower() in BUILTIN_MODULES:
        import_builtin(name)
        return node_or_class
    dirs = [*search_dirs, *SEARCH_DIRS, Path.cwd()]
    module = _load_plugin_file(name, _find_plugin(name, dirs))
    target = node_or_class if isinstance(node_or_class, type) else type(node_or_class)
    found = False
    for value in vars(module).values():
        if isinstance(value, type) and hasattr(value, "_node_creator_method"):
            if value.__module__ != module.__name__:
                continue  # imported from elsewhere, not defined by this plugin
            add_node_to(target, value)
            found = True
    if not found:
        logger.warning("control module %s defines no node with _node_creator_method()", name)
    return node_or_class


def add_node(node_or_class: object, node_class: type, name: str | None = None) -> None:
    """``node.add_node(NodeClass, name=None)``: add one branch to the node's class."""
    target = node_or_class if isinstance(node_or_class, type) else type(node_or_class)
    add_node_to(target, node_class, name)

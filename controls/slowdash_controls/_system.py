"""``ControlSystem``: the root of the control tree, stop requests and control modules.

The built-in branches (``ethernet()``, ``serial()``, ``http()``, ``shell()``, ``redis()``,
``mqtt()``, ``nats()``, ``amqp()``, ``randomwalk_device()``, ``value()``) are real methods, so
editors and type checkers follow them; their modules are imported on first use, so a script that
never uses Redis never imports a Redis client. ``load_control_module(name)`` (SlowPy's
``import_control_module``) checks a built-in's dependencies, or loads a user's ``control_NAME.py``
from the search directories and adds the branches it defines to the node it was called on.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar

from . import _deliver, _portal
from ._errors import WrongThreadError
from ._node import ControlNode, ValueNode
from ._plugins import SEARCH_DIRS, import_builtin
from ._stop import current_stop_scope, owning_token

if TYPE_CHECKING:
    from ._dummy import RandomWalkDeviceNode
    from ._ethernet import EthernetNode
    from ._http import HttpNode
    from ._messaging import AmqpNode, MqttNode, NatsNode
    from ._redis import RedisNode
    from ._serial import SerialNode
    from ._shell import ShellNode

logger = logging.getLogger("slowdash_controls")


class ControlSystem(ControlNode):
    """The root node. ``ctrl = ControlSystem()``; ``ctrl.ethernet(host, port).scpi()...``.

    Stop requests are class-level calls, as in SlowPy, but aimed at the task that makes them
    (inside the server) or the process (in a plain script): see ``_stop``.
    """

    #: extra directories searched for ``control_NAME.py`` (the server adds the project's)
    search_dirs: ClassVar[list[Path]] = SEARCH_DIRS

    # ---- stop requests --------------------------------------------------------------------
    @classmethod
    def stop(cls, reason: str = "ControlSystem.stop()") -> None:
        """Ask the running task (or, in a plain script, the process) to stop."""
        current_stop_scope().task_scope().request_stop(reason)

    @classmethod
    def is_stop_requested(cls) -> bool:
        """True once a stop was requested for this task (or, in a plain script, the process)."""
        return current_stop_scope().is_stop_requested()

    @classmethod
    def stop_by_signal(cls, signal_number: int = signal.SIGINT) -> None:
        """In a plain script: turn the first ``signal_number`` into a stop request.

        A second one acts as usual (``KeyboardInterrupt`` for SIGINT), so a script that ignores
        stop requests can still be interrupted. Inside the server, signals belong to the server
        and this does nothing.
        """
        if owning_token() is not None or threading.current_thread() is not threading.main_thread():
            logger.debug("stop_by_signal(): signals are handled by the server here")
            return
        scope = current_stop_scope().task_scope()
        previous = signal.getsignal(signal_number)

        def handler(signum: int, frame: FrameType | None) -> None:
            signal.signal(signum, previous)
            scope.request_stop(f"signal {signal.Signals(signum).name}")

        signal.signal(signal_number, handler)

    @classmethod
    def export(cls, obj: Any, name: str | None = None) -> str:
        """Make ``obj`` a channel of the running task (its value answered in ``/api/data``,
        written back by the browser's ``sd-live`` inputs); returns the channel name. A plain
        script has no channels: the name is only returned. No I/O: callable anywhere."""
        return _deliver.export(obj, name)

    @classmethod
    async def aio_export(cls, obj: Any, name: str | None = None) -> str:
        """``export`` for async code (the original's name)."""
        return _deliver.export(obj, name)

    @classmethod
    async def aio_publish(cls, obj: Any, name: str | None = None) -> None:
        """Publish a value (or a node's value) to receivers under ``name``."""
        if isinstance(obj, ControlNode):
            await obj.deliver(name)
        else:
            await _deliver.publish(None, obj, name)

    @classmethod
    async def aio_stream(cls, name: str, value: Any) -> None:
        """Publish ``value`` (a node is read first) to browsers as channel ``name``; a plain
        script has no receivers and this does nothing."""
        await cls.aio_publish(value, name)

    @classmethod
    def stream(cls, name: str, value: Any) -> None:
        """``aio_stream`` for sync code (a task's thread). A plain script has no receivers:
        nothing is read or sent. On the Trio thread use ``await aio_stream(...)``."""
        if _deliver.get_deliver_hook() is None:
            return
        if _portal.on_trio_thread():
            raise WrongThreadError(
                "ControlSystem.stream() would block the Trio loop; in async code use "
                "`await ControlSystem.aio_stream(name, value)` instead"
            )
        _portal.run_sync(
            cls.aio_stream,
            name,
            value,
            what=lambda: "ControlSystem.stream()",
            aio_name="aio_stream",
        )

    # ---- built-in branches ----------------------------------------------------------------
    def ethernet(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        address: str | None = None,
        **kwargs: Any,
    ) -> EthernetNode:
        """A TCP connection to ``host:port`` (``address=`` is SlowPy's name for ``host``)."""
        from ._ethernet import EthernetNode

        target = host if host is not None else address
        if target is None or port is None:
            raise TypeError("ethernet() needs a host (or address) and a port")
        return EthernetNode(target, int(port), **kwargs)

    def serial(self, port: str = "/dev/ttyUSB0", baudrate: int = 9600, **kwargs: Any) -> SerialNode:
        """A serial port (9600 baud by default, as the seed documents)."""
        import_builtin("serial")
        from ._serial import SerialNode

        return SerialNode(port, baudrate, **kwargs)

    def http(self, base_url: str, auth: tuple[str, str] | None = None, **kwargs: Any) -> HttpNode:
        """An HTTP server at ``base_url``; ``.path(p)`` for resources."""
        import_builtin("http")
        from ._http import HttpNode

        return HttpNode(base_url, auth, **kwargs)

    def shell(self, cmd: str, *args: str, **kwargs: Any) -> ShellNode:
        """A shell command: ``get()`` runs it and returns its output."""
        from ._shell import ShellNode

        return ShellNode(cmd, *args, **kwargs)

    def redis(self, url: str = "redis://127.0.0.1:6379", **kwargs: Any) -> RedisNode:
        """A Redis server; ``.string(key)``, ``.hash(key)``, ``.json(key)``, ``.ts(key)``."""
        import_builtin("redis")
        from ._redis import RedisNode

        return RedisNode(url, **kwargs)

    def mqtt(self, host: str = "127.0.0.1", port: int = 1883, **kwargs: Any) -> MqttNode:
        """An MQTT broker; ``.topic(name)`` publishes with ``set`` and keeps the last message."""
        import_builtin("mqtt")
        from ._messaging import MqttNode

        return MqttNode(host, port, **kwargs)

    def nats(self, url: str = "nats://127.0.0.1:4222", **kwargs: Any) -> NatsNode:
        """A NATS server; ``.subject(name)`` publishes with ``set`` and keeps the last message."""
        import_builtin("nats")
        from ._messaging import NatsNode

        return NatsNode(url, **kwargs)

    def amqp(self, url: str = "amqp://guest:guest@127.0.0.1:5672/", **kwargs: Any) -> AmqpNode:
        """An AMQP broker (RabbitMQ); ``.queue(name)`` / ``.exchange(name, key)``."""
        import_builtin("amqp")
        from ._messaging import AmqpNode

        return AmqpNode(url, **kwargs)

    rabbitmq = amqp

    def randomwalk_device(
        self, walk: float = 1.0, decay: float = 0.1, n: int = 16, tick: float = 1.0
    ) -> RandomWalkDeviceNode:
        """A simulated device of ``n`` random-walk channels (``ch(i)``, ``walk()``, ``decay()``)."""
        from ._dummy import RandomWalkDeviceNode

        key = (float(walk), float(decay), int(n), float(tick))
        devices: dict[tuple[float, float, int, float], RandomWalkDeviceNode] = (
            self.__dict__.setdefault("_randomwalk_devices", {})
        )
        if key not in devices:
            devices[key] = RandomWalkDeviceNode(walk, decay, n, tick)
        return devices[key]

    def value(self, initial: Any = None) -> ValueNode:
        """A value held in memory (a ``ValueNode``)."""
        return ValueNode(initial)

    def _label(self) -> str:
        return "ControlSystem"

"""slowdash_controls: control nodes for slow-control scripts (SlowPy's ``slowpy.control``).

Usable in plain scripts and inside the slowdash-trio server; never imports the server.
Scripts written for SlowPy port by changing the import line::

    from slowdash_controls import ControlSystem
    ctrl = ControlSystem()
    V0 = ctrl.ethernet(host="127.0.0.1", port=17674).scpi().command("MEAS:V0")
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ._deliver import deliver_hook, get_deliver_hook, set_deliver_hook, set_export_hook
from ._dummy import (
    RandomChargeDevice,
    RandomHitDevice,
    RandomTimeDevice,
    RandomWalkDevice,
)
from ._errors import (
    ControlError,
    ControlException,
    DeviceConnectionError,
    DeviceTimeout,
    HttpStatusError,
    InstrumentError,
    LocalProtocolError,
    NodeAccessError,
    PluginError,
    ProtocolError,
    RedisCommandError,
    RemoteProtocolError,
    ShellCommandError,
    WrongThreadError,
)
from ._ethernet import (
    EthernetNode,
    ScpiCommandNode,
    ScpiNode,
    StreamNode,
    TelnetCommandNode,
    TelnetNode,
)
from ._link import Link, LinkState, LinkStatus
from ._node import (
    ControlNode,
    ControlThreadNode,
    ControlValueNode,
    ControlVariableNode,
    RampingNode,
    ReadonlyNode,
    SetpointNode,
    ValueNode,
    WriteonlyNode,
)
from ._scpi_server import ScpiAdapter, ScpiServer
from ._stop import PROCESS_SCOPE, StopScope, current_stop_scope, stop_scope
from ._system import ControlSystem

try:
    __version__ = version("slowdash-trio")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

control_system = ControlSystem()

# nodes whose modules import a third-party client load on first use, so that a script that
# never talks HTTP, Redis or a broker does not pay for (or need) those packages
_LAZY = {
    "HttpNode": "._http",
    "SlowdashNode": "._http",
    "SerialNode": "._serial",
    "ShellNode": "._shell",
    "RedisNode": "._redis",
    "MqttNode": "._messaging",
    "MqttTopicNode": "._messaging",
    "NatsNode": "._messaging",
    "NatsSubjectNode": "._messaging",
    "AmqpNode": "._messaging",
    "AmqpQueueNode": "._messaging",
    "AmqpExchangeNode": "._messaging",
    "Message": "._messaging",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'slowdash_controls' has no attribute {name!r}")
    return getattr(import_module(module, __name__), name)


__all__ = [
    "PROCESS_SCOPE",
    "ControlError",
    "ControlException",
    "ControlNode",
    "ControlSystem",
    "ControlThreadNode",
    "ControlValueNode",
    "ControlVariableNode",
    "DeviceConnectionError",
    "DeviceTimeout",
    "InstrumentError",
    "Link",
    "LinkState",
    "LinkStatus",
    "LocalProtocolError",
    "NodeAccessError",
    "PluginError",
    "ProtocolError",
    "RampingNode",
    "RandomChargeDevice",
    "RandomHitDevice",
    "RandomTimeDevice",
    "RandomWalkDevice",
    "ReadonlyNode",
    "RemoteProtocolError",
    "SetpointNode",
    "StopScope",
    "ValueNode",
    "WriteonlyNode",
    "WrongThreadError",
    "__version__",
    "control_system",
    "current_stop_scope",
    "deliver_hook",
    "get_deliver_hook",
    "set_deliver_hook",
    "set_export_hook",
    "stop_scope",
    "EthernetNode",
    "HttpStatusError",
    "RedisCommandError",
    "ScpiAdapter",
    "ScpiCommandNode",
    "ScpiNode",
    "ScpiServer",
    "ShellCommandError",
    "StreamNode",
    "TelnetCommandNode",
    "TelnetNode",
    *_LAZY,
]

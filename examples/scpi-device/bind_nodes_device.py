"""Control nodes mapped to SCPI commands with ``bind_nodes``, as in SlowPy's "Scpizing Your Device".

Commands: ``CONFIGure:WALK <value>`` / ``CONFIGure:WALK?``, ``CONFIGure:DECAY``, ``V0 <value>``,
``V1 <value>``, ``MEASure:V0?``, ``MEASure:V1?``; plus the common commands.

    python bind_nodes_device.py [--port 17674]
    printf 'V0 10\nMEAS:V0?\n' | nc -q1 127.0.0.1 17674
"""

import argparse
import logging

from slowdash_controls import ControlSystem, ScpiAdapter, ScpiServer

ControlSystem.import_control_module("DummyDevice")
device = ControlSystem().randomwalk_device()

adapter = ScpiAdapter(idn="RandomWalk")
adapter.bind_nodes(
    [
        ("CONFIGure:WALK", device.walk().setpoint(limits=(0, None))),
        ("CONFIGure:DECAY", device.decay().setpoint(limits=(0, 1))),
        ("V0", device.ch(0).setpoint()),
        ("V1", device.ch(1).setpoint()),
        ("MEASure:V0", device.ch(0).readonly()),
        ("MEASure:V1", device.ch(1).readonly()),
    ]
)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=17674)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    server = ScpiServer(adapter, port=args.port)  # listens on 127.0.0.1 only
    server.start()  # until Ctrl-C or SIGTERM

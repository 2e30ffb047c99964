"""A simulated oscilloscope: a sine-wave trace, delivered to the browsers 20 times a second.

Loaded as task ``scope``: ``_export()`` makes the channels ``scope.fx`` (the frequency) and
``scope.trace`` (the trace, a graph). The page's slider is bound to ``scope.fx`` with
``sd-live``: moving it sets ``fx`` here (converted to float, the type of its value), and the
next trace uses it.
"""

import math
import time

import trio

from slowdash_controls import ValueNode

fx = ValueNode(1.0)  # the frequency, Hz: written by the page's slider
trace = ValueNode({"x": [], "y": []})  # the trace, as a graph

POINTS = 200
SPAN = 2.0  # seconds of signal on the screen


def _export():
    return [("fx", fx), ("trace", trace)]


async def _loop():
    frequency = await fx.aio_get()
    phase = time.time()
    xs = [SPAN * i / POINTS for i in range(POINTS)]
    ys = [math.sin(2 * math.pi * frequency * (x + phase)) for x in xs]
    await trace.aio_set({"x": xs, "y": ys})
    await trace.deliver()  # published as scope.trace
    await fx.deliver()  # so every browser's slider follows the others
    await trio.sleep(0.05)

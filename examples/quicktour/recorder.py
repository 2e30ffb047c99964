"""The quick tour's recorder: reads a simulated 4-channel device every second and stores
the readings (table ``data``), a histogram of channel 0 and a graph of channel 1 against
channel 0 (table ``objects``, latest only).

The same code works with a real device: replace ``randomwalk_device`` by, for example,
``ctrl.ethernet("127.0.0.1", 5025).scpi()`` (docs/controls.md).
"""

from pathlib import Path

import trio

from slowdash_controls import ControlSystem
from slowdash_stores import DataStore_SQLite, Graph, Histogram, HistogramBasicStat

ctrl = ControlSystem()
device = None
store = None
objects = None
histogram = Histogram(40, -20, 20)
histogram.add_stat(HistogramBasicStat(["entries", "mean", "stdev"]))
graph = Graph(["ch0", "ch1"])


def _initialize(params):
    global device, store, objects
    here = Path(__file__).resolve().parent
    database = here / params.get("database", "QuickTourData.db")
    device = ctrl.randomwalk_device(n=int(params.get("channels", 4)))
    store = DataStore_SQLite(f"sqlite:///{database}", table="data")
    objects = store.another("objects")


async def _loop():
    values = await device.aio_get()  # one reading per channel
    readings = {f"ch{i}": value for i, value in enumerate(values)}
    await store.aio_append(readings)
    histogram.fill(readings["ch0"])
    graph.add_point(readings["ch0"], readings["ch1"])
    if len(graph.x) > 600:  # keep the last ten minutes of points
        del graph.x[0], graph.y[0]
    await objects.aio_update(histogram, tag="histogram_ch0")
    await objects.aio_update(graph, tag="graph_ch0_ch1")
    await trio.sleep(1)


def _finalize():
    for each in (objects, store):
        if each is not None:
            each.close()

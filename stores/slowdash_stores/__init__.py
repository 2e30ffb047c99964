"""slowdash_stores: data stores and data objects for recording (SlowPy's ``slowpy.store`` and
the data objects of ``slowpy``).

Usable in plain scripts and inside the slowdash-trio server; never imports the server, and
needs neither numpy nor matplotlib::

    from slowdash_stores import Histogram

    hist = Histogram(100, 0, 10)
    hist.fill(3.2)
"""

from importlib.metadata import PackageNotFoundError, version

from ._element import DataElement
from ._graph import Graph, GraphYStat
from ._histogram import (
    Histogram,
    Histogram2d,
    Histogram2dBasicStat,
    HistogramBasicStat,
    HistogramCountStat,
)
from ._table import Table, Tree
from ._timeseries import TimeSeries
from ._trend import RateTrend, Trend

try:
    __version__ = version("slowdash-trio")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = [
    "DataElement",
    "Graph",
    "GraphYStat",
    "Histogram",
    "Histogram2d",
    "Histogram2dBasicStat",
    "HistogramBasicStat",
    "HistogramCountStat",
    "RateTrend",
    "Table",
    "TimeSeries",
    "Tree",
    "Trend",
    "__version__",
]

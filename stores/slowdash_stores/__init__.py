"""slowdash_stores: data stores and data objects for recording (SlowPy's ``slowpy.store`` and
the data objects of ``slowpy``).

Usable in plain scripts and inside the slowdash-trio server; never imports the server, and
needs neither numpy nor matplotlib::

    from slowdash_stores import Histogram

    hist = Histogram(100, 0, 10)
    hist.fill(3.2)
"""

from importlib.metadata import PackageNotFoundError, version

from ._csv import DataStore_CSV, DataStore_TextDump
from ._element import DataElement
from ._errors import (
    DuplicateRowError,
    InvalidDataError,
    InvalidNameError,
    InvalidURLError,
    StoreClosedError,
    StoreConnectionError,
    StoreError,
    StoreTimeout,
    StoreWriteError,
    WrongThreadError,
)
from ._factory import create_datastore_from_url
from ._graph import Graph, GraphYStat
from ._histogram import (
    Histogram,
    Histogram2d,
    Histogram2dBasicStat,
    HistogramBasicStat,
    HistogramCountStat,
)
from ._postgresql import DataStore_PostgreSQL
from ._redis import DataStore_Redis
from ._redis_layout import RedisLayout
from ._sql import (
    DataStore_SQLite,
    LongTableFormat,
    LongTableFormat_DateTime_PostgreSQL,
    TableFormat,
)
from ._store import DataStore, DataStore_Null
from ._table import Table, Tree
from ._timeseries import TimeSeries
from ._trend import RateTrend, Trend

try:
    __version__ = version("slowdash-trio")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = [
    "DataElement",
    "DataStore",
    "DataStore_CSV",
    "DataStore_Null",
    "DataStore_PostgreSQL",
    "DataStore_Redis",
    "DataStore_SQLite",
    "DataStore_TextDump",
    "DuplicateRowError",
    "Graph",
    "GraphYStat",
    "Histogram",
    "Histogram2d",
    "Histogram2dBasicStat",
    "HistogramBasicStat",
    "HistogramCountStat",
    "InvalidDataError",
    "InvalidNameError",
    "InvalidURLError",
    "LongTableFormat",
    "LongTableFormat_DateTime_PostgreSQL",
    "RateTrend",
    "RedisLayout",
    "StoreClosedError",
    "StoreConnectionError",
    "StoreError",
    "StoreTimeout",
    "StoreWriteError",
    "Table",
    "TableFormat",
    "TimeSeries",
    "Tree",
    "Trend",
    "WrongThreadError",
    "__version__",
    "create_datastore_from_url",
]

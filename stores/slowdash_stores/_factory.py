"""``create_datastore_from_url``: a store chosen by the URL's scheme."""

from __future__ import annotations

from typing import Any

from ._csv import DataStore_CSV, DataStore_TextDump
from ._errors import InvalidURLError
from ._postgresql import DataStore_PostgreSQL, redact
from ._redis import DataStore_Redis
from ._sql import DataStore_SQLite
from ._store import DataStore

DEFAULT_TABLE = "slow_data"

_NOT_HERE = {
    "mysql": "MySQL",
    "influxdb2": "InfluxDB 2",
    "mongodb": "MongoDB",
    "couchdb": "CouchDB",
    "hdf5": "HDF5",
}


def create_datastore_from_url(url: str, *args: Any, **kwargs: Any) -> DataStore:
    """The store for ``url``; the table is ``table=`` or the first positional argument
    (default ``slow_data``); other keyword arguments go to the store's constructor.

    ==================================  ==========================================
    ``sqlite:///NAME``                  ``DataStore_SQLite`` (file ``NAME.db``)
    ``postgresql://USER:PASS@HOST/DB``  ``DataStore_PostgreSQL`` (also ``postgres://``)
    ``csv:///DIR``                      ``DataStore_CSV`` (file ``DIR/TABLE.csv``)
    ``dump:///``                        ``DataStore_TextDump`` (standard output)
    ``redis://HOST:PORT/DB``            ``DataStore_Redis`` (no table: channels are keys)
    ==================================  ==========================================

    Any other URL raises ``InvalidURLError`` (SlowPy returned a store that silently dropped
    everything).
    """
    if not isinstance(url, str):
        raise InvalidURLError(f"a store URL is a string, not {url!r}")
    scheme, separator, _ = url.partition("://")
    scheme = scheme.lower()
    if not separator:
        raise InvalidURLError(
            f"no scheme in store URL {redact(url)!r} (e.g. sqlite:///data)", url=None
        )
    if scheme == "dump":
        if args:
            raise TypeError("dump:/// takes no table")
        return DataStore_TextDump(**kwargs)
    if scheme in ("redis", "rediss"):
        if args or "table" in kwargs:
            raise TypeError(f"{scheme}:// takes no table: each channel has keys of its own")
        return DataStore_Redis(url, **kwargs)
    if len(args) > 1:
        raise TypeError(f"create_datastore_from_url() takes one table after the URL, not {args!r}")
    if "table" in kwargs and args:
        raise TypeError("the table was given both by position and as table=")
    table = kwargs.pop("table", args[0] if args else DEFAULT_TABLE)
    if scheme == "sqlite":
        return DataStore_SQLite(url, table, **kwargs)
    if scheme in ("postgresql", "postgres"):
        return DataStore_PostgreSQL(url, table, **kwargs)
    if scheme == "csv":
        return DataStore_CSV(url, table, **kwargs)
    if scheme in _NOT_HERE:
        raise InvalidURLError(
            f"{_NOT_HERE[scheme]} stores ({scheme}://) are not part of slowdash_stores; "
            "use sqlite:///, postgresql://, redis://, csv:/// or dump:///",
            url=None,
        )
    raise InvalidURLError(
        f"unknown store URL scheme {scheme!r}; use sqlite:///, postgresql://, redis://, csv:/// "
        "or dump:///",
        url=None,
    )

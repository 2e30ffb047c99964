"""slowdash_stores: data stores and data objects for recording (SlowPy's stores).

Usable in plain scripts and inside the slowdash-trio server; never imports the server.
The stores arrive with the data-path work; this package is their home.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("slowdash-trio")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = ["__version__"]

"""slowdash_controls: control nodes for slow-control scripts (SlowPy's ``slowpy.control``).

Usable in plain scripts and inside the slowdash-trio server; never imports the server.
The node model arrives with the control-library work; this package is its home.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("slowdash-trio")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0+unknown"

__all__ = ["__version__"]

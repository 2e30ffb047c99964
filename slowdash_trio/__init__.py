"""slowdash-trio: SlowDash on Trio. Run a project with ``python -m slowdash_trio serve``."""

from ._errors import ApiError as ApiError
from ._version import __version__ as __version__

__all__ = ["ApiError", "__version__"]

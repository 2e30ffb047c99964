"""Exceptions of the server package.

SlowdashError
├── ProjectError          the project file is unusable (file, line, key, reason)
├── ModuleError           a user module failed in a callback (recorded, never fatal)
│   ├── ModuleStuck       a request-side call is past its deadline and still running
│   └── AsyncioInTrio     user async code awaited an asyncio-only object
└── ApiError              an API request answered with an error status (status, message)
"""

from __future__ import annotations

from pathlib import Path


class SlowdashError(Exception):
    """Root of the exceptions raised by slowdash_trio."""


class ProjectError(SlowdashError):
    """The project (SlowdashProject.yaml or its discovery) is unusable.

    Carries where the problem is, so that the message reads like a compiler error:
    ``SlowdashProject.yaml:12: slowdash_project.module[0].file: no such file``.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: Path | str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = Path(file) if file is not None else None
        self.line = line
        self.key = key
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.file is not None:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.reason}"


class ModuleError(SlowdashError):
    """A user module failed; the message names the module and the callback."""


class ModuleStuck(ModuleError):
    """A module's request-side callback is still running past its deadline.

    The module is not called again until that call returns.
    """


class AsyncioInTrio(ModuleError):
    """User async code awaited something that only works under asyncio.

    slowdash-trio runs ``async def`` callbacks on Trio: ``await trio.sleep(1)``, not
    ``await asyncio.sleep(1)``.
    """


class ApiError(SlowdashError):
    """An in-process API request (``app.request*``) was answered with an error."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"HTTP {status}: {message}")

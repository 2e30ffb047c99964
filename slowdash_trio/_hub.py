"""The streaming hub: current values published by tasks and browsers, fanned out to every
attached WebSocket. (Scaffold: the streaming work fills this in.)"""

from __future__ import annotations

from typing import Any

import trio


class Hub:
    """Publish/subscribe for ``current_data`` and other topics; never blocks a publisher."""

    def publish_current(self, values: dict[str, Any], *, sender: str | None = None) -> None:
        """Publish ``{CH: {"t": T, "x": X, ...}}`` (sync, non-blocking, Trio thread)."""

    def current(self) -> dict[str, Any]:
        """The latest packet per channel (the "mesh cache")."""
        return {}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled (installs the control library's deliver hook)."""
        task_status.started()
        await trio.sleep_forever()

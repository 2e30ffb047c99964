"""The restart policy of a module or task: back-off and limits (``restart: on-failure``).

A `Restarter` lives as long as the module's status (across its restarts) and answers, after
each crash, how long to wait before the next attempt, or that there is none: restarts
counted within ``window`` seconds, the first back-off ``delay`` doubling with each of them
up to ``max_delay``, at most ``max_restarts`` of them. A module that has run well for a
``window`` starts afresh with the short back-off.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import trio

from ._config import RestartConfig

_MAX_DOUBLINGS = 64  # 2**64 times any delay is past every max_delay


class Restarter:
    """Restart bookkeeping of one module or task (see the module docstring)."""

    def __init__(self, policy: RestartConfig) -> None:
        self.policy = policy
        self.total = 0  # restarts since the module was (manually) started
        self.delay: float | None = None  # the back-off of the last restart
        self.next_attempt: float | None = None  # wall-clock time, while waiting
        self.gave_up = False
        self._recent: collections.deque[float] = collections.deque()  # Trio clock

    def _prune(self, now: float) -> int:
        while self._recent and now - self._recent[0] >= self.policy.window:
            self._recent.popleft()
        return len(self._recent)

    def schedule(self) -> float | None:
        """After a crash: the back-off before the next attempt, or None (limit reached)."""
        count = self._prune(trio.current_time())
        if count >= self.policy.max_restarts:
            self.gave_up = True
            return None
        self.delay = min(self.policy.max_delay, self.policy.delay * 2 ** min(count, _MAX_DOUBLINGS))
        return self.delay

    async def wait(self, delay: float, stop: trio.Event) -> bool:
        """Wait ``delay`` seconds unless ``stop`` is set first; True if the restart is on."""
        self.next_attempt = time.time() + delay
        try:
            with trio.move_on_after(delay):
                await stop.wait()
        finally:
            self.next_attempt = None
        if stop.is_set():
            return False
        self._recent.append(trio.current_time())
        self.total += 1
        return True

    def to_json(self) -> dict[str, Any]:
        try:
            recent = self._prune(trio.current_time())
        except RuntimeError:  # not on the Trio thread
            recent = len(self._recent)
        return {
            "policy": self.policy.policy,
            "restarts": recent,
            "max_restarts": self.policy.max_restarts,
            "window": self.policy.window,
            "total": self.total,
            "delay": self.delay,
            "next_attempt": self.next_attempt,
            "gave_up": self.gave_up,
        }

"""Simulated devices: plain classes (``RandomWalkDevice``...) and their control nodes.

The plain classes are for scripts and SCPI adapters that want a device to play with; the nodes
(``ctrl.randomwalk_device()``) put one in the control tree. Neither does I/O, so the nodes
answer sync calls anywhere.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

from ._errors import NodeAccessError
from ._node import ControlNode, ControlValueNode


class RandomWalkDevice:
    """``n`` channels, each a random walk pulled back towards its centre.

    Each step: ``x -= decay * (x - centre) + gauss(0, walk)``; a read first advances one step
    per ``tick`` seconds elapsed since the last (one step per read when ``tick`` is 0), and
    answers rounded to 3 decimals. ``write(ch, value)`` moves the centre and the value there.
    """

    def __init__(
        self,
        n: int = 16,
        walk: float = 1.0,
        decay: float = 0.1,
        initial: float = 0,
        tick: float = 1.0,
        *,
        seed: int | None = None,
    ) -> None:
        self.n = n
        self.walk = float(walk)
        self.decay = float(decay)
        self.tick = float(tick)
        self._random = random.Random(seed)
        self._centre = [float(initial)] * n
        self._value = [float(initial)] * n
        now = time.monotonic()
        self._last = [now] * n

    def channels(self) -> list[int]:
        return list(range(self.n))

    def _check(self, ch: int) -> int:
        if not 0 <= int(ch) < self.n:
            raise NodeAccessError(f"channel {ch} out of range (0..{self.n - 1})")
        return int(ch)

    def read(self, ch: int) -> float:
        ch = self._check(ch)
        now = time.monotonic()
        if self.tick > 0:
            steps = math.floor((now - self._last[ch]) / self.tick)
            self._last[ch] += steps * self.tick
        else:
            steps = 1
        x = self._value[ch]
        for _ in range(min(steps, 10_000)):
            x -= self.decay * (x - self._centre[ch]) + self._random.gauss(0, self.walk)
        self._value[ch] = x
        return round(x, 3)

    def write(self, ch: int, value: float) -> None:
        ch = self._check(ch)
        self._centre[ch] = float(value)
        self._value[ch] = float(value)


class RandomHitDevice:
    """``read(ch)``: True with probability ``occupancy``."""

    def __init__(self, n: int = 16, occupancy: float = 0.7, *, seed: int | None = None) -> None:
        self.n = n
        self.occupancy = occupancy
        self._random = random.Random(seed)

    def read(self, ch: int) -> bool:
        return self._random.random() < self.occupancy


class RandomChargeDevice:
    """``read(ch)``: a non-negative integer charge, Gaussian around ``mean``."""

    def __init__(
        self, n: int = 16, mean: float = 10, sigma: float = 2, *, seed: int | None = None
    ) -> None:
        self.n = n
        self.mean = mean
        self.sigma = sigma
        self._random = random.Random(seed)

    def read(self, ch: int) -> int:
        return max(0, round(self._random.gauss(self.mean, self.sigma)))


class RandomTimeDevice:
    """``read(ch)``: an exponentially distributed time with the given ``time_constant``."""

    def __init__(self, n: int = 16, time_constant: float = 0.1, *, seed: int | None = None) -> None:
        self.n = n
        self.time_constant = time_constant
        self._random = random.Random(seed)

    def read(self, ch: int) -> float:
        return self._random.expovariate(1.0 / self.time_constant)


class _ParameterNode(ControlValueNode):
    """One parameter of a simulated device (``walk()``, ``decay()``)."""

    _local_get = True
    _local_set = True

    def __init__(self, device: RandomWalkDevice, name: str) -> None:
        self.device = device
        self.name = name

    async def aio_get(self) -> Any:
        return getattr(self.device, self.name)

    async def aio_set(self, value: Any) -> Any:
        try:
            setattr(self.device, self.name, float(value))
        except (TypeError, ValueError) as exc:
            raise NodeAccessError(f"{self._label()}: numeric value is expected") from exc
        return None

    def _label(self) -> str:
        return f"randomwalk_device.{self.name}()"


class RandomWalkChannelNode(ControlValueNode):
    """``randomwalk_device().ch(i)``: ``get()`` reads a step, ``set(v)`` moves the centre."""

    _local_get = True
    _local_set = True

    def __init__(self, device: RandomWalkDevice, ch: int) -> None:
        self.device = device
        self.ch = device._check(ch)

    async def aio_get(self) -> Any:
        return self.device.read(self.ch)

    async def aio_set(self, value: Any) -> Any:
        try:
            self.device.write(self.ch, float(value))
        except (TypeError, ValueError) as exc:
            raise NodeAccessError(f"{self._label()}: numeric value is expected") from exc
        return None

    async def aio_has_data(self) -> bool:
        return True

    def _label(self) -> str:
        return f"randomwalk_device.ch({self.ch})"


class RandomWalkDeviceNode(ControlNode):
    """``ctrl.randomwalk_device(walk, decay, n)``: a simulated ``n``-channel device."""

    _local_get = True

    def __init__(self, walk: float = 1.0, decay: float = 0.1, n: int = 16, tick: float = 1.0):
        self.device = RandomWalkDevice(n=n, walk=walk, decay=decay, tick=tick)
        self._channels: dict[int, RandomWalkChannelNode] = {}
        self._walk = _ParameterNode(self.device, "walk")
        self._decay = _ParameterNode(self.device, "decay")

    def ch(self, ch: int) -> RandomWalkChannelNode:
        node = self._channels.get(ch)
        if node is None:
            node = self._channels[ch] = RandomWalkChannelNode(self.device, ch)
        return node

    def walk(self) -> _ParameterNode:
        return self._walk

    def decay(self) -> _ParameterNode:
        return self._decay

    async def aio_get(self) -> Any:
        return [self.device.read(ch) for ch in range(self.device.n)]

    def _label(self) -> str:
        return "randomwalk_device"

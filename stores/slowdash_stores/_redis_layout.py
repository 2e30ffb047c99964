"""The key layout of ``DataStore_Redis`` and the commands of one write (no redis-py here).

``RedisLayout`` is for readers too (the server's Redis data source imports it): key names, the
channel registry and the codec of sorted-set members. ``Planner`` turns the checked rows of one
call into Redis commands for a layout; it does no I/O. docs/stores.md has the layout table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

from ._errors import InvalidDataError, InvalidNameError
from ._store import Row, is_numeric_value, object_text, value_text

Command = tuple[str, ...]
LAYOUTS: Final = ("auto", "zset", "timeseries")


# ----------------------------------------------------------------------------------------------
# the layout, for writers and readers


class RedisLayout:
    """Key names and encodings of ``DataStore_Redis`` (what a reader needs; no redis-py).

    Every key of the layout starts with ``PREFIX``, except the latest values of ``update()``
    and the hashes of ``write_hash()``, which are the bare channel name (as in SlowPy).
    """

    PREFIX: Final = "__sd_"
    ZTS: Final = "__sd_zts_"  # + CH: zset of numbers
    ZOBJTS: Final = "__sd_zobjts_"  # + CH: zset of objects and strings
    OBJTS_INDEX: Final = "__sd_objtsindex_"  # + CH: RedisTS of ring slots
    OBJTS: Final = "__sd_objts_"  # + CH + "_" + SLOT: string (JSON or text)
    CHANNELS: Final = "__sd_channels_"  # + KIND: set of channel names
    KINDS: Final = ("zts", "zobjts", "ts", "objts", "value", "object", "hash")
    """``zts``/``zobjts``: series of the zset layout; ``ts``/``objts``: of the RedisTS layout;
    ``value`` (a number or text) and ``object`` (JSON): ``CH`` holds the latest value written
    by ``update()``; ``hash``: ``CH`` is a hash written by ``write_hash()``."""

    @staticmethod
    def channels_key(kind: str) -> str:
        """The set listing the channels of ``kind`` (one of ``KINDS``)."""
        if kind not in RedisLayout.KINDS:
            raise ValueError(f"unknown kind {kind!r}; kinds are {RedisLayout.KINDS}")
        return RedisLayout.CHANNELS + kind

    @staticmethod
    def zts_key(channel: str) -> str:
        return RedisLayout.ZTS + channel

    @staticmethod
    def zobjts_key(channel: str) -> str:
        return RedisLayout.ZOBJTS + channel

    @staticmethod
    def objts_index_key(channel: str) -> str:
        return RedisLayout.OBJTS_INDEX + channel

    @staticmethod
    def objts_key(channel: str, slot: int) -> str:
        return f"{RedisLayout.OBJTS}{channel}_{slot}"

    @staticmethod
    def encode_member(timestamp: float, text: str) -> str:
        """A zset member: ``repr(float(timestamp)) + ":" + text`` (the score is the time too)."""
        return f"{float(timestamp)!r}:{text}"

    @staticmethod
    def decode_member(member: str | bytes) -> tuple[float, str]:
        """``(timestamp, text)`` of a zset member; the text is JSON or a plain string."""
        if isinstance(member, bytes):
            member = member.decode()
        head, separator, text = member.partition(":")
        if not separator:
            raise ValueError(f"not a slowdash_stores zset member: {member[:80]!r}")
        return float(head), text

    @staticmethod
    def decode_number(member: str | bytes) -> tuple[float, float]:
        """``(timestamp, value)`` of a member of ``__sd_zts_CH`` (the value may be nan/inf)."""
        timestamp, text = RedisLayout.decode_member(member)
        return timestamp, float(text)


def check_channel(channel: str) -> str:
    """``channel`` unless it starts with ``RedisLayout.PREFIX`` (kept for the layout's keys)."""
    if channel.startswith(RedisLayout.PREFIX):
        raise InvalidNameError(
            f"bad channel name {channel!r}: names starting with {RedisLayout.PREFIX!r} are the "
            "Redis store's own keys",
            name=channel,
        )
    return channel


# ----------------------------------------------------------------------------------------------
# from rows to commands


class Item:
    """One row, checked and encoded: ``number`` (float) for numbers, else None; ``text``: the
    value as ``update()`` stores it (``str()`` of a number, JSON of an object, the string)."""

    __slots__ = ("channel", "is_object", "number", "text", "timestamp")

    def __init__(self, row: Row) -> None:
        timestamp, channel, value = row
        self.timestamp = float(timestamp)
        self.channel = check_channel(channel)
        self.number: float | None = None
        if is_numeric_value(value):
            try:
                self.number = float(value)  # type: ignore[arg-type]  # checked just above
            except OverflowError:
                raise InvalidDataError(
                    f"value {value!r} of channel {channel!r} is too large for a float"
                ) from None
        self.is_object = object_text(value) is not None
        self.text = value_text(value)


def _latest(items: list[Item]) -> list[Item]:
    """The item with the latest timestamp of each channel (ties: the later one)."""
    latest: dict[str, Item] = {}
    for item in items:
        old = latest.get(item.channel)
        if old is None or item.timestamp >= old.timestamp:
            latest[item.channel] = item
    return list(latest.values())


class Planner:
    """Builds the commands of one call for a layout (pure: no I/O)."""

    def __init__(self, retention: float | None, objts_retention: float, timebin: float) -> None:
        self.retention = retention
        self.objts_retention = objts_retention
        self.timebin = timebin

    def plan(self, items: list[Item], update: bool, layout: str) -> list[Command]:
        if update:
            return self._update(items, layout)
        if layout == "timeseries":
            return self._append_ts(items)
        return self._append_zset(items)

    def _append_zset(self, items: list[Item]) -> list[Command]:
        commands: list[Command] = []
        numbers: dict[str, dict[float, str]] = {}  # key -> {time: member}
        objects: dict[str, dict[float, tuple[float, str]]] = {}  # key -> {bin: (time, member)}
        for item in items:
            if item.number is not None:
                member = RedisLayout.encode_member(item.timestamp, repr(item.number))
                numbers.setdefault(item.channel, {})[item.timestamp] = member
            else:
                member = RedisLayout.encode_member(item.timestamp, item.text)
                t_bin = math.floor(item.timestamp / self.timebin) * self.timebin
                objects.setdefault(item.channel, {})[t_bin] = (item.timestamp, member)
        for channel, points in numbers.items():
            key = RedisLayout.zts_key(channel)
            # one sample per timestamp: the new one replaces the old
            commands += [("ZREMRANGEBYSCORE", key, repr(t), repr(t)) for t in points]
            commands.append(("ZADD", key, *_pairs((t, m) for t, m in points.items())))
            if self.retention is not None:
                commands.append(_trim(key, max(points) - self.retention))
        for channel, bins in objects.items():
            key = RedisLayout.zobjts_key(channel)
            for t_bin in bins:  # one object per time bin: the new one replaces the old
                end = t_bin + self.timebin
                commands.append(("ZREMRANGEBYSCORE", key, repr(t_bin), f"({end!r}"))
            commands.append(("ZADD", key, *_pairs(bins.values())))
            newest = max(t for t, _ in bins.values())
            commands.append(_trim(key, newest - self.objts_retention))
        commands += _register("zts", numbers)
        commands += _register("zobjts", objects)
        return commands

    def _append_ts(self, items: list[Item]) -> list[Command]:
        commands: list[Command] = []
        numbers: set[str] = set()
        objects: set[str] = set()
        retention = () if self.retention is None else ("RETENTION", _ms(self.retention))
        ring = ("RETENTION", _ms(self.objts_retention))
        for item in items:
            if item.timestamp < 0:
                raise InvalidDataError(
                    f"RedisTimeSeries takes no time before 1970 (channel {item.channel!r}, "
                    f"timestamp {item.timestamp!r})"
                )
            ms = str(int(1000 * item.timestamp))
            if item.number is not None:
                numbers.add(item.channel)
                value = repr(item.number)
                commands.append(
                    ("TS.ADD", item.channel, ms, value, *retention, "ON_DUPLICATE", "LAST")
                )
            else:
                objects.add(item.channel)
                slot = int((item.timestamp % self.objts_retention) / self.timebin)
                index_key = RedisLayout.objts_index_key(item.channel)
                commands.append(("TS.ADD", index_key, ms, str(slot), *ring, "ON_DUPLICATE", "LAST"))
                commands.append(("SET", RedisLayout.objts_key(item.channel, slot), item.text))
        commands += _register("ts", numbers)
        commands += _register("objts", objects)
        return commands

    def _update(self, items: list[Item], layout: str) -> list[Command]:
        commands: list[Command] = []
        kinds: dict[str, list[str]] = {"value": [], "object": []}
        latest = _latest(items)
        for item in latest:
            kinds["object" if item.is_object else "value"].append(item.channel)
            commands.append(("SET", item.channel, item.text))
        channels = [item.channel for item in latest]
        if layout == "timeseries":  # SET has replaced a RedisTS key CH
            commands.append(("DEL", *map(RedisLayout.objts_index_key, channels)))
            series = ("ts", "objts")
        else:
            zsets = [*map(RedisLayout.zts_key, channels), *map(RedisLayout.zobjts_key, channels)]
            commands.append(("DEL", *zsets))
            series = ("zts", "zobjts")
        commands += [
            ("SREM", RedisLayout.channels_key(kind), *channels) for kind in (*series, "hash")
        ]
        for kind, names in kinds.items():
            if names:
                commands.append(("SADD", RedisLayout.channels_key(kind), *names))
                other = "value" if kind == "object" else "object"
                commands.append(("SREM", RedisLayout.channels_key(other), *names))
        return commands


def _pairs(points: Any) -> list[str]:
    flat: list[str] = []
    for t, member in points:
        flat += [repr(t), member]
    return flat


def _trim(key: str, oldest: float) -> Command:
    return ("ZREMRANGEBYSCORE", key, "-inf", f"({oldest!r}")


def _register(kind: str, channels: Mapping[str, object] | set[str]) -> list[Command]:
    if not channels:
        return []
    return [("SADD", RedisLayout.channels_key(kind), *channels)]


def _ms(seconds: float) -> str:
    return str(round(1000 * seconds))

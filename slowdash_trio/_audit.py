"""The audit log: who changed what, from where, and how it went.

Every request that can change something (any /api method but GET, HEAD and OPTIONS: control
documents, task function calls, task start/stop/reload, config file writes) is recorded once it
is answered, and so is every value written back to a task's node from a browser (``sd-live``,
over HTTP or a WebSocket), and every request refused for its role. Emits that only publish
values are not commands and are not recorded.

A record goes to the ``slowdash_trio.audit`` logger (INFO; one line) and, with
``system.audit.store``, to that data store as a ``Tree`` under the tag ``audit`` (time, user,
client, action, detail, status, outcome), so the dashboard can show it like any other channel.
Store writes run in a worker thread from a bounded queue; a record the store cannot take stays
in the server log, and the failure is logged.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import trio

from ._config import AuditConfig
from .webapi import Request

logger = logging.getLogger("slowdash_trio.audit")

MAX_DETAIL = 500  # characters of a request body kept in a record
QUEUE = 10_000  # records waiting for the store
FINAL_WRITE_TIMEOUT = 10.0  # seconds the last records may take at shutdown


@dataclass(frozen=True)
class AuditRecord:
    time: float
    user: str  # "-" without authentication; "(server)" for the server's own requests
    client: str  # the peer's address
    action: str  # "POST /api/control", "write-back hv.V0", ...
    detail: str
    status: int
    outcome: str  # "ok", or the error message

    def line(self) -> str:
        detail = f" {self.detail}" if self.detail else ""
        return f"{self.user}@{self.client} {self.action}{detail} -> {self.status} {self.outcome}"


def requester(request: Request) -> str | None:
    """Who a request is recorded as: its user, or ``(server)`` for the server's own."""
    return "(server)" if request.internal else request.user


def summarize(body: bytes, content_type: str | None = None) -> str:
    """A request body as one short line: compact JSON, text, or its size. Only the head of a
    long body is read (this runs on the event loop for every command)."""
    if not body:
        return ""
    if content_type and not content_type.startswith(("application/json", "text/")):
        return f"({len(body)} bytes)"
    complete = len(body) <= 4 * MAX_DETAIL
    head = body if complete else body[: 4 * MAX_DETAIL]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if complete or exc.start < len(head) - 3:  # not just a character cut in two
            return f"({len(body)} bytes, not UTF-8)"
        text = head[: exc.start].decode("utf-8")
    try:
        if not complete:
            raise ValueError("only the head was read")
        text = json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)
    except (ValueError, RecursionError):
        text = " ".join(text.split())
    if len(text) > MAX_DETAIL:
        return text[:MAX_DETAIL] + f"... ({len(body)} bytes)"
    return text


class AuditLog:
    """Records to the server log at once, and to the store when one is configured."""

    def __init__(self, config: AuditConfig, project_dir: Path) -> None:
        self.config = config
        self.store_url = _in_project(config.store, project_dir)
        self._send, self._receive = trio.open_memory_channel[AuditRecord](QUEUE)
        self._last_time = 0.0
        self.dropped = 0

    def record(
        self,
        *,
        user: str | None,
        client: str | None,
        action: str,
        detail: str = "",
        status: int = 200,
        outcome: str = "ok",
    ) -> AuditRecord:
        now = time.time()
        if now <= self._last_time:  # one record per time stamp in the store
            now = math.nextafter(self._last_time, math.inf)
        self._last_time = now
        entry = AuditRecord(now, user or "-", client or "-", action, detail, status, outcome)
        logger.info("%s", entry.line())
        if self.store_url is not None:
            try:
                self._send.send_nowait(entry)
            except trio.WouldBlock:
                self.dropped += 1
                logger.error("audit store queue full: this record is in the server log only")
        return entry

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write queued records to the store until cancelled; then, within
        `FINAL_WRITE_TIMEOUT`, what is left."""
        url = self.store_url
        task_status.started()
        if url is None:
            return
        table = self.config.table
        pending: list[AuditRecord] = []
        store: Any = None
        try:
            async for entry in self._receive:
                pending = [entry, *_drain(self._receive)]
                store = store or await _open(url, table)
                if store is not None:
                    await _write(store, pending)
                pending = []
        finally:
            with trio.CancelScope(shield=True) as final:
                final.deadline = trio.current_time() + FINAL_WRITE_TIMEOUT
                pending += _drain(self._receive)
                if pending:
                    store = store or await _open(url, table)
                    if store is not None:
                        await _write(store, pending)
                if store is not None:
                    await trio.to_thread.run_sync(store.close)


def _in_project(url: str | None, project_dir: Path) -> str | None:
    """An SQLite file named relative to the project, as user modules see it."""
    if url is None or not url.startswith("sqlite:///") or url.startswith("sqlite:////"):
        return url
    name = url.removeprefix("sqlite:///")
    return url if name == ":memory:" else f"sqlite:///{project_dir / name}"


def _drain(receive: trio.MemoryReceiveChannel[AuditRecord]) -> list[AuditRecord]:
    out = []
    while True:
        try:
            out.append(receive.receive_nowait())
        except (trio.WouldBlock, trio.EndOfChannel):
            return out


async def _open(url: str, table: str) -> Any:
    from slowdash_stores import create_datastore_from_url

    try:
        return await trio.to_thread.run_sync(create_datastore_from_url, url, table)
    except Exception as exc:
        logger.error("audit store %s cannot be opened: %s", url, exc)
        return None


async def _write(store: Any, batch: list[AuditRecord]) -> None:
    def write() -> None:
        from slowdash_stores import Tree

        for entry in batch:
            tree = Tree()
            for key, value in asdict(entry).items():
                if key != "time":
                    tree.set(key, value)
            store.append(tree, tag="audit", timestamp=entry.time)

    try:
        await trio.to_thread.run_sync(write)
    except Exception as exc:
        logger.error("audit store: %d records not written (see the log): %s", len(batch), exc)

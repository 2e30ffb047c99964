"""``/api/emit/{topic}``, ``/api/consume/current_data`` and the current values merged into
``/api/channels`` and ``/api/data``. (Scaffold: the streaming work fills this in.)"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .webapi import WebApi

if TYPE_CHECKING:
    from ._server import Server


def streaming_api(server: Server) -> WebApi:
    del server
    return WebApi()

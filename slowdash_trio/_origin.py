"""Which browsers may change things: the Origin rule against hostile web pages.

A page on another site can make the user's browser send requests to the lab's server (a form
posted to ``/api/control``, a ``fetch`` with a plain-text body, a WebSocket). Browsers say
where such a request comes from in ``Origin`` (and ``Sec-Fetch-Site``), so the server refuses:

- a state-changing request (any method but GET, HEAD, OPTIONS) or a WebSocket upgrade whose
  ``Origin`` is neither this server's own (scheme and ``Host``) nor one of
  ``system.allowed_origins``; ``Origin: null`` (sandboxed frames, local files) too;
- such a request without ``Origin`` that the browser marks as coming from another site or
  origin (``Sec-Fetch-Site: cross-site`` or ``same-site``), whatever its content type.

Requests without either header (scripts, ``curl``, ``app.request_*``) are not concerned. No
CORS header is sent, except to the configured origins.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(text: str) -> str:
    """``scheme://host[:port]`` in lower case, without the scheme's default port; ValueError
    for anything else (a path, a query, no host, another scheme)."""
    parts = urllib.parse.urlsplit(text.strip())
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{text!r} is not an origin like http://host:port")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{text!r} is not an origin like http://host:port (no path or query)")
    port = parts.port  # ValueError for a bad port
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


@dataclass(frozen=True)
class OriginPolicy:
    """The origins allowed besides the server's own (normalized)."""

    allowed: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, origins: Iterable[str]) -> OriginPolicy:
        return cls(frozenset(normalize_origin(origin) for origin in origins))

    def refusal(
        self, method: str, headers: Mapping[str, str], scheme: str, *, websocket: bool = False
    ) -> str | None:
        """Why the request is refused, or None. ``headers`` have lower-case names;
        ``scheme`` is the request's (``http``, ``https``, ``ws``, ``wss``)."""
        if not websocket and method.upper() in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is None:
            site = headers.get("sec-fetch-site", "").lower()
            if site in ("cross-site", "same-site"):
                return f"cross-origin request refused (the browser says Sec-Fetch-Site: {site})"
            return None
        if origin.strip().lower() == "null":
            return "cross-origin request refused: Origin null (a sandboxed page or a local file)"
        if self.allows(origin, headers, scheme):
            return None
        own = self.own_origin(headers, scheme) or "(no Host header)"
        return (
            f"cross-origin request refused: Origin {origin} is neither this server ({own}) nor "
            "one of system.allowed_origins (behind a reverse proxy: forward the Host header, "
            "or list the public address there)"
        )

    def allows(self, origin: str, headers: Mapping[str, str], scheme: str) -> bool:
        try:
            normalized = normalize_origin(origin)
        except ValueError:
            return False
        return normalized in self.allowed or normalized == self.own_origin(headers, scheme)

    def configured(self, origin: str | None) -> bool:
        """Whether ``origin`` is one of the configured ones (they get CORS headers)."""
        if origin is None:
            return False
        try:
            return normalize_origin(origin) in self.allowed
        except ValueError:
            return False

    @staticmethod
    def own_origin(headers: Mapping[str, str], scheme: str) -> str | None:
        host = headers.get("host")
        if not host:
            return None
        http = {"ws": "http", "wss": "https"}.get(scheme, scheme)
        try:
            return normalize_origin(f"{http}://{host}")
        except ValueError:
            return None

"""Who may read, command and edit: HTTP Basic authentication with roles.

Users come from ``authentication:`` in the project file: the original's ``key: USER:HASH``
entries (role admin: there, every user could do everything) and ``users:`` with a role each.
A role includes the ones below it:

- ``viewer``: read: every GET (data, layouts, pages, static files), WebSockets to listen;
- ``operator``: also every other /api request (``/api/control``, task functions, task
  start/stop, emits and ``sd-live`` write-back) and messages sent on a WebSocket;
- ``admin``: also writing and deleting config files (``/api/config/file/...``; scripts still
  need ``system.our_security_is_perfect``).

Checking a bcrypt hash takes a quarter of a second by design, so a verified ``Authorization``
value is remembered (as its SHA-256, for ``REMEMBER`` seconds); checks run in worker threads,
at most ``CHECKERS`` at once, so that a flood of wrong passwords queues instead of taking every
thread. A refused value is remembered too (for ``REMEMBER_REFUSED`` seconds): a browser or a
script that keeps sending the same wrong password (a dashboard polling with stale saved
credentials) is answered at once and does not hold up other users' checks. The server's own
requests (``app.request_*`` from modules, query mode) never pass here.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass

import bcrypt
import trio

from ._config import AuthConfig
from ._origin import SAFE_METHODS

REALM = "SlowDash"
CHALLENGE = f'Basic realm="{REALM}", charset="UTF-8"'
REMEMBER = 600.0  # seconds a verified Authorization value is remembered
REMEMBER_REFUSED = 60.0  # seconds a refused Authorization value is refused without a check
MAX_REMEMBERED = 1024
CHECKERS = 2  # bcrypt checks running at once
MAX_PASSWORD = 72  # bytes bcrypt uses (bcrypt 5 refuses longer ones)


class Role(enum.IntEnum):
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class User:
    name: str
    role: Role


def required_role(method: str, path: str) -> Role:
    """The least role that may make this request (``path`` is the full URL path)."""
    if method.upper() in SAFE_METHODS or not path.startswith("/api/"):
        return Role.VIEWER
    if path.startswith("/api/config/file/"):
        return Role.ADMIN
    return Role.OPERATOR


class Authenticator:
    """The users of a project and a memory of recently verified credentials."""

    def __init__(self, users: dict[str, tuple[bytes, Role]]) -> None:
        self.users = users
        # SHA-256 of an Authorization value → (its user, None if refused; until when)
        self._remembered: OrderedDict[bytes, tuple[User | None, float]] = OrderedDict()
        self._limiter = trio.CapacityLimiter(CHECKERS)

    @classmethod
    def from_config(cls, config: AuthConfig | None) -> Authenticator | None:
        if config is None:
            return None
        users: dict[str, tuple[bytes, Role]] = {}
        for entry in config.key:
            name, _, hashed = entry.partition(":")
            users[name] = (hashed.encode("ascii"), Role.ADMIN)
        for name, user in config.users.items():
            users[name] = (user.key.encode("ascii"), Role[user.role.upper()])
        return cls(users)

    async def authenticate(self, authorization: str | None) -> User | None:
        """The user an ``Authorization`` header value names, or None if it names nobody."""
        if not authorization:
            return None
        digest = hashlib.sha256(authorization.encode("utf-8", "surrogateescape")).digest()
        now = time.monotonic()
        remembered = self._remembered.get(digest)
        if remembered is not None and remembered[1] > now:
            return remembered[0]
        credentials = parse_basic(authorization)
        if credentials is None:
            return None
        name, password = credentials
        known = self.users.get(name)
        if known is None or len(password) > MAX_PASSWORD:
            return None
        hashed, role = known
        ok = await trio.to_thread.run_sync(
            bcrypt.checkpw, password, hashed, limiter=self._limiter, abandon_on_cancel=True
        )
        user = User(name, role) if ok else None
        self._remember(digest, user, time.monotonic() + (REMEMBER if ok else REMEMBER_REFUSED))
        return user

    def _remember(self, digest: bytes, user: User | None, until: float) -> None:
        self._remembered[digest] = (user, until)
        self._remembered.move_to_end(digest)
        while len(self._remembered) > MAX_REMEMBERED:
            self._remembered.popitem(last=False)


def parse_basic(authorization: str) -> tuple[str, bytes] | None:
    """``(user, password)`` of a ``Basic`` header value, or None."""
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    name, colon, password = decoded.partition(b":")
    if not colon:
        return None
    try:
        return name.decode("utf-8"), password
    except UnicodeDecodeError:
        return None


def hash_password(password: str, rounds: int = 12) -> str:
    """A bcrypt hash of ``password`` for the project file."""
    encoded = password.encode("utf-8")
    if not encoded:
        raise ValueError("the password is empty")
    if len(encoded) > MAX_PASSWORD:
        raise ValueError(f"the password is longer than bcrypt's {MAX_PASSWORD} bytes")
    return bcrypt.hashpw(encoded, bcrypt.gensalt(rounds)).decode("ascii")

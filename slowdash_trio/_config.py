"""The schema of ``SlowdashProject.yaml`` (validated with pydantic).

Every model allows unknown keys so that a project written for a newer or older SlowDash
still loads; the loader turns each unknown key into a warning with its line.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ._origin import normalize_origin


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, coerce_numbers_to_str=True)


RESTART_POLICIES = ("no", "on-failure")


class RestartConfig(_Section):
    """``restart:`` of a module or task entry: what follows a crash (docs/reliability.md).

    ``restart: on-failure`` is this mapping with its defaults; ``restart: no`` (the default)
    leaves a crashed module as it is.
    """

    policy: str = "on-failure"
    # restarts allowed within `window` seconds; one more crash: state error, no more restarts
    max_restarts: int = Field(default=5, ge=0)
    window: float = Field(default=600.0, gt=0)
    # the first back-off, seconds, doubling with each restart in the window up to max_delay
    delay: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    max_delay: float = Field(default=60.0, gt=0, allow_inf_nan=False)

    @field_validator("policy", mode="before")
    @classmethod
    def _policy(cls, value: Any) -> Any:
        if value is False:  # YAML reads an unquoted `no` as false
            return "no"
        if not isinstance(value, str) or value not in RESTART_POLICIES:
            raise ValueError(f"{value!r} is not a restart policy: 'no' or 'on-failure'")
        return value

    @field_validator("max_restarts", "window", "delay", "max_delay", mode="before")
    @classmethod
    def _not_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # `yes` in YAML: not a number of anything
            raise ValueError(f"{value!r} is not a number")
        return value

    @model_validator(mode="after")
    def _delays(self) -> RestartConfig:
        if self.max_delay < self.delay:
            raise ValueError(f"max_delay ({self.max_delay:g}) is below delay ({self.delay:g})")
        return self

    @property
    def enabled(self) -> bool:
        return self.policy == "on-failure"


def _restart_short_form(value: Any) -> Any:
    """``restart: on-failure`` / ``restart: no`` (a policy with the defaults), or a mapping."""
    if value is None or value is False:
        return {"policy": "no"}
    if isinstance(value, str):
        if value not in RESTART_POLICIES:
            raise ValueError(
                f"{value!r} is not a restart policy: 'no', 'on-failure', or a mapping with "
                "policy, max_restarts, window, delay, max_delay"
            )
        return {"policy": value}
    if not isinstance(value, dict):
        raise ValueError("must be 'no', 'on-failure', or a mapping (policy, max_restarts, ...)")
    return value


def _no_restart() -> RestartConfig:
    return RestartConfig(policy="no")


class ModuleConfig(_Section):
    """One ``module:`` entry: a user module."""

    file: str
    name: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    data_suffix: str | None = None
    enabled_for_cgi: bool = False
    enabled_for_commandline: bool = True
    # Accepted for compatibility: async callbacks always run on the server's (Trio) loop here.
    use_main_event_loop: bool = False
    # Per-call deadline for request-side callbacks; defaults to system.module_call_timeout.
    call_timeout: float | None = Field(default=None, gt=0)
    # what follows a crash: no (default) or on-failure with limits
    restart: RestartConfig = Field(default_factory=_no_restart)

    _restart = field_validator("restart", mode="before")(_restart_short_form)

    @field_validator("file")
    @classmethod
    def _python_file(cls, value: str) -> str:
        if not value.endswith(".py"):
            raise ValueError(f"a user module file must end with .py, not {value!r}")
        return value

    @field_validator("name", "data_suffix")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or "," in value or "/" in value):
            raise ValueError("must be non-empty and contain neither ',' nor '/'")
        return value


class NamespaceConfig(_Section):
    prefix: str | None = None
    suffix: str = ""


class TaskConfig(_Section):
    """One ``task:`` entry (SlowTask); run by the task manager."""

    name: str
    file: str | None = None
    auto_load: bool = False
    parameters: dict[str, Any] = Field(default_factory=dict)
    namespace: NamespaceConfig = Field(default_factory=NamespaceConfig)
    enabled_for_cgi: bool = False
    enabled_for_commandline: bool = True
    use_main_event_loop: bool = False
    # what follows a crash: no (default) or on-failure with limits
    restart: RestartConfig = Field(default_factory=_no_restart)

    _restart = field_validator("restart", mode="before")(_restart_short_form)


class DataSourceConfig(_Section):
    """One ``data_source:`` entry; its other keys are the plugin's parameters (checked by
    the data source itself when the server starts)."""

    extras_are_parameters: ClassVar[bool] = True
    type: str | None = None
    url: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _type_or_url(self) -> DataSourceConfig:
        if self.type is None and self.url is None:
            raise ValueError("a data source needs 'url' or 'type'")
        return self


class AuditConfig(_Section):
    """``system.audit``: also record every change in a data store table (by URL, as
    ``create_datastore_from_url`` takes it: ``sqlite:///audit.db``, ``postgresql://...``)."""

    store: str | None = None
    table: str = "audit"


ROLES = ("viewer", "operator", "admin")


class UserKey(_Section):
    """One user of ``authentication.users``: a bcrypt hash and a role."""

    key: str
    role: str = "viewer"

    @field_validator("key")
    @classmethod
    def _hash(cls, value: str) -> str:
        return check_bcrypt_hash(value)

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        if value not in ROLES:
            raise ValueError(f"role {value!r}: one of {', '.join(ROLES)}")
        return value


class AuthConfig(_Section):
    """``authentication:``: the original's ``key`` (``USER:HASH``, one or a list; role admin,
    as every user could do everything there) and ``users`` with roles."""

    type: str = "Basic"
    key: list[str] = Field(default_factory=list)
    users: dict[str, UserKey] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _basic(cls, value: str) -> str:
        if value.lower() != "basic":
            raise ValueError(f"type {value!r}: only Basic is supported")
        return "Basic"

    @field_validator("key", mode="before")
    @classmethod
    def _one_or_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("key")
    @classmethod
    def _user_hash(cls, keys: list[str]) -> list[str]:
        for entry in keys:
            user, colon, hashed = entry.partition(":")
            if not user or not colon:
                raise ValueError(f"{entry[:20]!r}...: a key is USER:BCRYPT_HASH")
            check_bcrypt_hash(hashed)
        return keys

    @model_validator(mode="after")
    def _someone(self) -> AuthConfig:
        names = [entry.partition(":")[0] for entry in self.key]
        twice = sorted({n for n in names if names.count(n) > 1} | (set(names) & set(self.users)))
        if twice:
            raise ValueError(f"user {twice[0]!r} is given more than once")
        if not names and not self.users:
            raise ValueError("no user: give key (USER:HASH) or users")
        return self


def check_bcrypt_hash(value: str) -> str:
    """A bcrypt hash as ``generate-key`` (or the original's script) prints it."""
    if len(value) != 60 or value[:4] not in ("$2a$", "$2b$", "$2y$") or value[6] != "$":
        raise ValueError(
            "not a bcrypt hash ($2b$12$ and 53 more characters): make one with "
            "'python -m slowdash_trio generate-key USER'"
        )
    return value


class SystemConfig(_Section):
    """``system:``: server-wide settings; every limit has a safe default."""

    our_security_is_perfect: bool = False
    file_mode: int = Field(default=0o644, ge=0, le=0o7777)
    file_gid: int = -1
    # deadline of one request-side user callback (_get_channels, _get_data, _process_command)
    module_call_timeout: float = Field(default=10.0, gt=0)
    # how long start-up waits for modules to load and initialize before the port opens anyway
    module_startup_timeout: float = Field(default=10.0, gt=0)
    # how long a stopping module may take to return from a sync callback before it is abandoned
    module_stop_grace: float = Field(default=5.0, ge=0)
    # how long _finalize may take at stop
    module_finalize_timeout: float = Field(default=10.0, gt=0)
    # an async user callback holding the event loop longer than this is reported
    watchdog_threshold: float = Field(default=0.05, gt=0)
    # worker threads shared by sync request-side user callbacks
    user_threads: int = Field(default=16, ge=1)
    # largest accepted HTTP request body, bytes
    max_request_body: int = Field(default=16 * 1024 * 1024, ge=0)
    # browser origins (http://host:port) allowed to change things besides the server's own
    allowed_origins: list[str] = Field(default_factory=list)
    # most raw points one /api/data reply may carry in all (beyond it: resample)
    max_points: int = Field(default=2_000_000, ge=1)
    # WebSockets open at once, and the largest message one may send, bytes
    max_websockets: int = Field(default=256, ge=1)
    max_websocket_message: int = Field(default=1 << 20, ge=1024)
    # where the audit log goes besides the server log
    audit: AuditConfig = Field(default_factory=AuditConfig)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        return [normalize_origin(origin) for origin in origins]


class ProjectConfig(_Section):
    """The mapping under ``slowdash_project:`` after normalization."""

    name: str | None = None
    title: str | None = None
    module: list[ModuleConfig] = Field(default_factory=list)
    task: list[TaskConfig] = Field(default_factory=list)
    data_source: list[DataSourceConfig] = Field(default_factory=list)
    export: list[dict[str, Any]] = Field(default_factory=list)
    style: dict[str, Any] | None = None
    system: SystemConfig = Field(default_factory=SystemConfig)
    authentication: AuthConfig | None = None


# Keys whose values are free-form mappings: no unknown-key warnings below them.
FREE_FORM = frozenset({"parameters", "style", "export"})

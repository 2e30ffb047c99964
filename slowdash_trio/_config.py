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


class SystemConfig(_Section):
    """``system:``: server-wide settings; every limit has a safe default."""

    our_security_is_perfect: bool = False
    file_mode: int = 0o644
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
    authentication: dict[str, Any] | None = None


# Keys whose values are free-form mappings: no unknown-key warnings below them.
FREE_FORM = frozenset({"parameters", "style", "authentication", "export"})

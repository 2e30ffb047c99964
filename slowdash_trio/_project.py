"""Finding and loading a project: ``SlowdashProject.yaml`` to a validated `Project`.

Order of work: parse YAML (keeping the line of every key) → take ``environment`` → substitute
``${...}`` in every string → normalize (mapping-or-list sections, plural aliases) → validate
with the schema in `._config` → fill defaults. Any problem raises `ProjectError` naming the
file, line, key and reason; unknown keys become warnings.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import yaml

from ._config import FREE_FORM, ProjectConfig
from ._errors import ProjectError
from ._substitute import SubstitutionError, substitute

PROJECT_FILE = "SlowdashProject.yaml"
ROOT_KEY = "slowdash_project"

# section name -> accepted spellings; a mapping or a list in the file, always a list after loading
_LIST_SECTIONS = {
    "module": ("module", "modules"),
    "task": ("task", "tasks"),
    "data_source": ("data_source", "data_sources"),
    "export": ("export", "exports"),
}

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Project:
    """A loaded project. Paths in the configuration are relative to `directory`."""

    directory: Path
    file: Path
    config: ProjectConfig
    name: str
    title: str
    warnings: tuple[str, ...] = ()
    _lines: Mapping[Path_, int] = field(default_factory=dict, repr=False)

    @property
    def config_dir(self) -> Path:
        return self.directory / "config"

    @property
    def is_secure(self) -> bool:
        return self.config.system.our_security_is_perfect

    def resolve(self, path: str) -> Path:
        """A path from the configuration, made absolute against the project directory."""
        return (self.directory / os.path.expanduser(path)).resolve()

    def where(self, *path: str | int) -> str:
        """``file:line`` of a key of ``slowdash_project`` (for messages about it)."""
        line = _line_of(self._lines, (ROOT_KEY, *path))
        return f"{self.file}:{line}" if line is not None else str(self.file)


def find_project_dir(
    explicit: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Path:
    """The project directory: ``explicit``, else ``$SLOWDASH_PROJECT`` or the current
    directory and its parents, the first that holds a ``SlowdashProject.yaml``."""
    if explicit is not None:
        directory = Path(explicit).expanduser().resolve()
        if not directory.is_dir():
            raise ProjectError("not a directory", file=directory)
        return directory
    environ = os.environ if environ is None else environ
    start = environ.get("SLOWDASH_PROJECT") or str(cwd or Path.cwd())
    start_dir = Path(start).expanduser().resolve()
    for directory in (start_dir, *start_dir.parents):
        if (directory / PROJECT_FILE).is_file():
            return directory
    raise ProjectError(
        f"no {PROJECT_FILE} in {start_dir} or any directory above it "
        "(give --project-dir, or set SLOWDASH_PROJECT)"
    )


def load_project(
    directory: Path,
    project_file: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Project:
    """Load and validate the project in ``directory``; raise `ProjectError` if it is unusable."""
    directory = Path(directory).resolve()
    file = directory / (project_file or PROJECT_FILE)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProjectError("project file not found", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProjectError(f"cannot read the project file: {exc}", file=file) from None

    data, lines, warnings = _parse_yaml(text, file)
    if not isinstance(data, dict) or not isinstance(data.get(ROOT_KEY), dict):
        raise ProjectError(
            f"the file must hold a mapping under the top-level key '{ROOT_KEY}:'",
            file=file,
            line=_line_of(lines, (ROOT_KEY,)) or 1,
        )
    for key in data:
        if key != ROOT_KEY:
            warnings.append(_where(file, lines, (key,)) + f"unknown top-level key '{key}' ignored")

    raw: dict[str, Any] = dict(data[ROOT_KEY])
    env = dict(os.environ if environ is None else environ)
    env.update(_take_environment(raw, file, lines, env))
    raw = _substitute_all(raw, env, file, lines, (ROOT_KEY,))
    normalized, origin = _normalize(raw, file, lines, warnings)

    try:
        config = ProjectConfig.model_validate(normalized)
    except pydantic.ValidationError as exc:
        raise _validation_error(exc, file, lines, origin) from None
    _warn_unknown(config, (), origin, file, lines, warnings)

    name = config.name or _default_name(directory)
    title = config.title or _title_from_name(name)
    return Project(
        directory=directory,
        file=file,
        config=config,
        name=name,
        title=title,
        warnings=tuple(warnings),
        _lines=lines,
    )


# ---------------------------------------------------------------------------------------------
# YAML with positions


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mapping keys are the text as written: ``OFF:`` is the key ``"OFF"``,
    not ``False`` (YAML 1.1 reads on/off/yes/no as booleans)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "a key must be a plain value, not a list or mapping",
                    key_node.start_mark,
                )
            mapping[key_node.value] = self.construct_object(value_node, deep=deep)
        return mapping


# Limits on the shape of a YAML document, checked before anything walks its data: deeper
# nesting, or aliases (&name / *name) that refer to a value containing them or that multiply
# into more values (the "billion laughs"), would crash or hang whatever reads it next.
MAX_YAML_DEPTH = 100
MAX_YAML_VALUES = 100_000


class YamlShapeError(ValueError):
    """A YAML document refused for its shape (`MAX_YAML_DEPTH`, `MAX_YAML_VALUES`, an alias
    inside what it refers to); ``line`` is 1-based, or None."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


def compose_checked(loader: yaml.SafeLoader) -> yaml.Node | None:
    """The loader's single document as nodes, refused with `YamlShapeError` if its shape
    breaks the limits above (every alias counted as the values it stands for)."""
    try:
        root = loader.get_single_node()
    except RecursionError:
        raise YamlShapeError(f"nested more than {MAX_YAML_DEPTH} levels deep", None) from None
    if root is None:
        return None
    values = 0
    on_path: set[int] = set()  # the nodes containing the one being looked at
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, leaving = stack.pop()
        if leaving:
            on_path.discard(id(node))
            continue
        line = node.start_mark.line + 1
        if id(node) in on_path:
            raise YamlShapeError("an alias (*name) refers to a value that contains it", line)
        values += 1
        if values > MAX_YAML_VALUES:
            raise YamlShapeError(
                f"more than {MAX_YAML_VALUES} values (aliases, *name, repeat what they refer to)",
                line,
            )
        if depth > MAX_YAML_DEPTH:
            raise YamlShapeError(f"nested more than {MAX_YAML_DEPTH} levels deep", line)
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            continue
        on_path.add(id(node))
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in reversed(children))
    return root


def safe_load_checked(text: str) -> Any:
    """``yaml.safe_load(text)``, but `YamlShapeError` for a document `compose_checked`
    refuses."""
    loader = yaml.SafeLoader(text)
    try:
        root = compose_checked(loader)
        return loader.construct_document(root) if root is not None else None
    finally:
        loader.dispose()


def _parse_yaml(text: str, file: Path) -> tuple[Any, dict[Path_, int], list[str]]:
    try:
        loader = _Loader(text)  # it checks every character first
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        reason = f"YAML error: character {chr(exc.character)!r} is not allowed ({exc.reason})"
        raise ProjectError(reason, file=file, line=line) from None
    try:
        node = compose_checked(loader)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = f"YAML syntax error: {exc.problem or exc.context}"
        raise ProjectError(reason, file=file, line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise ProjectError(f"YAML error: {exc}", file=file) from None
    except YamlShapeError as exc:
        raise ProjectError(exc.message, file=file, line=exc.line) from None
    finally:
        loader.dispose()
    lines: dict[Path_, int] = {}
    warnings: list[str] = []
    if node is not None:
        _collect_lines(node, (), lines, warnings, file)
    return data, lines, warnings


def _collect_lines(
    node: yaml.Node, path: Path_, lines: dict[Path_, int], warnings: list[str], file: Path
) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            key_path = (*path, key)
            if key in seen:
                warnings.append(
                    f"{file}:{key_node.start_mark.line + 1}: {_dotted(key_path)}: "
                    "duplicate key; the last one is used"
                )
            seen.add(key)
            lines[key_path] = key_node.start_mark.line + 1
            _collect_lines(value_node, key_path, lines, warnings, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _collect_lines(item, (*path, index), lines, warnings, file)


def _line_of(lines: Mapping[Path_, int], path: Path_) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _where(file: Path, lines: Mapping[Path_, int], path: Path_) -> str:
    line = _line_of(lines, path)
    return f"{file}:{line}: {_dotted(path)}: " if line else f"{file}: {_dotted(path)}: "


# ---------------------------------------------------------------------------------------------
# environment and substitution


def _take_environment(
    raw: dict[str, Any], file: Path, lines: Mapping[Path_, int], process_env: Mapping[str, str]
) -> dict[str, str]:
    entries = raw.pop("environment", None)
    path: Path_ = (ROOT_KEY, "environment")
    if entries is None:
        return {}
    pairs: list[tuple[str, Any, Path_]] = []
    if isinstance(entries, dict):
        pairs = [(str(k), v, (*path, str(k))) for k, v in entries.items()]
    elif isinstance(entries, list):
        for index, item in enumerate(entries):
            if not isinstance(item, str) or "=" not in item:
                raise ProjectError(
                    "an environment list entry must be a string NAME=VALUE",
                    file=file,
                    line=_line_of(lines, (*path, index)),
                    key=_dotted((*path, index)),
                )
            name, _, value = item.partition("=")
            pairs.append((name.strip(), value, (*path, index)))
    else:
        raise ProjectError(
            "must be a mapping or a list of NAME=VALUE strings",
            file=file,
            line=_line_of(lines, path),
            key=_dotted(path),
        )
    defined: dict[str, str] = {}
    for name, value, where in pairs:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ProjectError(
                f"bad variable name {name!r}",
                file=file,
                line=_line_of(lines, where),
                key=_dotted(where),
            )
        text = "" if value is None else str(value)
        try:
            defined[name] = substitute(text, {**process_env, **defined})
        except SubstitutionError as exc:
            raise ProjectError(
                str(exc), file=file, line=_line_of(lines, where), key=_dotted(where)
            ) from None
    return defined


def _substitute_all(
    value: Any, env: Mapping[str, str], file: Path, lines: Mapping[Path_, int], path: Path_
) -> Any:
    if isinstance(value, str):
        try:
            return substitute(value, env)
        except SubstitutionError as exc:
            raise ProjectError(
                str(exc), file=file, line=_line_of(lines, path), key=_dotted(path)
            ) from None
    if isinstance(value, dict):
        return {k: _substitute_all(v, env, file, lines, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_all(v, env, file, lines, (*path, i)) for i, v in enumerate(value)]
    return value


# ---------------------------------------------------------------------------------------------
# normalization, validation, unknown keys

# For a list section: (key as written in the file, whether it was a single mapping)
_Origin = dict[str, tuple[str, bool]]


def _normalize(
    raw: dict[str, Any], file: Path, lines: Mapping[Path_, int], warnings: list[str]
) -> tuple[dict[str, Any], _Origin]:
    out = dict(raw)
    origin: _Origin = {}
    for section, spellings in _LIST_SECTIONS.items():
        present = [s for s in spellings if s in out]
        warnings.extend(
            _where(file, lines, (ROOT_KEY, extra))
            + f"'{present[0]}' is also given; this one is ignored"
            for extra in present[1:]
        )
        values = [out.pop(s) for s in present]
        if not present:
            continue
        value, written = values[0], present[0]
        if value is None:
            out[section] = []
        elif isinstance(value, dict):
            out[section] = [value]
        elif isinstance(value, list):
            out[section] = value
        else:
            raise ProjectError(
                "must be a mapping or a list of mappings",
                file=file,
                line=_line_of(lines, (ROOT_KEY, written)),
                key=_dotted((ROOT_KEY, written)),
            )
        origin[section] = (written, isinstance(value, dict))
    if out.get("system") is None:
        out.pop("system", None)
    return out, origin


def _file_path(loc: tuple[str | int, ...], origin: _Origin) -> Path_:
    """Translate a location in the normalized data back to the path as written in the file."""
    if loc and loc[0] in origin:
        written, was_mapping = origin[str(loc[0])]
        rest = loc[2:] if was_mapping and len(loc) > 1 else loc[1:]
        return (ROOT_KEY, written, *rest)
    return (ROOT_KEY, *loc)


def _validation_error(
    exc: pydantic.ValidationError, file: Path, lines: Mapping[Path_, int], origin: _Origin
) -> ProjectError:
    problems = []
    for error in exc.errors(include_url=False):
        path = _file_path(tuple(error["loc"]), origin)
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = f"'{path[-1]}' is required"
            path = path[:-1]
        elif error["type"] != "value_error" and not isinstance(error.get("input"), dict | list):
            message += f" (got {error['input']!r})"
        problems.append((path, message))
    first_path, first_message = problems[0]
    reason = first_message
    if len(problems) > 1:
        reason += "".join(
            f"\n  {_where(file, lines, path)}{message}" for path, message in problems[1:]
        )
    return ProjectError(
        reason, file=file, line=_line_of(lines, first_path), key=_dotted(first_path)
    )


def _warn_unknown(
    model: pydantic.BaseModel,
    loc: tuple[str | int, ...],
    origin: _Origin,
    file: Path,
    lines: Mapping[Path_, int],
    warnings: list[str],
) -> None:
    extras = () if getattr(model, "extras_are_parameters", False) else model.model_extra or {}
    for key in extras:
        path = _file_path((*loc, key), origin)
        warnings.append(_where(file, lines, path) + f"unknown key '{key}' ignored")
    for name in type(model).model_fields:
        if name in FREE_FORM:
            continue
        value = getattr(model, name)
        if isinstance(value, pydantic.BaseModel):
            _warn_unknown(value, (*loc, name), origin, file, lines, warnings)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, pydantic.BaseModel):
                    _warn_unknown(item, (*loc, name, index), origin, file, lines, warnings)


# ---------------------------------------------------------------------------------------------
# defaults


def _default_name(directory: Path) -> str:
    if directory.name.lower() == "slowdash" and directory.parent.name:
        return directory.parent.name
    return directory.name or "SlowDash"


def _title_from_name(name: str) -> str:
    """``TestProj`` → ``Test Proj``, ``my_proj`` → ``my proj``, ``my-proj`` → ``my proj``."""
    if " " in name:
        return name
    if "_" in name:
        return name.replace("_", " ")
    if "-" in name:
        return name.replace("-", " ")
    return re.sub(r"(?<=.)(?=[A-Z][a-z])", " ", name)

"""Hypothesis against the project loader: YAML trees that mix the known keys with random
values, mangled versions of them, and random text. Loading either succeeds (its warnings
name the file) or raises `ProjectError` naming the file, and the line where it has one;
never another exception, and never a hang (aliases that nest or multiply)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fuzz.fuzzing import fuzz_settings
from hypothesis import assume, example, given
from hypothesis import strategies as st

from slowdash_trio._errors import ProjectError
from slowdash_trio._project import (
    MAX_YAML_DEPTH,
    MAX_YAML_VALUES,
    PROJECT_FILE,
    load_project,
    safe_load_checked,
)

KEYS = st.sampled_from(
    [
        "slowdash_project",
        "name",
        "title",
        "module",
        "modules",
        "task",
        "tasks",
        "data_source",
        "data_sources",
        "export",
        "system",
        "style",
        "authentication",
        "environment",
        "file",
        "parameters",
        "type",
        "url",
        "auto_load",
        "namespace",
        "prefix",
        "suffix",
        "data_suffix",
        "call_timeout",
        "restart",
        "policy",
        "max_restarts",
        "our_security_is_perfect",
        "max_request_body",
        "allowed_origins",
        "module_call_timeout",
        "user_threads",
        "file_mode",
        "key",
        "users",
        "role",
    ]
)
# no "$(": a command substitution would run the text as a shell command
TEXT = st.text(max_size=20).map(lambda text: text.replace("$(", "$ ("))
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    TEXT,
    st.sampled_from(
        [
            "x.py",
            "sqlite:///data.db",
            "${DEFINED}",
            "${UNDEFINED}",
            "${UNDEFINED:-fallback}",
            "${",
            "$$",
            "${1BAD}",
            "on-failure",
            "no",
            "http://localhost:1",
            "NAME=value",
            "$2b$12$" + "a" * 53,
        ]
    ),
)
TREES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.one_of(KEYS, TEXT), inner, max_size=5)
    ),
    max_leaves=25,
)
DOCUMENTS = st.one_of(
    st.dictionaries(KEYS, TREES, max_size=6).map(lambda doc: {"slowdash_project": doc}),
    st.dictionaries(st.one_of(KEYS, TEXT), TREES, max_size=3),
    TREES,
)


def dump(doc: Any, flow: bool) -> str:
    return yaml.safe_dump(doc, default_flow_style=flow, allow_unicode=True, sort_keys=False)


MANGLE = st.sampled_from(["", ":", "-", " ", "\t", "\n", "&a ", "*a", "[", "{", "!!", "'", '"'])
TEXTS = st.one_of(
    st.builds(dump, DOCUMENTS, st.booleans()),
    # a document with bits inserted or cut out
    st.builds(
        lambda text, at, insert, cut: text[:at] + insert + text[at + cut :],
        st.builds(dump, DOCUMENTS, st.booleans()),
        st.integers(min_value=0, max_value=400),
        MANGLE,
        st.integers(min_value=0, max_value=3),
    ),
    TEXT,
    st.text(max_size=200).map(lambda text: text.replace("$(", "$ (")),
)


def _strings(value: Any) -> list[str]:
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set):
            stack.extend(item)
    return found


def runs_no_command(text: str) -> bool:
    """Whether loading ``text`` cannot run a ``$(...)`` shell command."""
    try:
        data = safe_load_checked(text)
    except Exception:
        return "$" not in text
    return not any("$(" in value for value in _strings(data))


def check_load(directory: Path, text: str) -> None:
    file = directory / PROJECT_FILE
    file.write_text(text, encoding="utf-8")
    try:
        project = load_project(directory, environ={"DEFINED": "value"})
    except ProjectError as exc:
        error = exc
    else:
        assert all(warning.startswith(str(file)) for warning in project.warnings), project
        return
    message = str(error)
    assert message.startswith(str(file)) and error.reason, message
    if error.line is not None:
        assert message.startswith(f"{file}:{error.line}: "), message
        assert 1 <= error.line <= text.count("\n") + 2, (error.line, message)


@pytest.fixture(scope="module")
def project_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-project")


@fuzz_settings(max_examples=150)
@given(text=TEXTS)
@example(text="slowdash_project:\n  ? [a, b]\n  : c\n")
@example(text="slowdash_project:\n  module: {file: a.py, parameters: {? {x: 1}: y}}\n")
@example(text="slowdash_project:\n  name: &a [*a]\n")
@example(text="slowdash_project:\n  style: &a {x: *a}\n")
@example(text="slowdash_project:\n  style: " + "[" * 150 + "]" * 150 + "\n")
@example(text="slowdash_project:\n  module: {file: x.py, restart: {policy: .nan}}\n")
@example(text="slowdash_project:\n  system: {file_mode: 1e400, user_threads: .inf}\n")
@example(text="\ufeffslowdash_project: {}\n---\n")
def test_loading_succeeds_or_names_the_file(project_dir: Path, text: str) -> None:
    assume(runs_no_command(text))
    check_load(project_dir, text)


def billion_laughs(levels: int) -> str:
    lines = ["slowdash_project:", "  style:", "    l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"    l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]"
        for level in range(1, levels)
    ]
    return "\n".join(lines) + "\n"


def test_aliases_that_multiply_are_refused_at_once(tmp_path: Path) -> None:
    """Nine lines that would expand to 10**9 values (the loader used to walk them all)."""
    (tmp_path / PROJECT_FILE).write_text(billion_laughs(9))
    with pytest.raises(ProjectError, match=f"more than {MAX_YAML_VALUES} values") as caught:
        load_project(tmp_path)
    assert caught.value.line is not None and caught.value.line <= 11
    # sharing a value through an alias is fine
    (tmp_path / PROJECT_FILE).write_text(billion_laughs(3))
    assert len(load_project(tmp_path).config.style["l2"]) == 10  # type: ignore[index]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("slowdash_project:\n  name: &a [*a]\n", 2, "refers to a value that contains it"),
        ("slowdash_project:\n  ? [a, b]\n  : c\n", 2, "a key must be a plain value"),
        ("slowdash_project:\n  style: " + "[" * 200 + "]" * 200, 2, "nested more than 100"),
        ("slowdash_project:\n  style: " + "[" * 1500 + "]" * 1500, None, "nested more than"),
    ],
)
def test_recursion_and_odd_keys_are_project_errors(
    tmp_path: Path, text: str, line: int | None, fragment: str
) -> None:
    """These raised RecursionError or TypeError before."""
    assert MAX_YAML_DEPTH == 100
    (tmp_path / PROJECT_FILE).write_text(text)
    with pytest.raises(ProjectError, match=re.escape(fragment)) as caught:
        load_project(tmp_path)
    assert caught.value.line == line
    assert str(caught.value).startswith(str(tmp_path / PROJECT_FILE))


def test_a_command_substitution_is_never_generated() -> None:
    """The guard of the fuzz test itself: texts that would run a command are skipped."""
    assert not runs_no_command("slowdash_project: {name: $(true)}\n")
    assert not runs_no_command('slowdash_project: {name: "\\x24(true)"}\n')
    assert runs_no_command("slowdash_project: {name: '$ (true)'}\n")

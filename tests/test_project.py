"""Project discovery and SlowdashProject.yaml: substitution, normalization, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import write

from slowdash_trio._errors import ProjectError
from slowdash_trio._project import find_project_dir, load_project
from slowdash_trio._substitute import SubstitutionError, substitute


def load(tmp_path: Path, text: str, **environ: str) -> object:
    write(tmp_path / "SlowdashProject.yaml", text)
    return load_project(tmp_path, environ=environ)


# ---------------------------------------------------------------------------------------------
# substitution


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${A}", "alpha"),
        ("x-${A}-y", "x-alpha-y"),
        ("${MISSING-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${EMPTY:-dflt}", "dflt"),
        ("${MISSING:-}", ""),
        ("$$HOME", "$HOME"),
        ("cost $5", "cost $5"),
        ("$(echo hello)", "hello"),
        ("no dollars", "no dollars"),
    ],
)
def test_substitution(text: str, expected: str) -> None:
    assert substitute(text, {"A": "alpha", "EMPTY": ""}) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("${NOPE}", "${NOPE} is not defined"),
        ("${bad name}", "bad substitution"),
        ("$(exit 3)", "failed: exit status 3"),
    ],
)
def test_substitution_errors(text: str, fragment: str) -> None:
    with pytest.raises(SubstitutionError, match=fragment.replace("$", r"\$").replace("{", r"\{")):
        substitute(text, {})


# ---------------------------------------------------------------------------------------------
# loading


def test_a_full_project_file(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        """
        slowdash_project:
          name: WorldClock
          environment:
            OFF: "-9"
            DIR: ${BASE:-data}/clock
          module:
            file: worldclock.py
            parameters:
              timeoffset: ${OFF}
              where: ${DIR}
            data_suffix: worldclock
          style:
            theme: dark
          system:
            our_security_is_perfect: yes
            module_call_timeout: 2.5
        """,
    )
    config = project.config  # type: ignore[attr-defined]
    assert project.name == "WorldClock" and project.title == "World Clock"  # type: ignore[attr-defined]
    (module,) = config.module
    assert module.file == "worldclock.py"
    assert module.parameters == {
        "timeoffset": "-9",
        "where": "data/clock",
    }  # OFF is a name, not False
    assert module.data_suffix == "worldclock"
    assert config.style == {"theme": "dark"}
    assert config.system.our_security_is_perfect is True
    assert config.system.module_call_timeout == 2.5
    assert project.warnings == ()  # type: ignore[attr-defined]


def test_environment_list_and_process_environment(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        """
        slowdash_project:
          environment: ["HOST=${HOSTNAME_FROM_ENV}", "URL=http://${HOST}:1234"]
          title: ${URL}
        """,
        HOSTNAME_FROM_ENV="lab-pc",
    )
    assert project.title == "http://lab-pc:1234"  # type: ignore[attr-defined]


def test_sections_as_mapping_or_list_and_plural_aliases(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        """
        slowdash_project:
          modules:
            - file: a.py
            - file: b.py
              name: bee
          task: {name: t1, auto_load: true}
          data_sources: []
        """,
    )
    config = project.config  # type: ignore[attr-defined]
    assert [m.file for m in config.module] == ["a.py", "b.py"]
    assert config.module[1].name == "bee"
    assert [t.name for t in config.task] == ["t1"] and config.task[0].auto_load
    assert config.data_source == []


@pytest.mark.parametrize(
    ("name", "title"),
    [
        ("TestProj", "Test Proj"),
        ("my_proj", "my proj"),
        ("my-proj", "my proj"),
        ("Two Words", "Two Words"),
    ],
)
def test_title_defaults_from_name(tmp_path: Path, name: str, title: str) -> None:
    project = load(tmp_path, f"slowdash_project:\n  name: {name}\n")
    assert project.title == title  # type: ignore[attr-defined]


def test_name_defaults_to_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / "CryoLab"
    write(directory / "SlowdashProject.yaml", "slowdash_project: {}\n")
    assert load_project(directory).name == "CryoLab"
    inner = tmp_path / "Vacuum" / "SlowDash"
    write(inner / "SlowdashProject.yaml", "slowdash_project: {}\n")
    assert load_project(inner).name == "Vacuum"


def test_unknown_keys_are_warnings_with_lines(tmp_path: Path) -> None:
    project = load(
        tmp_path,
        """
        slowdash_project:
          name: x
          colour: blue
          module:
            file: a.py
            paramters: {}
          system:
            watchdog: 1
        other_top_level: 1
        """,
    )
    warnings = "\n".join(project.warnings)  # type: ignore[attr-defined]
    assert ":3: slowdash_project.colour: unknown key 'colour' ignored" in warnings
    assert ":6: slowdash_project.module.paramters: unknown key 'paramters' ignored" in warnings
    assert ":8: slowdash_project.system.watchdog: unknown key 'watchdog' ignored" in warnings
    assert ":9: other_top_level: unknown top-level key" in warnings


def test_duplicate_keys_are_warned(tmp_path: Path) -> None:
    project = load(tmp_path, "slowdash_project:\n  name: a\n  name: b\n")
    assert project.name == "b"  # type: ignore[attr-defined]
    assert any(":3: slowdash_project.name: duplicate key" in w for w in project.warnings)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "line", "key", "reason"),
    [
        ("slowdash_project:\n  name: [unclosed\n", 3, None, "YAML syntax error"),
        ("slowdash_project: just text\n", 1, None, "mapping under the top-level key"),
        ("name: x\n", 1, None, "mapping under the top-level key"),
        ("", 1, None, "mapping under the top-level key"),
        (
            "slowdash_project:\n  module:\n    file: clock.txt\n",
            3,
            "slowdash_project.module.file",
            "must end with .py",
        ),
        (
            "slowdash_project:\n  module:\n    - name: x\n",
            3,
            "slowdash_project.module[0]",
            "'file' is required",
        ),
        ("slowdash_project:\n  module: 5\n", 2, "slowdash_project.module", "mapping or a list"),
        (
            "slowdash_project:\n  system:\n    module_call_timeout: -1\n",
            3,
            "slowdash_project.system.module_call_timeout",
            "greater than 0",
        ),
        (
            "slowdash_project:\n  module:\n    file: a.py\n    enabled_for_commandline: maybe\n",
            4,
            "slowdash_project.module.enabled_for_commandline",
            "valid boolean",
        ),
        (
            "slowdash_project:\n  title: ${UNDEFINED}\n",
            2,
            "slowdash_project.title",
            "${UNDEFINED} is not defined",
        ),
        (
            "slowdash_project:\n  environment: [NOEQUALS]\n",
            2,
            "slowdash_project.environment[0]",
            "NAME=VALUE",
        ),
        (
            "slowdash_project:\n  data_source:\n    parameters: {}\n",
            2,
            "slowdash_project.data_source",
            "'url' or 'type'",
        ),
    ],
)
def test_bad_files_name_file_line_key_and_reason(
    tmp_path: Path, text: str, line: int, key: str | None, reason: str
) -> None:
    with pytest.raises(ProjectError) as info:
        load(tmp_path, text)
    error = info.value
    assert error.file == tmp_path / "SlowdashProject.yaml"
    assert error.line == line
    assert error.key == key
    assert reason in error.reason
    assert str(error).startswith(f"{tmp_path / 'SlowdashProject.yaml'}:{line}: ")


def test_several_errors_are_all_listed(tmp_path: Path) -> None:
    with pytest.raises(ProjectError) as info:
        load(
            tmp_path,
            "slowdash_project:\n  module:\n    - file: a.txt\n    - {}\n"
            "  system: {user_threads: x}\n",
        )
    message = str(info.value)
    assert "must end with .py" in message
    assert ":4: slowdash_project.module[1]: 'file' is required" in message
    assert ":5: slowdash_project.system.user_threads" in message


def test_missing_or_unreadable_project_file(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="project file not found"):
        load_project(tmp_path)
    write(tmp_path / "SlowdashProject.yaml", "")
    (tmp_path / "SlowdashProject.yaml").write_bytes(b"slowdash_project:\n  name: \xff\xfe\n")
    with pytest.raises(ProjectError, match="cannot read"):
        load_project(tmp_path)


# ---------------------------------------------------------------------------------------------
# discovery


def test_discovery_explicit_environment_and_upwards(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    deep = project / "config" / "deeper"
    deep.mkdir(parents=True)
    write(project / "SlowdashProject.yaml", "slowdash_project: {}\n")
    other = tmp_path / "other"
    other.mkdir()

    assert find_project_dir(other, environ={}) == other.resolve()  # explicit: no search
    assert find_project_dir(environ={}, cwd=deep) == project.resolve()
    assert find_project_dir(environ={"SLOWDASH_PROJECT": str(deep)}, cwd=other) == project.resolve()
    with pytest.raises(ProjectError, match=r"no SlowdashProject\.yaml in"):
        find_project_dir(environ={}, cwd=other)
    with pytest.raises(ProjectError, match="not a directory"):
        find_project_dir(tmp_path / "absent", environ={})

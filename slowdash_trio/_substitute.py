"""Variable substitution in project-file strings (pure code, docker-compose-like).

``${VAR}``, ``${VAR-DEFAULT}`` (default when undefined), ``${VAR:-DEFAULT}`` (default when
undefined or empty), ``$(COMMAND)`` (a shell command's output, one trailing newline removed)
and ``$$`` (a literal ``$``). Any other ``$`` is kept as it is.

Unlike the original, an undefined variable without a default and a failing command are
errors: a literal ``${DB_PASSWORD}`` silently passed on is a bug waiting to happen.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping

_TOKEN = re.compile(r"\$(?:(?P<dollar>\$)|\{(?P<braced>[^}]*)\}|\((?P<command>[^)]*)\))")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>.*))?$", re.S)

COMMAND_TIMEOUT = 10.0


class SubstitutionError(ValueError):
    """A ``${...}`` or ``$(...)`` could not be expanded."""


def run_shell_command(command: str) -> str:
    """Run ``command`` in a shell; return its output without one trailing newline."""
    try:
        done = subprocess.run(
            command,
            shell=True,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise SubstitutionError(f"$({command}) did not finish within {COMMAND_TIMEOUT} s") from exc
    if done.returncode != 0:
        detail = done.stderr.strip() or f"exit status {done.returncode}"
        raise SubstitutionError(f"$({command}) failed: {detail}")
    out = done.stdout
    return out[:-1] if out.endswith("\n") else out


def substitute(
    text: str,
    variables: Mapping[str, str],
    *,
    run_command: Callable[[str], str] = run_shell_command,
) -> str:
    """Expand the substitutions in ``text``; ``variables`` is looked up first, then nothing else.

    Callers pass the project's ``environment`` merged over the process environment.
    """
    if "$" not in text:
        return text

    def expand(match: re.Match[str]) -> str:
        if match.group("dollar") is not None:
            return "$"
        command = match.group("command")
        if command is not None:
            return run_command(command)
        braced = match.group("braced")
        parsed = _BRACED.match(braced)
        if parsed is None:
            raise SubstitutionError(f"bad substitution ${{{braced}}}")
        name, op, default = parsed.group("name", "op", "default")
        value = variables.get(name)
        if op == ":-" and not value:
            return default
        if op == "-" and value is None:
            return default
        if value is None:
            raise SubstitutionError(
                f"${{{name}}} is not defined (define it under 'environment:' or in the "
                f"process environment, or give a default: ${{{name}:-default}})"
            )
        return value

    return _TOKEN.sub(expand, text)

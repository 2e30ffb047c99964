"""Command line: ``slowdash-trio serve [...]`` or ``slowdash-trio QUERY [...]``.

Exit status: 0 answered (or served and stopped), 1 the query was answered with an error
(message on stderr), 2 bad arguments or an unusable project.
"""

from __future__ import annotations

import argparse
import functools
import gc
import getpass
import ipaddress
import logging
import os
import signal
import ssl
import sys
from collections.abc import Sequence

import trio

from ._auth import hash_password
from ._dispatch import render
from ._errors import ProjectError
from ._project import Project, find_project_dir, load_project
from ._server import DEFAULT_HOST, DEFAULT_PORT, Server
from ._version import __version__

logger = logging.getLogger("slowdash_trio")

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

EPILOG = """\
examples:
  slowdash-trio serve                         serve the project found from the current directory
  slowdash-trio serve --port 8080 --project-dir examples/worldclock
  slowdash-trio channels                      print /api/channels and exit
  slowdash-trio "data/WorldClock?length=60" --indent=4
  slowdash-trio config | ping
  slowdash-trio serve --host 0.0.0.0 --ssl-certfile cert.pem --ssl-keyfile key.pem
  slowdash-trio generate-key USER             a bcrypt key for 'authentication:' (asks the password)

A query loads and initializes the user modules (top level, _setup, _initialize), answers
GET /api/QUERY, then finalizes them; it does not start _run or _loop.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slowdash-trio",
        usage="%(prog)s serve [options]  |  %(prog)s QUERY [--indent N] [options]",
        description="SlowDash on Trio: serve a project's dashboard, or answer one API query.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "command",
        nargs="?",
        help="'serve', or an API query without the /api/ prefix (channels, config, ping, "
        "data/CH?length=60)",
    )
    parser.add_argument("-p", "--port", type=int, help=f"port to serve on (default {DEFAULT_PORT})")
    parser.add_argument("--host", help=f"address to bind (default {DEFAULT_HOST})")
    parser.add_argument(
        "--project-dir",
        help="project directory (default: search from the "
        "current directory, or $SLOWDASH_PROJECT, upwards)",
    )
    parser.add_argument("--project-file", help="project file name (default SlowdashProject.yaml)")
    parser.add_argument(
        "--logging",
        choices=["default", *LEVELS],
        default="default",
        help="log level (default: warning for queries, info when serving)",
    )
    parser.add_argument("--ssl-certfile", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--ssl-keyfile", help="... and this private key (PEM)")
    parser.add_argument("-i", "--indent", type=int, help="indent the JSON output of a query")
    parser.add_argument("--version", action="version", version=f"slowdash-trio {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["generate-key"]:
        return generate_key(arguments[1:])
    parser = _parser()
    args = parser.parse_args(arguments)
    serving = args.command == "serve" or (args.command is None and args.port is not None)
    if args.command is None and not serving:
        parser.print_help(sys.stderr)
        return 2
    if not serving and (args.port is not None or args.host is not None):
        parser.error("--port and --host go with 'serve'")
    if args.port is not None and not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port}: not a port number")
    tls = _tls_files(parser, args) if serving else None
    _setup_logging(args.logging, serving)

    try:
        project = load_project(find_project_dir(args.project_dir), args.project_file)
        for warning in project.warnings:
            logger.warning("%s", warning)
        _enter_project(project)
        server = Server(project, command_mode=not serving)  # checks the data sources
    except ProjectError as exc:
        print(f"slowdash-trio: {exc}", file=sys.stderr)
        return 2

    if serving:
        host = args.host or DEFAULT_HOST
        port = DEFAULT_PORT if args.port is None else args.port
        _warn_exposure(host, authenticated=server.auth is not None, tls=tls is not None)
        scheme = "https" if tls else "http"
        os.environ["SLOWDASH_URL"] = f"{scheme}://localhost:{port}"
        trio.run(_serve, server, host, port, tls)
        return 0
    return trio.run(_query, server, args.command, args.indent)


def _enter_project(project: Project) -> None:
    """Run in the project directory, with it and its config/ importable, as the original does:
    user code opens ``sqlite:///data.db`` relative to the project and imports its helpers."""
    os.chdir(project.directory)
    for path in (project.config_dir, project.directory):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


def _tls_files(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[str, str] | None:
    """``(certfile, keyfile)``, checked now: a bad pair stops the start with a clear error."""
    certfile, keyfile = args.ssl_certfile, args.ssl_keyfile
    if certfile is None and keyfile is None:
        return None
    if certfile is None or keyfile is None:
        parser.error("--ssl-certfile and --ssl-keyfile go together")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        parser.error(f"--ssl-certfile {certfile} / --ssl-keyfile {keyfile}: {exc}")
    return os.path.abspath(certfile), os.path.abspath(keyfile)


def _warn_exposure(host: str, *, authenticated: bool, tls: bool) -> None:
    """Warn when the server can be reached from other machines without protection."""
    if _is_loopback(host):
        return
    if not authenticated:
        logger.warning(
            "serving on %s, reachable from other machines, WITHOUT AUTHENTICATION: anyone who "
            "can reach this port can send commands to your devices. Add 'authentication:' to "
            "the project (slowdash-trio generate-key USER; see docs/security.md), or bind "
            "127.0.0.1.",
            host,
        )
    elif not tls:
        logger.warning(
            "serving on %s without TLS: passwords and data cross the network readable by "
            "anyone on the path (use --ssl-certfile/--ssl-keyfile or a TLS reverse proxy)",
            host,
        )


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may well be reachable


def generate_key(argv: Sequence[str]) -> int:
    """``generate-key USER``: print ``USER:BCRYPT_HASH`` for ``authentication:``.

    The password is asked twice without echo on a terminal; otherwise it is the first line
    of standard input (for scripts).
    """
    parser = argparse.ArgumentParser(
        prog="slowdash-trio generate-key",
        description="Print USER:BCRYPT_HASH for 'authentication:' in SlowdashProject.yaml.",
    )
    parser.add_argument("user", help="the user name (no ':')")
    args = parser.parse_args(argv)
    if not args.user or ":" in args.user:
        parser.error(f"user {args.user!r}: a name without ':'")
    if sys.stdin.isatty():
        password = getpass.getpass(f"Password for {args.user}: ")
        if getpass.getpass("Again: ") != password:
            print("slowdash-trio: the passwords differ; nothing generated", file=sys.stderr)
            return 1
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        print(f"slowdash-trio: {exc}; nothing generated", file=sys.stderr)
        return 1
    print(f"{args.user}:{hashed}")
    print(
        "In SlowdashProject.yaml (docs/security.md):\n"
        "  authentication:\n"
        "    type: Basic\n"
        f'    key: "{args.user}:{hashed}"      # the original\'s form: role admin\n'
        "  or, with a role (viewer, operator or admin):\n"
        "    users:\n"
        f'      {args.user}: {{role: operator, key: "{hashed}"}}',
        file=sys.stderr,
    )
    return 0


async def _serve(server: Server, host: str, port: int, tls: tuple[str, str] | None) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, server, nursery.cancel_scope)
        async with trio.open_nursery() as serving:
            await serving.start(functools.partial(server.serve, host=host, port=port, tls=tls))
            # the start-up objects live as long as the process: keep the collector off them
            # (full collections over them paused WebSocket streaming for 40-90 ms)
            gc.collect()
            gc.freeze()
        # serve() has returned: the web server and the modules have stopped
        nursery.cancel_scope.cancel()


async def _watch_signals(server: Server, root: trio.CancelScope) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        count = 0
        async for signum in signals:
            count += 1
            name = signal.Signals(signum).name
            if count == 1:
                logger.warning("%s: shutting down (send it again to stop at once)", name)
                server.request_shutdown()
            elif count == 2:
                logger.warning("%s: stopping now, without waiting for user code", name)
                root.cancel()
            else:
                logger.error("%s: exiting immediately", name)
                os._exit(1)


async def _query(server: Server, query: str, indent: int | None) -> int:
    response = await server.query(query)
    status, content_type, body = render(response, indent)
    if status >= 400:
        content = response.content
        message = content.get("message") if isinstance(content, dict) else None
        print(
            f"slowdash-trio: {query}: HTTP {status}: {message or body.decode(errors='replace')}",
            file=sys.stderr,
        )
        return 1
    if content_type is not None and (content_type.startswith(("application/json", "text/"))):
        sys.stdout.write(body.decode("utf-8", errors="replace") + "\n")
    else:
        sys.stdout.buffer.write(body)
    sys.stdout.flush()
    return 0


def _setup_logging(level: str, serving: bool) -> None:
    if level == "default":
        numeric = logging.INFO if serving else logging.WARNING
    else:
        numeric = LEVELS[level]
    logging.basicConfig(
        level=numeric,
        format="%(asctime)s %(levelname)s: %(name)s: %(message)s",
        datefmt="%y-%m-%d %H:%M:%S",
        stream=sys.stderr,
    )

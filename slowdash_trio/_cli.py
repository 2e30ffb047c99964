"""Command line: ``slowdash-trio serve [...]`` or ``slowdash-trio QUERY [...]``.

Exit status: 0 answered (or served and stopped), 1 the query was answered with an error
(message on stderr), 2 bad arguments or an unusable project.
"""

from __future__ import annotations

import argparse
import functools
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence

import trio

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
    parser.add_argument("-i", "--indent", type=int, help="indent the JSON output of a query")
    parser.add_argument("--version", action="version", version=f"slowdash-trio {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    serving = args.command == "serve" or (args.command is None and args.port is not None)
    if args.command is None and not serving:
        parser.print_help(sys.stderr)
        return 2
    if not serving and (args.port is not None or args.host is not None):
        parser.error("--port and --host go with 'serve'")
    if args.port is not None and not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port}: not a port number")
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
        port = DEFAULT_PORT if args.port is None else args.port
        os.environ["SLOWDASH_URL"] = f"http://localhost:{port}"
        trio.run(_serve, server, args.host or DEFAULT_HOST, port)
        return 0
    return trio.run(_query, server, args.command, args.indent)


def _enter_project(project: Project) -> None:
    """Run in the project directory, with it and its config/ importable, as the original does:
    user code opens ``sqlite:///data.db`` relative to the project and imports its helpers."""
    os.chdir(project.directory)
    for path in (project.config_dir, project.directory):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


async def _serve(server: Server, host: str, port: int) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, server, nursery.cancel_scope)
        async with trio.open_nursery() as serving:
            await serving.start(functools.partial(server.serve, host=host, port=port))
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

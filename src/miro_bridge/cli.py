"""The `miro-bridge` command: `serve` runs the service, `sandbox` runs the Miro simulator."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

import structlog
import trio

from miro_bridge import maintenance, service, workers
from miro_bridge.config import Settings, load_settings
from miro_bridge.errors import ConfigError, Escalation, StartupError
from miro_bridge.logs import configure_logging
from miro_bridge.sandbox import Sandbox, SandboxConfig
from miro_bridge.sandbox import serve as sandbox_serve
from miro_bridge.store.crypto import UndecryptableToken

log = structlog.get_logger("miro_bridge")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="miro-bridge", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the service")
    serve.add_argument("--host", help="interface to bind (env HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (env PORT, default 8000)")
    serve.add_argument(
        "--sandbox",
        action="store_true",
        help="talk to the built-in Miro simulator instead of Miro; no credentials needed",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes serving the port (more than 1 needs a PostgreSQL MIRO_DATABASE_URL)",
    )
    # How `--workers` starts each worker: not for people.
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    commands.add_parser(
        "rotate-keys",
        help="re-encrypt every stored token with the first MIRO_ENCRYPTION_KEY",
    )
    sandbox = commands.add_parser("sandbox", help="run the Miro simulator alone")
    sandbox.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=9100, help="port (default 9100)")
    sandbox.add_argument("--client-id", default="sandbox-client", help="the one app it knows")
    sandbox.add_argument("--client-secret", default="sandbox-secret", help="that app's secret")
    sandbox.add_argument(
        "--credits-per-minute",
        type=int,
        default=100_000,
        help="each user's REST credit budget per minute (default 100000, as Miro)",
    )
    sandbox.add_argument(
        "--credit-window-seconds",
        type=float,
        default=60.0,
        help="how long a credit window lasts (default 60, as Miro; shorter for tests)",
    )
    return parser


async def _watch_signals(shutdown: trio.Event) -> None:
    """The first SIGTERM/SIGINT asks for a graceful stop; the second one forces it."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if shutdown.is_set():
                raise KeyboardInterrupt
            log.info("service.stopping", signal=signal.Signals(signum).name)
            shutdown.set()


async def _serve(settings: Settings, reuse_port: bool, ready_fd: int | None) -> None:
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, shutdown)

        async def serve_then_stop(*, task_status: trio.TaskStatus[str]) -> None:
            await service.run(settings, shutdown, reuse_port=reuse_port, task_status=task_status)
            nursery.cancel_scope.cancel()  # the signal watcher

        await nursery.start(serve_then_stop)
        if ready_fd is not None:  # a worker of `serve --workers`: its parent waits for this
            workers.tell_ready(ready_fd)


async def _serve_sandbox(args: argparse.Namespace) -> None:
    config = SandboxConfig(
        client_id=args.client_id,
        client_secret=args.client_secret,
        credits_per_minute=args.credits_per_minute,
        credit_window_seconds=args.credit_window_seconds,
    )
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, shutdown)
        url = await nursery.start(sandbox_serve, Sandbox(config), args.host, args.port)
        log.info("sandbox.serving", url=url, client_id=config.client_id)
        await shutdown.wait()
        nursery.cancel_scope.cancel()


def serve(args: argparse.Namespace) -> int:
    """Load settings, then run until SIGTERM/SIGINT; the process exit code."""
    overrides = {
        name: str(value)
        for name, value in (("HOST", args.host), ("PORT", args.port))
        if value is not None
    }
    try:
        settings = load_settings(os.environ, sandbox=args.sandbox, overrides=overrides)
    except ConfigError as error:
        print(f"miro-bridge: {error}", file=sys.stderr)
        return 2
    if args.workers > 1:
        refused = _refuse_workers(settings, args.workers)
        if refused:
            print(f"miro-bridge: {refused}", file=sys.stderr)
            return 2
        return workers.serve_workers(settings, args.workers)
    code = 0
    try:
        trio.run(_serve, settings, args.reuse_port, args.ready_fd)
    except* StartupError as group:
        print(f"miro-bridge: {_first(group)}", file=sys.stderr)
        code = 2
    except* Escalation as group:
        log.critical("service.escalated", reason=str(group.exceptions[0]))
        code = 1
    except* KeyboardInterrupt:
        log.warning("service.forced_stop")
        code = 130
    return code


def _refuse_workers(settings: Settings, count: int) -> str | None:
    """Why `--workers count` cannot run with these settings, if it cannot."""
    if settings.sandbox:
        return (
            "--workers cannot share the built-in sandbox (it lives in one process): run "
            "`miro-bridge sandbox` and point MIRO_API_BASE_URL at it"
        )
    if not settings.database_is_shared:
        return (
            f"--workers {count} needs a database several processes share: set "
            "MIRO_DATABASE_URL=postgresql://... (SQLite serves one process)"
        )
    return None


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception of a (possibly nested) exception group."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def rotate_keys_command() -> int:
    """`miro-bridge rotate-keys`: the exit code."""
    try:
        settings = load_settings(os.environ)
    except ConfigError as error:
        print(f"miro-bridge: {error}", file=sys.stderr)
        return 2
    if not settings.encryption_keys:
        print("miro-bridge: rotate-keys needs MIRO_ENCRYPTION_KEY", file=sys.stderr)
        return 2
    code = 0
    try:
        count = trio.run(maintenance.rotate_keys, settings)
        print(f"re-encrypted the tokens of {count} users with the first key")
    except* StartupError as group:
        print(f"miro-bridge: {_first(group)}", file=sys.stderr)
        code = 2
    except* UndecryptableToken as group:
        print(f"miro-bridge: nothing changed: {group.exceptions[0]}", file=sys.stderr)
        code = 1
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `miro-bridge` console script."""
    args = _parser().parse_args(argv)
    configure_logging()
    if args.command == "serve":
        return serve(args)
    if args.command == "rotate-keys":
        return rotate_keys_command()
    if args.command == "sandbox":
        trio.run(_serve_sandbox, args)
        return 0
    raise AssertionError(args.command)  # argparse only accepts the commands above


if __name__ == "__main__":
    sys.exit(main())

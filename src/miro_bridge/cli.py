"""The `miro-bridge` command: `serve` runs the service, `sandbox` runs the Miro simulator."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

import structlog
import trio

from miro_bridge import maintenance, service
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
    return parser


async def _watch_signals(shutdown: trio.Event) -> None:
    """The first SIGTERM/SIGINT asks for a graceful stop; the second one forces it."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            if shutdown.is_set():
                raise KeyboardInterrupt
            log.info("service.stopping", signal=signal.Signals(signum).name)
            shutdown.set()


async def _serve(settings: Settings) -> None:
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_signals, shutdown)
        await service.run(settings, shutdown)
        nursery.cancel_scope.cancel()


async def _serve_sandbox(args: argparse.Namespace) -> None:
    config = SandboxConfig(
        client_id=args.client_id,
        client_secret=args.client_secret,
        credits_per_minute=args.credits_per_minute,
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
    code = 0
    try:
        trio.run(_serve, settings)
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

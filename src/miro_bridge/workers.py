"""`miro-bridge serve --workers N`: N processes serving one port, sharing one database.

Only with a database several processes can share (PostgreSQL): everything that must be
single (job leases, token refreshes, idempotency claims, credit budgets) is coordinated there.

The parent reserves the port (bound with `SO_REUSEPORT`, never listening), then starts N
copies of `miro-bridge serve` that bind it with `SO_REUSEPORT` too: the kernel spreads the
connections across them. Each worker says on a pipe when it serves; the parent logs
`service.serving` once all of them do. The first SIGTERM or SIGINT is passed to every worker,
each stops as `serve` does, and the parent exits 0 once all have (1 if one of them failed); a
second signal kills them. A worker that dies on its own is started again a second later, while
the others keep serving.
"""

from __future__ import annotations

import os
import signal
import sys

import structlog
import trio

from miro_bridge.config import Settings, base_url
from miro_bridge.http.serving import listen

log = structlog.get_logger("miro_bridge")

#: How long a worker that died on its own waits to be started again.
RESTART_SECONDS = 1.0


def worker_command(host: str, port: int, ready_fd: int) -> list[str]:
    """The command line of one worker: `serve` on the reserved port, telling `ready_fd`."""
    return [
        sys.executable,
        "-m",
        "miro_bridge",
        "serve",
        "--host",
        host,
        "--port",
        str(port),
        "--reuse-port",
        "--ready-fd",
        str(ready_fd),
    ]


class _Workers:
    """The worker processes and what the parent knows of them."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.processes: dict[int, trio.Process] = {}
        self.stopping = False
        self.failed = False

    async def keep_running(self, number: int, *, task_status: trio.TaskStatus[None]) -> None:
        """Run worker `number`, and again whenever it dies on its own; ready once it serves."""
        ready = False
        while True:
            read_end, write_end = os.pipe()
            try:
                process = await trio.lowlevel.open_process(
                    worker_command(self.host, self.port, write_end), pass_fds=(write_end,)
                )
            finally:
                os.close(write_end)
            self.processes[number] = process
            async with trio.lowlevel.FdStream(read_end) as pipe:
                said = await pipe.receive_some(1)  # b"" if it died before serving
            if said and not ready:
                ready = True
                task_status.started()
            code = await process.wait()
            if self.stopping:
                self.failed |= code != 0
                return
            log.error("worker.died", worker=number, pid=process.pid, code=code)
            await trio.sleep(RESTART_SECONDS)

    def signal_all(self, signum: int) -> None:
        for process in self.processes.values():
            if process.returncode is None:
                process.send_signal(signum)


async def _run(settings: Settings, count: int) -> int:
    reserved = listen(settings.host, settings.port, reuse_port=True)  # bound, never listening
    workers = _Workers(settings.host, reserved.getsockname()[1])
    with reserved, trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            for number in range(count):
                await nursery.start(workers.keep_running, number)
            log.info(
                "service.serving",
                url=base_url(settings.host, workers.port),
                workers=count,
                pids=[process.pid for process in workers.processes.values()],
            )
            async for signum in signals:
                if workers.stopping:
                    log.warning("service.forced_stop")
                    workers.signal_all(signal.SIGKILL)
                    return 130
                log.info("service.stopping", signal=signal.Signals(signum).name, workers=count)
                workers.stopping = True
                workers.signal_all(signal.SIGTERM)
                nursery.start_soon(_finish_when_stopped, nursery, workers)
    return 1 if workers.failed else 0


async def _finish_when_stopped(nursery: trio.Nursery, workers: _Workers) -> None:
    for process in workers.processes.values():
        await process.wait()
    log.info("service.stopped")
    nursery.cancel_scope.cancel()


def serve_workers(settings: Settings, count: int) -> int:
    """Run `count` workers until SIGTERM/SIGINT; the process exit code."""
    return trio.run(_run, settings, count)


def tell_ready(fd: int) -> None:
    """Say on the parent's pipe that this worker serves."""
    os.write(fd, b"1")
    os.close(fd)

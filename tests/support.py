"""What tests share besides fixtures: test users, the clock, running parts, Miro's description,
and a raw HTTP/1.1 client."""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import os
import queue
import secrets
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import attrs
import httpx
import jwt
import psycopg
import trio
import trio.lowlevel
from openapi_schema_validator import OAS30Validator
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

from miro_bridge.actors.system import ActorSystem
from miro_bridge.config import Settings
from miro_bridge.sandbox import Sandbox, serve_environment

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

USER = "3458764500000000001"
OTHER_USER = "3458764500000000077"
MIRO_SPEC_PATH = Path(__file__).parent / "sandbox" / "data" / "openapi.validating.json"

#: What the client sends for every diagram node it draws from its templates (API.md).
CLIENT_SHAPE: dict[str, Any] = {
    "shape": "round_rectangle",
    "x": 0,
    "y": 0,
    "width": 160,
    "height": 100,
    "rotation": 0,
    "text": "Alpha",
    "style": {
        "fillColor": "#e2e3e4",
        "fontFamily": "Arial",
        "borderColor": "#939598",
        "borderWidth": 2,
    },
}


@attrs.define
class ManualClock:
    """Epoch seconds that move only when a test says so; shared by the bridge and the sandbox.

    Starts at the real time, so that what is checked against the real clock (a JWT's `exp`,
    by PyJWT) agrees with it.
    """

    now: float = attrs.field(factory=time.time)
    _moved: trio.Event = attrs.field(factory=trio.Event, repr=False)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self._move_to(self.now + seconds)

    def _move_to(self, moment: float) -> None:
        self.now = max(self.now, moment)
        self._moved.set()
        self._moved = trio.Event()

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock: let other tasks run once, then move the clock on.

        Several sleepers each move it to their own wake-up time (never backwards), so waits
        for Miro's rate-limit window take no real time.
        """
        wake_at = self.now + seconds
        await trio.lowlevel.checkpoint()
        self._move_to(wake_at)

    async def wait(self, seconds: float) -> None:
        """Wait until something else moves this clock `seconds` on (`advance`, a `sleep`).

        For loops that run every so often (the periodic sync): the test decides when.
        """
        wake_at = self.now + seconds
        while self.now < wake_at:
            await self._moved.wait()


@attrs.define
class Miro:
    """A sandbox Miro served on loopback, and its URL."""

    sandbox: Sandbox
    url: str


def id_token(secret: str = "sandbox-secret", **claims: Any) -> str:
    """A Miro app ID token of the sandbox app for `USER`; `claims` change or (None) drop claims."""
    now = int(time.time())  # PyJWT checks exp/iat against the real clock
    body = {"iss": "miro", "sub": "sandbox-client", "user": USER, "team": "1", "iat": now}
    body["exp"] = now + 3600
    body.update(claims)
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, "HS256")


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a Miro access token."""
    return {"Authorization": f"Bearer {token}"}


@attrs.define
class Bridge:
    """A running miro-bridge: its URL, settings, actors and an HTTP client."""

    url: str
    settings: Settings
    actors: ActorSystem
    client: httpx.AsyncClient


StartBridge = Callable[..., Awaitable[Bridge]]


async def wait_for_job(bridge: Bridge, job_id: str, user: str = USER) -> dict[str, Any]:
    """Poll the job until it has finished; its last status."""
    with trio.fail_after(60):
        while True:
            response = await bridge.client.get(f"/api/jobs/{job_id}", headers={"X-User-Id": user})
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            if body["status"] in ("done", "failed", "partial"):
                return body
            await trio.sleep(0.01)


async def connect(bridge: Bridge, miro: Miro, user: str = USER) -> str:
    """Give the bridge a Miro token pair for `user`, as the client's /api/users would."""
    issued = miro.sandbox.issue_tokens(user)
    response = await bridge.client.post(
        "/api/users",
        json={
            "id": user,
            "name": "",
            "access_token": issued["access_token"],
            "refresh_token": issued["refresh_token"],
            "expires_at": "",
        },
    )
    assert response.status_code in (200, 201), response.text
    return str(issued["access_token"])


async def answer_lifespan(receive: Receive, send: Send) -> None:
    """Play a bare test app's part in the ASGI lifespan: ready at once, stopped when told."""
    while (await receive())["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.complete"})
    await send({"type": "lifespan.shutdown.complete"})


async def read_body(receive: Receive) -> bytes:
    """The whole body of the request a bare test app is answering."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


@attrs.frozen
class RawResponse:
    """An HTTP/1.1 response as it came over the wire (header names lower-case)."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request_head(method: str, path: str, *headers: tuple[str, str]) -> bytes:
    """The head of an HTTP/1.1 request to a loopback server."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{n}: {v}" for n, v in headers)]
    return "\r\n".join([*lines, "", ""]).encode()


def chunked(body: bytes, size: int = 65536) -> bytes:
    """`body` in the chunked transfer coding."""
    parts = [
        b"%x\r\n%s\r\n" % (len(body[i : i + size]), body[i : i + size])
        for i in range(0, len(body), size)
    ]
    return b"".join([*parts, b"0\r\n\r\n"])


@attrs.define
class RawConnection:
    """One client connection speaking HTTP/1.1 by hand, to see what a library would hide:
    whether a kept-alive connection still answers, how and when the server closes it.

    `send_buffer` caps the kernel's send buffer: on loopback its default grows to megabytes,
    so a whole large body fits in flight and a reset the server causes goes unseen; over a
    real network it would not.
    """

    stream: trio.SocketStream
    buffer: bytes = b""

    @classmethod
    async def open(cls, url: str, *, send_buffer: int | None = None) -> RawConnection:
        host, _, port = url.removeprefix("http://").rpartition(":")
        sock = trio.socket.socket()
        if send_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        await sock.connect((host, int(port)))
        return cls(trio.SocketStream(sock))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _more(self) -> bytes:
        data = await self.stream.receive_some(65536)
        if not data:
            raise EOFError("the server closed the connection")
        return data

    async def response(self) -> RawResponse:
        """The next response (its body by `Content-Length`); `EOFError` if the server closed."""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += await self._more()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self.buffer += await self._more()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return RawResponse(int(status_line.split()[1]), headers, body)

    async def closed_by_server(self) -> bool:
        """Whether the server closes the connection (nothing more arrives before the end)."""
        try:
            return await self.stream.receive_some(65536) == b""
        except trio.BrokenResourceError:  # a reset
            return False

    async def aclose(self) -> None:
        await self.stream.aclose()


@functools.cache
def miro_spec() -> dict[str, Any]:
    """Miro's REST description (the project's copy), parsed once: it is large."""
    loaded: dict[str, Any] = json.loads(MIRO_SPEC_PATH.read_text())
    return loaded


def miro_schema(name: str) -> dict[str, Any]:
    """The schema `components.schemas[name]` of Miro's description."""
    schema: dict[str, Any] = miro_spec()["components"]["schemas"][name]
    return schema


@functools.cache
def _validator(name: str) -> OAS30Validator:
    root = {"$ref": f"#/components/schemas/{name}", "components": miro_spec()["components"]}
    return OAS30Validator(root)


def miro_schema_errors(name: str, value: object) -> list[str]:
    """What Miro's description finds wrong with `value` as the schema `name` (`$ref`s resolved)."""
    return [f"{list(e.absolute_path)}: {e.message}" for e in _validator(name).iter_errors(value)]


# A caller's W3C trace context: version, trace id, parent span id, sampled.
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


@attrs.frozen
class Export:
    """One export request the receiver got."""

    path: str
    headers: dict[str, str]
    spans: list[Span]


@attrs.define
class Receiver:
    """A minimal OTLP/HTTP collector (protobuf), as an ASGI app."""

    exports: list[Export] = attrs.field(factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        body = await read_body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        if headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest.FromString(body)
        spans = [
            span
            for resource in request.resource_spans
            for scoped in resource.scope_spans
            for span in scoped.spans
        ]
        self.exports.append(Export(scope["path"], headers, spans))
        answer = ExportTraceServiceResponse().SerializeToString()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/x-protobuf")],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    def spans(self, path: str = "/v1/traces") -> list[Span]:
        return [span for export in self.exports if export.path == path for span in export.spans]


ServeASGI = Callable[[Any], Awaitable[str]]
"""The `serve_asgi` fixture: serve an ASGI app on loopback for the test; its base URL."""


def shape(n: int) -> dict[str, Any]:
    """A ShapeData the client could send, told apart by `n` (its x and text)."""
    return {"shape": "rectangle", "x": n, "y": 0, "width": 100, "height": 50, "text": f"s{n}"}


async def metric(bridge: Bridge, name: str, **labels: str) -> float:
    """A counter's value, as Prometheus scrapes it."""
    text = (await bridge.client.get("/metrics")).text
    (family,) = (f for f in text_string_to_metric_families(text) if f.name == name)
    return sum(
        s.value
        for s in family.samples
        if s.name.endswith("_total") and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def items_at_miro(miro: Miro, token: str, board_id: str) -> list[dict[str, Any]]:
    """Every item on the sandbox board, listed as the user through Miro's REST API."""
    found: list[dict[str, Any]] = []
    cursor = ""
    async with httpx.AsyncClient(base_url=miro.url, headers=bearer(token)) as client:
        while True:
            params = {"limit": "50", **({"cursor": cursor} if cursor else {})}
            page = (await client.get(f"/v2/boards/{board_id}/items", params=params)).json()
            found += page["data"]
            cursor = page.get("cursor") or ""
            if not cursor or not page["data"]:
                return found


@attrs.define
class Gate:
    """A sandbox served behind a gate: while `closed`, requests whose path ends with `holds`
    wait (`reached` is set when the first one does) until `opened` is set."""

    sandbox: Sandbox
    holds: str
    closed: bool = False
    reached: trio.Event = attrs.field(factory=trio.Event)
    opened: trio.Event = attrs.field(factory=trio.Event)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if self.closed and scope["type"] == "http" and scope["path"].endswith(self.holds):
            self.reached.set()
            await self.opened.wait()
        await self.sandbox.app(scope, receive, send)


# PostgreSQL ---------------------------------------------------------------------------------

#: The server the PostgreSQL tests use; set, its tests must run (or fail), never skip.
POSTGRES_URL_VARIABLE = "MIRO_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def with_database(url: str, name: str) -> str:
    """`url` naming the database `name` on the same server."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def with_port(url: str, port: int, host: str = "127.0.0.1") -> str:
    """`url` reaching the same database through `host:port` (a proxy)."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def create_database(server_url: str, template: str | None = None) -> str:
    """A new database `test_<random>` on the server (a copy of `template`, if named); its URL."""
    name = f"test_{secrets.token_hex(6)}"
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
    with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as connection:
        connection.execute(statement)
    return with_database(server_url, name)


def drop_database(server_url: str, database_url: str) -> None:
    """Drop the database of `database_url`, whoever is still connected to it."""
    name = urlsplit(database_url).path.lstrip("/")
    with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


class DatabaseFactory:
    """Migrated PostgreSQL databases made ahead, in a thread, and dropped behind.

    Creating a database (a copy of `template`) takes a few hundred milliseconds, dropping one
    tens: a thread keeps `ahead` ready and drops those given back, while the tests run.
    """

    def __init__(self, server_url: str, template: str, ahead: int = 3) -> None:
        self._server_url = server_url
        self._template = template
        self._ahead = ahead
        self._ready: queue.Queue[str | BaseException] = queue.Queue()
        self._made = 0
        self._drops: list[str] = []
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="databases", daemon=True)
        self._thread.start()

    def take(self) -> str:
        """A fresh migrated database of the caller's own: its URL."""
        with self._wake:
            self._made -= 1
            self._wake.notify()
        made = self._ready.get(timeout=60)
        if isinstance(made, BaseException):
            raise made
        return made

    def give_back(self, url: str) -> None:
        """Drop the database (soon, in the thread)."""
        with self._wake:
            self._drops.append(url)
            self._wake.notify()

    def close(self) -> None:
        """Stop the thread, dropping every database it made."""
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join()
        while not self._ready.empty():
            made = self._ready.get()
            if isinstance(made, str):
                drop_database(self._server_url, made)

    def _work(self) -> None:
        while True:
            with self._wake:
                while not (self._stopping or self._drops or self._made < self._ahead):
                    self._wake.wait()
                if self._stopping:
                    drops, self._drops = self._drops, []
                else:
                    drops = self._drops[:1]
                    del self._drops[:1]
                make = not drops and not self._stopping
                if make:
                    self._made += 1
            for url in drops:
                drop_database(self._server_url, url)
            if self._stopping:
                return
            if make:
                try:
                    self._ready.put(create_database(self._server_url, self._template))
                except BaseException as error:  # the test that takes it fails with it
                    self._ready.put(error)


class TcpProxy:
    """A TCP proxy on loopback to `target`, which a test can cut and restore.

    Cut: every connection through it is closed at once, and new ones are closed as soon as
    they are accepted (a server gone away); restored: it relays again.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.cut_off = False
        self.relayed = 0
        self._live: set[trio.CancelScope] = set()

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen on a free loopback port and relay; reports the port."""
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._relay, listeners)
            task_status.started(self.port)

    def cut(self) -> None:
        """Close every connection now, and each new one at once, until `restore`."""
        self.cut_off = True
        for scope in self._live:
            scope.cancel()

    def restore(self) -> None:
        """Relay again."""
        self.cut_off = False

    async def _relay(self, client: trio.SocketStream) -> None:
        async with client:
            if self.cut_off:
                return
            try:
                upstream = await trio.open_tcp_stream(*self.target)
            except OSError:
                return
            self.relayed += 1
            async with upstream:
                with trio.CancelScope() as scope:
                    self._live.add(scope)
                    try:
                        async with trio.open_nursery() as pair:
                            pair.start_soon(_pipe, client, upstream, pair.cancel_scope)
                            pair.start_soon(_pipe, upstream, client, pair.cancel_scope)
                    finally:
                        self._live.discard(scope)


async def _pipe(source: trio.SocketStream, sink: trio.SocketStream, pair: trio.CancelScope) -> None:
    """Copy until either side ends, then end both."""
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        pair.cancel()


def query_database(settings: Settings, query: str) -> list[tuple[Any, ...]]:
    """The rows of `query` (no parameters), read straight from the service's database,
    whichever backend it is (SQLite opened read-only)."""
    if settings.database_is_shared:
        with psycopg.connect(settings.database_url) as database:
            return [tuple(row) for row in database.execute(query.encode()).fetchall()]
    read_only = f"file:{settings.database_path}?mode=ro"
    with contextlib.closing(sqlite3.connect(read_only, uri=True)) as database:
        return [tuple(row) for row in database.execute(query).fetchall()]


# Real processes -----------------------------------------------------------------------------


@attrs.define
class Process:
    """A `python -m miro_bridge` subprocess, its URL, and the log lines it wrote (drained in a
    thread, so a chatty process never blocks on a full pipe)."""

    popen: subprocess.Popen[str]
    url: str
    lines: list[str] = attrs.field(factory=list)


def start_process(args: list[str], env: dict[str, str], ready_event: str) -> Process:
    """Start `python -m miro_bridge ARGS`; wait for its JSON log line `ready_event`."""
    popen = subprocess.Popen(
        [sys.executable, "-m", "miro_bridge", *args],
        env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert popen.stdout is not None
    for line in popen.stdout:
        event = json.loads(line)
        if event.get("event") == ready_event:
            process = Process(popen, str(event["url"]))
            threading.Thread(target=_drain, args=(popen, process.lines), daemon=True).start()
            return process
    raise AssertionError(f"{args[0]} exited before {ready_event}")


def _drain(popen: subprocess.Popen[str], lines: list[str]) -> None:
    assert popen.stdout is not None
    lines.extend(popen.stdout)


def clean_environment() -> dict[str, str]:
    """This process's environment without the bridge's and OpenTelemetry's settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("MIRO_", "OTEL_"))}


def service_environment(env: dict[str, str], miro_url: str, database_url: str) -> dict[str, str]:
    """`miro-bridge serve` configured against the sandbox at `miro_url`, as against Miro."""
    return {
        **env,
        **serve_environment(miro_url),
        "MIRO_DATABASE_URL": database_url,
        "MIRO_OAUTH_REDIRECT_URI": "http://127.0.0.1/oauth/callback",
        "MIRO_ALLOW_PLAINTEXT_TOKENS": "true",
        "PORT": "0",
    }


def bulk_calls(miro: httpx.Client) -> tuple[int, int]:
    """Bulk creates the sandbox has answered, and those it is carrying out now (its own log,
    which costs no credits)."""
    entries = miro.get("/_admin/requests").json()["requests"]
    statuses = [r["status"] for r in entries if r["path"].endswith("/items/bulk")]
    return sum(1 for s in statuses if s == 201), statuses.count(None)


def job_when_finished(bridge: httpx.Client, job_id: str, seconds: float = 120) -> dict[str, Any]:
    """The job once it has finished (polled through `bridge`, a real service)."""
    deadline = time.monotonic() + seconds
    while (job := bridge.get(f"/api/jobs/{job_id}").json())["status"] not in (
        "done",
        "failed",
        "partial",
    ):
        assert time.monotonic() < deadline, f"job {job_id} did not finish"
        time.sleep(0.05)
    return dict(job)


def wait_until(condition: Callable[[], object], what: str, seconds: float = 60) -> None:
    """Poll `condition` until it holds; fail with `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def card_titles(miro: httpx.Client, token: str, board_id: str) -> list[str]:
    """The titles of every card on the board at Miro, read page by page."""
    titles: list[str] = []
    cursor = ""
    while True:
        params = {"limit": "50", "type": "card", **({"cursor": cursor} if cursor else {})}
        page = miro.get(f"/v2/boards/{board_id}/items", params=params, headers=bearer(token)).json()
        titles += [item["data"]["title"] for item in page["data"]]
        cursor = page.get("cursor") or ""
        if not cursor or not page["data"]:
            return titles

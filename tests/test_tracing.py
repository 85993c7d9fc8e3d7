"""Tracing end to end: spans reach an OTLP/HTTP receiver, one request id finds them all."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
import trio
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from miro_bridge.config import Settings
from miro_bridge.logs import configure_logging
from miro_bridge.tracing import destinations
from tests.support import (
    CLIENT_SPAN,
    CLIENT_TRACE,
    TRACEPARENT,
    USER,
    Bridge,
    Miro,
    Receiver,
    ServeASGI,
    StartBridge,
    connect,
    shape,
    wait_for_job,
)


def attribute(span: Span, key: str) -> Any:
    for kv in span.attributes:
        if kv.key == key:
            value = kv.value
            return getattr(value, value.WhichOneof("value"))
    return None


def by_request(spans: list[Span], request_id: str) -> list[Span]:
    return [span for span in spans if attribute(span, "request_id") == request_id]


async def exported(
    bridge: Bridge, receiver: Receiver, request_id: str, names: set[str], path: str = "/v1/traces"
) -> list[Span]:
    """The request's spans once those named have reached the receiver.

    A span ends a moment after its work is visible (the response sent, the job marked done),
    so flush until they are all there instead of once.
    """
    with trio.fail_after(10):
        while True:
            await bridge.actors.tracing.flush()
            spans = by_request(receiver.spans(path), request_id)
            if names <= {span.name for span in spans}:
                return spans
            await trio.sleep(0.01)


def one(spans: list[Span], name: str) -> Span:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


async def test_a_request_its_miro_call_and_its_job_are_found_by_request_id(
    start_bridge: StartBridge,
    miro: Miro,
    serve_asgi: ServeASGI,
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(pretty=False)
    receiver = Receiver()
    collector = await serve_asgi(receiver)
    bridge = await start_bridge(otel_exporter_otlp_endpoint=collector)
    await connect(bridge, miro)
    board_id = str(miro.sandbox.create_board(USER)["id"])

    response = await bridge.client.post(
        "/api/batch",
        json={
            "boardId": board_id,
            "operations": [
                {"type": "create_shape", "data": shape(1)},
                {"type": "create_shape", "data": shape(2)},
            ],
        },
        headers={"X-User-Id": USER, "X-Request-ID": "req-traced-1", "traceparent": TRACEPARENT},
    )
    assert response.status_code == 202, response.text
    assert (await wait_for_job(bridge, response.json()["jobId"]))["status"] == "done"

    bulk_call = "POST /v2/boards/{board_id}/items/bulk"
    names = {"POST /api/batch", "job_queue Enqueue", "job batch", bulk_call}
    spans = await exported(bridge, receiver, "req-traced-1", names)
    server = one(spans, "POST /api/batch")
    assert server.kind == Span.SPAN_KIND_SERVER
    assert server.trace_id.hex() == CLIENT_TRACE  # the caller's traceparent is continued
    assert server.parent_span_id.hex() == CLIENT_SPAN
    assert attribute(server, "http.route") == "/api/batch"
    assert attribute(server, "http.response.status_code") == 202

    enqueue = one(spans, "job_queue Enqueue")  # an actor call, a child of the request
    assert enqueue.trace_id == server.trace_id
    assert enqueue.parent_span_id == server.span_id

    job = one(spans, "job batch")
    assert job.trace_id != server.trace_id  # a trace of its own, linked to the request's
    assert [(link.trace_id, link.span_id) for link in job.links] == [
        (enqueue.trace_id, enqueue.span_id)
    ]
    assert attribute(job, "job.id") == response.json()["jobId"]

    bulk = one(spans, bulk_call)  # the call to Miro
    assert bulk.kind == Span.SPAN_KIND_CLIENT
    assert bulk.trace_id == job.trace_id
    assert attribute(bulk, "http.response.status_code") == 201
    within_job = {s.span_id: s for s in spans if s.trace_id == job.trace_id}
    ancestor = bulk
    while ancestor.parent_span_id:  # up through the actor calls to the job span
        ancestor = within_job[ancestor.parent_span_id]
    assert ancestor.span_id == job.span_id

    # The logs of that request carry the trace: the access log line names the server span.
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    access = [
        line
        for line in lines
        if line["event"] == "http.request" and line.get("request_id") == "req-traced-1"
    ]
    assert [(line["trace_id"], line["span_id"]) for line in access] == [
        (server.trace_id.hex(), server.span_id.hex())
    ]


async def test_every_configured_backend_gets_the_spans(
    start_bridge: StartBridge, serve_asgi: ServeASGI
) -> None:
    receiver = Receiver()
    collector = await serve_asgi(receiver)
    host, port = collector.removeprefix("http://").rsplit(":", 1)
    bridge = await start_bridge(
        otel_exporter_otlp_endpoint=f"{collector}/otlp",
        jaeger_agent_host=host,
        jaeger_agent_port=int(port),
        logfire_token="lf-secret-token",
        logfire_base_url=f"{collector}/logfire",
    )
    assert bridge.actors.tracing.backends == ["otlp", "jaeger", "logfire"]
    response = await bridge.client.get("/health", headers={"X-Request-ID": "req-probe"})
    assert response.status_code == 200

    for path in ("/otlp/v1/traces", "/v1/traces", "/logfire/v1/traces"):
        spans = await exported(bridge, receiver, "req-probe", {"GET /health"}, path)
        assert [span.name for span in spans] == ["GET /health"]
    authorization = {e.path: e.headers.get("authorization") for e in receiver.exports}
    assert authorization == {
        "/otlp/v1/traces": None,
        "/v1/traces": None,
        "/logfire/v1/traces": "lf-secret-token",
    }


def test_jaeger_defaults_to_its_otlp_http_port(settings: Settings) -> None:
    assert destinations(settings) == []
    jaeger = attrs.evolve(settings, jaeger_agent_host="jaeger.internal")
    assert [d.url for d in destinations(jaeger)] == ["http://jaeger.internal:4318/v1/traces"]


async def test_without_a_backend_nothing_is_traced(
    start_bridge: StartBridge, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(pretty=False)
    bridge = await start_bridge()
    assert not bridge.actors.tracing.enabled
    response = await bridge.client.get(
        "/no-such-page", headers={"X-Request-ID": "req-untraced", "traceparent": TRACEPARENT}
    )
    assert response.status_code == 404
    # The access line is written after the response; the next request on the same connection
    # starts only once the first one's handling (and its line) is over.
    assert (await bridge.client.get("/health")).status_code == 200
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    mine = [line for line in lines if line.get("request_id") == "req-untraced"]
    assert mine
    assert all("trace_id" not in line for line in mine)

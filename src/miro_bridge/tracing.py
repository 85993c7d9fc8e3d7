"""Tracing: OpenTelemetry spans, exported over OTLP/HTTP to every configured backend.

Backends (API.md "Configuration"), each with its own batch span processor, several at once:

- `OTEL_EXPORTER_OTLP_ENDPOINT`: any OTLP collector, at `{endpoint}/v1/traces`;
- `JAEGER_AGENT_HOST` / `JAEGER_AGENT_PORT`: Jaeger's own OTLP/HTTP receiver (Jaeger 1.35 and
  later, port 4318 by default), at `http://{host}:{port}/v1/traces`; the old Thrift agent
  protocol is not used;
- `LOGFIRE_TOKEN`: Logfire's OTLP endpoint (`{LOGFIRE_BASE_URL}/v1/traces`) with the header
  `Authorization: {token}`.

With none of them set the tracer is OpenTelemetry's no-op one, and the hot paths (the edge,
actor calls, HTTP clients) skip tracing altogether, so it costs next to nothing when off.

What is traced: a server span per HTTP request (the edge, named by route template, continuing
a W3C `traceparent`), a span per actor call made within a trace (`ActorRef.call`), a client
span per request sent to Miro, and a span per unit of job work, linked to the span that
enqueued it. Every span carries the `request_id` attribute, and log lines carry `trace_id` and
`span_id` (`miro_bridge.logs`): one id finds a request in logs, traces and job records.
A trace crosses actors in the message envelope (a task started at boot does not see a
request's context variables) and crosses the job queue as a `traceparent` stored with the job.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
import httpx
import trio
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from miro_bridge import __version__
from miro_bridge.config import Settings
from miro_bridge.context import request_id_var

#: The span attribute that holds the id of the request a span belongs to.
REQUEST_ID = "request_id"
#: The httpx request extension naming a request's URL template (its span's name).
URL_TEMPLATE = "miro_bridge.url_template"
#: How long one export may take.
EXPORT_TIMEOUT_SECONDS = 5.0

_PROPAGATOR = TraceContextTextMapPropagator()


@attrs.frozen
class Destination:
    """Where spans are sent: an OTLP/HTTP traces URL and the headers it needs."""

    name: str
    url: str
    headers: Mapping[str, str] = attrs.field(factory=dict, repr=False)


def destinations(settings: Settings) -> list[Destination]:
    """Every backend `settings` configure, in the order of the module docstring."""
    found = []
    if settings.otel_exporter_otlp_endpoint is not None:
        base = settings.otel_exporter_otlp_endpoint.rstrip("/")
        found.append(Destination("otlp", f"{base}/v1/traces"))
    if settings.jaeger_agent_host is not None:
        address = f"{settings.jaeger_agent_host}:{settings.jaeger_agent_port}"
        found.append(Destination("jaeger", f"http://{address}/v1/traces"))
    if settings.logfire_token is not None:
        base = settings.logfire_base_url.rstrip("/")
        found.append(
            Destination("logfire", f"{base}/v1/traces", {"Authorization": settings.logfire_token})
        )
    return found


class Tracing:
    """The service's tracer, and the provider behind it when any backend is configured."""

    def __init__(self, settings: Settings) -> None:
        targets = destinations(settings)
        #: The backends spans go to, by name (`otlp`, `jaeger`, `logfire`), for the start-up log.
        self.backends = [target.name for target in targets]
        self._provider: TracerProvider | None = None
        self.tracer: trace.Tracer = trace.NoOpTracer()
        if not targets:
            return
        resource = Resource.create(
            {"service.name": settings.otel_service_name, "service.version": __version__}
        )
        self._provider = TracerProvider(resource=resource)
        for target in targets:
            exporter = OTLPSpanExporter(
                endpoint=target.url, headers=dict(target.headers), timeout=EXPORT_TIMEOUT_SECONDS
            )
            self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self._provider.get_tracer("miro_bridge", __version__)

    @property
    def enabled(self) -> bool:
        """Whether spans are recorded and exported (some backend is configured)."""
        return self._provider is not None

    def transport(self, inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        """`inner`, with a client span per request sent through it when tracing is on."""
        return inner if self._provider is None else _TracedTransport(inner, self.tracer)

    async def flush(self) -> None:
        """Export every span ended so far (the exporters block: this runs in a thread)."""
        if self._provider is not None:
            await trio.to_thread.run_sync(self._provider.force_flush)

    async def shutdown(self, grace: float) -> None:
        """Export what is left and stop the exporters, waiting at most `grace` seconds.

        A backend that does not answer must not hold up the process's exit: the exporter
        threads are daemons, so what they had not sent when the time is up is lost.
        """
        if self._provider is None:
            return
        with trio.move_on_after(grace):
            await trio.to_thread.run_sync(self._provider.shutdown, abandon_on_cancel=True)


class _TracedTransport(httpx.AsyncBaseTransport):
    """A client span around each request (until its response head), `traceparent` sent.

    The span is named `{method} {template}` when the request names its URL template in the
    `URL_TEMPLATE` extension, else by the method alone: never by the raw path, whose ids would
    make every name unique. Attributes follow OpenTelemetry's stable HTTP conventions, like
    the server span's. (opentelemetry-instrumentation-httpx does this too, but reports the
    old attribute names unless an environment variable opts in, and reads it once per
    process: a few lines here are simpler than that.)
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, tracer: trace.Tracer) -> None:
        self._inner = inner
        self._tracer = tracer

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` through the inner transport inside a client span."""
        template = request.extensions.get(URL_TEMPLATE)
        attributes = {
            REQUEST_ID: request_id_var.get() or "",
            "http.request.method": request.method,
            "server.address": request.url.host,
            "url.full": str(request.url.copy_with(query=None)),
        }
        with self._tracer.start_as_current_span(
            f"{request.method} {template}" if template else request.method,
            kind=trace.SpanKind.CLIENT,
            attributes=attributes,
        ) as span:
            _PROPAGATOR.inject(request.headers)
            response = await self._inner.handle_async_request(request)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 400:
                span.set_status(trace.StatusCode.ERROR)
            return response

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._inner.aclose()


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, None outside a recorded trace."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def extract(headers: Mapping[str, str]) -> otel_context.Context:
    """The context a caller's `traceparent` (and `tracestate`) header continues."""
    return _PROPAGATOR.extract(headers)


def span_context_of(traceparent: str | None) -> trace.SpanContext | None:
    """The span a stored `traceparent` names, for a link; None if there is none or it is bad."""
    if traceparent is None:
        return None
    context = trace.get_current_span(extract({"traceparent": traceparent})).get_span_context()
    return context if context.is_valid else None

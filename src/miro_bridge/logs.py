"""Structured logging: structlog JSON lines (console-pretty on a TTY), one setup for everything.

Every line carries the id of the request it belongs to (`miro_bridge.context`), the ids of
the current trace and span when tracing is on (`trace_id`, `span_id`, in hex as trace
backends show them), and whatever is bound with `structlog.contextvars`. Lines from libraries
that use the standard `logging` module (hypercorn, quart) go through the same processors: one
stream, one format.
"""

from __future__ import annotations

import logging
import sys

import structlog
from opentelemetry import trace
from structlog.typing import EventDict, Processor

from miro_bridge.context import request_id_var

#: Tracebacks as structured data, without frame locals (structlog shows them by default).
_TRACEBACKS = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


def configure_logging(*, level: int = logging.INFO, pretty: bool | None = None) -> None:
    """Configure structlog and the standard library's root logger; call once at start-up."""
    if pretty is None:
        pretty = sys.stdout.isatty()
    shared: list[Processor] = [
        _add_request_id,
        _add_trace_ids,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        if pretty
        else structlog.processors.JSONRenderer()
    )
    # JSON lines carry tracebacks as structured data; the console renderer prints its own.
    # Neither shows frame locals: a frame that holds a token would put it in the log.
    tracebacks: list[Processor] = [] if pretty else [_TRACEBACKS]
    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *tracebacks, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_StdoutLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class _StdoutLogger:
    """Writes each line to whatever `sys.stdout` is when the line is written.

    structlog's `PrintLogger` keeps the stream it was created with; a logger cached before
    stdout was replaced (by a test runner, say) would then write to a closed file.
    """

    def __init__(self, *args: object) -> None:
        del args

    def msg(self, message: str) -> None:
        """Write one rendered line."""
        print(message, file=sys.stdout, flush=True)

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def _add_request_id(logger: object, method: str, event: EventDict) -> EventDict:
    """Add the current request's id, unless the line names one itself."""
    request_id = request_id_var.get()
    if request_id is not None:
        event.setdefault("request_id", request_id)
    return event


def _add_trace_ids(logger: object, method: str, event: EventDict) -> EventDict:
    """Add the current trace and span ids when a span is being recorded."""
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        event.setdefault("trace_id", trace.format_trace_id(span.trace_id))
        event.setdefault("span_id", trace.format_span_id(span.span_id))
    return event

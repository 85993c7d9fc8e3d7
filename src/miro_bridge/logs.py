"""Structured logging: structlog JSON lines (console-pretty on a TTY), one setup for everything.

Every line carries the id of the request it belongs to (`miro_bridge.context`), the ids of
the current trace and span when tracing is on (`trace_id`, `span_id`, in hex as trace
backends show them), and whatever is bound with `structlog.contextvars`. Lines from libraries
that use the standard `logging` module (hypercorn, quart) go through the same processors: one
stream, one format.

What a line costs: a level below the configured one is dropped before anything is done
(`make_filtering_bound_logger`: the method is a no-op), and a line that is kept is rendered
once, by msgspec's JSON encoder (several times faster than `json.dumps` for these small
dicts; `render_json`), and written with one `write` (while a service runs, one for all
the lines of a pass of Trio's scheduler: `written_per_pass`). Values JSON does not know
become their `repr` (or `__structlog__()`), as with structlog's own JSON renderer.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import structlog
import trio
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
        _add_timestamp,
    ]
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        if pretty
        else _render_json_line
    )
    # JSON lines carry tracebacks as structured data; the console renderer prints its own.
    # Neither shows frame locals: a frame that holds a token would put it in the log.
    tracebacks: list[Processor] = [] if pretty else [_tracebacks]
    structlog.configure(
        processors=[*shared, _stack_info, *tracebacks, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_StdoutLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(_Stdout())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


#: While a service runs: the thread running Trio, and the lines it logged during the
#: scheduler's current pass, waiting to be written (`written_per_pass`).
_pass: tuple[int, list[str]] | None = None


class _EndOfPass(trio.abc.Instrument):
    """Writes the lines of a pass of Trio's scheduler when it ends: before Trio waits for
    I/O (so before any task of this run sees an answer the pass sent)."""

    def __init__(self, lines: list[str]) -> None:
        self._lines = lines

    def before_io_wait(self, timeout: float) -> None:
        if self._lines:
            _write_now(self._lines)


@contextlib.contextmanager
def written_per_pass() -> Iterator[None]:
    """While the block runs (in Trio's thread), lines logged from that thread are written
    together, with one `write`, at the end of the scheduler's pass that logged them.

    Several requests answered in one pass: one system call for all their lines instead of
    one per line; in their order, as they were logged. A line waits no longer than the pass
    that logged it (never across a wait for I/O, a sleep or the next request); a line from
    another thread, or logged outside the block, is written at once. Nested blocks (two
    services in one run) share the outer one's batching.
    """
    global _pass
    if _pass is not None:
        yield
        return
    lines: list[str] = []
    instrument = _EndOfPass(lines)
    _pass = (threading.get_ident(), lines)
    trio.lowlevel.add_instrument(instrument)
    try:
        yield
    finally:
        trio.lowlevel.remove_instrument(instrument)
        _pass = None
        _write_now(lines)


def _write_now(lines: list[str]) -> None:
    """Write `lines` with one `write` (`_to_stdout`), and empty the list."""
    if lines:
        _to_stdout("".join(lines))
        lines.clear()


def _write(text: str) -> None:
    """Write `text` (whole lines), at the end of the pass when batching (`written_per_pass`)
    in this thread, else now."""
    batch = _pass
    if batch is not None and batch[0] == threading.get_ident():
        batch[1].append(text)
    else:
        _to_stdout(text)


def _to_stdout(text: str) -> None:
    """Write `text` to whatever `sys.stdout` is now, and flush it."""
    out = sys.stdout
    out.write(text)
    out.flush()


class _Stdout:
    """The stream of the standard library's log handler: `_write`, so that its lines keep
    their place among structlog's."""

    def write(self, text: str) -> None:
        _write(text)

    def flush(self) -> None:
        pass  # `_write` writes or keeps lines whole; nothing is half written


class _StdoutLogger:
    """Writes each line (`_write`) to whatever `sys.stdout` is when the line is written.

    structlog's `PrintLogger` keeps the stream it was created with; a logger cached before
    stdout was replaced (by a test runner, say) would then write to a closed file.
    """

    def __init__(self, *args: object) -> None:
        del args

    def msg(self, message: str) -> None:
        """Write one rendered line."""
        _write(message + "\n")

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def _fallback(value: Any) -> Any:
    """What a log line holds for a value JSON does not know: `__structlog__()`, else `repr`
    (as structlog's JSON renderer has it)."""
    to_log = getattr(value, "__structlog__", None)
    return to_log() if callable(to_log) else repr(value)


def _json_kind(value: Any) -> bool:
    """Whether `value` is what `json.dumps` encodes by itself (no `default`)."""
    if value is None or isinstance(value, (str, int, float)):
        return True
    if isinstance(value, dict):
        return all(_json_kind(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return all(_json_kind(item) for item in value)
    return False


def _as_json_kinds(value: Any) -> Any:
    """`value` with whatever `json.dumps` would hand to `default` replaced by `_fallback`."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    if isinstance(value, dict):
        return {key: _as_json_kinds(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_json_kinds(item) for item in value]
    return _fallback(value)


_SCALARS = frozenset({str, int, float, bool, type(None)})
_ENCODER = msgspec.json.Encoder()
_COMPACT: dict[str, Any] = {"separators": (",", ":")}  # as msgspec writes


def render_json(event: EventDict, **dumps_kw: Any) -> str:
    """One log line's JSON, as `json.dumps` would write it (compact), by msgspec.

    Values are what `json.dumps` would make of them: msgspec's own encodings of other
    types (attrs classes field by field, which would show fields their `repr` hides;
    bytes as base64) never apply, since those values are replaced by their `repr` first.
    A line that is not ASCII (rare) is left to `json.dumps`, which escapes it, so that no
    character such as U+2028 can split a line for a reader that splits on it.
    """
    for value in event.values():
        if type(value) not in _SCALARS and not _json_kind(value):
            event = {key: _as_json_kinds(value) for key, value in event.items()}
            break
    try:
        line = _ENCODER.encode(event).decode()
    except (TypeError, ValueError, OverflowError):  # e.g. a key that is not a string
        line = ""
    return line if line and line.isascii() else json.dumps(event, **_COMPACT, **dumps_kw)


def _render_json_line(logger: object, method: str, event: EventDict) -> str:
    """The last processor of JSON lines: `render_json` (structlog's `JSONRenderer` with
    `serializer=render_json`, less its per-line keyword arguments)."""
    return render_json(event)


_STACK_INFO = structlog.processors.StackInfoRenderer()


def _stack_info(logger: object, method: str, event: EventDict) -> EventDict:
    """structlog's `StackInfoRenderer`, for the lines that ask (`stack_info=True`) only."""
    return _STACK_INFO(logger, method, event) if "stack_info" in event else event


def _tracebacks(logger: object, method: str, event: EventDict) -> EventDict:
    """`_TRACEBACKS`, for the lines that carry an exception (`exc_info`, which structlog's
    `exception()` sets too) only."""
    return _TRACEBACKS(logger, method, event) if "exc_info" in event else event


#: The second `_add_timestamp` last formatted, and its text.
_second: tuple[int, str] = (0, "")


def _add_timestamp(logger: object, method: str, event: EventDict) -> EventDict:
    """Add the time, in UTC, as structlog's `TimeStamper(fmt="iso", utc=True)` writes it
    (`2026-11-30T15:56:53.116689Z`), at a third of its cost: the seconds are formatted once
    a second."""
    global _second
    now = time.time()
    second = int(now)
    if second != _second[0]:
        _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    micro = int((now - second) * 1_000_000)
    event["timestamp"] = f"{_second[1]}.{micro:06d}Z" if micro else f"{_second[1]}Z"
    return event


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

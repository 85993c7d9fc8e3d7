"""Log lines are JSON and carry the id of the request they belong to."""

from __future__ import annotations

import datetime
import json
import logging
import re
import secrets
import sys

import attrs
import pytest
import structlog
import trio

from miro_bridge.context import request_id_var
from miro_bridge.logs import configure_logging, written_per_pass


def test_lines_carry_the_request_id(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(pretty=False)
    log = structlog.get_logger("test")
    token = request_id_var.set("req-7")
    try:
        log.info("inside", answer=42)
        logging.getLogger("hypercorn.error").warning("from the stdlib")
    finally:
        request_id_var.reset(token)
    log.info("outside")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["event"] == "inside"
    assert lines[0]["request_id"] == "req-7"
    assert lines[0]["answer"] == 42
    assert lines[0]["level"] == "info"
    assert lines[1]["event"] == "from the stdlib"
    assert lines[1]["request_id"] == "req-7"
    assert lines[1]["logger"] == "hypercorn.error"
    assert "request_id" not in lines[2]


@pytest.mark.parametrize("pretty", [False, True])
def test_tracebacks_never_show_frame_locals(
    pretty: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(pretty=pretty)
    log = structlog.get_logger("test")

    def call_miro(token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        raise ValueError(f"cannot encode a body for {len(headers)} header(s)")

    secret = secrets.token_hex(16)  # not in any source line a traceback may quote
    try:
        call_miro(secret)
    except ValueError as error:
        log.error("job.unexpected_error", exc_info=error)
    out = capsys.readouterr().out
    assert "cannot encode a body" in out  # the traceback is there
    assert "call_miro" in out
    assert secret not in out


def test_lines_carry_the_time_as_structlogs_iso_stamper_writes_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(pretty=False)
    before = datetime.datetime.now(datetime.UTC)
    structlog.get_logger("test").info("now")
    after = datetime.datetime.now(datetime.UTC)
    stamp = json.loads(capsys.readouterr().out)["timestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z", stamp), stamp
    when = datetime.datetime.fromisoformat(stamp)
    assert before - datetime.timedelta(milliseconds=1) <= when <= after


class Writes:
    """A stdout that keeps each `write`."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def events(self, write: int) -> list[str]:
        return [json.loads(line)["event"] for line in self.writes[write].splitlines()]


def test_the_lines_of_a_scheduler_pass_are_written_together_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    configure_logging(pretty=False)
    stdout = Writes()
    monkeypatch.setattr(sys, "stdout", stdout)
    log = structlog.get_logger("test")

    async def main() -> None:
        with written_per_pass():
            log.info("first")
            log.debug("filtered out")
            logging.getLogger("hypercorn.error").warning("second")  # the standard library's
            log.warning("third")
            assert stdout.writes == []  # held until the pass ends
            await trio.lowlevel.checkpoint()  # the pass ends: Trio looks for I/O next
            assert len(stdout.writes) == 1
            assert stdout.events(0) == ["first", "second", "third"]
            await trio.to_thread.run_sync(log.info, "from a thread")  # written at once
            assert stdout.events(1) == ["from a thread"]
            log.info("last of the run")
        assert stdout.events(2) == ["last of the run"]  # written when the block ends
        log.info("after")
        assert stdout.events(3) == ["after"]  # outside the block: at once

    trio.run(main)


def test_values_json_cannot_hold_are_logged_as_their_repr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(pretty=False)

    class Opaque:
        def __repr__(self) -> str:
            return "<opaque 7>"

    @attrs.frozen
    class Grant:
        user: str
        token: str = attrs.field(repr=False)

    secret = secrets.token_hex(8)
    structlog.get_logger("test").info(
        "odd",
        thing=Opaque(),
        big=2**70,
        text="é\u2028",
        grant=Grant("7", secret),
        nested={"raw": [b"\x00"]},
    )
    out = capsys.readouterr().out
    assert secret not in out  # a field its repr hides stays hidden
    assert out.isascii()  # escaped, so that no reader can split the line at U+2028
    line = json.loads(out)
    assert line["thing"] == "<opaque 7>"
    assert line["big"] == 2**70
    assert line["text"] == "é\u2028"
    assert line["grant"] == "Grant(user='7')"
    assert line["nested"] == {"raw": ["b'\\x00'"]}

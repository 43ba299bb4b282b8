"""Log lines carry the request id; secrets never reach the output."""
from __future__ import annotations

import io
import json
import logging

import pytest

from integrations.foundation.logs import configure_logging, redact, request_id_var
from tests.telegram.conftest import TEACHER_TOKEN

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.abc123_-XYZ"


@pytest.fixture
def capture():
    stream = io.StringIO()
    root = logging.getLogger()
    before = (root.level, list(root.handlers), logging.getLogger("pyrogram").level)
    handler = configure_logging("INFO", json=False, stream=stream)
    yield stream, handler
    root.removeHandler(handler)
    root.setLevel(before[0])
    logging.getLogger("pyrogram").setLevel(before[2])


def test_redact_patterns():
    text = f"token {TEACHER_TOKEN} jwt {JWT} password=hunter2 url?password=x&y=1 'secret': 's3'"
    out = redact(text)
    assert TEACHER_TOKEN not in out and "123456:<redacted>" in out
    assert JWT not in out and "<redacted-jwt>" in out
    assert "hunter2" not in out and "password=<redacted>" in out and "&y=1" in out
    assert "s3'" not in out


def test_text_lines_carry_request_id_and_are_redacted(capture):
    stream, _ = capture
    log = logging.getLogger("attendance.test")
    token = request_id_var.set("abc123")
    try:
        log.info("connecting with %s", TEACHER_TOKEN)
    finally:
        request_id_var.reset(token)
    log.info("outside")
    lines = stream.getvalue().splitlines()
    assert "[abc123]" in lines[0] and TEACHER_TOKEN not in lines[0]
    assert "[-]" in lines[1]


def test_tracebacks_are_redacted(capture):
    stream, _ = capture
    try:
        raise RuntimeError(f"login failed password=hunter2 bearer {JWT}")
    except RuntimeError:
        logging.getLogger("x").exception("oops")
    output = stream.getvalue()
    assert "RuntimeError" in output and "hunter2" not in output and JWT not in output


def test_json_lines(capture):
    stream = io.StringIO()
    configure_logging("DEBUG", json=True, stream=stream)  # replaces the previous handler
    assert sum(getattr(h, "_attendance_flows_handler", False) for h in logging.getLogger().handlers) == 1
    token = request_id_var.set("r-9")
    try:
        logging.getLogger("j").warning("bot %s ready", TEACHER_TOKEN)
    finally:
        request_id_var.reset(token)
    entry = json.loads(stream.getvalue().splitlines()[-1])
    assert entry["request_id"] == "r-9" and entry["level"] == "WARNING" and entry["logger"] == "j"
    assert entry["msg"] == "bot 123456:<redacted> ready"
    for handler in [h for h in logging.getLogger().handlers if getattr(h, "_attendance_flows_handler", False)]:
        logging.getLogger().removeHandler(handler)


def test_pyrogram_is_quieted_unless_debug(capture):
    assert logging.getLogger("pyrogram").level == logging.WARNING


def test_one_request_id_var_for_engine_and_transport():
    from engine.context import request_id_var as engine_var

    assert request_id_var is engine_var

"""Structured logging: every line carries the request id of the update being handled.

Why a contextvar: Pyrogram runs each handler in its own task and the engine awaits replies in
the same task, so a :data:`request_id_var` set when an update arrives follows it through every
log line without passing ids around. Redaction runs in a handler filter, so it also covers
records from third-party loggers (Pyrogram, requests, boto) before any formatter sees them.
"""
from __future__ import annotations

import json as _json
import logging
import re
import sys
from datetime import datetime, timezone
from typing import IO, Optional

# One contextvar for the whole app: the engine sets it around each step, the transport from the
# moment an update arrives. Re-exported here so integrations need not import engine internals.
from engine import RequestIdFilter, request_id_var

__all__ = ["configure_logging", "redact", "request_id_var", "JsonFormatter", "RedactFilter", "RequestIdFilter"]

_HANDLER_MARK = "_attendance_flows_handler"

# A bot token is "<bot id>:<35 url-safe chars>"; keep the bot id, it identifies the bot harmlessly.
_TOKEN_RE = re.compile(r"\b(\d{3,}):[A-Za-z0-9_-]{30,}")
_JWT_RE = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*)?")
_SECRET_KV_RE = re.compile(
    r"""(?ix)
    (\b(?:password|passwd|pwd|secret|api_hash|secret_key)\b["']?\s*[=:]\s*)
    ("[^"]*"|'[^']*'|[^\s&,;"'}]+)
    """
)


def redact(text: str) -> str:
    """Mask bot tokens, JWTs and ``password=...``-style values in ``text``."""
    text = _TOKEN_RE.sub(r"\1:<redacted>", text)
    text = _JWT_RE.sub("<redacted-jwt>", text)
    return _SECRET_KV_RE.sub(r"\1<redacted>", text)


class RedactFilter(logging.Filter):
    """Replace the message, its args and any traceback text with a redacted rendering."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed %-format must not lose the line
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, request_id, msg (+ exc)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "msg": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return _json.dumps(entry, ensure_ascii=False)


# pymongo's DEBUG command logs carry whole documents (codes, encrypted tokens, phones); the others
# repeat request lines. Kept at WARNING whatever LOG_LEVEL says.
QUIET_LOGGERS = ("pymongo", "mongoengine", "urllib3", "botocore", "apscheduler")


def quiet_noisy_loggers() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


TEXT_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"


def configure_logging(level: str = "INFO", json: bool = False, stream: Optional[IO[str]] = None) -> logging.Handler:
    """Install one root handler (replacing a previous one of ours) and return it.

    Pyrogram logs every (re)connect at INFO; it is raised to WARNING unless ``level`` is DEBUG.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactFilter())
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("pyrogram").setLevel("DEBUG" if level.upper() == "DEBUG" else "WARNING")
    quiet_noisy_loggers()
    return handler

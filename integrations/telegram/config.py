"""Validate the Telegram settings up front, reporting every problem in one message.

The client library only notices a bad API_HASH or token after a network round trip (or, for a
malformed token, with an opaque error), so the checks here run before any client is built.
Secret values never appear in the message; only the names of the settings do.

The transport's own settings (``STUDENT_BOT_TOKENS``, ``TELEGRAM_WORKERS``, ``SEND_BURST_PER_CHAT``,
``SEND_CONCURRENCY``, ``SEND_MAX_ATTEMPTS``, ``TELEGRAM_CATCH_UP``) live in
:class:`integrations.settings.Settings` with the others.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from integrations.settings import Settings, SettingsError
from integrations.telegram.bots import bot_id, physical_names
from integrations.telegram.constants import (
    GLOBAL_RATE,
    PER_CHAT_BURST,
    PER_CHAT_RATE,
    SEND_ATTEMPTS,
    SENDERS_PER_BOT,
    STUDENT_BOT,
    TEACHER_BOT,
    WORKERS,
)

BOT_NAMES = (TEACHER_BOT, STUDENT_BOT)
API_HASH_RE = re.compile(r"^[0-9a-fA-F]{32}$")
# "<numeric bot id>:<secret>", e.g. 123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11 (35 chars today).
BOT_TOKEN_RE = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{30,}$")


# Settings of the transport beyond the bots' credentials (declared in integrations.settings).
EXTRA_FIELDS = ("student_bot_tokens", "telegram_workers", "send_burst_per_chat", "send_concurrency",
                "send_max_attempts", "telegram_catch_up")


@dataclass(frozen=True)
class TelegramConfig:
    """Everything the Telegram runtime needs, validated and with secrets unwrapped."""

    api_id: int
    api_hash: str = field(repr=False)
    bot_tokens: dict[str, str] = field(repr=False)  # Telegram bot name -> token
    session_dir: Path = Path("data/sessions")
    send_rate_per_chat: float = PER_CHAT_RATE
    send_rate_global: float = GLOBAL_RATE
    video_max_bytes: int = 8 * 1024 * 1024
    flow_of: dict[str, str] = field(default_factory=dict)  # Telegram bot name -> flow bot name
    workers: int = WORKERS
    chat_burst: int = PER_CHAT_BURST
    senders: int = SENDERS_PER_BOT
    max_attempts: int = SEND_ATTEMPTS
    catch_up: bool = True
    store: str = "memory"  # where the journal, update states and routes live: "memory" | "mongo"

    def flow_bot(self, bot: str) -> str:
        return self.flow_of.get(bot, bot)

    def bot_id(self, bot: str) -> int:
        return bot_id(self.bot_tokens[bot])


def _secret(value: Any) -> Optional[str]:
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)
    return (getter() if getter else str(value)).strip()


def _student_tokens(primary: Optional[str], listed: Any) -> tuple[list[str], list[str]]:
    """The student bots' tokens in order (``STUDENT_BOT_TOKEN``, then ``STUDENT_BOT_TOKENS``), and
    the problems with the list; a token listed again is the same bot, once."""
    students = [primary] if primary else []
    problems: list[str] = []
    extra_tokens = [t.strip() for t in (_secret(listed) or "").split(",") if t.strip()]
    for i, token in enumerate(extra_tokens, 1):
        if not BOT_TOKEN_RE.match(token):
            problems.append(f"STUDENT_BOT_TOKENS: entry {i} is malformed, expected '<bot id>:<secret>'")
        elif token in students:
            continue  # STUDENT_BOT_TOKEN repeated in the list: the same bot, once
        else:
            students.append(token)
    return students, problems


def student_bot_ids(settings: Settings) -> dict[str, int]:
    """Each student bot's name (``student``, ``student-2``...) and numeric id, as the runtime names them.

    For the parts of the app that must know the student bots without running them (e.g. which
    bot a batch uses); no secret is returned, and malformed tokens are left out (the runtime
    refuses to start with them: :func:`require_telegram_settings`).
    """
    primary = _secret(settings.student_bot_token)
    students, _ = _student_tokens(primary if primary and BOT_TOKEN_RE.match(primary) else None,
                                  settings.student_bot_tokens)
    return {name: bot_id(token) for name, token in zip(physical_names(STUDENT_BOT, len(students)), students)}


def require_telegram_settings(settings: Settings) -> TelegramConfig:
    """Return a :class:`TelegramConfig` or raise :class:`SettingsError` naming every bad setting."""
    problems: list[str] = []
    extra = {name: getattr(settings, name) for name in EXTRA_FIELDS}

    api_id = settings.api_id
    if api_id is None:
        problems.append("API_ID: missing (an integer from my.telegram.org)")
    elif not isinstance(api_id, int) or isinstance(api_id, bool) or api_id <= 0:
        problems.append("API_ID: must be a positive integer")

    api_hash = _secret(settings.api_hash)
    if not api_hash:
        problems.append("API_HASH: missing (32 hex characters from my.telegram.org)")
    elif not API_HASH_RE.match(api_hash):
        problems.append("API_HASH: malformed, expected 32 hexadecimal characters")

    tokens: dict[str, str] = {}
    for bot in BOT_NAMES:
        name = f"{bot.upper()}_BOT_TOKEN"
        token = _secret(getattr(settings, f"{bot}_bot_token"))
        if not token:
            problems.append(f"{name}: missing (from @BotFather /newbot)")
        elif not BOT_TOKEN_RE.match(token):
            problems.append(f"{name}: malformed, expected '<bot id>:<secret>' like 123456:ABC-DEF1234...")
        else:
            tokens[bot] = token
    if len(tokens) == 2 and bot_id(tokens[TEACHER_BOT]) == bot_id(tokens[STUDENT_BOT]):
        problems.append("TEACHER_BOT_TOKEN, STUDENT_BOT_TOKEN: must belong to two different bots")

    students, student_problems = _student_tokens(tokens.get(STUDENT_BOT), extra["student_bot_tokens"])
    problems += student_problems
    ids = [bot_id(t) for t in students]
    if len(set(ids)) != len(ids):
        problems.append("STUDENT_BOT_TOKENS: the same bot is listed twice (with different tokens)")
    if TEACHER_BOT in tokens and bot_id(tokens[TEACHER_BOT]) in ids[1:]:
        problems.append("STUDENT_BOT_TOKENS: the teacher bot cannot also be a student bot")
    flow_of = {TEACHER_BOT: TEACHER_BOT} if TEACHER_BOT in tokens else {}
    for name, token in zip(physical_names(STUDENT_BOT, len(students)), students):
        tokens[name] = token
        flow_of[name] = STUDENT_BOT

    for name, rate in (("SEND_RATE_PER_CHAT", settings.send_rate_per_chat),
                       ("SEND_RATE_GLOBAL", settings.send_rate_global)):
        if not rate > 0:
            problems.append(f"{name}: must be a positive number of messages per second")

    session_dir = Path(settings.telegram_session_dir)
    if session_dir.exists() and not session_dir.is_dir():
        problems.append("TELEGRAM_SESSION_DIR: exists but is not a directory")

    if problems:
        raise SettingsError("Invalid Telegram settings:\n" + "\n".join(f"  {p}" for p in problems))
    return TelegramConfig(
        api_id=int(api_id),  # type: ignore[arg-type]
        api_hash=api_hash,  # type: ignore[arg-type]
        bot_tokens=tokens,
        session_dir=session_dir,
        send_rate_per_chat=float(settings.send_rate_per_chat),
        send_rate_global=float(settings.send_rate_global),
        video_max_bytes=int(settings.video_max_bytes),
        flow_of=flow_of,
        workers=int(extra["telegram_workers"]),
        chat_burst=int(extra["send_burst_per_chat"]),
        senders=int(extra["send_concurrency"]),
        max_attempts=int(extra["send_max_attempts"]),
        catch_up=bool(extra["telegram_catch_up"]),
        store=str(getattr(settings, "store", "memory")),
    )

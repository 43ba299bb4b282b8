"""Validate the Telegram settings up front, reporting every problem in one message.

Pyrogram only notices a bad API_HASH or token after a network round trip (or, for a malformed
token, with an opaque error), so the checks here run before any client is built. Secret values
never appear in the message; only the names of the settings do.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from integrations.settings import Settings, SettingsError

BOT_NAMES = ("teacher", "student")
API_HASH_RE = re.compile(r"^[0-9a-fA-F]{32}$")
# "<numeric bot id>:<secret>", e.g. 123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11 (35 chars today).
BOT_TOKEN_RE = re.compile(r"^\d{3,}:[A-Za-z0-9_-]{30,}$")


@dataclass(frozen=True)
class TelegramConfig:
    """Everything the Telegram runtime needs, validated and with secrets unwrapped."""

    api_id: int
    api_hash: str = field(repr=False)
    bot_tokens: dict[str, str] = field(repr=False)  # bot name -> token
    session_dir: Path = Path("data/sessions")
    send_rate_per_chat: float = 1.0
    send_rate_global: float = 30.0
    video_max_bytes: int = 8 * 1024 * 1024


def _secret(value: Any) -> Optional[str]:
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)
    return (getter() if getter else str(value)).strip()


def require_telegram_settings(settings: Settings) -> TelegramConfig:
    """Return a :class:`TelegramConfig` or raise :class:`SettingsError` naming every bad setting."""
    problems: list[str] = []

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
    if len(tokens) == 2 and tokens["teacher"].split(":")[0] == tokens["student"].split(":")[0]:
        problems.append("TEACHER_BOT_TOKEN, STUDENT_BOT_TOKEN: must belong to two different bots")

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
    )

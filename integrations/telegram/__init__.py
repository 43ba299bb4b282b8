"""Telegram transport (pyrofork/MTProto): maps updates to the engine and sends its replies.

Entry points: :func:`require_telegram_settings`, :class:`TelegramRuntime` (every bot, catch-up,
graceful stop, ``stats``/``health``), :class:`TelegramSender` (the reply sink: journal and send
queues), :class:`BotTransport` (updates) and :func:`student_bot_for_batches` (which student bot
a batch uses).
"""
from integrations.telegram.bots import describe_student_bots, student_bot_for_batches
from integrations.telegram.config import TelegramConfig, require_telegram_settings
from integrations.telegram.health import check_heartbeat, health_command, heartbeat_path
from integrations.telegram.runtime import (
    TelegramRuntime,
    TelegramStartError,
    serve_engine,
)
from integrations.telegram.sender import TelegramSender
from integrations.telegram.transport import BotTransport

__all__ = [
    "BotTransport", "TelegramConfig", "TelegramRuntime", "TelegramSender", "TelegramStartError",
    "check_heartbeat", "describe_student_bots", "health_command", "heartbeat_path",
    "require_telegram_settings", "serve_engine", "student_bot_for_batches",
]

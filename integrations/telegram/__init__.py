"""Telegram transport (Pyrogram/MTProto): maps updates to the engine and renders its replies.

Entry points: :func:`require_telegram_settings`, :class:`TelegramRuntime` (both bots,
graceful stop), :class:`TelegramSender` (replies) and :class:`BotTransport` (updates).
"""
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
    "check_heartbeat", "health_command", "heartbeat_path", "require_telegram_settings", "serve_engine",
]

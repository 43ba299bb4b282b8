"""Engine keyboards -> the client library's reply markup."""
from __future__ import annotations

import logging
from typing import Optional, Union

from pyrogram import types

from engine import Button, InlineButton, SendText
from integrations.telegram.constants import MAX_CALLBACK_DATA

log = logging.getLogger(__name__)

Markup = Union[types.ReplyKeyboardMarkup, types.InlineKeyboardMarkup, types.ReplyKeyboardRemove]


def reply_keyboard(rows: list[list[Button]]) -> types.ReplyKeyboardMarkup:
    """Reply keyboard; one-time and resized so it does not cover the chat after one tap."""
    return types.ReplyKeyboardMarkup(
        [
            [
                types.KeyboardButton(
                    b.text,
                    request_contact=True if b.request == "contact" else None,
                    request_location=True if b.request == "location" else None,
                )
                for b in row
            ]
            for row in rows
        ],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def inline_keyboard(rows: list[list[InlineButton]]) -> types.InlineKeyboardMarkup:
    for row in rows:
        for b in row:
            if len(b.data.encode()) > MAX_CALLBACK_DATA:  # Telegram answers BUTTON_DATA_INVALID otherwise
                raise ValueError(f"inline button data longer than {MAX_CALLBACK_DATA} bytes")
    return types.InlineKeyboardMarkup(
        [[types.InlineKeyboardButton(b.text, callback_data=b.data) for b in row] for row in rows]
    )


def markup_for(action: SendText) -> Optional[Markup]:
    """A message carries one markup: inline wins over a reply keyboard, which wins over removal."""
    if action.inline:
        if action.keyboard or action.remove_keyboard:
            log.warning("SendText has an inline keyboard and a reply keyboard/removal; sending inline only")
        return inline_keyboard(action.inline)
    if action.keyboard:
        return reply_keyboard(action.keyboard)
    if action.remove_keyboard:
        return types.ReplyKeyboardRemove()
    return None

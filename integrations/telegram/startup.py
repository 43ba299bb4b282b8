"""What a failed bot start-up means, in words an operator can act on.

Pyrogram reports an unreachable Telegram as e.g. ``KeyError: 0`` or ``OSError``, and refused
credentials as RPC errors named after Telegram's error codes; start-up used to print only those.
:func:`explain_start_failure` keeps the exception's name (for searching) and says what to check.
Never the token or the API hash.
"""
from __future__ import annotations

import asyncio

from pyrogram import errors

_SETTINGS_HINT = ("Check API_ID and API_HASH (my.telegram.org, \"API development tools\") and {token} "
                  "(@BotFather); `python run.py health` checks that the settings are well-formed.")


def explain_start_failure(bot: str, exc: BaseException) -> str:
    token = f"{bot.upper()}_BOT_TOKEN"
    name = type(exc).__name__
    detail = f"{name}: {exc}" if str(exc) else name
    head = f"the {bot} bot could not start: {detail}."
    if isinstance(exc, (errors.AccessTokenInvalid, errors.AccessTokenExpired)) or "TOKEN" in name.upper():
        why = f"Telegram refused {token}: it is mistyped or was revoked. Get the bot's token from @BotFather."
    elif isinstance(exc, (errors.ApiIdInvalid, errors.ApiIdPublishedFlood)) or name.startswith("ApiId"):
        why = "Telegram refused API_ID/API_HASH. Copy both again from my.telegram.org (\"API development tools\")."
    elif isinstance(exc, errors.FloodWait):
        why = f"Telegram asks to wait {getattr(exc, 'value', '?')} s before logging in again (too many start-ups)."
    elif isinstance(exc, (OSError, asyncio.TimeoutError, TimeoutError, KeyError)):
        why = ("Telegram's servers could not be reached or did not answer the first connection "
               "(Pyrogram reports that as KeyError: 0 or OSError): is this machine online, and may it "
               "connect to Telegram (TCP 443 to 149.154.160.0/20 and 91.108.4.0/22)? "
               + _SETTINGS_HINT.format(token=token))
    else:
        why = _SETTINGS_HINT.format(token=token)
    return f"{head} {why}"

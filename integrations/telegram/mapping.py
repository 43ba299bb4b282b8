"""Pyrogram objects -> :class:`engine.types.Update` (pure functions, no I/O).

Downloading a video note is the transport's job; :func:`map_message` takes the bytes (or none)
so the mapping stays testable without a client.

Why locations come from raw TL: pyrofork (like Pyrogram 2.0.106 before it) parses only
``MessageMediaGeo`` and drops both ``MessageMediaGeoLive`` (a live location arrives as an empty
message) and the GPS accuracy radius. :func:`location_from_raw` reads them from the raw media;
the transport feeds it in.
"""
from __future__ import annotations

import re
from typing import Any, Optional

from pyrogram import enums, raw, types

from engine import Callback, Command, Contact, Location, Update, VideoNote

# "/start", "/start@MyBot", "/otp 1234"; anything else starting with "/" is plain text.
_COMMAND_RE = re.compile(r"^/([A-Za-z0-9_]{1,64})(?:@([A-Za-z0-9_]{3,64}))?(?:\s+(.*))?$", re.DOTALL)

# Media attributes of a pyrogram Message that the flows do not take, in the order checked.
OTHER_KINDS = (
    "photo", "sticker", "animation", "video", "voice", "audio", "document",
    "venue", "poll", "dice", "game",
)


def is_forwarded(message: types.Message) -> bool:
    """True for anything forwarded: a user, a hidden user, a chat or a channel as the origin."""
    return getattr(message, "forward_origin", None) is not None


def parse_command(text: str, bot_username: Optional[str] = None) -> Optional[Command | str]:
    """A :class:`Command`, ``""`` if addressed to another bot, or ``None`` if not a command."""
    match = _COMMAND_RE.match(text.strip())
    if not match:
        return None
    name, target, args = match.groups()
    if target and bot_username and target.lower() != bot_username.lower():
        return ""
    return Command(name=name.lower(), args=(args or "").strip())


def location_from_raw(media: Any) -> Optional[Location]:
    """Location from raw ``MessageMediaGeo``/``MessageMediaGeoLive`` (with accuracy and period)."""
    if isinstance(media, raw.types.MessageMediaGeoLive):
        geo, period = media.geo, media.period
    elif isinstance(media, raw.types.MessageMediaGeo):
        geo, period = media.geo, None
    else:
        return None
    if not isinstance(geo, raw.types.GeoPoint):  # GeoPointEmpty: the user stopped sharing
        return None
    accuracy = getattr(geo, "accuracy_radius", None)
    return Location(
        latitude=geo.lat,
        longitude=geo.long,
        horizontal_accuracy=float(accuracy) if accuracy is not None else None,
        live_period=period,
    )


def other_kind(message: types.Message) -> str:
    """Short type name for a message the flows cannot use ("photo", "video", ...)."""
    for attr in OTHER_KINDS:
        if getattr(message, attr, None) is not None:
            return attr
    if getattr(message, "location", None) is not None:
        return "location"
    return "unsupported"


def is_private(chat: object) -> bool:
    """A one-to-one chat with the bot; groups, supergroups and channels are refused by the engine."""
    return getattr(chat, "type", None) == enums.ChatType.PRIVATE


def _sender(message: types.Message) -> tuple[int, str]:
    user = getattr(message, "from_user", None)
    if user is not None:
        return user.id, user.first_name or ""
    return message.chat.id, ""


def map_message(
    message: types.Message,
    bot: str,
    *,
    bot_username: Optional[str] = None,
    location: Optional[Location] = None,
    video_data: bytes = b"",
) -> Optional[Update]:
    """Translate one incoming message; ``None`` for service messages and other bots' commands.

    ``location`` overrides ``message.location`` (see the module docstring); ``video_data`` is the
    downloaded video note, empty when it was too large or could not be downloaded.
    """
    if getattr(message, "service", None) or message.chat is None:
        return None
    user_id, first_name = _sender(message)
    common = dict(
        bot=bot,
        chat_id=message.chat.id,
        user_id=user_id,
        forwarded=is_forwarded(message),
        message_id=message.id,
        first_name=first_name,
        language_code=getattr(getattr(message, "from_user", None), "language_code", None),
        private=is_private(message.chat),
    )
    if location is None and message.location is not None and message.venue is None:
        location = Location(latitude=message.location.latitude, longitude=message.location.longitude)
    if location is not None:
        return Update(kind="location", payload=location, **common)
    if message.contact is not None:
        c = message.contact
        contact = Contact(phone=c.phone_number or "", user_id=c.user_id,
                          first_name=c.first_name or "", last_name=c.last_name or "")
        return Update(kind="contact", payload=contact, **common)
    if message.video_note is not None:
        v = message.video_note
        note = VideoNote(data=video_data, duration=v.duration or 0, length=v.length or 0,
                         file_size=v.file_size or len(video_data), file_id=v.file_id or "")
        return Update(kind="video_note", payload=note, **common)
    if message.text is not None:  # a text with a link preview is still text
        text = str(message.text)
        command = parse_command(text, bot_username)
        if command == "":
            return None
        if isinstance(command, Command):
            return Update(kind="command", payload=command, **common)
        return Update(kind="text", payload=text, **common)
    return Update(kind="other", payload=other_kind(message), **common)


def map_callback(query: types.CallbackQuery, bot: str) -> Update:
    """Translate an inline-button press; the chat is the hosting message's, else the user's."""
    data = query.data
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("utf-8", "replace")
    message = query.message
    return Update(
        bot=bot,
        chat_id=message.chat.id if message is not None and message.chat else query.from_user.id,
        user_id=query.from_user.id,
        kind="callback",
        payload=Callback(data=data or "", callback_id=str(query.id)),
        message_id=message.id if message is not None else None,
        first_name=query.from_user.first_name or "",
        language_code=getattr(query.from_user, "language_code", None),
        private=is_private(message.chat) if message is not None and message.chat else True,
    )

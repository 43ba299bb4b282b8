"""Transport-neutral messages between a transport (Telegram, simulator) and the engine.

Transports translate their native updates into :class:`Update` and render each :class:`Reply`
action back. Nothing here knows about Telegram, so flows can be simulated offline.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Optional, Union

UpdateKind = Literal[
    "text", "command", "contact", "location", "video_note", "callback", "event", "other"
]


@dataclass(frozen=True)
class Contact:
    phone: str
    user_id: Optional[int] = None  # Telegram user id of the contact, if it is a Telegram user
    first_name: str = ""
    last_name: str = ""


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    horizontal_accuracy: Optional[float] = None  # metres, as reported by the client
    live_period: Optional[int] = None  # seconds, for live locations


@dataclass(frozen=True)
class VideoNote:
    """A round video. ``data`` holds the downloaded bytes (transports download in memory)."""

    data: bytes
    duration: int = 0  # seconds, as reported by Telegram
    length: int = 0  # diameter in pixels
    file_size: int = 0
    file_id: str = ""


@dataclass(frozen=True)
class Command:
    name: str  # without the slash, lower case: "start"
    args: str = ""


@dataclass(frozen=True)
class Callback:
    data: str
    callback_id: str = ""


EventData = Union[Mapping[str, Any], Callable[[str], Mapping[str, Any]]]
"""An event's data, or a function of the recipient conversation's language that makes it (so a
report can format its dates and numbers for the teacher who reads it)."""


@dataclass(frozen=True)
class Event:
    """An internal event posted by the app (timer fired, verification done, session expired)."""

    name: str
    data: EventData = field(default_factory=dict)
    # What the event answers, as conversation values (e.g. {"session_id": "..."}): a state's own
    # handler takes it only when the conversation holds exactly these values (docs/flows.md).
    about: dict[str, Any] = field(default_factory=dict)

    def data_in(self, language: str) -> dict[str, Any]:
        """The event's data for a conversation in ``language``."""
        data = self.data(language) if callable(self.data) else self.data
        return dict(data)


Payload = Union[str, Contact, Location, VideoNote, Command, Callback, Event, None]


@dataclass(frozen=True)
class Update:
    """One incoming thing a conversation must react to."""

    bot: str  # which bot received it: "teacher", "student", or any flow's bot name
    chat_id: int
    user_id: int
    kind: UpdateKind
    payload: Payload = None
    forwarded: bool = False
    message_id: Optional[int] = None
    first_name: str = ""
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    language_code: Optional[str] = None  # the sender's app language (IETF tag: "hi", "en-US")
    # A one-to-one chat with the bot. Conversations live only there: in a group several people
    # share one chat, so the engine refuses anything else (transports say what the chat is).
    private: bool = True

    @property
    def key(self) -> tuple[str, int]:
        return (self.bot, self.chat_id)


# ---------------------------------------------------------------------------------------------
# Replies: what the engine asks a transport to do.


@dataclass(frozen=True)
class Button:
    """A reply-keyboard button; ``request`` asks the client to share something."""

    text: str
    request: Optional[Literal["contact", "location"]] = None


@dataclass(frozen=True)
class InlineButton:
    text: str
    data: str


@dataclass(frozen=True)
class SendText:
    text: str
    keyboard: Optional[list[list[Button]]] = None  # reply keyboard rows
    inline: Optional[list[list[InlineButton]]] = None  # inline keyboard rows
    remove_keyboard: bool = False


@dataclass(frozen=True)
class EditText:
    """Edit a message the bot sent earlier (e.g. tick a multi-select option in place)."""

    message_id: int
    text: str
    inline: Optional[list[list[InlineButton]]] = None


@dataclass(frozen=True)
class AnswerCallback:
    callback_id: str
    text: str = ""


@dataclass(frozen=True)
class DeleteMessage:
    message_id: int


@dataclass(frozen=True)
class SendDocument:
    filename: str
    data: bytes
    caption: str = ""


ReplyAction = Union[SendText, EditText, AnswerCallback, DeleteMessage, SendDocument]


@dataclass(frozen=True)
class Outgoing:
    """Replies addressed to one chat of one bot."""

    bot: str
    chat_id: int
    actions: tuple[ReplyAction, ...]
    request_id: str = ""

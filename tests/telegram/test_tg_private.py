"""Issue 14 item 1: the mapping says whether a chat is private; the engine refuses the rest."""
from __future__ import annotations

from pyrogram import enums, types

from integrations.telegram.mapping import map_callback, map_message


def _message(chat_type: enums.ChatType, chat_id: int, user_id: int, **fields) -> types.Message:
    chat = types.Chat(id=chat_id, type=chat_type)
    return types.Message(id=1, chat=chat, from_user=types.User(id=user_id, first_name="A"), **fields)


def test_only_a_private_chat_maps_as_private() -> None:
    assert map_message(_message(enums.ChatType.PRIVATE, 7, 7, text="hi"), "student").private is True
    for kind in (enums.ChatType.GROUP, enums.ChatType.SUPERGROUP, enums.ChatType.CHANNEL):
        update = map_message(_message(kind, -1007, 7, text="123456"), "student")
        assert update.private is False and update.chat_id == -1007


def test_a_button_under_a_group_message_is_not_private() -> None:
    group = _message(enums.ChatType.SUPERGROUP, -1007, 7, text="pick")
    query = types.CallbackQuery(id="1", from_user=types.User(id=8, first_name="B"), chat_instance="1",
                                message=group, data=b"1|o0")
    assert map_callback(query, "teacher").private is False

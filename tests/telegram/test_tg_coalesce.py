"""Coalescing one step's replies into as few messages as Telegram allows (pure functions)."""
from __future__ import annotations

from engine.types import AnswerCallback, Button, DeleteMessage, EditText, InlineButton, SendDocument, SendText
from integrations.telegram.coalesce import coalesce, merge, plain_text

KB = [[Button("📍 Share my location", "location")]]
INLINE = [[InlineButton("Yes", "1|o0")]]


def test_a_say_and_the_next_prompt_with_its_keyboard_are_one_message():
    assert coalesce([SendText("Code accepted."), SendText("Share your location", keyboard=KB)]) == [
        SendText("Code accepted.\n\nShare your location", keyboard=KB)]


def test_the_last_reply_markup_wins_and_an_earlier_one_is_kept_when_none_follows():
    assert coalesce([SendText("a", remove_keyboard=True), SendText("b", keyboard=KB)]) == [SendText("a\n\nb", keyboard=KB)]
    assert coalesce([SendText("a", keyboard=KB), SendText("b")]) == [SendText("a\n\nb", keyboard=KB)]
    assert coalesce([SendText("a", keyboard=KB), SendText("b", remove_keyboard=True)]) == [
        SendText("a\n\nb", remove_keyboard=True)]


def test_inline_buttons_end_a_message_and_do_not_follow_a_reply_keyboard():
    assert coalesce([SendText("Logged in."), SendText("What now?", inline=INLINE)]) == [
        SendText("Logged in.\n\nWhat now?", inline=INLINE)]
    assert coalesce([SendText("Pick", inline=INLINE), SendText("after")]) == [
        SendText("Pick", inline=INLINE), SendText("after")]
    assert coalesce([SendText("a", keyboard=KB), SendText("Pick", inline=INLINE)]) == [
        SendText("a", keyboard=KB), SendText("Pick", inline=INLINE)]


def test_other_actions_keep_their_place_and_callback_answers_are_left_out():
    actions = [AnswerCallback("1"), DeleteMessage(4), SendText("a"), SendText("b"), EditText(5, "e"),
               SendDocument("r.csv", b"x"), SendText("c")]
    assert coalesce(actions) == [DeleteMessage(4), SendText("a\n\nb"), EditText(5, "e"), SendDocument("r.csv", b"x"),
                                 SendText("c")]


def test_nothing_is_joined_past_telegrams_limit_and_long_texts_are_split():
    a, b = "a" * 3000, "b" * 3000
    assert coalesce([SendText(a), SendText(b)]) == [SendText(a), SendText(b)]
    parts = coalesce([SendText("x" * 5000, remove_keyboard=True)])
    assert [len(p.text) for p in parts] == [4096, 904] and parts[-1].remove_keyboard and not parts[0].remove_keyboard


def test_empty_texts_add_no_blank_lines():
    assert coalesce([SendText(""), SendText("b", keyboard=KB)]) == [SendText("b", keyboard=KB)]


def test_follow_up_helpers():
    assert plain_text([SendText("a"), SendText("b")]) == "a\n\nb"
    assert plain_text([SendText("a", keyboard=KB)]) is None and plain_text([]) is None
    assert merge(EditText(3, "ack"), SendText("verdict")) == EditText(3, "ack\n\nverdict")
    assert merge(EditText(3, "pick", inline=INLINE), SendText("x")) is None

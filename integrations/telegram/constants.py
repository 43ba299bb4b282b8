"""Every number the Telegram transport runs on, in one place.

Settings (``.env``) override the ones marked *setting*; the rest are fixed on purpose and named
here so a reader can find why the transport behaves as it does.
"""
from __future__ import annotations

# --- Telegram's own limits (Bot FAQ: ~1 message/s per chat with short bursts, ~30/s per bot).
MAX_TEXT = 4096  # characters in one message
MAX_CALLBACK_DATA = 64  # bytes of inline button data

# --- sending (per bot)
GLOBAL_RATE = 30.0  # setting SEND_RATE_GLOBAL: messages/s per bot, a smooth rate (no burst)
PER_CHAT_RATE = 1.0  # setting SEND_RATE_PER_CHAT: messages/s to one chat, on average
PER_CHAT_BURST = 2  # setting SEND_BURST_PER_CHAT: messages one chat may get back to back
SENDERS_PER_BOT = 8  # setting SEND_CONCURRENCY: sends in flight per bot (covers ~250 ms round trips at 30/s)
SEND_ATTEMPTS = 5  # setting SEND_MAX_ATTEMPTS: tries of one message before it is recorded as failed
RETRY_BACKOFF_S = (1.0, 2.0, 5.0, 15.0)  # wait before the 2nd, 3rd, 4th, 5th try (the last value repeats)
FLOOD_WAIT_LOG_ERROR_S = 60.0  # a FloodWait longer than this is logged as an error (it is still obeyed)
MAX_CHATS_TRACKED = 20_000  # per bot: idle chats beyond this are forgotten (LRU)
WAIT_SAMPLES = 2048  # per bot: recent reply waits kept for p50/p95
RATE_WINDOW_S = 10.0  # stats: "send rate" is the messages of the last 10 s / 10
STALLED_AFTER_S = 300.0  # health: a reply waiting longer than this marks the queue stalled

# --- coalescing (integrations/telegram/coalesce.py)
JOIN = "\n\n"  # between two texts merged into one message
FOLLOW_UP_EDIT_WINDOW_S = 60.0  # a follow-up (no user input since) is appended by editing a message this recent

# --- receiving
WORKERS = 16  # setting TELEGRAM_WORKERS: Pyrogram handler tasks per bot (steps no longer wait for sends)
CATCH_UP_MAX_ROUNDS = 1000  # getDifference calls at start before giving up (a slice is ~100 updates)
STATE_SAVE_INTERVAL_S = 0.5  # the update state is written at most this often while updates flow

# --- bots
STUDENT_BOT = "student"  # the flows' name for the student bot; extra student bots are "student-2", ...
TEACHER_BOT = "teacher"

"""Every name and limit the engine agrees on with flows, transports and stores, in one place."""
from __future__ import annotations

# --- machine events (what an update means; see compiler.py). One name per event, everywhere:
# the compiled transition, the internal Event the timer posts, and docs/flows.md.
NEXT_EVENT = "next"
TIMEOUT_EVENT = "timeout"  # also the name of the Event a timer posts to a chat
RETRY_EVENT = "retry"
OUTCOME_PREFIX = "o_"
OPTION_PREFIX = "opt_"
COMMAND_PREFIX = "cmd_"
INTERNAL_PREFIX = "ev_"
BACK_PREFIX = "back_"
# Flow event names the engine keeps for itself (a flow's `events:` may not use them).
RESERVED_EVENTS = (TIMEOUT_EVENT,)

# --- the built-in back (docs/flows.md, "Going back")
BACK_COMMAND = "back"
HISTORY_LIMIT = 10  # questions remembered for /back; older ones are dropped

# --- languages (docs/flows.md, "Languages")
DEFAULT_LANGUAGE = "en"  # a flow's default_language when it names none
LANGUAGE_PATTERN = "^[a-z]{2,3}$"  # ISO 639-1/-3 codes: en, hi, te (flow.schema.json agrees)
LANGUAGE_COMMAND = "language"  # built in when a flow lists more than one language
LANGUAGE_CHOICE = "lang:"  # callback data of a /language button: "lang:hi"
LOCALES_DIR = "locales"  # catalogs beside the flows: locales/<language>.yaml, one section per flow
# The engine's own texts for /language; a flow may set them in `texts:` (and must, if its default
# language is not English). Catalogs translate them like any other text.
LANGUAGE_TEXTS = {
    "language_prompt": "🌐 Choose your language:",
    "language_changed": "✅ I will write in English from now on.",
}
# The name on each language's /language button, written in that language.
LANGUAGE_NAMES = {
    "en": "English", "hi": "हिन्दी", "te": "తెలుగు", "ta": "தமிழ்", "kn": "ಕನ್ನಡ", "ml": "മലയാളം",
    "mr": "मराठी", "bn": "বাংলা", "gu": "ગુજરાતી", "pa": "ਪੰਜਾਬੀ", "or": "ଓଡ଼ିଆ", "ur": "اردو",
    "as": "অসমীয়া",
}

# --- conversation data keys. `__name`: engine bookkeeping, stored but never a placeholder;
# `_name`: transient, lives for one step only (passwords, video bytes, generated files).
OPTIONS_KEY = "__options"
HISTORY_KEY = "__history"
LANGUAGE_KEY = "__language"  # the conversation's language, when it is not the flow's default
LANGUAGE_CHOSEN_KEY = "__language_chosen"  # set by /language: Telegram's language no longer counts
COMMAND_ARGS_KEY = "command_args"
BUILTIN_KEYS = ("first_name", "user_id", "chat_id", COMMAND_ARGS_KEY)

# --- flows
INPUT_KINDS = ("text", "number", "contact", "location", "video_note", "choice", "multichoice")
# Which Update kinds answer which ask kind.
ACCEPTS: dict[str, tuple[str, ...]] = {
    "text": ("text",),
    "number": ("text",),
    "contact": ("contact",),
    "location": ("location",),
    "video_note": ("video_note",),
    "choice": ("callback", "text"),
    "multichoice": ("callback",),
}
# Media that must come from the sender themselves unless the state says otherwise.
FORWARD_SENSITIVE = ("contact", "location", "video_note")
REQUIRED_COMMANDS = ("start", "cancel", "help")
MAX_HOPS = 50  # states entered in one step without waiting for the user

# Texts a flow may set in `texts:`; the engine says these when it does not.
DEFAULT_TEXTS = {
    # Anything from a group, supergroup or channel: said once per chat, nothing is stored.
    "private_only": "I only talk in private chats. Please open a chat with me and send /start there.",
    # A message in a conversation from someone who is not its user (never in a private chat).
    "not_yours": "This conversation belongs to someone else.",
}
REFUSED_CHATS_REMEMBERED = 10000  # chats already told "private_only" (in memory, oldest forgotten)

# --- validation
REGEX_TIMEOUT_S = 0.02  # a validate.regex that takes longer counts as not matching (the `regex` package
# stops about 2-3 times later than asked on a busy machine: ~50 ms)

# --- replies
TICK = "✅ "  # marks a ticked multichoice option
MAX_TEXT = 4096  # Telegram's message length limit
DONE_CHOICE = "done"  # callback choice of a multichoice's done button
BACK_CHOICE = "back"  # callback choice of an inline Back button
DEFAULT_DONE_LABEL = "Done"

# --- checker
SUGGEST_CUTOFF = 0.6  # difflib ratio for "did you mean ...?"
STATE_NAME_PATTERN = "^[a-z][a-z0-9_]*$"  # flow.schema.json's $defs.target (and flow/bot names)
MAX_PROBLEM_LENGTH = 200  # characters of a schema message shown before "…"


def is_transient(key: str) -> bool:
    """`_name` keys live for one step only (passwords, video bytes, report files)."""
    return key.startswith("_") and not key.startswith("__")

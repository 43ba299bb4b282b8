"""One step of one conversation: an update in, state changes and reply actions out.

Pure apart from hooks: no transport, no store. The :class:`~engine.runtime.Engine` loads the
conversation, runs a :class:`Step`, saves the result and delivers the actions.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import time
from typing import Any, Callable, Literal, Optional

from .compiler import event_back, event_command, event_internal, event_option, event_outcome
from .constants import (
    ACCEPTS,
    BACK_CHOICE,
    BACK_COMMAND,
    COMMAND_ARGS_KEY,
    DONE_CHOICE,
    HISTORY_KEY,
    HISTORY_LIMIT,
    LANGUAGE_CHOICE,
    LANGUAGE_COMMAND,
    MAX_HOPS,
    NEXT_EVENT,
    OPTIONS_KEY,
    RETRY_EVENT,
    TIMEOUT_EVENT,
    is_transient,
)
from .errors import FlowRuntimeError
from .hooks import HookContext, HookRegistry, HookResult
from .i18n import find_language, language_buttons, pick_language, remember_language
from .loader import CompiledFlow
from .patterns import fullmatch
from .render import fill, inline_options, parse_callback, prompt_action
from .spec import FlowSpec, Handler, StateSpec
from .store import Conversation
from .types import (
    AnswerCallback,
    Callback,
    Command,
    Contact,
    DeleteMessage,
    EditText,
    Event,
    Location,
    ReplyAction,
    SendDocument,
    SendText,
    Update,
    VideoNote,
)

log = logging.getLogger(__name__)


# How a state is entered, for the back history: by answering the question the conversation was
# in (remembered), by going back (already popped), or by anything else (history cleared).
Via = Literal["answer", "back", "jump"]


class Step:
    """Handles one update for one conversation; the Engine persists what it leaves behind."""

    def __init__(
        self,
        flow: CompiledFlow,
        conversation: Conversation,
        update: Update,
        hooks: HookRegistry,
        services: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.flow = flow
        # The conversation's language, and the flow with its texts in that language.
        self.language, self.language_chosen = pick_language(flow.spec, conversation.data, update.language_code)
        self.spec = flow.spec_in(self.language)
        self.conv = conversation
        self.update = update
        self.hooks = hooks
        self.services = services
        self.clock = clock
        self.actions: list[ReplyAction] = []
        self.trace: list[str] = []  # every state entered during this step, in order
        # Questions answered on the way here, newest last: where /back returns to.
        self.history: list[str] = list(conversation.data.get(HISTORY_KEY) or ()) if self.spec.back else []

    # ------------------------------------------------------------------ helpers
    @property
    def data(self) -> dict[str, Any]:
        return self.conv.data

    def values(self) -> dict[str, Any]:
        values = {k: v for k, v in self.data.items() if not k.startswith("__")}
        values.setdefault("first_name", self.update.first_name)
        values.setdefault("user_id", self.conv.user_id)
        values.setdefault("chat_id", self.conv.chat_id)
        return values

    def say(self, text: Optional[str], **kwargs: Any) -> None:
        """Send a flow text; one that fills to nothing (only empty placeholders) is not sent."""
        if text:
            filled = fill(text, self.values())
            if filled.strip():
                self.actions.append(SendText(filled, **kwargs))

    def text(self, key: str) -> str:
        return self.spec.texts[key]

    def state_spec(self) -> StateSpec:
        return self.spec.states[self.conv.state]

    def _answer_callback(self, text: str = "") -> None:
        payload = self.update.payload
        if isinstance(payload, Callback):
            self.actions.append(AnswerCallback(payload.callback_id, fill(text, self.values()) if text else ""))

    def _document(self, doc: Any) -> None:
        content = self.data.get(doc.data)
        if content is None:
            log.warning("document data %r is empty; nothing sent", doc.data)
            return
        if isinstance(content, str):
            content = content.encode("utf-8")
        self.actions.append(
            SendDocument(fill(doc.filename, self.values()), bytes(content), fill(doc.caption, self.values()))
        )

    # ------------------------------------------------------------------ entry points
    async def start(self) -> None:
        """A conversation's first update: enter the start state (commands still count)."""
        if self.update.kind == "command":
            await self._handle()
        else:
            await self.enter(self.spec.start)
        self._finish()

    async def handle(self) -> None:
        """An update for a conversation that is in one of the flow's states."""
        await self._handle()
        self._finish()

    def _finish(self) -> None:
        """Bookkeeping kept in the data, written last so a reset or a hook clearing the data
        never loses it: the back history and the language."""
        self._keep_history()
        remember_language(self.data, self.flow.spec, self.language, self.language_chosen)

    async def _handle(self) -> None:
        update, state = self.update, self.state_spec()
        payload = update.payload
        if (isinstance(payload, Callback) and payload.data.startswith(LANGUAGE_CHOICE)
                and self.spec.multilingual):
            await self._choose_language(payload.data[len(LANGUAGE_CHOICE):])
        elif update.kind == "event":
            await self._on_event(state, update.payload)  # type: ignore[arg-type]
        elif update.kind == "command":
            await self._on_command(state, update.payload)  # type: ignore[arg-type]
        elif state.final:
            self._answer_callback(self.text("stale_button"))
            self.say(self.text("ended"))
        elif not state.ask:
            # Waiting for an event (e.g. a verification result): explain, change nothing.
            self._answer_callback(self.text("stale_button"))
            self.say(state.hint or self.text("wrong_kind"))
        else:
            await self._on_input(state)

    # ------------------------------------------------------------------ commands and events
    async def _on_command(self, state: StateSpec, command: Command) -> None:
        if command.name == BACK_COMMAND and self.spec.back is not None:
            await self._back(state)
            return
        if command.name == LANGUAGE_COMMAND and self.spec.multilingual:
            await self._language_command(command.args)
            return
        handler = state.commands.get(command.name) or self.spec.commands.get(command.name)
        if handler is None:
            self.say(self.text("unknown_command"))
            return
        self.data[COMMAND_ARGS_KEY] = command.args
        await self._run_handler(handler, event_command(command.name))

    async def _on_event(self, state: StateSpec, event: Event) -> None:
        if event.name == TIMEOUT_EVENT:
            if event.data.get("epoch") == self.conv.epoch and state.timeout:
                self.say(state.timeout.say)
                await self._follow(TIMEOUT_EVENT)
            return
        handler = state.events.get(event.name)
        ours = all(self.data.get(key) == value for key, value in event.about.items())
        if handler is None or not ours:
            # Not this state's (or an answer about something else, e.g. another session's face
            # check): only the flow-wide handler may answer it, and it never moves the state.
            handler = self.spec.events.get(event.name)
            if handler is None:
                log.info("event %r ignored in state %r", event.name, state.name)
                return
        data = event.data_in(self.language)
        if ours:
            self.data.update(data)
        else:  # never overwrite this conversation's values with another one's
            self.data.update({k: v for k, v in data.items() if is_transient(k)})
            handler = dataclasses.replace(handler, goto=None)
        await self._run_handler(handler, event_internal(event.name))

    async def _run_handler(self, handler: Handler, event: str) -> None:
        if handler.reset:
            self.conv.data = dict(self.spec.data)
        self.say(handler.say)
        if handler.document:
            self._document(handler.document)
        if handler.goto:
            await self._follow(event)

    async def _follow(self, event: str, via: Via = "jump") -> None:
        target = self.flow.stepper.target(self.conv.state, event)
        if target is None:
            raise FlowRuntimeError(f"no transition for {event!r} from {self.conv.state!r}")
        await self.enter(target, via)

    # ------------------------------------------------------------------ languages
    async def _language_command(self, args: str) -> None:
        """`/language hi` (or its name) switches at once; `/language` offers a button per language."""
        language = find_language(self.spec, args)
        if language is not None:
            await self._choose_language(language)
            return
        self.actions.append(SendText(fill(self.text("language_prompt"), self.values()),
                                     inline=language_buttons(self.spec, self.language)))

    async def _choose_language(self, language: str) -> None:
        """Speak ``language`` from now on, and ask the question the user is at again in it."""
        if language not in self.spec.languages:
            self._answer_callback(self.text("stale_button"))
            return
        self.language, self.language_chosen = language, True
        self.spec = self.flow.spec_in(language)
        self._answer_callback()
        self.say(self.text("language_changed"))
        state = self.state_spec()
        if state.final:
            return
        if state.ask:
            await self._prompt(state)
        else:
            self.say(state.hint)

    def _other_specs(self) -> list[FlowSpec]:
        """The flow in its other languages: a label typed (or a keyboard kept from before a
        language change) still counts in any of them."""
        return [self.flow.spec_in(language) for language in self.spec.languages if language != self.language]

    # ------------------------------------------------------------------ going back
    def _keep_history(self) -> None:
        if self.history:
            self.data[HISTORY_KEY] = self.history[-HISTORY_LIMIT:]
        else:
            self.data.pop(HISTORY_KEY, None)

    def _back_label(self, state: StateSpec, shown: bool = True) -> Optional[str]:
        """The Back button's label where this question has one; ``shown``: only when there is
        somewhere to go back to (a keyboard can outlive its question, so a tap is still read)."""
        back = self.spec.back
        if back is None or not back.button or not state.back or (shown and not self.history):
            return None
        return fill(back.button, self.values())

    def _is_back_button(self, state: StateSpec) -> bool:
        label = self._back_label(state, shown=False)
        if label is None or self.update.kind != "text":
            return False
        typed = str(self.update.payload or "").strip()
        labels = [label] + [fill(spec.back.button, self.values()) for spec in self._other_specs()
                            if spec.back is not None and spec.back.button]
        return typed in (text.strip() for text in labels)

    async def _back(self, state: StateSpec) -> None:
        """Return to the previous question, if this state allows it and the flow leads there."""
        back = self.spec.back
        assert back is not None
        question = self.history[-1] if self.history else None
        if (not state.back or question is None
                or self.flow.stepper.target(state.name, event_back(question)) != question):
            if isinstance(self.update.payload, Callback):
                self._answer_callback(back.unavailable)
            else:
                self.say(back.unavailable)
            return
        self.history.pop()
        self._answer_callback()
        await self.enter(question, "back")

    # ------------------------------------------------------------------ entering states
    async def enter(self, target: str, via: Via = "jump") -> None:
        """Enter ``target`` and go on until a state waits (asks, waits for an event, or ends)."""
        if via == "answer":
            self.history.append(self.conv.state)
        elif via == "jump":
            self.history.clear()
        for _ in range(MAX_HOPS):
            state = self.spec.states[target]
            self.trace.append(target)
            self.conv.state = target
            self.conv.epoch += 1
            self.conv.retries = 0
            self.conv.deadline = self.clock() + state.timeout.after if state.timeout else None
            self.say(state.say)
            if state.document:
                self._document(state.document)
            if state.final:
                self.history.clear()
                return
            if state.ask:
                await self._prompt(state)
                return
            if state.call:
                next_target = await self._call(state, None)
                if next_target is None:
                    return
                target = next_target
                continue
            if state.next:
                target = self.flow.stepper.target(target, NEXT_EVENT) or state.next
                continue
            return  # a state that waits for an event or a command
        raise FlowRuntimeError(f"more than {MAX_HOPS} states without waiting for the user")

    async def _options(self, state: StateSpec, refresh: bool) -> list[tuple[str, str]]:
        if state.options:
            return [(o.id, o.label) for o in state.options]
        stored = self.data.get(OPTIONS_KEY)
        if stored and not refresh:
            return [(str(i), str(label)) for i, label in stored]
        result = await self.hooks.call(state.options_from, self._ctx(state))  # type: ignore[arg-type]
        raw = result.data.get("options", [])
        options = [
            (str(o["id"]), str(o["label"])) if isinstance(o, dict) else (str(o[0]), str(o[1]))
            for o in raw
        ]
        self.data[OPTIONS_KEY] = [list(o) for o in options]
        return options

    async def _prompt(self, state: StateSpec) -> None:
        options: list[tuple[str, str]] = []
        selected: list[str] = []
        if state.ask in ("choice", "multichoice"):
            options = await self._options(state, refresh=True)
        if state.ask == "multichoice" and state.save:
            selected = [s for s in self.data.get(state.save) or [] if s in dict(options)]
            self.data[state.save] = selected
        while self.history and self.history[-1] == state.name:
            self.history.pop()  # answered and asked again: not a step back
        self.actions.append(prompt_action(state, self.values(), self.conv.epoch, options, selected,
                                          self._back_label(state)))

    # ------------------------------------------------------------------ hooks
    def _ctx(self, state: StateSpec, answer: Any = None) -> HookContext:
        return HookContext(self.update, self.data, self.spec.name, state.name, self.services, answer,
                           self.language)

    async def _call(self, state: StateSpec, answer: Any) -> Optional[str]:
        """Call the state's hook; return the state to enter next (None: stay)."""
        result: HookResult = await self.hooks.call(state.call, self._ctx(state, answer))  # type: ignore[arg-type]
        self.data.update(result.data)
        handler = state.on.get(result.outcome)
        if handler is None:
            if result.outcome == "ok" and state.next:
                return self.flow.stepper.target(state.name, NEXT_EVENT)
            raise FlowRuntimeError(f"hook {state.call!r} returned unhandled {result.outcome!r}")
        if handler.reset:
            self.conv.data = dict(self.spec.data)
        if handler.goto == state.name and state.ask:
            # Back to the same question: a failed answer, counted against the retry limit.
            await self._failed_input(state, handler.say)
            return None
        self.say(handler.say)
        if handler.document:
            self._document(handler.document)
        if not handler.goto:
            return None
        return self.flow.stepper.target(state.name, event_outcome(result.outcome))

    # ------------------------------------------------------------------ input
    async def _failed_input(self, state: StateSpec, message: Optional[str]) -> None:
        self.conv.retries += 1
        if state.retry and self.conv.retries >= state.retry.max:
            self.say(state.retry.say or self.text("too_many_attempts"))
            await self._follow(RETRY_EVENT)
        else:
            self.say(message or state.hint or self.text("wrong_kind"))

    async def _on_input(self, state: StateSpec) -> None:
        update = self.update
        assert state.ask is not None
        if self._is_back_button(state):
            await self._back(state)
            return
        if update.kind not in ACCEPTS[state.ask]:
            if update.kind == "callback":
                self._answer_callback(self.text("stale_button"))
            else:
                self.say(state.hint or self.text("wrong_kind"))
            return
        if update.forwarded and not state.forwarded_ok:
            self.say(self.text("forwarded"))
            return
        if state.delete_input and update.message_id is not None:
            self.actions.append(DeleteMessage(update.message_id))

        if update.kind == "callback":
            value = await self._callback_value(state)
            if value is None:
                return
        else:
            value = self._value_of(state, update)
            if value is None:
                await self._failed_input(state, state.validate.error if state.validate else None)
                return
        ok, message = await self._validate(state, value)
        if not ok:
            await self._failed_input(state, message)
            return
        if state.save:
            self.data[state.save] = value
        if state.call:
            target = await self._call(state, value)
            if target is not None:
                await self.enter(target, "answer")
            return
        if state.ask == "choice":
            option = next((o for o in state.options if o.id == value), None)
            if option and option.goto:
                await self._follow(event_option(option.id), "answer")
                return
        await self._follow(NEXT_EVENT, "answer")

    async def _callback_value(self, state: StateSpec) -> Any:
        payload = self.update.payload
        assert isinstance(payload, Callback)
        epoch, choice = parse_callback(payload.data)
        if epoch != self.conv.epoch:
            self._answer_callback(self.text("stale_button"))
            return None
        if choice == BACK_CHOICE and self.spec.back is not None:
            await self._back(state)
            return None
        options = await self._options(state, refresh=False)
        if state.ask == "multichoice" and choice == DONE_CHOICE:
            selected = list(self.data.get(state.save or "", []))
            if len(selected) < state.min_selected:
                self._answer_callback(state.hint or self.text("wrong_kind"))
                return None
            self._answer_callback()
            return selected
        match = re.fullmatch(r"o([0-9]{1,6})", choice)
        if not match or int(match.group(1)) >= len(options):
            self._answer_callback(self.text("stale_button"))
            return None
        option_id = options[int(match.group(1))][0]
        if state.ask == "choice":
            self._answer_callback()
            return option_id
        # multichoice: toggle in place and keep waiting
        key = state.save or ""
        selected = list(self.data.get(key, []))
        if option_id in selected:
            selected.remove(option_id)
        else:
            selected.append(option_id)
        self.data[key] = selected
        self._answer_callback()
        if self.update.message_id is not None:
            done = fill(state.done_label or "", self.values())
            self.actions.append(
                EditText(
                    self.update.message_id,
                    fill(state.prompt or "", self.values()),
                    inline_options(options, self.conv.epoch, selected, done, self._back_label(state)),
                )
            )
        return None

    def _value_of(self, state: StateSpec, update: Update) -> Any:
        payload = update.payload
        if state.ask == "text":
            return str(payload or "").strip()
        if state.ask == "number":
            try:
                number = float(str(payload).strip().replace(",", "."))
            except ValueError:
                return None
            if number != number or number in (float("inf"), float("-inf")):
                return None
            return int(number) if number.is_integer() else number
        if state.ask == "choice":
            typed = str(payload or "").strip().casefold()
            if not state.options:  # a hook's options: one set of labels
                options = [(str(i), str(label)) for i, label in self.data.get(OPTIONS_KEY, [])]
                return next((oid for oid, label in options if label.casefold() == typed), None)
            for spec in (self.spec, *self._other_specs()):  # the user's language first
                options = [(o.id, o.label) for o in spec.states[state.name].options]
                found = next((oid for oid, label in options if label.casefold() == typed), None)
                if found is not None:
                    return found
            return None
        if isinstance(payload, (Contact, Location)):
            return dataclasses.asdict(payload)
        if isinstance(payload, VideoNote):
            return payload
        return None

    async def _validate(self, state: StateSpec, value: Any) -> tuple[bool, Optional[str]]:
        rule = state.validate
        if rule is None:
            return True, None
        # Cheap checks first: lengths before any pattern, so a long message never reaches one.
        if isinstance(value, str):
            if rule.min_length is not None and len(value) < rule.min_length:
                return False, rule.error
            if rule.max_length is not None and len(value) > rule.max_length:
                return False, rule.error
        if isinstance(value, (int, float)):
            if rule.min is not None and value < rule.min:
                return False, rule.error
            if rule.max is not None and value > rule.max:
                return False, rule.error
        if rule.regex is not None and not fullmatch(rule.regex, str(value)):
            return False, rule.error
        if rule.hook:
            result = await self.hooks.call(rule.hook, self._ctx(state, value))
            self.data.update(result.data)
            if result.outcome != "ok":
                return False, rule.error
        return True, None

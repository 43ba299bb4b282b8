"""Flows in several languages: catalogs beside the flow, the user's language from Telegram or
/language, a fallback text by text, and what `check` says about catalogs."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.constants import LANGUAGE_CHOSEN_KEY, LANGUAGE_KEY
from engine.errors import FlowLoadError
from engine.hooks import HookContext, HookRegistry, HookResult
from engine.i18n import canonical, language_tag, needs_translation, texts_of
from engine.loader import check_paths, load_flow
from engine.runtime import Engine
from engine.simulator import SimUser, Simulator
from engine.store import MemoryStore
from engine.types import Callback, Update

from .flowkit import flow_text, write_flow

HEADER = "languages: [en, hi, te]\ndefault_language: en\n"
BACK = 'back:\n  button: "BACK"\n  unavailable: "NO-BACK"\n'
STATES = """\
  first:
    say: "Hello {first_name}!"
    next: ask_name
  ask_name:
    ask: text
    prompt: "Your name?"
    save: name
    next: pick
  pick:
    ask: choice
    prompt: "Pick one, {name}"
    options: [{id: tea, label: "Tea"}, {id: coffee, label: "Coffee"}]
    save: drink
    back: true
    call: serve
    on:
      ok: {say: "Here is your {drink}.", goto: waiting}
  waiting:
    hint: "Wait for it."
    events:
      ready: {say: "Ready at {at}.", goto: bye, provides: [at]}
  bye:
    say: "Bye."
    final: true
"""
FLOW = flow_text(STATES, extra=HEADER + BACK)

HI = """\
t:
  texts:
    ended: "समाप्त"
    language_prompt: "भाषा चुनें:"
    language_changed: "अब हिन्दी में।"
  commands:
    cancel: "रद्द"
    help: {say: "मदद"}
  back: {button: "वापस", unavailable: "पीछे नहीं"}
  states:
    first: {say: "नमस्ते {first_name}!"}
    ask_name: {prompt: "आपका नाम?"}
    pick:
      prompt: "एक चुनें, {name}"
      options: {tea: "चाय", coffee: "कॉफ़ी"}
      on: {ok: "यह रही आपकी {drink}।"}
    waiting:
      hint: "रुकिए।"
      events: {ready: "{at} पर तैयार।"}
    bye: {say: "अलविदा।"}
"""


def serve(ctx: HookContext) -> HookResult:
    return HookResult("ok", {"served_in": ctx.language})


def hooks() -> HookRegistry:
    registry = HookRegistry()
    registry.register("serve", serve, provides=("served_in",))
    return registry


def setup(tmp_path: Path, hi: str = HI, te: str | None = "t: {}\n", flow: str = FLOW) -> Path:
    (tmp_path / "locales").mkdir(exist_ok=True)
    (tmp_path / "locales" / "hi.yaml").write_text(hi, encoding="utf-8")
    if te is not None:
        (tmp_path / "locales" / "te.yaml").write_text(te, encoding="utf-8")
    return write_flow(tmp_path, flow)


def simulator(path: Path) -> tuple[Simulator, Engine]:
    registry = hooks()
    flow = load_flow(path, registry)
    engine = Engine({flow.spec.bot: flow}, registry, MemoryStore(), use_timers=False)
    return Simulator(engine), engine


def user(language: str | None) -> SimUser:
    return SimUser("asha", 7, "t", "Asha", language=language)


async def test_the_telegram_language_picks_the_texts(tmp_path: Path) -> None:
    sim, _ = simulator(setup(tmp_path))
    u = user("hi-IN")
    assert await sim.send(u, "/start") == ["नमस्ते Asha!", "आपका नाम?"]
    assert await sim.send(u, "Ravi") == ["एक चुनें, Ravi  {चाय | कॉफ़ी | वापस}"]
    assert await sim.send(u, "/tap चाय") == ["यह रही आपकी tea।"]
    assert await sim.send(u, "hello") == ["रुकिए।"]
    assert await sim.event(u, "ready", {"at": "10:00"}) == ["10:00 पर तैयार।", "अलविदा।"]
    assert await sim.send(u, "anything") == ["समाप्त"]


async def test_an_untranslated_text_falls_back_text_by_text(tmp_path: Path) -> None:
    sim, _ = simulator(setup(tmp_path))
    u = user("te")  # te.yaml has an empty section: everything in English
    assert await sim.send(u, "/start") == ["Hello Asha!", "Your name?"]
    sim2, _ = simulator(setup(tmp_path, hi=HI.replace('    ask_name: {prompt: "आपका नाम?"}\n', "")))
    u2 = user("hi")
    assert await sim2.send(u2, "/start") == ["नमस्ते Asha!", "Your name?"]


async def test_an_unknown_or_missing_language_is_the_default(tmp_path: Path) -> None:
    sim, engine = simulator(setup(tmp_path))
    for code in (None, "fr", ""):
        u = SimUser(f"u{code}", hash(code) % 1000 + 10, "t", "Asha", language=code)
        assert (await sim.send(u, "/start"))[0] == "Hello Asha!"
        conv = await engine.store.get(("t", u.chat))
        assert LANGUAGE_KEY not in conv.data  # the default is not stored


async def test_language_command_switches_and_asks_again(tmp_path: Path) -> None:
    sim, engine = simulator(setup(tmp_path))
    u = user("en")
    await sim.send(u, "/start")
    assert await sim.send(u, "/language") == ["🌐 Choose your language:  {✅ English | हिन्दी | తెలుగు}"]
    assert await sim.send(u, "/tap हिन्दी") == ["अब हिन्दी में।", "आपका नाम?"]
    conv = await engine.store.get(("t", u.chat))
    assert conv.data[LANGUAGE_KEY] == "hi" and conv.data[LANGUAGE_CHOSEN_KEY] is True
    # The choice beats the Telegram language from now on, even after a /start that resets data.
    assert await sim.send(u, "/start") == ["नमस्ते Asha!", "आपका नाम?"]
    assert await sim.send(u, "/language en") == ["✅ I will write in English from now on.", "Your name?"]
    assert await sim.send(u, "/language తెలుగు") == ["✅ I will write in English from now on.", "Your name?"]


async def test_language_of_a_chat_is_remembered_for_events(tmp_path: Path) -> None:
    sim, engine = simulator(setup(tmp_path))
    u = user("hi")
    await sim.send(u, "/start")
    await sim.send(u, "Ravi")
    await sim.send(u, "/tap कॉफ़ी")
    # An event carries no language: the conversation's is used, and data may depend on it.
    got = await sim.event(u, "ready", lambda language: {"at": f"<{language}>"})  # type: ignore[arg-type]
    assert got == ["<hi> पर तैयार।", "अलविदा।"]


async def test_hooks_see_the_language(tmp_path: Path) -> None:
    sim, engine = simulator(setup(tmp_path))
    u = user("hi")
    await sim.send(u, "/start")
    await sim.send(u, "Ravi")
    await sim.send(u, "/tap चाय")
    conv = await engine.store.get(("t", u.chat))
    assert conv.data["served_in"] == "hi"


async def test_labels_in_any_language_are_understood(tmp_path: Path) -> None:
    sim, _ = simulator(setup(tmp_path))
    u = user("hi")
    await sim.send(u, "/start")
    await sim.send(u, "Ravi")
    assert await sim.send(u, "कॉफ़ी") == ["यह रही आपकी coffee।"]  # typed, in the user's language
    v = SimUser("b", 8, "t", "B", language="hi")
    await sim.send(v, "/start")
    await sim.send(v, "Ravi")
    assert await sim.send(v, "Tea") == ["यह रही आपकी tea।"]  # a label of the default language


async def test_back_button_in_another_language(tmp_path: Path) -> None:
    flow = FLOW.replace("    back: true\n    call: serve", "    back: true\n    call: serve").replace(
        "    save: name\n    next: pick", "    save: name\n    next: age\n  age:\n    ask: number\n"
        "    prompt: \"Age?\"\n    save: age\n    back: true\n    next: pick")
    sim, _ = simulator(setup(tmp_path, flow=flow, hi=HI + "    age: {prompt: \"उम्र?\"}\n"))
    u = user("hi")
    await sim.send(u, "/start")
    assert await sim.send(u, "Ravi") == ["उम्र?  [वापस]"]
    assert await sim.send(u, "BACK") == ["आपका नाम?"]  # the English label of an older keyboard


async def test_a_language_button_in_a_final_state_or_a_forged_one(tmp_path: Path) -> None:
    sim, engine = simulator(setup(tmp_path))
    u = user("en")
    await sim.send(u, "/start")
    await engine.submit(Update("t", u.chat, u.user_id, "callback", Callback("lang:fr", "cb1")))
    assert sim.texts(u)[-1] == "(toast) STALE"
    conv = await engine.store.get(("t", u.chat))
    assert LANGUAGE_KEY not in conv.data
    await sim.send(u, "Ravi")
    await sim.send(u, "/tap Tea")
    await sim.event(u, "ready", {"at": "9"})
    assert await sim.send(u, "/language hi") == ["अब हिन्दी में।"]  # final: nothing to ask again
    assert await sim.send(u, "more") == ["समाप्त"]


# ------------------------------------------------------------------------------ check
def check(tmp_path: Path, **kw: object) -> list[str]:
    path = setup(tmp_path, **kw)  # type: ignore[arg-type]
    return [str(p) for p in check_paths([path], hooks())]


def test_missing_translations_are_warnings_with_lines(tmp_path: Path) -> None:
    problems = check(tmp_path, hi=HI.replace('    ask_name: {prompt: "आपका नाम?"}\n', ""))
    flow = str(tmp_path / "t.yaml")
    assert f"{flow}:29: warning: state 'ask_name': no 'hi' translation of prompt ({tmp_path}/locales/hi.yaml)" in problems
    assert all(": warning: " in p for p in problems)
    # te.yaml's section is empty: one warning per text of the flow with words in it
    assert sum("no 'te' translation" in p for p in problems) == len(
        [t for t in texts_of(load_flow(tmp_path / "t.yaml", hooks()).spec) if needs_translation(t.text)])


def test_a_missing_catalog_or_section_is_one_warning(tmp_path: Path) -> None:
    problems = check(tmp_path, te=None)
    te = [p for p in problems if "'te'" in p]
    assert te == [f"{tmp_path}/t.yaml:17: warning: no translations into 'te': {tmp_path}/locales/te.yaml"
                  " does not exist (its texts are sent in 'en')"]
    problems = check(tmp_path, te="other: {}\n")
    assert [p for p in problems if "'te'" in p] == [
        f"{tmp_path}/t.yaml:17: warning: no translations into 'te': {tmp_path}/locales/te.yaml has no 't:'"
        " section (its texts are sent in 'en')"]


def test_a_placeholder_the_flow_never_fills_is_an_error_at_the_catalog_line(tmp_path: Path) -> None:
    hi = HI.replace('"यह रही आपकी {drink}।"', '"यह रही आपकी {drnk}।"')
    problems = check(tmp_path, hi=hi)
    errors = [p for p in problems if ": warning: " not in p]
    assert errors == [f"{tmp_path}/locales/hi.yaml:16: t: states.pick.on.ok.say: the translation has {{drnk}},"
                      " which the flow never fills (placeholders stay as in the 'en' text: {drink})"]
    with pytest.raises(FlowLoadError):
        load_flow(tmp_path / "t.yaml", hooks())
    problems = check(tmp_path, hi=HI.replace('"आपका नाम?"', '"आपका {नाम?"'))  # a broken brace
    assert [p for p in problems if ": warning: " not in p] == [
        f"{tmp_path}/locales/hi.yaml:12: t: states.ask_name.prompt: the translation has {{{{}},"
        " which the flow never fills (placeholders stay as in the 'en' text: none)"]


async def test_an_out_of_date_translation_is_a_warning_and_falls_back(tmp_path: Path) -> None:
    """The default text gained a placeholder (someone changed the flow): the old translation
    lacks it, so the default text is sent until the translation catches up."""
    flow = FLOW.replace('prompt: "Pick one, {name}"', 'prompt: "Pick one, {name} ({first_name})"')
    problems = check(tmp_path, flow=flow)
    assert f"{tmp_path}/locales/hi.yaml:14: warning: t: states.pick.prompt: the translation is out of date" \
           " (lacks {first_name}): the 'en' text is sent until it is updated" in problems
    assert all(": warning: " in p for p in problems)
    sim, _ = simulator(tmp_path / "t.yaml")
    u = user("hi")
    await sim.send(u, "/start")
    assert await sim.send(u, "Ravi") == ["Pick one, Ravi (Asha)  {चाय | कॉफ़ी | वापस}"]
    # A placeholder the flow fills but this text does not have: out of date too.
    problems = check(tmp_path, hi=HI.replace('"आपका नाम?"', '"आपका नाम, {first_name}?"'))
    assert any("states.ask_name.prompt: the translation is out of date (has {first_name}, which the 'en'"
               " text does not)" in p and ": warning: " in p for p in problems)


def test_a_translation_of_nothing_is_a_warning(tmp_path: Path) -> None:
    problems = check(tmp_path, hi=HI + "    ask_nam: {prompt: \"x\"}\n")
    assert (f"{tmp_path}/locales/hi.yaml:21: warning: t: states.ask_nam.prompt is not a text of"
            f" {tmp_path}/t.yaml (did you mean 'states.ask_name.prompt'?); this translation is unused") in problems


def test_a_broken_catalog_is_an_error(tmp_path: Path) -> None:
    problems = check(tmp_path, hi="t:\n  texts: {ended: [unclosed\n")
    assert any(p.startswith(f"{tmp_path}/locales/hi.yaml:") and "YAML syntax" in p for p in problems)
    problems = check(tmp_path, hi="t:\n  texts: {ended: true}\n")
    assert f"{tmp_path}/locales/hi.yaml:2: texts.ended: a translation must be a text" in problems


def test_default_language_must_be_listed_and_language_is_built_in(tmp_path: Path) -> None:
    flow = flow_text(STATES, extra="languages: [hi, te]\ndefault_language: en\n" + BACK)
    problems = [p for p in check(tmp_path, flow=flow) if ": warning: " not in p]
    assert problems == [f"{tmp_path}/t.yaml:18: default_language 'en' is not one of the languages (hi, te)"]
    flow = FLOW.replace("  help: {say: \"HELP\"}\n", "  help: {say: \"HELP\"}\n  language: {say: \"x\"}\n")
    problems = [p for p in check(tmp_path, flow=flow) if ": warning: " not in p]
    assert problems == [f"{tmp_path}/t.yaml:17: /language is built in when 'languages:' lists more than"
                        " one: remove this command"]


def test_a_one_language_flow_reads_no_catalog(tmp_path: Path) -> None:
    (tmp_path / "locales").mkdir()
    (tmp_path / "locales" / "hi.yaml").write_text("t: [broken", encoding="utf-8")
    path = write_flow(tmp_path, flow_text(STATES, extra=BACK))
    assert check_paths([path], hooks()) == []


def test_catalog_shorthands() -> None:
    assert canonical("states.a.on.ok") == "states.a.on.ok.say"
    assert canonical("commands.help") == "commands.help.say"
    assert canonical("states.a.timeout") == "states.a.timeout.say"
    assert canonical("states.a.validate") == "states.a.validate.error"
    assert canonical("states.a.options.x") == "states.a.options.x.label"
    assert canonical("states.a.on.ok.say") == "states.a.on.ok.say"
    assert canonical("texts.error") == "texts.error"
    assert language_tag("hi-IN") == "hi" and language_tag("pt_BR") == "pt" and language_tag(None) is None
    assert not needs_translation("{default_radius}") and not needs_translation("📢 {message}")
    assert needs_translation("Done ✔")

"""Flows in several languages: catalogs beside the flows, one localized FlowSpec per language.

A flow lists the languages it speaks (``languages: [en, hi, te]``); its own texts are written in
its ``default_language`` (``en`` unless it says otherwise). Every other language has a catalog
beside the flow, ``locales/<language>.yaml``, with one section per flow that mirrors the flow's
structure and keeps only its texts::

    student:                              # the flow's name
      texts: {error: "..."}
      commands: {cancel: "..."}           # a handler written as its `say` text alone
      states:
        ask_code:
          prompt: "..."
          on: {ok: "...", wrong: "..."}
          timeout: "..."                  # timeout.say (retry.say likewise)
          validate: "..."                 # validate.error
          options: {new: "..."}           # option labels by option id

Each text has an id, its path in that structure written out in full (``states.ask_code.on.ok.say``,
``states.menu.options.new.label``). Loading builds one :class:`FlowSpec` per language in which
every text is the catalog's translation, or the default language's text where the catalog has
none, text by text. The interpreter reads texts exactly as before, from the spec of the
conversation's language, so nothing else in the engine knows about translations.

Checks: a text with no translation, a catalog or section that is missing, and a translation of
a text the flow does not have are *warnings* (the flow still loads and falls back). Placeholders
are compared with the default language's text: a translation naming one the flow never fills
(a typo, a translated name, a broken brace) is an *error*; one whose placeholders differ
otherwise is *out of date* (the default text gained or lost a placeholder since it was
translated, e.g. while someone else changed the flow): a warning, and that text falls back to
the default language until the translation is updated. A catalog that cannot be read is an error.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import yaml

from .checker import closest, did_you_mean, known_keys, placeholders
from .constants import (
    DEFAULT_DONE_LABEL,
    LANGUAGE_CHOICE,
    LANGUAGE_CHOSEN_KEY,
    LANGUAGE_KEY,
    LANGUAGE_NAMES,
    LOCALES_DIR,
    TICK,
)
from .errors import FlowProblem
from .explain import duplicate_problems, yaml_problem
from .hooks import HookRegistry
from .spec import Document, FlowSpec, Handler, StateSpec
from .types import InlineButton
from .yaml_lines import LineDict, LineList, line_of, load_yaml_with_lines


@dataclass(frozen=True)
class FlowText:
    """One user-facing text of a flow: its id (path), the text, and where the flow has it."""

    id: str
    text: str
    line: int
    state: Optional[str] = None


Translate = Callable[[FlowText], str]


# ------------------------------------------------------------------------------ the flow's texts
def _walk(spec: FlowSpec, tr: Translate) -> FlowSpec:
    """A copy of ``spec`` with every user-facing text replaced by ``tr(text)``.

    The one list of what is translatable: :func:`texts_of` and :func:`localize` both use it, so
    the ids the checker expects are the ids the runtime reads. Not translated: document file
    names, option labels that hooks give (``options_from``) and data values.
    """

    def t(id_: str, text: Optional[str], line: int, state: Optional[str]) -> Optional[str]:
        return tr(FlowText(id_, text, line, state)) if text else text

    def document(doc: Optional[Document], id_: str, rel: str, at: Callable[..., int],
                 state: Optional[str]) -> Optional[Document]:
        if doc is None:
            return None
        caption = t(f"{id_}.caption", doc.caption, at(f"{rel}.caption", rel), state)
        return replace(doc, caption=caption or "")

    def handler(h: Handler, id_: str, rel: str, at: Callable[..., int], state: Optional[str]) -> Handler:
        return replace(
            h,
            say=t(f"{id_}.say", h.say, at(f"{rel}.say", rel), state),
            document=document(h.document, f"{id_}.document", f"{rel}.document", at, state),
        )

    def handlers(group: dict[str, Handler], prefix: str, rel: str, at: Callable[..., int],
                 state: Optional[str]) -> dict[str, Handler]:
        return {name: handler(h, f"{prefix}{rel}.{name}", f"{rel}.{name}", at, state)
                for name, h in group.items()}

    def state(s: StateSpec) -> StateSpec:
        p, at, name = f"states.{s.name}.", s.at, s.name

        def own(key: str, text: Optional[str], *lines: str) -> Optional[str]:
            return t(p + key, text, at(key, *lines), name)

        done = s.done_label
        if s.ask == "multichoice":  # the engine's default label is a text to translate too
            done = own("done_label", s.done_label or DEFAULT_DONE_LABEL, "ask")
        return replace(
            s,
            say=own("say", s.say),
            prompt=own("prompt", s.prompt),
            hint=own("hint", s.hint),
            button=own("button", s.button),
            done_label=done,
            suggestions=tuple(
                t(f"{p}suggestions.{i}", text, at(f"suggestions.{i}", "suggestions"), name) or text
                for i, text in enumerate(s.suggestions)
            ),
            options=tuple(
                replace(o, label=t(f"{p}options.{o.id}.label", o.label,
                                   at(f"options.{i}.label", f"options.{i}"), name) or o.label)
                for i, o in enumerate(s.options)
            ),
            validate=replace(s.validate, error=own("validate.error", s.validate.error, "validate"))
            if s.validate else None,
            timeout=replace(s.timeout, say=own("timeout.say", s.timeout.say, "timeout")) if s.timeout else None,
            retry=replace(s.retry, say=own("retry.say", s.retry.say, "retry")) if s.retry else None,
            document=document(s.document, f"{p}document", "document", at, name),
            on=handlers(s.on, p, "on", at, name),
            commands=handlers(s.commands, p, "commands", at, name),
            events=handlers(s.events, p, "events", at, name),
        )

    back = spec.back
    if back is not None:
        back = replace(
            back,
            button=t("back.button", back.button, spec.at("back.button", "back"), None),
            unavailable=t("back.unavailable", back.unavailable, spec.at("back.unavailable", "back"), None)
            or back.unavailable,
        )
    return replace(
        spec,
        texts={key: t(f"texts.{key}", text, spec.at(f"texts.{key}", "languages", "texts"), None) or text
               for key, text in spec.texts.items()},
        commands=handlers(spec.commands, "", "commands", spec.at, None),
        events=handlers(spec.events, "", "events", spec.at, None),
        back=back,
        states={name: state(s) for name, s in spec.states.items()},
    )


def texts_of(spec: FlowSpec) -> list[FlowText]:
    """Every user-facing text of a flow, with its id and line."""
    found: list[FlowText] = []

    def record(text: FlowText) -> str:
        found.append(text)
        return text.text

    _walk(spec, record)
    return found


def localize(spec: FlowSpec, language: str, translations: Mapping[str, str]) -> FlowSpec:
    """The flow in ``language``: each text translated where ``translations`` has its id."""
    return replace(_walk(spec, lambda text: translations.get(text.id, text.text)), language=language)


_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def needs_translation(text: str) -> bool:
    """A text with words in it; "{default_radius}", "📢 {message}" or "10" read the same in any
    language, so they are never reported missing (they may still be translated)."""
    return any(ch.isalpha() for ch in _PLACEHOLDER.sub("", text))


# ------------------------------------------------------------------------------ catalogs
@dataclass
class Catalog:
    """One language's translations of one flow: text id -> (translation, line in the catalog)."""

    language: str
    path: str
    entries: dict[str, tuple[str, int]]


def catalog_path(flow_path: str, language: str) -> Path:
    return Path(flow_path).parent / LOCALES_DIR / f"{language}.yaml"


# Shorthands a catalog may use, and the full id each stands for.
_SAY = re.compile(r"^(?:states\.[^.]+\.)?(?:on|commands|events)\.[^.]+$|^states\.[^.]+\.(?:timeout|retry)$")
_ERROR = re.compile(r"^states\.[^.]+\.validate$")
_LABEL = re.compile(r"^states\.[^.]+\.options\.[^.]+$")


def canonical(path: str) -> str:
    """The full id of a catalog path: `states.x.on.ok` is `states.x.on.ok.say`, and so on."""
    if _SAY.match(path):
        return f"{path}.say"
    if _ERROR.match(path):
        return f"{path}.error"
    if _LABEL.match(path):
        return f"{path}.label"
    return path


def _flatten(node: Any, prefix: str, line: int, file: str, out: dict[str, tuple[str, int]],
             problems: list[FlowProblem]) -> None:
    if isinstance(node, LineDict):
        for key, value in node.items():
            _flatten(value, f"{prefix}{key}.", node.key_lines.get(key, node.line), file, out, problems)
        return
    if isinstance(node, LineList):
        for index, value in enumerate(node):
            at = node.item_lines[index] if index < len(node.item_lines) else node.line
            _flatten(value, f"{prefix}{index}.", at, file, out, problems)
        return
    path = prefix[:-1]
    if node is None:
        return  # left empty: the same as not translated yet
    if isinstance(node, bool) or not isinstance(node, (str, int, float)):
        problems.append(FlowProblem(file, line, f"{path}: a translation must be a text", kind="wrong_type"))
        return
    out[canonical(path)] = (str(node), line)


def read_catalog(spec: FlowSpec, language: str) -> tuple[Optional[Catalog], list[FlowProblem]]:
    """The flow's section of ``locales/<language>.yaml`` (None when there is nothing to read)."""
    path = catalog_path(spec.path, language)
    file = str(path)
    where = spec.at("languages")
    fallback = f"its texts are sent in '{spec.default_language}'"
    if not path.is_file():
        return None, [FlowProblem(spec.path, where, f"no translations into '{language}': {file} does not"
                                  f" exist ({fallback})", kind="translation", warning=True)]
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return None, [FlowProblem(file, 1, f"cannot read the file: {reason}", kind="file")]
    try:
        raw = load_yaml_with_lines(text)
    except yaml.YAMLError as exc:
        return None, [yaml_problem(exc, text, file)]
    if raw is None:
        raw = LineDict()
    if not isinstance(raw, LineDict):
        return None, [FlowProblem(file, 1, "a catalog must be a mapping with one section per flow"
                                  f" ({spec.name}: ...)", kind="wrong_type")]
    problems = [FlowProblem(file, line, f"duplicate section '{key}'", kind="duplicate")
                for key, line in raw.duplicates if key == spec.name]
    section = raw.get(spec.name)
    if section is None:
        problems.append(FlowProblem(spec.path, where, f"no translations into '{language}': {file} has no"
                                    f" '{spec.name}:' section ({fallback})", kind="translation", warning=True))
        return None, problems
    if not isinstance(section, LineDict):
        problems.append(FlowProblem(file, line_of(raw, spec.name, 1), f"'{spec.name}:' must be a mapping"
                                    " (texts:, commands:, states: ...)", kind="wrong_type"))
        return None, problems
    problems += duplicate_problems(section, file)
    entries: dict[str, tuple[str, int]] = {}
    _flatten(section, "", section.line, file, entries, problems)
    return Catalog(language, file, entries), problems


def _list(names: set[str]) -> str:
    return ", ".join(f"{{{n}}}" for n in sorted(names))


def check_catalog(spec: FlowSpec, catalog: Catalog, texts: list[FlowText],
                  known: set[str]) -> tuple[dict[str, str], list[FlowProblem]]:
    """The translations to use (id -> text), and the catalog's problems: placeholders the flow
    never fills (errors); translations out of date, texts not translated and translations of
    texts the flow does not have (warnings). ``known``: the data keys placeholders may name."""
    problems: list[FlowProblem] = []
    table: dict[str, str] = {}
    by_id = {t.id: t for t in texts}
    default = spec.default_language
    for id_, (translation, line) in catalog.entries.items():
        original = by_id.get(id_)
        if original is None:
            guess = closest(id_, by_id)
            problems.append(FlowProblem(catalog.path, line, f"{spec.name}: {id_} is not a text of"
                                        f" {spec.path}{did_you_mean(guess)}; this translation is unused",
                                        kind="translation", warning=True))
            continue
        want, have = set(placeholders(original.text)), set(placeholders(translation))
        unknown = have - known - want
        if unknown:
            problems.append(FlowProblem(catalog.path, line, f"{spec.name}: {id_}: the translation has"
                                        f" {_list(unknown)}, which the flow never fills (placeholders"
                                        f" stay as in the '{default}' text: {_list(want) or 'none'})",
                                        kind="placeholder"))
            continue
        if want != have:
            parts = []
            if want - have:
                parts.append(f"lacks {_list(want - have)}")
            if have - want:
                parts.append(f"has {_list(have - want)}, which the '{default}' text does not")
            problems.append(FlowProblem(catalog.path, line, f"{spec.name}: {id_}: the translation is out"
                                        f" of date ({' and '.join(parts)}): the '{default}' text is sent"
                                        " until it is updated", kind="placeholder", warning=True))
            continue
        table[id_] = translation
    for text in texts:
        if text.id not in catalog.entries and needs_translation(text.text):
            rel = text.id.removeprefix(f"states.{text.state}.") if text.state else text.id
            problems.append(FlowProblem(spec.path, text.line, f"no '{catalog.language}' translation of"
                                        f" {rel} ({catalog.path})", text.state, "translation",
                                        warning=True))
    return table, problems


def translations_of(spec: FlowSpec, hooks: HookRegistry) -> tuple[dict[str, FlowSpec], list[FlowProblem]]:
    """The flow in each of its other languages, and what is missing or wrong in the catalogs.

    Nothing is read for a flow that speaks one language.
    """
    if not spec.multilingual:
        return {}, []
    texts = texts_of(spec)
    known = known_keys(spec, hooks)
    localized: dict[str, FlowSpec] = {}
    problems: list[FlowProblem] = []
    for language in spec.languages:
        if language == spec.default_language:
            continue
        catalog, found = read_catalog(spec, language)
        problems += found
        table: dict[str, str] = {}
        if catalog is not None:
            table, found = check_catalog(spec, catalog, texts, known)
            problems += found
        localized[language] = localize(spec, language, table)
    return localized, problems


# ------------------------------------------------------------------------------ at run time
def language_tag(code: Optional[str]) -> Optional[str]:
    """The primary language of an IETF tag, as Telegram sends it: 'hi-IN' -> 'hi'."""
    if not code:
        return None
    return code.replace("_", "-").split("-", 1)[0].strip().lower() or None


def pick_language(spec: FlowSpec, data: Mapping[str, Any], language_code: Optional[str]) -> tuple[str, bool]:
    """(language, chosen) of a conversation: the one chosen with /language; else the user's
    app language when the flow speaks it; else the one remembered; else the flow's default."""
    if not spec.multilingual:
        return spec.default_language, False
    stored = data.get(LANGUAGE_KEY)
    if data.get(LANGUAGE_CHOSEN_KEY) and stored in spec.languages:
        return stored, True
    tag = language_tag(language_code)
    if tag in spec.languages:
        return tag, False  # type: ignore[return-value]
    if stored in spec.languages:
        return stored, False
    return spec.default_language, False


def remember_language(data: dict[str, Any], spec: FlowSpec, language: str, chosen: bool) -> None:
    """Keep the language in the conversation data (nothing for the default, unless chosen)."""
    data.pop(LANGUAGE_KEY, None)
    data.pop(LANGUAGE_CHOSEN_KEY, None)
    if not spec.multilingual:
        return
    if chosen:
        data[LANGUAGE_KEY] = language
        data[LANGUAGE_CHOSEN_KEY] = True
    elif language != spec.default_language:
        data[LANGUAGE_KEY] = language


def language_name(language: str) -> str:
    """A language's name in that language, as on its /language button."""
    return LANGUAGE_NAMES.get(language, language)


def language_buttons(spec: FlowSpec, current: str) -> list[list[InlineButton]]:
    return [[InlineButton((TICK if language == current else "") + language_name(language),
                          f"{LANGUAGE_CHOICE}{language}")] for language in spec.languages]


def find_language(spec: FlowSpec, typed: str) -> Optional[str]:
    """The flow's language a user typed after /language: its code or its name."""
    wanted = typed.strip().casefold()
    if not wanted:
        return None
    for language in spec.languages:
        if wanted in (language, language_name(language).casefold()):
            return language
    return None

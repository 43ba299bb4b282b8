"""Fuzzing both flows: random sequences of every kind of update, from every state.

The real hooks run over a seeded database (local roster on the test server, an open session of
Asha's with code 123456, a closed and an expired one) with an instant fake face verifier (notes
that are not fake go through the real frame extraction first). For every state of each flow,
a conversation is put there (driven through the real flow where the state is reachable by
input, else primed into the store with the data it would have) and a random sequence follows:
texts (empty, huge, unicode, codes), commands (known, unknown, with arguments), contacts (own,
other people's, empty), locations (near, far, forwarded, live, absurd), video notes (random
bytes, empty, fake verdicts, real notes, forwarded), other media, button taps and forged
callbacks, and fired timeouts. Sometimes the other bot's user acts in between.

Checked after every update: ``engine.submit`` never raises; the conversation is in a state its
flow defines; ``engine.stats["errors"]`` stays 0 (a hook must not raise on bad input); the
verification callbacks never raise. After every sequence: one attendance record per session
and student, and a student is present only if the teacher marked them by hand or they passed
all three checks in that session (code, location, face).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import os
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import TIMEOUT_EVENT, is_transient
from engine.simulator import Simulator, SimUser
from engine.store import Conversation, MemoryStore
from engine.types import Callback, Command, Contact, Event, Location, Update, VideoNote
from integrations.presence.media_reader import read_video_note
from integrations.roster import records
from integrations.roster.base import StudentInfo
from integrations.storage.documents import (
    AttendanceRecord,
    Session,
    Student,
    Teacher,
    utcnow,
)

from .kit import CLASS, FAKE_MATCH, FAKE_MISMATCH, FAKE_NOFACE, Deployment, passed

OTP = "123456"
CLOSED_OTP = "111111"
EXPIRED_OTP = "222222"
TEACHER = SimUser("asha", 5001, "teacher", "Asha")
STUDENTS = {  # user id -> (student id, phone)
    6001: ("22PFS001", "+919000010001"),
    6101: ("22PFS101", "+919000010101"),
}
ROSTER_PHONES = ["+919000010001", "+919000010002", "+919000010101", "+919000020001", "+919848000001",
                 "919000010001", "+1 555 0100", "00000", "", "+٩١٩٠٠٠٠١٠٠٠١", "+91 90000 1000１",
                 "+" + "9" * 300]
KNOWN_COMMANDS = ["start", "cancel", "help", "report", "logout", "status", "extend", "close", "mark"]
EXAMPLES_PER_STATE = int(os.environ.get("FUZZ_EXAMPLES_PER_STATE", "10"))  # raise it to hunt for bugs
MAX_STEPS = 10


# ------------------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class Act:
    kind: str  # text, command, contact, location, video_note, callback, tap, other, timeout
    payload: Any = None
    forwarded: bool = False
    other_user: bool = False  # sent by the other bot's user instead


huge = st.sampled_from(["x", "7", "é", "😀", " "]).map(lambda c: c * 10_000)
texts = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0x80, max_codepoint=0x2FFFF), max_size=20),
    st.sampled_from([OTP, f" {OTP[:3]} {OTP[3:]} ", "000000", CLOSED_OTP, EXPIRED_OTP, "12345", "１２３４５６",
                     "asha.rao@example.edu", "demo-pass-1", "wrong-pass", "10", "50", "180", "1e3", "nan", "-5",
                     "0", "3,5", "Python", "PFS-101", "📝 Take attendance", "📋 Last report", "Done ✔", "", " ",
                     "/", "{otp}", "{0}", "{__class__}", "%s", "\x00", "\u202e"]),
    huge,
)
commands = st.builds(
    Command,
    st.one_of(st.sampled_from(KNOWN_COMMANDS), st.from_regex(r"[a-z0-9_]{1,16}", fullmatch=True), st.just("")),
    st.one_of(st.just(""), st.sampled_from(["5", "60", "61", "99", "0", "-1", "22PFS004 camera broken",
                                            "22PFS001 x", "99XXX999 lost", "22PFS004", "a.b$c reason"]),
              st.text(max_size=30), huge),
)
contacts = st.builds(
    lambda phone, who, first: (phone, who, first),
    st.one_of(st.sampled_from(ROSTER_PHONES), st.from_regex(r"\+?[0-9 ]{0,20}", fullmatch=True), st.text(max_size=20)),
    st.sampled_from(["own", "own", "other", "none"]),
    st.text(max_size=10),
)
coordinates = st.one_of(
    st.tuples(st.floats(-0.0004, 0.0004), st.floats(-0.0004, 0.0004)).map(lambda d: (CLASS[0] + d[0], CLASS[1] + d[1])),
    st.tuples(st.floats(-90, 90), st.floats(-180, 180)),
    st.sampled_from([(0.0, 0.0), (90.0, 180.0), (-90.0, -180.0), (91.0, 0.0), (0.0, 181.0), (1e308, -1e308),
                     (float("nan"), 0.0), (float("inf"), float("-inf"))]),
)
locations = st.builds(
    lambda where, accuracy, live: Location(where[0], where[1], accuracy, live),
    coordinates,
    st.one_of(st.none(), st.sampled_from([0.0, 5.0, 49.0, 500.0, -1.0, 1e12, float("nan")])),
    st.one_of(st.none(), st.sampled_from([60, 3600, 0x7FFFFFFF])),
)
note_bytes = st.one_of(
    st.binary(max_size=128),
    st.sampled_from([b"", FAKE_MATCH, FAKE_MISMATCH, FAKE_NOFACE, b"real:obama_2", b"real:biden_1", b"real:noface"]),
)
video_notes = st.builds(
    lambda data, duration, size: (data, duration, size),
    note_bytes,
    st.sampled_from([0, 1, 5, 60, 61, -3, 10**9]),
    st.sampled_from([None, 0, -1, 9 * 1024 * 1024, 10**12]),
)
callbacks = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["|", "0|o0", "|o0", "99999999999999999999|o0", "EPOCH|o0", "EPOCH|o1", "EPOCH|o2",
                     "EPOCH|o7", "EPOCH|o-1", "EPOCH|done", "EPOCH|", "EPOCH|o", "OLD|o0", "EPOCH|o00"]),
)
others = st.sampled_from(["photo", "sticker", "animation", "video", "voice", "document", "venue", "poll",
                          "location", "unsupported", "", None])

# A sensible answer for whatever the conversation asks now (so sequences get deep into the flows).
GOOD: dict[str, list[Act]] = {
    "ask_contact": [Act("contact", ("PHONE", "own", "")), Act("contact", ("+919848000001", "own", ""))],
    "ask_code": [Act("text", OTP), Act("text", "000000"), Act("text", EXPIRED_OTP), Act("text", CLOSED_OTP)],
    "ask_location": [Act("location", Location(CLASS[0], CLASS[1], 5.0)),
                     Act("location", Location(CLASS[0] + 0.0001, CLASS[1], None, 3600)),
                     Act("location", Location(CLASS[0] + 0.01, CLASS[1], 5.0)),
                     Act("location", Location(CLASS[0], CLASS[1], 900.0))],
    "ask_video": [Act("video_note", (FAKE_MATCH, 3, None)), Act("video_note", (FAKE_MISMATCH, 3, None)),
                  Act("video_note", (FAKE_NOFACE, 3, None)), Act("video_note", (b"real:obama_2", 3, None))],
    "ask_email": [Act("text", "asha.rao@example.edu"), Act("text", "nobody@example.edu")],
    "ask_password": [Act("text", "demo-pass-1"), Act("text", "wrong-pass")],
    "menu": [Act("tap", 0), Act("tap", 1), Act("tap", 2)],
    "choose_batches": [Act("tap", 0), Act("tap", 1), Act("tap", 2)],
    "choose_subject": [Act("tap", 0)],
    "choose_duration": [Act("text", "10"), Act("text", "1"), Act("text", "181")],
    "choose_radius": [Act("text", "50"), Act("text", "5000"), Act("text", "9")],
    "ask_class_location": [Act("location", Location(CLASS[0], CLASS[1], 5.0))],
    "session_open": [Act("command", Command("status")), Act("command", Command("extend", "5")),
                     Act("command", Command("mark", "22PFS004 camera broken")),
                     Act("command", Command("mark", "22PFS001 phone")), Act("command", Command("close")),
                     Act("command", Command("cancel")), Act("command", Command("report"))],
}
goods = st.builds(Act, st.just("good"), st.sampled_from(range(8)))

acts = st.one_of(
    goods, goods, goods,
    st.builds(Act, st.just("text"), texts, st.booleans()),
    st.builds(Act, st.just("command"), commands),
    st.builds(Act, st.just("contact"), contacts, st.booleans()),
    st.builds(Act, st.just("location"), locations, st.booleans()),
    st.builds(Act, st.just("video_note"), video_notes, st.booleans()),
    st.builds(Act, st.just("callback"), callbacks),
    st.builds(Act, st.just("tap"), st.integers(0, 5)),
    st.builds(Act, st.just("other"), others, st.booleans()),
    st.builds(Act, st.just("timeout"), st.booleans()),
)
sequences = st.lists(
    st.one_of(acts, acts.map(lambda a: Act(a.kind, a.payload, a.forwarded, True))), min_size=1, max_size=MAX_STEPS)


# ------------------------------------------------------------------------------ the world
class LogTrap(logging.Handler):
    """Keeps the tracebacks the engine and the queue log, for the failure message."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.records.append(text)


class FuzzWorld:
    def __init__(self, tmp_path: Path, faces_dir: Optional[Path], store_kind: str = "memory") -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.store_kind = store_kind
        self.dep = Deployment(tmp_path, store_kind, settings_overrides={"report_buffer_seconds": 3600})
        self.instance = self.dep.build()  # never started: no timers or scheduled reports in the background
        self.engine = self.instance.engine
        self.sim = Simulator(self.engine, media_reader=read_video_note)
        self.notes = {}
        if faces_dir is not None:
            self.notes = {f"real:{n}".encode(): (faces_dir / f"note_{n}.mp4").read_bytes()
                          for n in ("obama_2", "biden_1", "noface")}
        self.ids = itertools.count(1_000)
        self.trap = LogTrap()
        for name in ("engine", "integrations"):
            logging.getLogger(name).addHandler(self.trap)
        self.sequences = 0
        self.updates = 0
        self.started: set[tuple[str, str]] = set()
        self.outcomes: Counter[tuple[str, str]] = Counter()  # (hook, outcome) seen, for coverage
        self.visited: set[tuple[str, str]] = set()  # (bot, state) seen after an update

    def close(self) -> None:
        for name in ("engine", "integrations"):
            logging.getLogger(name).removeHandler(self.trap)
        self.loop.run_until_complete(self.instance.app.stop())
        self.loop.run_until_complete(self.dep.close())
        self.loop.close()
        asyncio.set_event_loop(None)

    # -- per sequence
    async def reset(self, teacher_bound: bool) -> None:
        queue = self.instance.services.verify_queue
        await queue.drain()
        self.outcomes.update((c.hook, c.outcome) for c in self.dep.hook_calls)
        queue._failures.clear()
        self.instance.services.code_guesses.clear()  # each sequence starts with no attempts (MongoDB)
        self.instance.services.logins.clear()
        if self.store_kind == "mongo":
            from integrations.storage.conversations import ConversationDoc

            ConversationDoc._get_collection().delete_many({})
        else:
            self.engine.store = MemoryStore()
        self.sim.inbox.clear()
        self.engine.stats.clear()
        self.dep.hook_calls.clear()
        self.dep.processor.verdicts.clear()
        self.trap.records.clear()
        AttendanceRecord.objects.delete()
        Session.objects.delete()
        Student.objects.update(unset__telegram_user_id=True)
        Teacher.objects.update(unset__telegram_id=True)
        records.bind(TEACHER.user_id, "asha.rao@example.edu")
        students = [StudentInfo(s.student_id, s.name, s.batch, s.phone)
                    for s in Student.objects(batch__in=["PFS-101", "PFS-102"]).order_by("student_id")]
        now = utcnow()
        for otp, expires, status in ((CLOSED_OTP, now - dt.timedelta(hours=1), "closed"),
                                     (EXPIRED_OTP, now - dt.timedelta(minutes=1), "open"),
                                     (OTP, now + dt.timedelta(hours=1), "open")):
            session = records.create_session(TEACHER.user_id, otp, ["PFS-101", "PFS-102"], "Python", CLASS[0],
                                             CLASS[1], 50.0, expires, students)
            Session.objects(id=session.id).update_one(set__status=status)
        if not teacher_bound:
            Teacher.objects.update(unset__telegram_id=True)

    def update(self, who: SimUser, act: Act, conv: Optional[Conversation]) -> Optional[Update]:
        if act.kind == "good":
            choices = GOOD.get(conv.state if conv else "", []) or [Act("command", Command("start"))]
            act = choices[act.payload % len(choices)]
            if act.kind == "contact" and act.payload[0] == "PHONE":
                act = Act("contact", (STUDENTS.get(who.user_id, ("", "+919848000001"))[1], "own", ""))
        kind, payload = act.kind, act.payload
        common = dict(forwarded=act.forwarded, message_id=next(self.ids), first_name=who.first_name)
        if kind == "text":
            return Update(who.bot, who.chat, who.user_id, "text", payload, **common)
        if kind == "command":
            return Update(who.bot, who.chat, who.user_id, "command", payload, message_id=common["message_id"])
        if kind == "contact":
            phone, owner, first = payload
            user_id = {"own": who.user_id, "other": who.user_id + 7, "none": None}[owner]
            return Update(who.bot, who.chat, who.user_id, "contact", Contact(phone, user_id, first), **common)
        if kind == "location":
            return Update(who.bot, who.chat, who.user_id, "location", payload, **common)
        if kind == "video_note":
            data, duration, size = payload
            data = self.notes.get(data, data)
            note = VideoNote(data, duration, 384, len(data) if size is None else size, f"f{common['message_id']}")
            return Update(who.bot, who.chat, who.user_id, "video_note", note, **common)
        if kind == "callback":
            epoch = conv.epoch if conv else 0
            data = payload.replace("EPOCH", str(epoch)).replace("OLD", str(max(0, epoch - 1)))
            return Update(who.bot, who.chat, who.user_id, "callback", Callback(data, f"cb{common['message_id']}"),
                          message_id=common["message_id"], first_name=who.first_name)
        if kind == "tap":  # a real button on the screen (maybe an old one)
            buttons = [(item.message_id, b) for item in self.sim.received(who)
                       for row in (getattr(item.action, "inline", None) or []) for b in row]
            if not buttons:
                return None
            message_id, button = buttons[-1 - payload % len(buttons)]
            return Update(who.bot, who.chat, who.user_id, "callback", Callback(button.data, "tap"),
                          message_id=message_id, first_name=who.first_name)
        if kind == "other":
            return Update(who.bot, who.chat, who.user_id, "other", payload, **common)
        if kind == "timeout":  # what the timer would post (or a stale one)
            epoch = (conv.epoch if conv else 0) - (0 if payload else 1)
            return Update(who.bot, who.chat, who.user_id, "event", Event(TIMEOUT_EVENT, {"epoch": epoch}))
        raise AssertionError(kind)

    async def send(self, who: SimUser, act: Act) -> None:
        conv = await self.engine.store.get((who.bot, who.chat))
        update = self.update(who, act, conv)
        if update is None:
            return
        self.updates += 1
        try:
            await self.engine.submit(update)
        except BaseException as exc:  # noqa: BLE001 - the whole point
            raise AssertionError(f"engine.submit raised on {update!r}: {exc!r}") from exc
        await self.instance.services.verify_queue.drain()
        self.check(who, update)

    def check(self, who: SimUser, update: Update) -> None:
        errors = self.engine.stats["errors"]
        callback_errors = self.instance.services.verify_queue.stats()["callback_errors"]
        if errors or callback_errors or self.trap.records:
            shown = repr(update)[:300]
            raise AssertionError(f"{errors} step error(s), {callback_errors} callback error(s) after {shown}:\n"
                                 + "\n".join(self.trap.records)[-4000:])

    async def check_states(self) -> None:
        for bot, chat in ((TEACHER.bot, TEACHER.chat), *(("student", uid) for uid in STUDENTS)):
            conv = await self.engine.store.get((bot, chat))
            if conv is None:
                continue
            states = self.engine.flows[bot].spec.states
            assert conv.state in states, (bot, conv.state)
            self.visited.add((bot, conv.state))
            # a state with a timeout always has a deadline stored (else it could wait forever)
            assert (conv.deadline is not None) == (states[conv.state].timeout is not None), (bot, conv.state)
            secrets = [k for k in conv.data if is_transient(k)]
            assert not secrets, f"transient keys stored in {bot}/{conv.state}: {secrets}"

    def check_attendance(self) -> None:
        calls, processor = self.dep.hook_calls, self.dep.processor
        pairs = [(str(r.session.id), r.student_id) for r in AttendanceRecord.objects]
        assert len(pairs) == len(set(pairs)), f"duplicate attendance records: {pairs}"
        for record in AttendanceRecord.objects(status="present"):
            sid, student = str(record.session.id), record.student_id
            if record.method == "manual":
                assert any(c.hook == "manual_mark" and c.outcome == "ok" and c.marked_id == student for c in calls), \
                    f"{student} marked by hand without /mark"
                continue
            missing = [check for check, ok in (
                ("code", passed(calls, "check_code", sid, student)),
                ("location", passed(calls, "check_location", sid, student)),
                ("face", processor.matched(sid, student)),
            ) if not ok]
            assert not missing, f"{student} present in {sid} without passing {missing}: {calls}"

    # -- putting a conversation in a state
    async def set_state(self, who: SimUser, state: str, flow_data: Optional[dict] = None) -> None:
        """Prime: the conversation as it would be right after entering ``state``."""
        store = self.engine.store
        flow = self.engine.flows[who.bot]
        conv = await store.get((who.bot, who.chat)) or Conversation(
            who.bot, who.chat, who.user_id, flow.name, flow.spec.start, dict(flow.spec.data))
        spec = flow.spec.states[state]
        conv.state = state
        conv.epoch += 1
        conv.retries = 0
        conv.data.update(flow_data or {})
        conv.deadline = self.engine.clock() + spec.timeout.after if spec.timeout else None
        await store.save(conv)

    async def drive(self, who: SimUser, acts: list[Act]) -> None:
        for act in acts:
            await self.send(who, act)


def student_path(user_id: int) -> dict[str, list[Act]]:
    student_id, phone = STUDENTS[user_id]
    start = [Act("command", Command("start"))]
    contact = [*start, Act("contact", (phone, "own", ""))]
    code = [*contact, Act("text", OTP)]
    where = [*code, Act("location", Location(CLASS[0], CLASS[1], 5.0))]
    return {"ask_contact": start, "ask_code": contact, "ask_location": code, "ask_video": where,
            "marked": [*where, Act("video_note", (FAKE_MATCH, 3, None))],
            "locked_out": [*contact, *[Act("text", f"99999{i}") for i in range(5)]],
            "cancelled": [*code, Act("command", Command("cancel"))]}


STUDENT_PRIMED = {"welcome": "", "verifying": "ask_video", "synced_later": "ask_video", "session_ended": "ask_video",
                  "timed_out": "ask_code", "finished": "ask_location"}

TEACHER_DATA = {
    "menu": {"teacher_name": "Asha Rao"},
    "choose_batches": {"teacher_name": "Asha Rao", "default_radius": 50, "batches": []},
    "choose_subject": {"batches": ["PFS-101"]},
    "choose_duration": {"batches": ["PFS-101"], "subject": "Python"},
    "choose_radius": {"batches": ["PFS-101"], "subject": "Python", "duration_min": 10, "default_radius": 50},
    "ask_class_location": {"batches": ["PFS-101", "PFS-102"], "subject": "Python", "duration_min": 10, "radius_m": 50},
    "session_open": {"otp": OTP, "subject": "Python", "expires_at": "12:00:00"},
    "ask_password": {"contact": {"phone": "+919848000001", "user_id": 5001}, "teacher_phone": "919848000001",
                     "email": "asha.rao@example.edu"},
    "ask_email": {"contact": {"phone": "+919848000001", "user_id": 5001}, "teacher_phone": "919848000001"},
}
LOGGED_OUT = {"welcome", "ask_contact", "ask_email", "ask_password", "stopped"}


async def put_student(world: FuzzWorld, who: SimUser, state: str) -> None:
    paths = student_path(who.user_id)
    if state in paths:
        await world.drive(who, paths[state])
    else:
        base = STUDENT_PRIMED.get(state, "ask_video")  # states added later: as if reached from ask_video
        if base:
            await world.drive(who, paths[base])
        await world.set_state(who, state, {"marked_time": "12:00"} if state == "synced_later" else None)
    conv = await world.engine.store.get((who.bot, who.chat))
    assert conv is not None and conv.state == state, (state, conv and conv.state, world.sim.texts(who))


async def put_teacher(world: FuzzWorld, state: str) -> None:
    data = TEACHER_DATA.get(state) or TEACHER_DATA["session_open" if state in {
        "session_status", "extend_session", "close_session", "mark_student"} else "menu"]
    await world.set_state(TEACHER, state, dict(data))


# ------------------------------------------------------------------------------ the tests
def fuzz(world: FuzzWorld, bot: str, states: list[str], capsys: pytest.CaptureFixture[str],
         examples: int = EXAMPLES_PER_STATE) -> None:
    first_sequence, first_update = world.sequences, world.updates
    for state in states:

        @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                  suppress_health_check=list(HealthCheck))
        @given(steps=sequences, student_id=st.sampled_from(sorted(STUDENTS)))
        def run(steps: list[Act], student_id: int) -> None:
            world.loop.run_until_complete(one_sequence(world, bot, state, steps, student_id))

        run()
    world.outcomes.update((c.hook, c.outcome) for c in world.dep.hook_calls)
    with capsys.disabled():
        print(f"\n[fuzz/{bot}/{world.store_kind} store] {world.sequences - first_sequence} sequences from "
              f"{len(states)} states, {world.updates - first_update} updates; "
              f"{len(world.visited)} states visited, {len(world.outcomes)} hook outcomes seen")
        if os.environ.get("FUZZ_VERBOSE"):
            print(sorted(world.outcomes.items()), sorted(world.visited))


async def one_sequence(world: FuzzWorld, bot: str, state: str, steps: list[Act], student_uid: int) -> None:
    world.sequences += 1
    world.started.add((bot, state))
    student = SimUser("student", student_uid, "student", "Stu")
    await world.reset(teacher_bound=not (bot == "teacher" and state in LOGGED_OUT))
    if bot == "student":
        await put_student(world, student, state)
        main, other = student, TEACHER
    else:
        await put_teacher(world, state)
        main, other = TEACHER, student
    for act in steps:
        await world.send(other if act.other_user else main, act)
        await world.check_states()
    world.check_attendance()


@pytest.fixture
def world(tmp_path: Path) -> Any:
    from tests.conftest import FACES_DIR

    made = FuzzWorld(tmp_path, FACES_DIR if FACES_DIR.is_dir() else None)
    yield made
    made.close()


@pytest.fixture
def mongo_world(tmp_path: Path) -> Any:
    made = FuzzWorld(tmp_path, None, "mongo")
    yield made
    made.close()


def test_fuzz_both_flows_over_the_mongo_store(mongo_world: FuzzWorld, capsys: pytest.CaptureFixture[str]) -> None:
    """Fewer sequences, but every conversation goes through BSON and the versioned update."""
    for bot in ("student", "teacher"):
        fuzz(mongo_world, bot, list(mongo_world.engine.flows[bot].spec.states), capsys,
             examples=max(1, EXAMPLES_PER_STATE // 2))


def test_fuzz_student_flow(world: FuzzWorld, capsys: pytest.CaptureFixture[str]) -> None:
    states = list(world.engine.flows["student"].spec.states)
    fuzz(world, "student", states, capsys)
    assert {s for b, s in world.started if b == "student"} == set(states)


def test_fuzz_teacher_flow(world: FuzzWorld, capsys: pytest.CaptureFixture[str]) -> None:
    states = list(world.engine.flows["teacher"].spec.states)
    fuzz(world, "teacher", states, capsys)
    assert {s for b, s in world.started if b == "teacher"} == set(states)


def test_the_checks_catch_a_raising_hook_and_an_unearned_mark(world: FuzzWorld) -> None:
    """The harness itself: a hook raising on input, or a present record nobody earned, fail the run."""
    import dataclasses

    hooks = world.engine.hooks
    spec = hooks.get("check_location")

    def broken(ctx: Any) -> None:
        raise ValueError("cannot read this location")

    hooks._hooks["check_location"] = dataclasses.replace(spec, fn=broken)
    try:
        with pytest.raises(AssertionError, match="1 step error"):
            world.loop.run_until_complete(
                one_sequence(world, "student", "ask_location", [Act("location", Location(*CLASS))], 6001))
    finally:
        hooks._hooks["check_location"] = spec
    world.loop.run_until_complete(world.reset(teacher_bound=True))
    session = Session.objects.get(otp=OTP)
    AttendanceRecord.mark(session.id, "22PFS001", "present", "face")
    with pytest.raises(AssertionError, match=r"without passing \['code', 'location', 'face'\]"):
        world.check_attendance()

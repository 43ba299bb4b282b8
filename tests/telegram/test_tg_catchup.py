"""Catch-up after downtime: real clients, the raw updates API faked (tests/fakes/fake_telegram_updates.py)."""
from __future__ import annotations

import asyncio

import pytest
from pyrogram import Client, raw, types

from engine.types import Update
from integrations.telegram.catchup import MemoryUpdateStateStore, UpdateState, UpdateTracker
from integrations.telegram.config import TelegramConfig
from integrations.telegram.runtime import TelegramRuntime, default_client_factory
from tests.fakes.fake_telegram_updates import FakeUpdatesApi
from tests.telegram.conftest import API_HASH, STUDENT_TOKEN, TEACHER_TOKEN, Recorder, intercept, settle

STUDENT_ID = int(STUDENT_TOKEN.split(":")[0])
TEACHER_ID = int(TEACHER_TOKEN.split(":")[0])


@pytest.fixture
def fake_network(monkeypatch):
    async def start(self: Client) -> Client:
        self.me = types.User(id=1, is_bot=True, first_name=self.name, username=self.name.replace("-", "_"))
        self.is_connected = True
        await self.dispatcher.start()
        return self

    async def stop(self: Client, block: bool = True) -> Client:
        await self.dispatcher.stop()
        self.is_connected = False
        return self

    monkeypatch.setattr(Client, "start", start)
    monkeypatch.setattr(Client, "stop", stop)


@pytest.fixture
def config(tmp_path) -> TelegramConfig:
    return TelegramConfig(api_id=1, api_hash=API_HASH, session_dir=tmp_path / "sessions",
                          bot_tokens={"teacher": TEACHER_TOKEN, "student": STUDENT_TOKEN})


class World:
    """The runtime's surroundings: the raw API per bot, the state store, what reached the engine."""

    def __init__(self, monkeypatch) -> None:
        self.recorder = Recorder()
        self.store = MemoryUpdateStateStore()
        self.submitted: list[Update] = []
        self.before_start: list = []  # (bot, raw update) pushed live before the client starts
        build = default_client_factory(in_memory=True)

        def factory(bot: str, cfg: TelegramConfig) -> Client:
            client = build(bot, cfg)
            intercept(client, monkeypatch, self.recorder)
            for target, packet in self.before_start:
                if target == bot:
                    client.dispatcher.updates_queue.put_nowait(packet)
            return client

        self.factory = factory

    def api(self, bot_id: int, **kw) -> FakeUpdatesApi:
        return self.recorder.updates.setdefault(bot_id, FakeUpdatesApi(bot_id, **kw))

    async def submit(self, update: Update) -> None:
        self.submitted.append(update)
        await asyncio.sleep(0.01)  # a step takes a moment: lets live updates race if they could

    def runtime(self, config: TelegramConfig) -> TelegramRuntime:
        async def drain() -> None: ...
        return TelegramRuntime(config, self.submit, drain, in_memory=True, heartbeat_interval=0,
                               handle_signals=False, client_factory=self.factory, state_store=self.store)


@pytest.fixture
def world(monkeypatch) -> World:
    return World(monkeypatch)


async def run_until_started(runtime: TelegramRuntime) -> asyncio.Task:
    task = asyncio.create_task(runtime.run())
    await asyncio.wait_for(runtime.started.wait(), 10)
    return task


async def stop(runtime: TelegramRuntime, task: asyncio.Task) -> None:
    runtime.request_stop("test")
    await asyncio.wait_for(task, 10)


async def test_first_start_records_the_state_and_catches_up_nothing(world, config, fake_network):
    world.api(STUDENT_ID, pts=500, qts=3)
    runtime = world.runtime(config)
    task = await run_until_started(runtime)
    assert world.submitted == []
    assert (await world.store.load(STUDENT_ID)).pts == 500
    assert runtime.caught_up["student"].first_start
    await stop(runtime, task)


async def test_messages_sent_while_down_are_answered_in_order(world, config, fake_network):
    api = world.api(STUDENT_ID, pts=100, slice_size=2)
    await world.store.save(STUDENT_ID, UpdateState(100, 0, api.date))
    api.incoming(7, "/start", first_name="Asha")
    api.outgoing(7, "Hi! (the bot's own answer, before the crash)")
    api.incoming(8, "/start", first_name="Ravi")
    api.incoming(7, "123456")
    api.incoming(8, "hello")
    api.incoming(7, "bye")
    runtime = world.runtime(config)
    task = await run_until_started(runtime)
    assert [(u.chat_id, u.kind, str(u.payload)) for u in world.submitted] == [
        (7, "command", "Command(name='start', args='')"), (8, "command", "Command(name='start', args='')"),
        (7, "text", "123456"), (8, "text", "hello"), (7, "text", "bye")]
    assert all(u.bot == "student" for u in world.submitted)
    diffs = [c for c in api.calls if isinstance(c, raw.functions.updates.GetDifference)]
    assert [d.pts for d in diffs] == [100, 102, 104]  # two slices of 2, then the rest
    assert (await world.store.load(STUDENT_ID)).pts == 106
    assert runtime.stats()["student"]["caught_up"] == 5

    # Telegram may also push a caught-up message live: it is not handled twice.
    old_pts, old_message = api.log[-1]
    runtime.clients["student"].dispatcher.updates_queue.put_nowait(api.live_update(old_pts, old_message))
    # A new message arrives live and is handled; its pts is saved at stop.
    pts, message = api.incoming(9, "new one")
    runtime.clients["student"].dispatcher.updates_queue.put_nowait(api.live_update(pts, message))
    for _ in range(200):
        if len(world.submitted) > 5:
            break
        await asyncio.sleep(0.01)
    await settle(20)
    assert [u.payload for u in world.submitted[5:]] == ["new one"]
    await stop(runtime, task)
    assert (await world.store.load(STUDENT_ID)).pts == pts


async def test_live_updates_wait_for_the_catch_up(world, config, fake_network):
    api = world.api(STUDENT_ID, pts=10)
    await world.store.save(STUDENT_ID, UpdateState(10, 0, api.date))
    for i in range(3):
        api.incoming(7, f"missed {i}")
    pts, message = api.incoming(7, "live")
    world.before_start.append(("student", api.live_update(pts, message)))
    api.log.pop()  # the live one is not in the difference (it was pushed instead)
    api.pts -= 1
    runtime = world.runtime(config)
    task = await run_until_started(runtime)
    for _ in range(200):
        if len(world.submitted) == 4:
            break
        await asyncio.sleep(0.01)
    assert [u.payload for u in world.submitted] == ["missed 0", "missed 1", "missed 2", "live"]
    await stop(runtime, task)


async def test_a_gap_too_long_is_logged_and_skipped(world, config, fake_network, caplog):
    api = world.api(STUDENT_ID, pts=100, keep=2)
    await world.store.save(STUDENT_ID, UpdateState(90, 0, api.date))
    for i in range(5):
        api.incoming(7, f"m{i}")
    runtime = world.runtime(config)
    task = await run_until_started(runtime)
    assert runtime.caught_up["student"].lost_gap
    assert "too long" in caplog.text
    assert (await world.store.load(STUDENT_ID)).pts == 105
    await stop(runtime, task)


def test_the_saved_state_never_passes_an_update_in_flight():
    tracker = UpdateTracker(UpdateState(10, 0, 0))
    first = raw.types.UpdateNewMessage(message=raw.types.MessageEmpty(id=1), pts=11, pts_count=1)
    second = raw.types.UpdateNewMessage(message=raw.types.MessageEmpty(id=2), pts=12, pts_count=1)
    slow, fast = tracker.begin(first), tracker.begin(second)
    tracker.end(fast)
    assert tracker.safe().pts == 10  # the first is still being handled: a crash must refetch it
    tracker.end(slow)
    assert tracker.safe().pts == 12
    tracker.observe(raw.types.UpdateReadHistoryOutbox(peer=raw.types.PeerUser(user_id=1), max_id=1, pts=13,
                                                      pts_count=1))
    assert tracker.safe().pts == 13
    assert tracker.is_old(first) is False
    tracker.reset(UpdateState(12, 0, 0))
    assert tracker.is_old(first) and not tracker.is_old(
        raw.types.UpdateNewMessage(message=raw.types.MessageEmpty(id=3), pts=14, pts_count=1))

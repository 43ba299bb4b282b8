"""Runtime lifecycle with fake (network-free) clients: start, SIGTERM mid-drain, clean return."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pyrogram import Client, types

from engine.types import Outgoing, SendText, Update
from integrations.settings import SettingsError, load_settings
from integrations.telegram.config import TelegramConfig
from integrations.telegram.health import (
    check_heartbeat,
    heartbeat_path,
    write_heartbeat,
)
from integrations.telegram.runtime import TelegramRuntime, TelegramStartError, default_client_factory
from tests.telegram.conftest import (
    API_HASH,
    STUDENT_TOKEN,
    TEACHER_TOKEN,
    Recorder,
    intercept,
    new_message,
    raw_message,
    settle,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def events() -> list[str]:
    return []


@pytest.fixture
def fake_network(monkeypatch, events):
    """Client.start/stop without a network: set ``me``, run the real dispatcher."""
    async def start(self: Client) -> Client:
        self.me = types.User(id=1, is_bot=True, first_name=self.name, username=self.name.replace("-", "_"))
        self.is_connected = True
        await self.dispatcher.start()
        events.append(f"start:{self.name}")
        return self

    async def stop(self: Client, block: bool = True) -> Client:
        await self.dispatcher.stop()
        self.is_connected = False
        events.append(f"stop:{self.name}")
        return self

    monkeypatch.setattr(Client, "start", start)
    monkeypatch.setattr(Client, "stop", stop)


@pytest.fixture
def config(tmp_path) -> TelegramConfig:
    return TelegramConfig(api_id=1, api_hash=API_HASH, session_dir=tmp_path / "sessions",
                          bot_tokens={"teacher": TEACHER_TOKEN, "student": STUDENT_TOKEN})


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def intercept_client(client: Client, monkeypatch, recorder: Recorder) -> Client:
    intercept(client, monkeypatch, recorder)
    return client


@pytest.fixture
def factory(monkeypatch, recorder):
    """The production factory, with each client's network calls intercepted."""
    build = default_client_factory(in_memory=True)

    def make(bot: str, cfg: TelegramConfig) -> Client:
        return intercept_client(build(bot, cfg), monkeypatch, recorder)

    return make


async def test_sigterm_mid_drain_finishes_drain_then_stops(fake_network, config, factory, recorder, events):
    drain_started, release = asyncio.Event(), asyncio.Event()

    async def submit(update: Update) -> None:
        events.append(f"submit:{update.kind}")

    async def drain() -> None:
        events.append("drain:start")
        drain_started.set()
        await release.wait()
        # the engine still sends while draining: clients must be connected
        await runtime.deliver(Outgoing("teacher", 42, (SendText("Session closed"),)))
        events.append("drain:end")

    runtime = TelegramRuntime(config, submit, drain, in_memory=True, heartbeat_interval=0, client_factory=factory)
    task = asyncio.create_task(runtime.run())
    await asyncio.wait_for(runtime.started.wait(), 5)
    assert {"start:attendance-teacher", "start:attendance-student"} <= set(events)

    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(drain_started.wait(), 5)
    os.kill(os.getpid(), signal.SIGTERM)  # a second signal mid-drain must not cut it short
    await settle(10)
    assert not task.done()
    release.set()

    assert await asyncio.wait_for(task, 5) is None  # returned cleanly
    assert runtime.drained
    assert events.index("drain:end") < events.index("stop:attendance-teacher")
    assert events.index("drain:end") < events.index("stop:attendance-student")
    assert recorder.sent_texts() == ["Session closed"]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # our handler was removed
    # after the stop, a reply is not sent through a stopped client: it waits in the journal
    await runtime.deliver(Outgoing("teacher", 42, (SendText("late"),)))
    await asyncio.sleep(0.05)
    assert recorder.sent_texts() == ["Session closed"]
    assert [e.actions for e in await runtime.sender.journal.pending()] == [(SendText("late"),)]


async def test_updates_in_flight_finish_before_drain_and_new_ones_are_refused(fake_network, config, factory, events):
    entered, release = asyncio.Event(), asyncio.Event()

    async def submit(update: Update) -> None:
        events.append(f"submit:{update.payload}")
        entered.set()
        await release.wait()
        events.append(f"submitted:{update.payload}")

    async def drain() -> None:
        events.append("drain")

    runtime = TelegramRuntime(config, submit, drain, in_memory=True, heartbeat_interval=0,
                              handle_signals=False, client_factory=factory)
    task = asyncio.create_task(runtime.run())
    await asyncio.wait_for(runtime.started.wait(), 5)
    student = runtime.clients["student"]
    await settle()
    student.dispatcher.updates_queue.put_nowait(new_message(raw_message(1, "first")))
    await asyncio.wait_for(entered.wait(), 5)

    runtime.request_stop("test")
    await settle(10)
    assert "drain" not in events  # waits for the handler already running
    await runtime.transports["student"].on_message(student, _text_message("too late"))
    release.set()
    await asyncio.wait_for(task, 5)
    assert events[-5:-2] == ["submit:first", "submitted:first", "drain"]
    assert "submit:too late" not in events


def _text_message(text: str) -> types.Message:
    from pyrogram import enums
    return types.Message(id=2, chat=types.Chat(id=7, type=enums.ChatType.PRIVATE),
                         from_user=types.User(id=7, first_name="A"), text=text)


async def test_drain_timeout_still_stops(fake_network, config, factory, events, caplog):
    async def drain() -> None:
        await asyncio.sleep(60)

    async def submit(update: Update) -> None: ...

    runtime = TelegramRuntime(config, submit, drain, in_memory=True, heartbeat_interval=0,
                              handle_signals=False, client_factory=factory, drain_timeout=0.1)
    task = asyncio.create_task(runtime.run())
    await asyncio.wait_for(runtime.started.wait(), 5)
    runtime.request_stop()
    await asyncio.wait_for(task, 5)
    assert not runtime.drained and "drain exceeded" in caplog.text
    assert "stop:attendance-teacher" in events and "stop:attendance-student" in events


async def test_failed_start_stops_the_started_client(fake_network, config, factory, events, monkeypatch):
    real_start = Client.start

    async def start(self: Client) -> Client:
        if self.name == "attendance-student":
            raise ConnectionError("unreachable")
        return await real_start(self)

    monkeypatch.setattr(Client, "start", start)

    async def noop(*_): ...

    runtime = TelegramRuntime(config, noop, noop, in_memory=True, heartbeat_interval=0, client_factory=factory)
    with pytest.raises(TelegramStartError, match="the student bot could not start: ConnectionError"):
        await runtime.run()
    assert events == ["start:attendance-teacher", "stop:attendance-teacher"]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


async def test_heartbeat_is_written_while_running(fake_network, config, factory):
    async def noop(*_): ...

    runtime = TelegramRuntime(config, noop, noop, in_memory=True, heartbeat_interval=0.01,
                              handle_signals=False, client_factory=factory)
    task = asyncio.create_task(runtime.run())
    await asyncio.wait_for(runtime.started.wait(), 5)
    path = heartbeat_path(config.session_dir)
    for _ in range(100):
        if path.exists():
            break
        await asyncio.sleep(0.01)
    assert check_heartbeat(path) == (True, "ok")
    runtime.request_stop()
    await asyncio.wait_for(task, 5)
    assert not path.exists()  # removed on stop


def test_check_heartbeat_reports_problems(tmp_path):
    path = tmp_path / "hb.json"
    assert check_heartbeat(path)[0] is False
    write_heartbeat(path, {"teacher": True, "student": False}, now=1000)
    assert check_heartbeat(path, now=1010) == (False, "disconnected: student")
    write_heartbeat(path, {"teacher": True}, now=1000)
    assert check_heartbeat(path, max_age=30, now=1100)[1].startswith("heartbeat is 100s old")


def test_runtime_validates_raw_settings(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for name in ("API_ID", "API_HASH", "TEACHER_BOT_TOKEN", "STUDENT_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)

    async def noop(*_): ...

    with pytest.raises(SettingsError, match="API_ID"):
        TelegramRuntime(load_settings(), noop, noop)


SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from pyrogram import Client, types
    from integrations.telegram.config import TelegramConfig
    from integrations.telegram.runtime import TelegramRuntime

    async def start(self):
        self.me = types.User(id=1, username="x"); self.is_connected = True; return self
    async def stop(self, block=True):
        self.is_connected = False; print("stopped", self.name, flush=True); return self
    Client.start, Client.stop = start, stop

    async def submit(update): pass
    async def drain():
        print("draining", flush=True); await asyncio.sleep(0.2); print("drained", flush=True)

    async def main():
        config = TelegramConfig(api_id=1, api_hash="0" * 32, session_dir=sys.argv[1],
                                bot_tokens={"teacher": "123456:" + "a" * 35, "student": "654321:" + "b" * 35})
        runtime = TelegramRuntime(config, submit, drain, in_memory=True, heartbeat_interval=0)
        task = asyncio.create_task(runtime.run())
        await runtime.started.wait()
        print("ready", flush=True)
        await task

    asyncio.run(main())
""")


def test_process_exits_zero_on_sigterm(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.split("\n")[:4] == ["draining", "drained", "stopped attendance-teacher", "stopped attendance-student"]


def test_health_command(tmp_path, capsys):
    from integrations.telegram.health import health_command

    assert health_command(tmp_path) == 1
    write_heartbeat(heartbeat_path(tmp_path), {"teacher": True, "student": True})
    assert health_command(tmp_path) == 0
    assert capsys.readouterr().out.splitlines() == [f"no heartbeat at {heartbeat_path(tmp_path)}", "ok"]


class FakeEngine:
    """The duck type serve_engine needs, recording the lifecycle."""

    def __init__(self, events: list[str]):
        self.events, self.sinks = events, []

    def add_sink(self, sink) -> None:
        self.sinks.append(sink)

    async def start(self) -> int:
        self.events.append("engine:start")
        return 0

    async def submit(self, update: Update) -> list:
        self.events.append(f"engine:submit:{update.payload}")
        for sink in self.sinks:
            await sink(Outgoing(update.bot, update.chat_id, (SendText(f"echo {update.payload}"),), update.request_id))
        return []

    async def drain(self) -> None:
        self.events.append("engine:drain")

    async def stop(self) -> None:
        self.events.append("engine:stop")


async def test_serve_engine_round_trip_and_sigterm(fake_network, config, factory, recorder, events, monkeypatch):
    from integrations.telegram.runtime import serve_engine

    engine = FakeEngine(events)
    started: list[TelegramRuntime] = []
    original_start = TelegramRuntime.start

    async def spy_start(self):
        await original_start(self)
        started.append(self)

    monkeypatch.setattr(TelegramRuntime, "start", spy_start)
    task = asyncio.create_task(serve_engine(config, engine, in_memory=True, heartbeat_interval=0,
                                            client_factory=factory))
    for _ in range(200):
        if started:
            break
        await asyncio.sleep(0.01)
    started[0].clients["student"].dispatcher.updates_queue.put_nowait(new_message(raw_message(3, "hi")))
    for _ in range(200):
        if recorder.sent_texts():
            break
        await asyncio.sleep(0.01)
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(task, 5)
    assert recorder.sent_texts() == ["echo hi"]
    lifecycle = [e for e in events if e.startswith("engine") or e.startswith("stop")]
    assert lifecycle == ["engine:start", "engine:submit:hi", "engine:drain", "stop:attendance-teacher",
                         "stop:attendance-student", "engine:stop"]


async def test_clients_are_built_with_explicit_workers_and_floodwaits_surfaced(config):
    from dataclasses import replace

    client = default_client_factory(in_memory=True)("student", replace(config, workers=7))
    assert client.workers == 7  # TELEGRAM_WORKERS, not the library's cpu-based default
    assert client.sleep_threshold == 0  # a FloodWait reaches the send queue, which pauses the bot
    assert client.skip_updates is True  # the library's unordered catch-up is off; ours runs


async def test_stats_and_health_per_bot(fake_network, config, factory):
    async def noop(*_): ...

    runtime = TelegramRuntime(config, noop, noop, in_memory=True, heartbeat_interval=0,
                              handle_signals=False, client_factory=factory)
    task = asyncio.create_task(runtime.run())
    await asyncio.wait_for(runtime.started.wait(), 5)
    stats = runtime.stats()
    assert set(stats) == {"teacher", "student"}
    assert {"connected", "depth", "send_rate", "reply_wait_p95_s", "flood_waits", "caught_up"} <= set(stats["student"])
    health = runtime.health()
    assert health["ok"] and health["bots"]["teacher"]["connected"]
    runtime.request_stop()
    await asyncio.wait_for(task, 5)
    assert not runtime.health()["ok"]


async def test_on_connected_gets_the_usernames_before_updates_are_handled(fake_network, config, factory):
    """What the run command gives the student-bot directory (StudentBots.set_usernames)."""
    seen: list[tuple[dict[str, str], bool]] = []

    async def noop(*_): ...

    runtime = TelegramRuntime(config, noop, noop, in_memory=True, heartbeat_interval=0, handle_signals=False,
                              client_factory=factory,
                              on_connected=lambda names: seen.append((names, runtime.started.is_set())))
    task = asyncio.create_task(runtime.run())
    await asyncio.wait_for(runtime.started.wait(), 5)
    assert seen == [({"teacher": "attendance_teacher", "student": "attendance_student"}, False)]
    runtime.request_stop()
    await asyncio.wait_for(task, 5)

"""Issue 15.2: the teacher flow's own words for API failures, and a login refused after a relogin."""
from __future__ import annotations

import logging

from tests.fakes.fake_attendance_api import Reply
from tests.integrations.conftest import api, db  # noqa: F401  (fixtures)

from .httpkit import EMAIL, TEACHER, http_app, login, open_session

NOT_ANSWERING = "The attendance service is not answering right now"


async def test_api_down_while_listing_batches_gets_the_flows_words(db, api, caplog) -> None:  # noqa: F811
    app, sim, _ = http_app(api)
    await app.start()
    await login(sim)
    api.script("GET", "/attendance", *[Reply(503)] * 3)  # the batches and subjects, after retries
    with caplog.at_level(logging.INFO):
        replies = await sim.send(TEACHER, "/tap 📝 Take attendance")
    assert any(NOT_ANSWERING in r for r in replies), replies
    assert not any("Sorry, something went wrong" in r for r in replies)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert await sim.state_of(TEACHER) == "menu"
    # Once the API answers, the batches and subjects are read once, in that step.
    calls = len(api.calls("GET", "/attendance"))
    await sim.send(TEACHER, "/tap 📝 Take attendance")
    await sim.send(TEACHER, "/tap B2")
    replies = await sim.send(TEACHER, "/tap Done ✔")
    assert any("DSA" in r and "Python" in r for r in replies)
    assert len(api.calls("GET", "/attendance")) == calls + 1
    await app.stop()


async def test_api_down_while_loading_students_gets_the_flows_words(db, api) -> None:  # noqa: F811
    app, sim, _ = http_app(api)
    await app.start()
    await login(sim)
    for line in ("/tap 📝 Take attendance", "/tap B1", "/tap Done ✔", "/tap Python", "/tap 5 min", "/tap 50"):
        await sim.send(TEACHER, line)
    api.script("GET", "/attend", *[Reply(503)] * 3)
    replies = await sim.send(TEACHER, "/location 17.385 78.4867 5")
    assert any("the attendance service is not answering" in r for r in replies)
    await app.stop()


async def test_a_changed_password_asks_the_teacher_to_log_in_again(db, api, caplog) -> None:  # noqa: F811
    app, sim, _ = http_app(api)
    await app.start()
    await login(sim)
    assert any("Welcome back" in r for r in await sim.send(TEACHER, "/start"))
    # An admin changes the password; the stored tokens stop working (409: logged in elsewhere).
    api.users[EMAIL]["password"] = "changed-by-admin"
    api.script("GET", "/attendance", Reply(409))
    with caplog.at_level(logging.INFO):
        replies = await sim.send(TEACHER, "/tap 📝 Take attendance")
    assert any("no longer accepts your saved login" in r for r in replies), replies
    assert any("share your phone number" in r for r in replies)  # and the login starts over
    assert not any("Welcome back" in r or "something went wrong" in r for r in replies)
    assert not [r for r in caplog.records if r.exc_info]
    assert await sim.state_of(TEACHER) == "ask_contact"
    # /start no longer says "Welcome back" either; logging in with the new password works.
    assert any("share your phone number" in r for r in await sim.send(TEACHER, "/start"))
    for line in ("/contact +919848000001", EMAIL):
        await sim.send(TEACHER, line)
    assert any("Logged in" in r for r in await sim.send(TEACHER, "changed-by-admin"))
    assert await open_session(sim)
    await app.stop()


async def test_a_changed_password_while_opening_a_session(db, api) -> None:  # noqa: F811
    app, sim, _ = http_app(api)
    await app.start()
    await login(sim)
    for line in ("/tap 📝 Take attendance", "/tap B1", "/tap Done ✔", "/tap Python", "/tap 5 min", "/tap 50"):
        await sim.send(TEACHER, line)
    api.users[EMAIL]["password"] = "changed-by-admin"
    api.script("GET", "/attend", Reply(409))
    replies = await sim.send(TEACHER, "/location 17.385 78.4867 5")
    assert any("no longer accepts your saved login" in r for r in replies)
    assert await sim.state_of(TEACHER) == "ask_contact"
    await app.stop()


async def test_a_mark_after_the_password_changed_is_kept_until_the_next_login(db, api) -> None:  # noqa: F811
    from integrations.storage import outbox
    from integrations.storage.documents import AttendanceRecord

    app, sim, _ = http_app(api)
    await app.start()
    await open_session(sim)
    api.users[EMAIL]["password"] = "changed-by-admin"
    api.script("POST", "/attendance", Reply(409))
    replies = await sim.send(TEACHER, "/mark B1-S1 phone dead")
    assert any("kept here" in r and "once you log in again" in r for r in replies), replies
    assert await sim.state_of(TEACHER) == "ask_contact"
    assert not AttendanceRecord.objects.get(student_id="B1-S1").synced
    assert [e.last_error for e in outbox.open_entries()] == ["credentials_changed"]
    for line in ("/contact +919848000001", EMAIL, "changed-by-admin"):
        await sim.send(TEACHER, line)
    await app.outbox.run_once()
    assert AttendanceRecord.objects.get(student_id="B1-S1").synced
    await app.stop()

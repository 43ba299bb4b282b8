"""The expiry report survives a restart and is sent exactly once, even with racing schedulers."""
from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

from engine.simulator import Simulator, SimUser
from integrations.app import App, build_app
from integrations.attendance.reports import ReportScheduler
from integrations.roster.csv_import import import_roster
from integrations.roster.service import RosterService
from integrations.settings import load_settings
from integrations.storage.connection import connect_db
from integrations.storage.documents import Session, utcnow
from integrations.storage.indexes import ensure_indexes
from tests.conftest import fresh_db_uri
from tests.fakes.faces import FakeFaceVerifier

REPO = Path(__file__).resolve().parents[2]
TEACHER = SimUser("asha", 5001, "teacher", "Asha")


def app_over_the_same_database(settings) -> App:  # type: ignore[no-untyped-def]
    """What a restarted process builds: new objects, the same MongoDB."""
    return build_app(settings, flows=REPO / "flows", verifier=FakeFaceVerifier(), connect=False)


@pytest.fixture
def settings():  # type: ignore[no-untyped-def]
    connect_db(fresh_db_uri("report_once"))
    ensure_indexes()
    import_roster(REPO / "flows" / "scripts" / "fixtures" / "roster.csv")
    return load_settings(report_buffer_seconds=0, app_env="test")


async def open_session(roster: RosterService, seconds: float) -> Session:
    await roster.login_teacher(TEACHER.user_id, "919848000001", "asha.rao@example.edu", "demo-pass-1")
    students = await roster.load_students(TEACHER.user_id, ["PFS-101"], "Python")
    return await roster.open_session(TEACHER.user_id, "123456", ["PFS-101"], "Python", 17.385, 78.4867, 50,
                                     utcnow() + dt.timedelta(seconds=seconds), students)


def reports_in(sim: Simulator) -> list[str]:
    return [t for t in sim.texts(TEACHER) if "📋 Attendance report" in t]


async def test_report_fires_once_after_a_restart(settings) -> None:  # type: ignore[no-untyped-def]
    app_a = app_over_the_same_database(settings)
    sim_a = Simulator(app_a.engine)
    await app_a.start()
    session = await open_session(app_a.services.roster, seconds=0.5)
    app_a.reports.schedule(str(session.id), session.expires_at)
    app_a.reports.shutdown()  # the process dies before the report is due
    await app_a.engine.stop()

    await asyncio.sleep(0.8)  # the report falls due while nothing is running
    app_b = app_over_the_same_database(settings)
    sim_b = Simulator(app_b.engine)
    await app_b.start()  # re-arms every unsent report from the database
    for _ in range(100):
        if reports_in(sim_b):
            break
        await asyncio.sleep(0.05)
    # Another worker that also re-armed it, and a late duplicate job: neither sends again.
    third = ReportScheduler(app_b.services.roster, app_b.reports.notify, buffer_s=0, timezone="UTC")
    assert await asyncio.gather(third.fire(str(session.id)), app_b.reports.fire(str(session.id))) == [False, False]
    await asyncio.sleep(0.2)
    assert len(reports_in(sim_b)) == 1 and reports_in(sim_a) == []
    assert "Present 0/4" in reports_in(sim_b)[0]
    stored = Session.objects(id=session.id).first()
    assert stored.report_sent_at is not None and stored.status == "closed"
    await app_b.stop()


async def test_an_extended_session_reports_at_its_new_expiry(settings) -> None:  # type: ignore[no-untyped-def]
    app = app_over_the_same_database(settings)
    sim = Simulator(app.engine)
    await app.start()
    session = await open_session(app.services.roster, seconds=0.3)
    app.reports.schedule(str(session.id), session.expires_at)
    await app.services.roster.extend_session(str(session.id), 60)  # without rescheduling the job
    await asyncio.sleep(0.6)
    assert reports_in(sim) == []  # the early job noticed the extension and re-scheduled
    assert app.reports.pending() == [ReportScheduler.job_id(str(session.id))]
    await app.stop()

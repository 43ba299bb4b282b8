"""Fixtures for the web panel: a fresh database with the fixture roster, accounts, sessions, a client."""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import mongoengine
import pytest
from starlette.testclient import TestClient

from integrations.app.panel import web_context
from integrations.foundation.crypto import hash_password
from integrations.presence.faces.local import LocalFaceVerifier
from integrations.roster import records
from integrations.roster.base import StudentInfo
from integrations.roster.csv_import import import_roster
from integrations.roster.local import LocalRoster
from integrations.roster.service import RosterService
from integrations.settings import load_settings
from integrations.storage.connection import connect_db, disconnect_db
from integrations.storage.documents import Student, utcnow
from integrations.storage.indexes import ensure_indexes
from integrations.web.app import create_app
from integrations.web.context import WebContext
from tests.conftest import fresh_db_uri

REPO = Path(__file__).resolve().parents[2]
ROSTER = REPO / "flows" / "scripts" / "fixtures" / "roster.csv"
ADMIN_EMAIL, ADMIN_PASSWORD = "root@example.edu", "admin-password-1"
ASHA = ("asha.rao@example.edu", "demo-pass-1")  # PFS-101, PFS-102 (fixture roster)
VIKRAM = ("vikram.sen@example.edu", "demo-pass-2")  # JFS-201
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class World:
    """What the web tests run on: two teachers with one open session each, an admin."""

    ctx: WebContext
    asha_session: str
    vikram_session: str
    faces_dir: Path


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    client = connect_db(fresh_db_uri("web"))
    ensure_indexes()
    import_roster(ROSTER)
    records.create_admin(ADMIN_EMAIL, hash_password(ADMIN_PASSWORD))
    records.bind(5001, ASHA[0])
    records.bind(5002, VIKRAM[0])
    sessions = {}
    for tg, batch, subject in ((5001, "PFS-101", "Python"), (5002, "JFS-201", "Java")):
        students = [StudentInfo(s.student_id, s.name, s.batch, s.phone) for s in Student.objects(batch=batch)]
        sessions[tg] = str(records.create_session(tg, f"{tg:06d}", [batch], subject, 17.385, 78.4867, 50.0,
                                                  utcnow() + dt.timedelta(minutes=10), students).id)
    settings = load_settings(app_env="test", faces_dir=tmp_path / "faces", flows_dir=REPO / "flows")
    roster = RosterService(LocalRoster())
    verifier = LocalFaceVerifier(settings.faces_dir)
    ctx = web_context(settings, roster, verifier)
    yield World(ctx, sessions[5001], sessions[5002], settings.faces_dir)
    roster.close()
    client.drop_database(mongoengine.get_db().name)
    disconnect_db()


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str) -> TestClient:
    page = client.get("/login")
    response = client.post("/login", data={"email": email, "password": password, "csrf": csrf_of(page.text)},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return client


@pytest.fixture
def app(world: World):  # type: ignore[no-untyped-def]
    return create_app(world.ctx)


def client_for(app, who: Optional[tuple[str, str]]) -> TestClient:  # type: ignore[no-untyped-def]
    client = TestClient(app, base_url="http://testserver")
    if who is not None:
        sign_in(client, *who)
    return client


@pytest.fixture
def admin(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with client_for(app, (ADMIN_EMAIL, ADMIN_PASSWORD)) as c:
        yield c


@pytest.fixture
def asha(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with client_for(app, ASHA) as c:
        yield c


def form_csrf(client: TestClient, url: str = "/") -> str:
    return csrf_of(client.get(url).text)

"""Fixtures for the integrations tests: a fresh database on the run's server, a Fernet box, the fake API."""
from __future__ import annotations

import datetime as dt

import pytest

from integrations.api.client import AttendanceApiClient
import mongoengine

from integrations.foundation import crypto
from integrations.storage.connection import connect_db, disconnect_db
from integrations.storage.indexes import ensure_indexes
from tests.conftest import fresh_db_uri
from tests.fakes.fake_attendance_api import FakeAttendanceApi

PASSWORD = "S3cret-Pa55word!"


@pytest.fixture
def db():
    client = connect_db(fresh_db_uri("test"))
    ensure_indexes()
    yield
    client.drop_database(mongoengine.get_db().name)
    disconnect_db()


@pytest.fixture
def box():
    box = crypto.SecretBox([crypto.generate_key()])
    crypto.set_secret_box(box)
    yield box
    crypto.set_secret_box(None)


@pytest.fixture
def api():
    fake = FakeAttendanceApi()
    fake.add_user("asha@example.edu", PASSWORD, mentor_id="M1", name="Asha Rao", phone="+91 98480 00001")
    fake.assignments["M1"] += [("B1", "Python"), ("B2", "Python"), ("B2", "DSA")]
    for batch in ("B1", "B2", "B3", "B4", "B5"):
        for n in (1, 2):
            fake.add_student(batch, f"{batch}-S{n}", f"Student {n} of {batch}", f"+91 90000 0{n}{batch[-1]}00")
    with fake:
        yield fake


def make_client(api: FakeAttendanceApi, **kw) -> AttendanceApiClient:
    options = dict(timeout=2.0, backoff_factor=0.01, backoff_max=0.05, max_retry_after=2.0)
    options.update(kw)
    return AttendanceApiClient(api.base_url, "/login", **options)


@pytest.fixture
def client(api):
    c = make_client(api)
    yield c
    c.close()


def utc(**delta) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) + dt.timedelta(**delta)

"""The API client against the fake API over real HTTP: retries, tokens, errors, concurrency, logs."""
from __future__ import annotations

import asyncio
import logging
import socket
import time

import jwt
import pytest

from integrations.api.client import AttendanceApiClient
from integrations.foundation.errors import ApiError
from tests.fakes.fake_attendance_api import SECRET, Reply
from tests.integrations.conftest import PASSWORD, make_client

EMAIL = "asha@example.edu"
KEY = "1001"


def paths(api, since: int = 0) -> list[str]:
    return [f"{s.method} {s.path}" for s in api.calls()[since:]]


def login(client: AttendanceApiClient, key: str = KEY) -> None:
    client.login(key, EMAIL, PASSWORD)


# ---------------------------------------------------------------------------------------------
# login and per-teacher tokens


def test_login_stores_tokens_per_teacher(api, client):
    api.add_user("vikram@example.edu", "other-pass", mentor_id="M2")
    client.login("1", EMAIL, PASSWORD)
    client.login("2", "vikram@example.edu", "other-pass")
    t1, t2 = client.store.load("1"), client.store.load("2")
    assert t1.access != t2.access
    assert jwt.decode(t1.access, SECRET, algorithms=["HS256"])["sub"] == "M1"
    assert jwt.decode(t2.access, SECRET, algorithms=["HS256"])["sub"] == "M2"
    client.assignments("2", "M2")
    assert api.calls("GET", "/attendance")[-1].token == t2.access


def test_tokens_are_real_jwts_with_expiry(api, client):
    login(client)
    tokens = client.store.load(KEY)
    assert tokens.access_exp and tokens.access_exp > time.time()
    assert jwt.get_unverified_header(tokens.access)["alg"] == "HS256"


@pytest.mark.parametrize(
    "reply, key",
    [
        (Reply(401, {"detail": "no"}), "bad_credentials"),
        (Reply(200, raw=b"{not json"), "bad_response"),
        (Reply(200, {"access_token": "x", "refresh_token": "y"}), "bad_response"),  # no user
        (Reply(200, {"refresh_token": "y", "user": {"id": "M1"}}), "bad_response"),  # no access
        (Reply(200, ["a list"]), "bad_response"),
        (Reply(500), "api_unavailable"),
    ],
)
def test_failed_login_raises_one_error_type_and_stores_nothing(api, client, reply, key):
    api.script("POST", "/login", reply)
    with pytest.raises(ApiError) as err:
        login(client)
    assert err.value.message_key == key
    assert client.store.load(KEY) is None and client.store.credentials(KEY) is None


def test_call_without_login_is_not_logged_in(client):
    with pytest.raises(ApiError) as err:
        client.students(KEY, "B1", "Python")
    assert err.value.message_key == "not_logged_in"


# ---------------------------------------------------------------------------------------------
# retries (urllib3) and timeouts


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried(api, client, status):
    login(client)
    api.script("GET", "/attend", Reply(status), Reply(status))
    assert [s.student_id for s in client.students(KEY, "B1", "Python")] == ["B1-S1", "B1-S2"]
    assert len(api.calls("GET", "/attend")) == 3


def test_gives_up_after_three_attempts(api, client):
    login(client)
    api.script("GET", "/attend", Reply(503), Reply(503), Reply(503), Reply(503))
    with pytest.raises(ApiError) as err:
        client.students(KEY, "B1", "Python")
    assert err.value.message_key == "api_unavailable" and err.value.status == 503
    assert len(api.calls("GET", "/attend")) == 3


def test_500_is_not_retried(api, client):
    login(client)
    api.script("GET", "/attend", Reply(500))
    with pytest.raises(ApiError) as err:
        client.students(KEY, "B1", "Python")
    assert err.value.message_key == "api_unavailable"
    assert len(api.calls("GET", "/attend")) == 1


def test_retry_after_is_honoured(api, client):
    login(client)
    api.script("GET", "/attend", Reply(503, headers={"Retry-After": "1"}))
    started = time.monotonic()
    client.students(KEY, "B1", "Python")
    calls = api.calls("GET", "/attend")
    assert len(calls) == 2
    assert calls[1].at - calls[0].at >= 0.9
    assert time.monotonic() - started < 5


def test_retry_after_is_capped(api):
    client = make_client(api, max_retry_after=0.2)
    login(client)
    api.script("GET", "/attend", Reply(503, headers={"Retry-After": "3600"}))
    started = time.monotonic()
    client.students(KEY, "B1", "Python")
    assert time.monotonic() - started < 2
    client.close()


def test_backoff_grows_between_attempts(api):
    client = make_client(api, backoff_factor=0.2, backoff_max=5)
    login(client)
    api.script("GET", "/attend", Reply(502), Reply(502))
    client.students(KEY, "B1", "Python")
    first, second, third = (c.at for c in api.calls("GET", "/attend"))
    assert third - second >= 0.3  # urllib3: factor * 2 ** (n - 1) before the second retry
    assert third - second > second - first
    client.close()


def test_timeout_is_api_unavailable_and_not_retried(api):
    client = make_client(api, timeout=0.3)
    login(client)
    api.script("GET", "/attend", Reply(200, {"data": []}, delay=1.5))
    started = time.monotonic()
    with pytest.raises(ApiError) as err:
        client.students(KEY, "B1", "Python")
    assert err.value.message_key == "api_unavailable"
    assert time.monotonic() - started < 1.2
    assert len(api.calls("GET", "/attend")) == 1
    client.close()


def test_dropped_connection_is_api_unavailable(api, client):
    login(client)
    api.script("GET", "/attend", Reply(drop=True))
    with pytest.raises(ApiError) as err:
        client.students(KEY, "B1", "Python")
    assert err.value.message_key == "api_unavailable"


def test_connection_refused_is_retried_then_api_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    client = AttendanceApiClient(f"http://127.0.0.1:{port}", timeout=1, backoff_factor=0.01)
    started = time.monotonic()
    with pytest.raises(ApiError) as err:
        client.authenticate(EMAIL, PASSWORD)
    assert err.value.message_key == "api_unavailable"
    assert time.monotonic() - started < 3
    client.close()


# ---------------------------------------------------------------------------------------------
# bad answers


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, raw=b"<html>oops</html>"),
        Reply(200, {"data": "not a list"}),
        Reply(200, {"data": [{"student_id": "S1", "name": "A"}, {"student_id": "S2"}]}),  # partial
        Reply(200, {"data": [{"student_id": "", "name": "A"}]}),
        Reply(200, {"data": [["S1", "A"]]}),
    ],
)
def test_bad_student_answers_are_bad_response(api, client, reply):
    login(client)
    api.script("GET", "/attend", reply)
    with pytest.raises(ApiError) as err:
        client.students(KEY, "B1", "Python")
    assert err.value.message_key == "bad_response"


def test_other_4xx_is_rejected(api, client):
    login(client)
    with pytest.raises(ApiError) as err:
        client.assignments(KEY, "M-someone-else")  # the fake answers 403
    assert err.value.message_key == "rejected" and err.value.status == 403


def test_assignments_are_parsed_and_sorted(api, client):
    login(client)
    got = client.assignments(KEY, "M1")
    assert [(a.batch, a.subject) for a in got] == [("B1", "Python"), ("B2", "DSA"), ("B2", "Python")]
    assert api.calls("GET", "/attendance")[-1].query == {"mentor_id": "M1"}


# ---------------------------------------------------------------------------------------------
# token lifecycle: refresh before expiry, 401, 409


def test_refreshes_before_the_token_expires(api):
    now = [time.time()]
    client = make_client(api, refresh_margin=60, clock=lambda: now[0])
    login(client)
    first = client.store.load(KEY).access
    client.students(KEY, "B1", "Python")
    assert not api.calls("POST", "/refresh")  # plenty of time left
    now[0] = client.store.load(KEY).access_exp - 30  # inside the margin
    mark = len(api.calls())
    client.students(KEY, "B1", "Python")
    assert paths(api, mark) == ["POST /refresh", "GET /attend"]
    used = api.calls("GET", "/attend")[-1].token
    assert used != first and used == client.store.load(KEY).access
    client.close()


def test_concurrent_calls_refresh_only_once(api):
    now = [time.time()]
    client = make_client(api, refresh_margin=60, clock=lambda: now[0])
    login(client)
    now[0] = client.store.load(KEY).access_exp - 1
    api.access_ttl = 3600  # refreshed tokens are outside the margin even within the same second
    result = asyncio.run(client.students_of_batches(KEY, ["B1", "B2", "B3", "B4", "B5"], "Python"))
    assert len(result) == 5
    assert len(api.calls("POST", "/refresh")) == 1
    client.close()


def test_401_refreshes_once_and_repeats(api, client):
    login(client)
    api.script("GET", "/attend", Reply(401))
    mark = len(api.calls())
    assert client.students(KEY, "B1", "Python")
    assert paths(api, mark) == ["GET /attend", "POST /refresh", "GET /attend"]


def test_401_after_refresh_logs_in_again(api, client):
    login(client)
    api.script("GET", "/attend", Reply(401), Reply(401))
    mark = len(api.calls())
    assert client.students(KEY, "B1", "Python")
    assert paths(api, mark) == ["GET /attend", "POST /refresh", "GET /attend", "POST /login", "GET /attend"]


def test_refused_refresh_falls_back_to_login(api, client):
    login(client)
    api.revoked.add(client.store.load(KEY).refresh)
    api.script("GET", "/attend", Reply(401))
    mark = len(api.calls())
    assert client.students(KEY, "B1", "Python")
    assert paths(api, mark) == ["GET /attend", "POST /refresh", "POST /login", "GET /attend"]


def test_persistent_401_is_session_expired(api, client):
    login(client)
    api.script("GET", "/attend", Reply(401), Reply(401), Reply(401))
    with pytest.raises(ApiError) as err:
        client.students(KEY, "B1", "Python")
    assert err.value.message_key == "session_expired"


def test_409_logs_out_logs_in_and_repeats_once(api, client):
    login(client)
    old = client.store.load(KEY).access
    api.script("GET", "/attend", Reply(409, {"detail": "logged in elsewhere"}))
    mark = len(api.calls())
    assert client.students(KEY, "B1", "Python")
    assert paths(api, mark) == ["GET /attend", "POST /logout", "POST /login", "GET /attend"]
    assert api.calls("POST", "/logout")[-1].token == old
    assert client.store.load(KEY).access != old


def test_persistent_409_is_session_conflict(api, client):
    login(client)
    api.script("GET", "/attend", Reply(409), Reply(409))
    with pytest.raises(ApiError) as err:
        client.students(KEY, "B1", "Python")
    assert err.value.message_key == "session_conflict"
    assert len(api.calls("GET", "/attend")) == 2


def test_changed_password_on_relogin_is_credentials_changed(api, client):
    """A re-login refused with the stored credentials: they are forgotten and the error says so
    (the teacher flow asks the teacher to log in again instead of showing a generic error)."""
    login(client)
    api.users[EMAIL]["password"] = "changed"
    api.script("GET", "/attend", Reply(409))
    with pytest.raises(ApiError) as err:
        client.students(KEY, "B1", "Python")
    assert err.value.message_key == "credentials_changed"
    assert client.store.credentials(KEY) is None and client.store.load(KEY) is None
    with pytest.raises(ApiError) as err:  # and from then on: not logged in
        client.students(KEY, "B1", "Python")
    assert err.value.message_key == "not_logged_in"


def test_logout_forgets_the_teacher(api, client):
    login(client)
    client.logout(KEY)
    assert api.calls("POST", "/logout")
    assert client.store.load(KEY) is None and client.store.credentials(KEY) is None


# ---------------------------------------------------------------------------------------------
# concurrency


def test_batches_load_concurrently(api, client):
    login(client)
    api.latency["/attend"] = 0.5
    started = time.monotonic()
    result = asyncio.run(client.students_of_batches(KEY, ["B1", "B2", "B3", "B4", "B5"], "Python"))
    elapsed = time.monotonic() - started
    assert sorted(result) == ["B1", "B2", "B3", "B4", "B5"]
    assert all(len(v) == 2 for v in result.values())
    assert elapsed < 1.5, f"5 batches at 0.5 s took {elapsed:.2f} s (sequential would be 2.5 s)"


def test_one_failing_batch_fails_the_whole_load(api, client):
    login(client)
    api.script("GET", "/attend", Reply(200, raw=b"garbage"))
    with pytest.raises(ApiError) as err:
        asyncio.run(client.students_of_batches(KEY, ["B1", "B2", "B3"], "Python"))
    assert err.value.message_key == "bad_response"


# ---------------------------------------------------------------------------------------------
# secrets never logged


def test_no_password_or_token_in_any_log_line(api, caplog):
    caplog.set_level(logging.DEBUG)
    now = [time.time()]
    client = make_client(api, refresh_margin=60, clock=lambda: now[0])
    login(client)
    api.script("GET", "/attend", Reply(401), Reply(401))
    client.students(KEY, "B1", "Python")  # 401 -> refresh -> 401 -> login
    api.script("GET", "/attend", Reply(409), Reply(503))
    client.students(KEY, "B1", "Python")  # 409 -> logout, login -> 503 retried
    now[0] = client.store.load(KEY).access_exp - 1
    client.students(KEY, "B2", "Python")  # refresh before expiry
    api.script("POST", "/login", Reply(401))
    with pytest.raises(ApiError):
        client.login("2", EMAIL, "wrong-" + PASSWORD)
    with pytest.raises(ApiError):
        client.authenticate(EMAIL, PASSWORD + "x")
    client.close()

    secrets = {PASSWORD, "wrong-" + PASSWORD}
    for seen in api.calls():
        if seen.token:
            secrets.add(seen.token)
        if isinstance(seen.body, dict) and seen.body.get("refresh_token"):
            secrets.add(seen.body["refresh_token"])
    assert len(secrets) > 5
    formatter = logging.Formatter("%(name)s %(message)s")
    lines = [formatter.format(r) for r in caplog.records]
    assert any("refresh" in line for line in lines)  # the flow above was logged at all
    for line in lines:
        for secret in secrets:
            assert secret not in line
        assert "eyJ" not in line  # no JWT of any kind


def test_concurrent_409s_log_in_again_only_once(api, client):
    login(client)
    api.script("GET", "/attend", *[Reply(409, delay=0.2) for _ in range(3)])
    result = asyncio.run(client.students_of_batches(KEY, ["B1", "B2", "B3"], "Python"))
    assert len(result) == 3
    assert len(api.calls("POST", "/logout")) == 1
    assert len(api.calls("POST", "/login")) == 2  # the first login, and one re-login

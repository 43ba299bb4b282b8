"""Signing in and out, cookies, CSRF, rate limits, deactivation: each can fail if the guard is missing."""
from __future__ import annotations

from starlette.testclient import TestClient

from integrations.storage.documents import Teacher
from integrations.storage.panel import WebLogin
from integrations.web.app import create_app
from tests.web.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, ASHA, client_for, csrf_of, form_csrf, sign_in


def _login(client: TestClient, email: str, password: str, csrf: str | None = None):  # type: ignore[no-untyped-def]
    token = csrf if csrf is not None else csrf_of(client.get("/login").text)
    return client.post("/login", data={"email": email, "password": password, "csrf": token}, follow_redirects=False)


def test_pages_need_a_login(app) -> None:  # type: ignore[no-untyped-def]
    client = client_for(app, None)
    for url in ("/", "/students", "/sessions", "/history", "/flows", "/teachers"):
        response = client.get(url, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
    assert client.post("/students/new", data={"student_id": "X1"}).status_code == 401


def test_wrong_password_is_refused_and_said_next_to_the_form(app) -> None:  # type: ignore[no-untyped-def]
    client = client_for(app, None)
    response = _login(client, ASHA[0], "wrong-password")
    assert response.status_code == 401 and "Wrong email or password" in response.text
    assert _login(client, "nobody@example.edu", "whatever-it-is").status_code == 401
    assert "af_session" not in client.cookies
    empty = _login(client, "", "")
    assert empty.status_code == 400 and "Enter your email address" in empty.text and "Enter your password" in empty.text


def test_login_form_needs_its_csrf_token(app) -> None:  # type: ignore[no-untyped-def]
    client = client_for(app, None)
    client.get("/login")
    assert _login(client, *ASHA, csrf="forged").status_code == 403
    assert WebLogin.objects.count() == 0


def test_failed_logins_are_rate_limited_even_with_the_right_password_after(app) -> None:  # type: ignore[no-untyped-def]
    client = client_for(app, None)
    for _ in range(5):
        assert _login(client, ASHA[0], "wrong-password").status_code == 401
    limited = _login(client, *ASHA)
    assert limited.status_code == 429 and "Too many failed sign-ins" in limited.text
    assert WebLogin.objects.count() == 0
    # another account from elsewhere is not affected by this email's window
    assert _login(client_for(app, None), ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 303


def test_session_cookie_flags_and_server_side_logout(app) -> None:  # type: ignore[no-untyped-def]
    client = client_for(app, None)
    response = _login(client, *ASHA)
    cookie = response.headers["set-cookie"]
    assert "af_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
    assert "Secure" not in cookie
    token = client.cookies["af_session"]
    assert WebLogin.objects.count() == 1 and token not in str(WebLogin.objects.first().to_mongo())  # only a hash
    assert client.get("/").status_code == 200
    assert client.post("/logout", data={"csrf": form_csrf(client)}, follow_redirects=False).status_code == 303
    assert WebLogin.objects.count() == 0
    replay = client_for(app, None)
    replay.cookies.set("af_session", token)
    assert replay.get("/", follow_redirects=False).status_code == 303  # the old cookie no longer works


def test_secure_cookies_behind_tls(world) -> None:  # type: ignore[no-untyped-def]
    world.ctx.settings = world.ctx.settings.model_copy(update={"web_secure_cookies": True})
    client = TestClient(create_app(world.ctx), base_url="https://testserver")
    cookie = _login(client, *ASHA).headers["set-cookie"]
    assert cookie.startswith("__Host-af_session=") and "Secure" in cookie and "Path=/" in cookie
    assert client.get("/").headers["strict-transport-security"].startswith("max-age=")


def test_every_post_needs_the_logins_csrf_token(admin) -> None:  # type: ignore[no-untyped-def]
    response = admin.post("/students/new", data={"student_id": "NEW1", "name": "N", "batch": "PFS-101",
                                                 "csrf": "not-the-token"})
    assert response.status_code == 403 and "Form expired" in response.text
    assert admin.post("/logout", data={}).status_code == 403


def test_security_headers(admin) -> None:  # type: ignore[no-untyped-def]
    headers = admin.get("/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"


def test_deactivated_teacher_is_signed_out_and_cannot_sign_in(app, admin) -> None:  # type: ignore[no-untyped-def]
    teacher = client_for(app, ASHA)
    assert teacher.get("/").status_code == 200
    asha = Teacher.objects(email=ASHA[0]).first()
    admin.post(f"/teachers/{asha.id}/deactivate", data={"csrf": form_csrf(admin)})
    assert teacher.get("/", follow_redirects=False).status_code == 303
    assert _login(client_for(app, None), *ASHA).status_code == 401
    assert Teacher.objects(email=ASHA[0]).first().telegram_id is None  # the bot binding went too


def test_teacher_sees_teacher_navigation_only(asha) -> None:  # type: ignore[no-untyped-def]
    page = asha.get("/").text
    assert 'href="/teachers"' not in page and 'href="/students"' in page and "(teacher)" in page


def test_login_redirects_only_to_this_site(app) -> None:  # type: ignore[no-untyped-def]
    client = client_for(app, None)
    page = client.get("/login?next=//evil.example/x").text
    response = client.post("/login", data={"email": ASHA[0], "password": ASHA[1], "csrf": csrf_of(page),
                                           "next": "//evil.example/x"}, follow_redirects=False)
    assert response.headers["location"] == "/"
    sign_in(client_for(app, None), ADMIN_EMAIL, ADMIN_PASSWORD)

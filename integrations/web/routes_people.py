"""Signing in and out, the dashboard, and the roster: teachers, batches, subjects, students, photos."""
from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from integrations.foundation.blocking import run_blocking
from integrations.foundation.crypto import hash_password
from integrations.foundation.errors import DUPLICATE, RosterError
from integrations.presence.faces.photo_check import PhotoRules, check_reference_photo
from integrations.roster.csv_import import CsvImportError
from integrations.storage.documents import utcnow
from integrations.web import auth, forms, queries
from integrations.web import constants as C
from integrations.web.auth import Principal
from integrations.web.kit import (
    cookie_name,
    ctx_of,
    current,
    not_found,
    page,
    page_number,
    read_form,
    read_upload,
    redirect,
    render,
    FormTooLarge,
)

log = logging.getLogger(__name__)
PHOTO_RULES = PhotoRules(max_pixels=C.PHOTO_MAX_PIXELS, min_side=C.PHOTO_MIN_SIDE,
                         min_face_fraction=C.PHOTO_MIN_FACE_FRACTION, min_sharpness=C.PHOTO_MIN_SHARPNESS,
                         brightness=C.PHOTO_BRIGHTNESS, stored_max_side=C.PHOTO_STORED_MAX_SIDE,
                         jpeg_quality=C.PHOTO_JPEG_QUALITY)


# ------------------------------------------------------------------------------ signing in
def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def _safe_next(value: Any) -> str:
    """Only a path of this site (no //host, no scheme) may follow a login."""
    if isinstance(value, str) and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value[:300]
    return "/"


async def login_form(request: Request) -> Response:
    if await current(request) is not None:
        return RedirectResponse("/", status_code=303)
    return _login_page(request, {})


def _login_page(request: Request, errors: dict[str, str], email: str = "", status: int = 200) -> Response:
    token = request.cookies.get(C.PRE_LOGIN_COOKIE) or auth.new_token()
    response = render(request, "login.html", {"errors": errors, "email": email, "pre": token,
                                              "next": _safe_next(request.query_params.get("next"))}, status=status)
    response.set_cookie(C.PRE_LOGIN_COOKIE, token, httponly=True, samesite="strict", path="/login",
                        secure=ctx_of(request).settings.web_secure_cookies)
    return response


async def login(request: Request) -> Response:
    ctx = ctx_of(request)
    try:
        form = await read_form(request)
    except FormTooLarge:
        return Response("too large", status_code=413)
    email = forms.text(form, "email", 254).lower()
    password = form.get("password") if isinstance(form.get("password"), str) else ""
    if not auth.same(form.get(C.CSRF_FIELD) if isinstance(form.get(C.CSRF_FIELD), str) else None,
                     request.cookies.get(C.PRE_LOGIN_COOKIE)):
        return _login_page(request, {"form": "The form expired; try again."}, email, status=403)
    client = _client(request)
    wait = max(await run_blocking(ctx.email_failures.wait, email), await run_blocking(ctx.client_failures.wait, client))
    if wait > 0:
        log.warning("web login rate-limited")
        return _login_page(request, {"form": f"Too many failed sign-ins; try again in {int(wait) + 1} s."}, email,
                           status=429)
    errors = {}
    if not forms.EMAIL.match(email):
        errors["email"] = "Enter your email address."
    if not password:
        errors["password"] = "Enter your password."
    if errors:
        return _login_page(request, errors, email, status=400)
    found = await run_blocking(auth.check_password, email, password[:256])
    if found is None:
        await run_blocking(ctx.email_failures.fail, email)
        await run_blocking(ctx.client_failures.fail, client)
        log.info("web login refused")
        return _login_page(request, {"form": "Wrong email or password."}, email, status=401)
    role, principal = found
    await run_blocking(ctx.email_failures.reset, email)
    token, csrf = auth.new_token(), auth.new_token()
    hours = ctx.settings.web_session_hours
    await ctx.roster.create_login(auth.token_hash(token), role, principal, csrf, auth.login_expiry(hours))
    log.info("web login of a %s", role)
    response = RedirectResponse(_safe_next(form.get("next")), status_code=303)
    response.set_cookie(cookie_name(ctx), token, max_age=int(hours * 3600), httponly=True, samesite="lax",
                        secure=ctx.settings.web_secure_cookies, path="/")
    response.delete_cookie(C.PRE_LOGIN_COOKIE, path="/login")
    return response


@page()
async def logout(request: Request, me: Principal) -> Response:
    ctx = ctx_of(request)
    await ctx.roster.end_login(me.token_hash)
    response = redirect("/login", "loggedout")
    response.delete_cookie(cookie_name(ctx), path="/")
    return response


# ------------------------------------------------------------------------------ the dashboard
@page()
async def dashboard(request: Request, me: Principal) -> Response:
    ctx = ctx_of(request)
    sessions = await run_blocking(queries.today_sessions, me, ctx.settings.timezone)
    alerts = await run_blocking(queries.alerts)
    return render(request, "dashboard.html", {"sessions": sessions, "alerts": alerts,
                                              "outbox_seen": me.is_admin}, principal=me)


# ------------------------------------------------------------------------------ teachers
@page(admin=True)
async def teachers(request: Request, me: Principal) -> Response:
    rows = await run_blocking(queries.teachers)
    return render(request, "teachers.html", {"teachers": rows}, principal=me)


async def _active_codes() -> tuple[set[str], set[str]]:
    def read() -> tuple[set[str], set[str]]:
        return ({b.code for b in queries.codes("batch") if b.active is not False},
                {s.code for s in queries.codes("subject") if s.active is not False})
    return await run_blocking(read)


@page(admin=True)
async def teacher_edit(request: Request, me: Principal) -> Response:
    teacher_id = request.path_params.get("teacher_id")
    teacher = await run_blocking(queries.teacher, teacher_id) if teacher_id else None
    if teacher_id and teacher is None:
        return not_found(request, me)
    creating = teacher is None
    if request.method == "GET":
        values = {} if creating else {"email": teacher.email, "name": teacher.name, "phone": teacher.phone,
                                      "assignments_text": "\n".join(f"{a.batch} / {a.subject}"
                                                                    for a in teacher.assignments)}
        return render(request, "teacher_form.html", {"form": forms.Form(values), "teacher": teacher}, principal=me)
    batches, subjects = await _active_codes()
    form = forms.teacher_form(request.state.form, batches, subjects, creating)
    if form.ok:
        password = form.values.pop("password", "")
        digest = await run_blocking(hash_password, password) if password else None
        try:
            saved = await ctx_of(request).roster.save_teacher(
                form.values["email"], form.values["name"], form.values["phone"], form.values["assignments"],
                digest, None if creating else str(teacher.id))
        except RosterError as exc:
            if exc.message_key != DUPLICATE:
                raise
            form.error("email", "Another teacher has this email.")
        else:
            await ctx_of(request).audit.record("teacher_create" if creating else "teacher_edit", actor=me.actor,
                                               subject=saved.email)
            return redirect("/teachers", "created" if creating else "saved")
    form.values.pop("password", None)
    return render(request, "teacher_form.html", {"form": form, "teacher": teacher}, status=400, principal=me)


@page(admin=True)
async def teacher_action(request: Request, me: Principal) -> Response:
    teacher = await run_blocking(queries.teacher, request.path_params["teacher_id"])
    if teacher is None:
        return not_found(request, me)
    roster, action = ctx_of(request).roster, request.path_params["action"]
    if action == "deactivate":
        await roster.set_teacher_active(str(teacher.id), False)
        msg = "deactivated"
    elif action == "activate":
        await roster.set_teacher_active(str(teacher.id), True)
        msg = "activated"
    elif action == "unbind":
        await roster.reset_teacher_binding(str(teacher.id))
        msg = "unbound"
    else:
        return not_found(request, me)
    await ctx_of(request).audit.record(f"teacher_{action}", actor=me.actor, subject=teacher.email)
    return redirect("/teachers", msg)


# ------------------------------------------------------------------------------ batches and subjects
@page(admin=True)
async def codes(request: Request, me: Principal) -> Response:
    batches = await run_blocking(queries.codes, "batch")
    subjects = await run_blocking(queries.codes, "subject")
    return render(request, "codes.html", {"batches": batches, "subjects": subjects, "forms": {}, "empty": forms.Form()},
                  principal=me)


@page(admin=True)
async def code_action(request: Request, me: Principal) -> Response:
    kind, action = request.path_params["kind"], request.path_params["action"]
    if kind not in ("batch", "subject") or action not in ("new", "edit", "activate", "deactivate"):
        return not_found(request, me)
    roster = ctx_of(request).roster
    form = forms.code_form(request.state.form, creating=action == "new")
    code = form.values["code"]
    if action != "new" and not await run_blocking(queries.code_exists, kind, code, False):
        return not_found(request, me)
    if form.ok:
        try:
            if action in ("new", "edit"):
                await roster.save_code(kind, code, form.values["name"], action == "new")
            else:
                await roster.set_code_active(kind, code, action == "activate")
        except RosterError as exc:
            if exc.message_key != DUPLICATE:
                raise
            form.error("code", f"This {kind} exists already.")
        else:
            await ctx_of(request).audit.record(f"{kind}_{action}", actor=me.actor, subject=code)
            return redirect("/codes", {"new": "created", "edit": "saved"}.get(action, action + "d"))
    batches = await run_blocking(queries.codes, "batch")
    subjects = await run_blocking(queries.codes, "subject")
    return render(request, "codes.html", {"batches": batches, "subjects": subjects, "forms": {kind: form}, "empty": forms.Form()},
                  status=400, principal=me)


# ------------------------------------------------------------------------------ students
@page()
async def students(request: Request, me: Principal) -> Response:
    q = request.query_params.get("q", "")[: C.SEARCH_MAX_LEN]
    batch = request.query_params.get("batch", "")[:48]
    number = page_number(request)
    rows, total = await run_blocking(queries.students_page, me, q, batch, number)
    batches = await run_blocking(queries.batch_codes, me)
    return render(request, "students.html", {"students": rows, "total": total, "q": q, "batch": batch,
                                             "batches": batches, "page": number, "pages": -(-total // C.PAGE_SIZE)},
                  principal=me)


@page()
async def student_detail(request: Request, me: Principal) -> Response:
    return await _student_page(request, me, forms.Form(), None)


async def _student_page(request: Request, me: Principal, form: forms.Form, photo_error: str | None,
                        status: int = 200) -> Response:
    ctx = ctx_of(request)
    student = await run_blocking(queries.student_for, me, request.path_params["student_id"])
    if student is None:
        return not_found(request, me)
    has_photo = await run_blocking(ctx.verifier.has_reference, student.batch, student.student_id)
    batches = await run_blocking(queries.batch_codes, me, True)
    if not form.values:
        form.values = {"name": student.name, "phone": student.phone, "batch": student.batch}
    return render(request, "student.html", {"student": student, "has_photo": has_photo, "form": form,
                                            "batches": batches, "photo_error": photo_error,
                                            "max_mb": ctx.settings.web_upload_max_bytes // (1024 * 1024)},
                  status=status, principal=me)


@page(admin=True)
async def student_new(request: Request, me: Principal) -> Response:
    batches = await run_blocking(queries.batch_codes, me, True)
    if request.method == "GET":
        return render(request, "student_new.html", {"form": forms.Form(), "batches": batches}, principal=me)
    form = forms.student_form(request.state.form, set(batches), creating=True)
    if form.ok:
        v = form.values
        try:
            await ctx_of(request).roster.save_student(v["student_id"], v["name"], v["phone"], v["batch"], True)
        except RosterError as exc:
            if exc.message_key != DUPLICATE:
                raise
            form.error("student_id", "A student with this id exists.")
        else:
            await ctx_of(request).audit.record("student_create", actor=me.actor, student_id=v["student_id"])
            return redirect(f"/students/{quote(v['student_id'])}", "created")
    return render(request, "student_new.html", {"form": form, "batches": batches}, status=400, principal=me)


@page(admin=True)
async def student_edit(request: Request, me: Principal) -> Response:
    student = await run_blocking(queries.student_for, me, request.path_params["student_id"])
    if student is None:
        return not_found(request, me)
    batches = await run_blocking(queries.batch_codes, me, True)
    form = forms.student_form(request.state.form, set(batches) | {student.batch}, creating=False)
    if not form.ok:
        return await _student_page(request, me, form, None, status=400)
    v = form.values
    await ctx_of(request).roster.save_student(student.student_id, v["name"], v["phone"], v["batch"], False)
    await ctx_of(request).audit.record("student_edit", actor=me.actor, student_id=student.student_id)
    return redirect(f"/students/{quote(student.student_id)}", "saved")


@page(admin=True)
async def student_delete(request: Request, me: Principal) -> Response:
    student = await run_blocking(queries.student_for, me, request.path_params["student_id"])
    if student is None:
        return not_found(request, me)
    if request.state.form.get("confirm") != student.student_id:
        form = forms.Form({"name": student.name, "phone": student.phone, "batch": student.batch},
                          {"confirm": "Type the student id to confirm."})
        return await _student_page(request, me, form, None, status=400)
    await ctx_of(request).roster.delete_student(student.student_id)
    await ctx_of(request).audit.record("student_delete", actor=me.actor, student_id=student.student_id)
    return redirect("/students", "deleted")


@page()
async def student_photo(request: Request, me: Principal) -> Response:
    """Check the photo (type, size, pixels from the header, exactly one usable face), then enrol it
    where the configured verifier reads it. Nothing is stored unless every check passes."""
    ctx = ctx_of(request)
    student = await run_blocking(queries.student_for, me, request.path_params["student_id"])
    if student is None:
        return not_found(request, me)
    upload = request.state.form.get("photo")
    limit = ctx.settings.web_upload_max_bytes
    content_type = getattr(upload, "content_type", "") or ""
    if getattr(upload, "filename", None) in (None, ""):
        return await _student_page(request, me, forms.Form(), "Choose a photo to upload.", status=400)
    if content_type not in C.PHOTO_TYPES:
        return await _student_page(request, me, forms.Form(), "Only JPEG and PNG photos are accepted.", status=400)
    data = await read_upload(upload, limit)
    if data is None:
        return await _student_page(request, me, forms.Form(),
                                   f"The photo is larger than {limit // (1024 * 1024)} MB.", status=400)
    check = await run_blocking(check_reference_photo, data, PHOTO_RULES)
    if not check.ok:
        return await _student_page(request, me, forms.Form(), check.problem, status=400)
    stored = await run_blocking(ctx.verifier.store_reference, student.batch, student.student_id, check.jpeg)
    if not stored.ok:
        log.warning("reference photo not stored: %s", stored.reason)
        return await _student_page(request, me, forms.Form(),
                                   f"The face service did not accept the photo ({stored.reason}).", status=400)
    await ctx.audit.record("photo", actor=me.actor, student_id=student.student_id,
                           width=check.width, height=check.height)
    return redirect(f"/students/{quote(student.student_id)}", "photo")


@page(admin=True)
async def roster_import(request: Request, me: Principal) -> Response:
    """The CLI's importer on an uploaded file: every bad line listed, nothing written unless clean."""
    if request.method == "GET":
        return render(request, "import.html", {"errors": [], "problem": ""}, principal=me)
    upload = request.state.form.get("file")
    if getattr(upload, "filename", None) in (None, ""):
        return render(request, "import.html", {"errors": [], "problem": "Choose a CSV file."}, status=400,
                      principal=me)
    if (getattr(upload, "content_type", "") or "") not in C.CSV_TYPES or not str(upload.filename).lower().endswith(
            ".csv"):
        return render(request, "import.html", {"errors": [], "problem": "Only .csv files are accepted."},
                      status=400, principal=me)
    data = await read_upload(upload, C.CSV_MAX_BYTES)
    if data is None:
        return render(request, "import.html", {"errors": [], "problem": "The file is larger than "
                      f"{C.CSV_MAX_BYTES // (1024 * 1024)} MB."}, status=400, principal=me)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return render(request, "import.html", {"errors": [], "problem": "The file is not UTF-8 text."},
                      status=400, principal=me)
    try:
        result = await ctx_of(request).roster.import_roster_text(text)
    except CsvImportError as exc:
        return render(request, "import.html", {"errors": exc.errors, "problem": f"{len(exc.errors)} problem(s); "
                      "nothing was imported."}, status=400, principal=me)
    await ctx_of(request).audit.record("roster_import", actor=me.actor, subject=str(upload.filename)[:100],
                                       result=str(result))
    return render(request, "import.html", {"errors": [], "problem": "", "result": str(result)}, principal=me)


async def healthz(request: Request) -> Response:
    return Response(f"ok {utcnow():%H:%M:%S}\n", media_type="text/plain")


ROUTES = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/", dashboard, methods=["GET"]),
    Route("/teachers", teachers, methods=["GET"]),
    Route("/teachers/new", teacher_edit, methods=["GET", "POST"]),
    Route("/teachers/{teacher_id}/edit", teacher_edit, methods=["GET", "POST"]),
    Route("/teachers/{teacher_id}/{action}", teacher_action, methods=["POST"]),
    Route("/codes", codes, methods=["GET"]),
    Route("/codes/{kind}/{action}", code_action, methods=["POST"]),
    Route("/students", students, methods=["GET"]),
    Route("/students/new", student_new, methods=["GET", "POST"]),
    Route("/students/import", roster_import, methods=["GET", "POST"]),
    Route("/students/{student_id}", student_detail, methods=["GET"]),
    Route("/students/{student_id}/edit", student_edit, methods=["POST"]),
    Route("/students/{student_id}/delete", student_delete, methods=["POST"]),
    Route("/students/{student_id}/photo", student_photo, methods=["POST"]),
]

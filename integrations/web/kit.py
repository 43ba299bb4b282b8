"""What every page shares: the templates, the signed-in person, CSRF, forms, responses."""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Optional
from urllib.parse import quote
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from integrations.foundation.blocking import run_blocking
from integrations.foundation.timefmt import as_utc
from integrations.web import auth
from integrations.web import constants as C
from integrations.web.auth import Principal
from integrations.web.context import WebContext

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
Handler = Callable[[Request, Principal], Awaitable[Response]]

# Messages shown after a redirect, by key (the URL carries the key, never free text).
MESSAGES = {
    "saved": "Saved.", "created": "Created.", "deleted": "Removed.", "activated": "Activated.",
    "deactivated": "Deactivated.", "unbound": "The Telegram binding was reset; the next bot login binds again.",
    "photo": "Reference photo stored.", "extended": "Session extended.", "closed": "Session closed; the report "
    "follows after the usual buffer.", "marked": "Marked present by hand.", "already": "Already present.",
    "imported": "Roster imported.", "loggedout": "Signed out.",
}


def fmt_time(value: Any, zone: str, fmt: str = "%Y-%m-%d %H:%M") -> str:
    if value is None:
        return ""
    return as_utc(value).astimezone(_zone(zone)).strftime(fmt)


@functools.lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def make_templates() -> Environment:
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True, enable_async=False)
    env.filters["pct"] = lambda v: f"{v:.0f} %"
    env.filters["num"] = lambda v, d=1: "" if v is None else f"{float(v):.{d}f}"
    return env


def ctx_of(request: Request) -> WebContext:
    return request.app.state.ctx


def cookie_name(ctx: WebContext) -> str:
    return C.SECURE_SESSION_COOKIE if ctx.settings.web_secure_cookies else C.SESSION_COOKIE


def render(request: Request, template: str, data: Optional[Mapping[str, Any]] = None, *, status: int = 200,
           principal: Optional[Principal] = None, headers: Optional[Mapping[str, str]] = None) -> HTMLResponse:
    ctx = ctx_of(request)
    zone = ctx.settings.timezone
    values: dict[str, Any] = {
        "request": request, "me": principal, "csrf": principal.csrf if principal else "",
        "message": MESSAGES.get(request.query_params.get("msg", "")), "zone": zone,
        "t": lambda v, fmt="%Y-%m-%d %H:%M": fmt_time(v, zone, fmt),
        "threshold": ctx.settings.web_attendance_threshold,
    }
    values.update(data or {})
    html = request.app.state.templates.get_template(template).render(values)
    return HTMLResponse(html, status_code=status, headers=dict(headers or {}))


def redirect(url: str, msg: str = "") -> RedirectResponse:
    if msg:
        url += ("&" if "?" in url else "?") + f"msg={quote(msg)}"
    return RedirectResponse(url, status_code=303)


def not_found(request: Request, principal: Optional[Principal]) -> HTMLResponse:
    """The same answer for "does not exist" and "not yours", so ids cannot be probed."""
    return render(request, "error.html", {"title": "Not found", "text": "There is nothing here, or it is not yours."},
                  status=404, principal=principal)


async def read_form(request: Request) -> FormData:
    """The posted form, refusing bodies over the upload limit before reading them."""
    ctx = ctx_of(request)
    limit = ctx.settings.web_upload_max_bytes + C.FORM_OVERHEAD_BYTES
    length = request.headers.get("content-length")
    if length is None and request.headers.get("content-type", "").startswith("multipart/"):
        raise FormTooLarge("a length is required")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise FormTooLarge(f"over {limit} bytes")
    return await request.form(max_files=2, max_fields=50, max_part_size=256 * 1024)


class FormTooLarge(Exception):
    """A posted body larger than WEB_UPLOAD_MAX_BYTES (answered with 413)."""


async def read_upload(upload: Any, limit: int) -> Optional[bytes]:
    """The file's bytes, or None when there is no file or it is over ``limit``."""
    if not isinstance(upload, UploadFile):
        return None
    data = await upload.read(limit + 1)
    await upload.close()
    return None if len(data) > limit else data


async def current(request: Request) -> Optional[Principal]:
    token = request.cookies.get(cookie_name(ctx_of(request)))
    return await run_blocking(auth.principal_for, token) if token else None


def page(admin: bool = False) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Guard a handler: signed in (else to /login), admin-only pages, CSRF on every POST.

    A teacher asking for an admin page gets the same 404 as for an id that is not theirs.
    """

    def wrap(fn: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(fn)
        async def handler(request: Request) -> Response:
            principal = await current(request)
            if principal is None:
                if request.method == "GET" and "text/event-stream" not in request.headers.get("accept", ""):
                    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
                return Response("sign in first", status_code=401)
            if admin and not principal.is_admin:
                return not_found(request, principal)
            if request.method == "POST":
                try:
                    form = await read_form(request)
                except FormTooLarge:
                    return render(request, "error.html", {"title": "Too large", "text": "The upload is larger "
                                  f"than {ctx_of(request).settings.web_upload_max_bytes // (1024 * 1024)} MB."},
                                  status=413, principal=principal)
                if not auth.same(form.get(C.CSRF_FIELD) if isinstance(form.get(C.CSRF_FIELD), str) else None,
                                 principal.csrf):
                    return render(request, "error.html", {"title": "Form expired", "text": "The form was "
                                  "stale or not sent from this panel. Go back, reload and try again."},
                                  status=403, principal=principal)
                request.state.form = form
            return await fn(request, principal)

        return handler

    return wrap


def page_number(request: Request) -> int:
    raw = request.query_params.get("page", "1")
    return max(1, min(int(raw), 10_000)) if raw.isdigit() else 1

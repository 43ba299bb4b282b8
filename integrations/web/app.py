"""The panel as an ASGI app: routes, static files, security headers, error pages."""
from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from integrations.web import routes_history, routes_people, routes_sessions
from integrations.web.context import WebContext
from integrations.web.kit import HERE, make_templates, render

log = logging.getLogger(__name__)

# The panel loads nothing from elsewhere: its own CSS and script, inline SVG charts (whose <style>
# needs 'unsafe-inline' for styles only).
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
                               "script-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class SecurityHeaders:
    """Adds the headers above to every response (pure ASGI: streams are not buffered)."""

    def __init__(self, app: ASGIApp, secure: bool) -> None:
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
        if secure:
            self.headers.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                static = scope.get("path", "").startswith("/static/")
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in self.headers if k not in present and not (static and k == b"cache-control")]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    titles = {404: "Not found", 405: "Not allowed"}
    return render(request, "error.html", {"title": titles.get(status, "Error"),
                                          "text": "There is nothing here." if status == 404 else ""}, status=status)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("web request failed: %s %s (%s)", request.method, request.url.path, type(exc).__name__,
              exc_info=(type(exc), exc, exc.__traceback__))
    return render(request, "error.html", {"title": "Something went wrong",
                                          "text": "The error was logged; nothing was half-saved."}, status=500)


def create_app(ctx: WebContext) -> Starlette:
    routes = [*routes_people.ROUTES, *routes_sessions.ROUTES, *routes_history.ROUTES,
              Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static")]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders, secure=ctx.settings.web_secure_cookies)],
                    exception_handlers={HTTPException: _http_error, Exception: _server_error})
    app.state.ctx = ctx
    app.state.templates = make_templates()
    return app

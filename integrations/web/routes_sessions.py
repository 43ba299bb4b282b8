"""Sessions: the list, the live page (server-sent events), extend, close, manual marks, exports, audit."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from integrations.attendance import marks, session_control
from integrations.attendance.exports import report_xlsx
from integrations.attendance.reports import report_filename
from integrations.foundation import names
from integrations.foundation.blocking import run_blocking
from integrations.roster.records import report_csv
from integrations.storage.documents import Session
from integrations.web import constants as C
from integrations.web import exports, forms, queries
from integrations.web.auth import Principal
from integrations.web.kit import ctx_of, fmt_time, not_found, page, page_number, redirect, render

log = logging.getLogger(__name__)


async def _session(request: Request, me: Principal) -> Session | None:
    return await run_blocking(queries.session_for, me, request.path_params["session_id"])


@page()
async def sessions(request: Request, me: Principal) -> Response:
    number = page_number(request)
    rows, total = await run_blocking(queries.sessions_page, me, number)
    return render(request, "sessions.html", {"sessions": rows, "total": total, "page": number,
                                             "pages": -(-total // C.PAGE_SIZE)}, principal=me)


async def _live_page(request: Request, me: Principal, session: Session, mark_form: forms.Form | None = None,
                     extend_form: forms.Form | None = None, status: int = 200) -> Response:
    live = await run_blocking(queries.live, session.id)
    return render(request, "session.html", {
        "session": session, "live": live, "mark": mark_form or forms.Form(), "extend": extend_form or forms.Form(),
        "poll_ms": C.LIVE_POLL_MS, "extend_max": C.EXTEND_MAX_MIN, "reason_max": C.REASON_MAX_LEN,
    }, status=status, principal=me)


@page()
async def session_page(request: Request, me: Principal) -> Response:
    session = await _session(request, me)
    if session is None:
        return not_found(request, me)
    return await _live_page(request, me, session)


def _fragment(request: Request, live: queries.Live) -> dict[str, object]:
    html = request.app.state.templates.get_template("_live_rows.html").render(
        {"live": live, "t": lambda v, fmt="%H:%M:%S": "" if v is None else _clock(request, v, fmt)})
    return {"rows": html, "counts": live.counts, "status": live.status,
            "expires": _clock(request, live.expires_at, "%H:%M:%S") if live.expires_at else ""}


def _clock(request: Request, value: object, fmt: str) -> str:
    return fmt_time(value, ctx_of(request).settings.timezone, fmt)


@page()
async def session_live(request: Request, me: Principal) -> Response:
    """The live table as JSON (the page's polling fallback, and tests)."""
    session = await _session(request, me)
    if session is None:
        return not_found(request, me)
    live = await run_blocking(queries.live, session.id)
    return Response(json.dumps(_fragment(request, live)), media_type="application/json",
                    headers={"Cache-Control": "no-store"})


@page()
async def session_events(request: Request, me: Principal) -> Response:
    """Server-sent events: the table whenever it changes, for LIVE_STREAM_MAX_S (then the browser
    reconnects, and the login is checked again)."""
    session = await _session(request, me)
    if session is None:
        return not_found(request, me)
    ctx = ctx_of(request)

    async def stream() -> AsyncIterator[str]:
        last, beat = "", time.monotonic()
        ends = time.monotonic() + C.LIVE_STREAM_MAX_S
        yield f"retry: {C.LIVE_POLL_MS}\n\n"
        while time.monotonic() < ends and not ctx.stopping.is_set():
            live = await run_blocking(queries.live, session.id)
            payload = json.dumps(_fragment(request, live))
            if payload != last:
                last, beat = payload, time.monotonic()
                yield f"event: table\ndata: {payload}\n\n"
            elif time.monotonic() - beat > C.LIVE_HEARTBEAT_S:
                beat = time.monotonic()
                yield ": still here\n\n"
            if await request.is_disconnected():
                return
            try:
                await asyncio.wait_for(ctx.stopping.wait(), C.LIVE_INTERVAL_S)
            except asyncio.TimeoutError:
                pass

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@page()
async def session_extend(request: Request, me: Principal) -> Response:
    ctx = ctx_of(request)
    session = await _session(request, me)
    if session is None:
        return not_found(request, me)
    form = forms.extend_form(request.state.form)
    if not form.ok:
        return await _live_page(request, me, session, extend_form=form, status=400)
    new_expiry = await session_control.extend(ctx.roster, ctx.reports, ctx.audit, str(session.id),
                                              form.values["minutes"], actor=me.actor)
    if new_expiry is None:
        form.error("minutes", "The session is closed.")
        return await _live_page(request, me, session, extend_form=form, status=409)
    return redirect(f"/sessions/{session.id}", "extended")


@page()
async def session_close(request: Request, me: Principal) -> Response:
    ctx = ctx_of(request)
    session = await _session(request, me)
    if session is None:
        return not_found(request, me)
    # the report follows after the usual buffer, as after /close
    await session_control.close(ctx.roster, ctx.reports, ctx.audit, str(session.id),
                                ctx.settings.report_buffer_seconds, actor=me.actor)
    return redirect(f"/sessions/{session.id}", "closed")


@page()
async def session_mark(request: Request, me: Principal) -> Response:
    """The panel's /mark: the same rules, record and note as the bot's command."""
    ctx = ctx_of(request)
    session = await _session(request, me)
    if session is None:
        return not_found(request, me)
    form = forms.mark_form(request.state.form, {s.student_id for s in session.students})
    if form.ok:
        if not session.is_open():
            form.error("reason", "The session is closed; manual marks are for open sessions.")
        else:
            result = await marks.mark_by_hand(ctx.roster, ctx.audit, str(session.id), form.values["student_id"],
                                              names.PRESENT, by=me.actor, reason=form.values["reason"],
                                              subject=session.subject)
            if result.outcome in (marks.MARKED, marks.QUEUED, marks.UNCHANGED):
                return redirect(f"/sessions/{session.id}",
                                "already" if result.outcome == marks.UNCHANGED else "marked")
            form.error("student_id", "Not a student of this session.")
    return await _live_page(request, me, session, mark_form=form, status=400)


@page()
async def session_report(request: Request, me: Principal) -> Response:
    session = await _session(request, me)
    if session is None or request.path_params["fmt"] not in ("csv", "xlsx"):
        return not_found(request, me)
    ctx = ctx_of(request)
    report = await ctx.roster.report(str(session.id))
    fmt = request.path_params["fmt"]
    name = report_filename(report, session, fmt)
    if fmt == "xlsx":
        data, media = await run_blocking(report_xlsx, report, ctx.settings.timezone), exports.XLSX_TYPE
    else:
        data, media = report_csv(report), exports.CSV_TYPE
    return Response(data, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="{name}"'})


@page()
async def session_audit(request: Request, me: Principal) -> Response:
    session = await _session(request, me)
    if session is None:
        return not_found(request, me)
    live = await run_blocking(queries.live, session.id)
    events = await run_blocking(queries.audit_events, str(session.id))
    touched = sorted((r for r in live.rows if r.time is not None), key=lambda r: r.time)
    return render(request, "audit.html", {"session": session, "records": touched, "events": events}, principal=me)


ROUTES = [
    Route("/sessions", sessions, methods=["GET"]),
    Route("/sessions/{session_id}", session_page, methods=["GET"]),
    Route("/sessions/{session_id}/live", session_live, methods=["GET"]),
    Route("/sessions/{session_id}/events", session_events, methods=["GET"]),
    Route("/sessions/{session_id}/extend", session_extend, methods=["POST"]),
    Route("/sessions/{session_id}/close", session_close, methods=["POST"]),
    Route("/sessions/{session_id}/mark", session_mark, methods=["POST"]),
    Route("/sessions/{session_id}/audit", session_audit, methods=["GET"]),
    Route("/sessions/{session_id}/report.{fmt:str}", session_report, methods=["GET"]),
]

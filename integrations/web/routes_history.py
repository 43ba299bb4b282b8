"""History (per batch and per student, with charts and exports) and the flows, read-only."""
from __future__ import annotations

import datetime as dt
import logging
import shutil
from dataclasses import dataclass
from typing import Optional
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import pydot
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.diagram import draw
from engine.loader import check_paths, flow_files, load_flow
from integrations.foundation.blocking import run_blocking
from integrations.web import charts, exports, forms, queries
from integrations.web.auth import Principal
from integrations.web.context import WebContext
from integrations.web.kit import ctx_of, not_found, page, render

log = logging.getLogger(__name__)


def _range(request: Request) -> tuple[forms.Form, dt.datetime, dt.datetime, float]:
    """The page's date range (inclusive days in TIMEZONE, as UTC bounds) and threshold."""
    ctx = ctx_of(request)
    zone = ctx.settings.timezone
    form = forms.date_range(request.query_params, dt.datetime.now(ZoneInfo(zone)).date())
    start = queries.start_of_day(zone, form.values["from"])
    end = queries.start_of_day(zone, form.values["to"] + dt.timedelta(days=1))
    threshold = form.values["threshold"]
    return form, start, end, ctx.settings.web_attendance_threshold if threshold is None else threshold


def _query(form: forms.Form, threshold: float) -> str:
    return urlencode({"from": form.values["from"].isoformat(), "to": form.values["to"].isoformat(),
                      "threshold": f"{threshold:g}"})


@page()
async def history(request: Request, me: Principal) -> Response:
    batches = await run_blocking(queries.batch_codes, me)
    form, _, _, threshold = _range(request)
    return render(request, "history.html", {"batches": batches, "form": form, "limit": threshold,
                                            "query": _query(form, threshold)}, principal=me)


@page()
async def batch_history(request: Request, me: Principal) -> Response:
    batch = request.path_params["batch"]
    form, start, end, threshold = _range(request)
    result = await run_blocking(queries.batch_history, me, batch, start, end)
    if result is None:
        return not_found(request, me)
    fmt = request.path_params.get("fmt")
    if fmt == "csv":
        return Response(exports.history_csv(result, threshold), media_type=exports.CSV_TYPE, headers={
            "Content-Disposition": f'attachment; filename="history_{quote(batch)}.csv"'})
    if fmt == "xlsx":
        data = await run_blocking(exports.history_xlsx, result, threshold)
        return Response(data, media_type=exports.XLSX_TYPE, headers={
            "Content-Disposition": f'attachment; filename="history_{quote(batch)}.xlsx"'})
    if fmt is not None:
        return not_found(request, me)
    chart = await run_blocking(charts.batch_chart, result, threshold, f"{batch}: attendance per session") \
        if result.points else ""
    return render(request, "history_batch.html", {"batch": batch, "history": result, "chart": chart, "form": form,
                                                  "limit": threshold, "query": _query(form, threshold)},
                  status=200 if form.ok else 400, principal=me)


@page()
async def student_history(request: Request, me: Principal) -> Response:
    form, start, end, threshold = _range(request)
    found = await run_blocking(queries.student_history, me, request.path_params["student_id"], start, end)
    if found is None:
        return not_found(request, me)
    student, visits = found
    present = sum(v.status == "present" for v in visits)
    percent = 100.0 * present / len(visits) if visits else 0.0
    chart = await run_blocking(charts.student_chart, visits, threshold, f"{student.student_id}: attendance so far") \
        if visits else ""
    return render(request, "history_student.html", {"student": student, "visits": visits, "chart": chart,
                                                    "present": present, "percent": percent, "form": form,
                                                    "limit": threshold, "query": _query(form, threshold)},
                  status=200 if form.ok else 400, principal=me)


# ------------------------------------------------------------------------------ flows
@dataclass(frozen=True)
class FlowView:
    file: str
    name: str
    bot: str
    description: str
    mermaid: str
    svg: str  # Graphviz SVG when `dot` is installed, else ""
    problems: list[str]


def flow_views(ctx: WebContext) -> list[FlowView]:
    """Each flow's diagram and its `check` result (blocking; computed once per process)."""
    if ctx.registry is None:
        return []
    views = []
    problems = check_paths([ctx.flows_path], ctx.registry)
    has_dot = shutil.which("dot") is not None
    for path in flow_files(ctx.flows_path):
        mine = [str(p) for p in problems if str(getattr(p, "path", "")) == str(path) or str(p).startswith(str(path))]
        try:
            spec = load_flow(path, ctx.registry).spec
        except Exception as exc:  # a flow that does not load: show the problems only
            views.append(FlowView(path.name, path.stem, "", "", "", "", mine or [f"{type(exc).__name__}: {exc}"]))
            continue
        svg = ""
        if has_dot:
            try:
                graphs = pydot.graph_from_dot_data(draw(spec, "dot"))
                svg = graphs[0].create_svg().decode("utf-8") if graphs else ""
                svg = svg[svg.find("<svg"):] if "<svg" in svg else ""
            except Exception:  # graphviz failing is not worth a broken page: the Mermaid text stays
                log.warning("graphviz could not draw %s", path.name)
        views.append(FlowView(path.name, spec.name, spec.bot, spec.description or "", draw(spec, "mermaid"),
                              svg, mine))
    return views


@page()
async def flows_page(request: Request, me: Principal) -> Response:
    ctx = ctx_of(request)
    views: Optional[list[FlowView]] = getattr(request.app.state, "flow_views", None)
    if views is None:
        views = await run_blocking(flow_views, ctx)
        request.app.state.flow_views = views
    return render(request, "flows.html", {"flows": views}, principal=me)


ROUTES = [
    Route("/history", history, methods=["GET"]),
    Route("/history/batch/{batch}", batch_history, methods=["GET"]),
    Route("/history/batch/{batch}/export.{fmt}", batch_history, methods=["GET"]),
    Route("/history/student/{student_id}", student_history, methods=["GET"]),
    Route("/flows", flows_page, methods=["GET"]),
]

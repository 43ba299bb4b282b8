"""Charts drawn on the server as SVG (pygal): no script, no third-party JavaScript in the page."""
from __future__ import annotations

import re

import pygal
from pygal.style import Style

from integrations.foundation.timefmt import as_utc
from integrations.web.queries import History, StudentVisit

_STYLE = Style(background="transparent", plot_background="transparent", foreground="#222",
               foreground_strong="#111", foreground_subtle="#888", colors=("#2f6fb3", "#c0392b", "#27ae60"),
               font_family="system-ui, sans-serif")
_OPTIONS = dict(style=_STYLE, js=[], disable_xml_declaration=True, width=900, height=320, show_legend=True,
                legend_at_bottom=True, x_label_rotation=30, truncate_label=-1, range=(0, 100),
                show_minor_x_labels=False, explicit_size=False)


_SCRIPT = re.compile(r"<script\b.*?</script>", re.S | re.I)


def _svg(chart: pygal.Graph) -> str:
    """The chart's SVG without pygal's config script (the page runs no inline script; CSP forbids it)."""
    return _SCRIPT.sub("", chart.render(is_unicode=True))


def _labels(count: int) -> int:
    return max(1, count // 12)


def batch_chart(history: History, threshold: float, title: str) -> str:
    """Attendance per session over time, with the threshold as a second line."""
    chart = pygal.Line(title=title, **_OPTIONS)
    labels = [f"{as_utc(p.opened_at):%m-%d %H:%M} {p.subject}" for p in history.points]
    chart.x_labels = labels
    chart.x_labels_major = labels[::_labels(len(labels))]
    chart.add("attendance %", [round(p.percent, 1) for p in history.points])
    chart.add(f"threshold {threshold:.0f} %", [threshold] * len(labels), show_dots=False, stroke_style={"dasharray": "6,4"})
    return _svg(chart)


def student_chart(visits: list[StudentVisit], threshold: float, title: str) -> str:
    """The student's running attendance percentage, session by session."""
    chart = pygal.Line(title=title, **_OPTIONS)
    present = 0
    running = []
    for i, visit in enumerate(visits, 1):
        present += visit.status == "present"
        running.append(round(100.0 * present / i, 1))
    labels = [f"{as_utc(v.opened_at):%m-%d %H:%M} {v.subject}" for v in visits]
    chart.x_labels = labels
    chart.x_labels_major = labels[::_labels(len(labels))]
    chart.add("attendance % so far", running)
    chart.add(f"threshold {threshold:.0f} %", [threshold] * len(labels), show_dots=False, stroke_style={"dasharray": "6,4"})
    return _svg(chart)

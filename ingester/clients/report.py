"""`pgcti report`: one self-contained HTML page of charts from the analytics views.

The figures come from the database (db/logic/85_analytics.sql); this module only asks
for them and draws them. Plotly's JavaScript travels inside the page, gzipped, so the file
opens anywhere, offline, with nothing else beside it.
"""

from __future__ import annotations

import base64
import csv
import gzip
import html
import math
import statistics
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from pathlib import Path

import plotly.graph_objects as go
import psycopg
from plotly.offline import get_plotlyjs

from ingester.queries import query

OUTCOME_COLOURS = {
    "answered": "#2e7d32",
    "missed": "#c62828",
    "abandoned": "#ef6c00",
    "busy": "#6a1b9a",
    "rejected": "#4e342e",
}


@dataclass(frozen=True)
class Period:
    first: date
    last: date
    time_zone: str

    @classmethod
    def default(cls, today: date, time_zone: str) -> Period:
        return cls(today - timedelta(days=29), today, time_zone)  # the last 30 days


def write(
    dsn: str, period: Period, out: Path, missed_csv: Path | None = None
) -> tuple[dict[str, int], int]:
    """Draw the report into `out`; returns the period's totals it shows (the CLI prints
    them) and how many missed calls wait to be called back now."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(query("report_time_zone"), {"time_zone": period.time_zone})
        args = {"first": period.first, "last": period.last}
        daily = conn.execute(query("report_daily"), args).fetchall()
        hourly = conn.execute(query("report_hourly"), args).fetchall()
        response = [s for (s,) in conn.execute(query("report_response_seconds"), args)]
        funnel = conn.execute(query("report_funnel"), args).fetchone()
        summary = conn.execute(query("report_summary"), args).fetchone()
        managers = conn.execute(query("report_manager_share"), args).fetchall()
        queues = conn.execute(query("report_queues"), args).fetchall()
        waiting = conn.execute(query("report_not_called_back")).fetchall()
        per_manager = conn.execute(query("report_managers"), args).fetchall()
        funnel_months = conn.execute(query("report_funnel_months"), args).fetchall()
    # Every headline figure covers exactly the period (cti.period_summary_v1 says how).
    inbound, answered, unanswered, _rate, never_called_back, first_time, won = summary
    totals = {
        "inbound_calls": int(inbound),
        "answered": int(answered),
        "ended_unanswered": int(unanswered),
        "missed_never_called_back": int(never_called_back),
        "first_time_callers": int(first_time),
        "deals_won": int(won),
    }
    figures = [
        _calls_per_day(daily),
        _answer_rate(daily, period),
        _calls_per_hour(hourly),
        _response_times(response),
        _not_called_back(daily),
        _funnel(funnel),
        _own_manager(managers),
        _queues(queues),
    ]
    tables = [
        _manager_table(per_manager),
        _funnel_table(funnel_months),
        _missed_table(waiting),
    ]
    out.write_text(_page(period, totals, figures, tables), encoding="utf-8")
    if missed_csv is not None:
        write_missed_csv(waiting, missed_csv)
    return totals, len(waiting)


MISSED_COLUMNS = (
    "task",
    "missed at (UTC)",
    "number",
    "client",
    "owner",
    "missed calls",
    "due (UTC)",
    "hours waiting",
)


def write_missed_csv(waiting, path: Path) -> None:
    """The missed calls not called back yet, as a spreadsheet opens them."""
    with path.open("w", newline="", encoding="utf-8") as out:
        sheet = csv.writer(out)
        sheet.writerow(MISSED_COLUMNS)
        for task, missed_at, number, client, owner, calls, due, hours in waiting:
            sheet.writerow(
                [
                    task,
                    f"{missed_at.astimezone(UTC):%Y-%m-%d %H:%M}",
                    number,
                    client,
                    owner,
                    calls,
                    f"{due.astimezone(UTC):%Y-%m-%d %H:%M}",
                    hours,
                ]
            )


def _table(head: tuple[str, ...], rows) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{cells}</tr>{body}</table>"


def duration_text(seconds: float | None) -> str:
    """Minutes up to an hour and a half, hours beyond (a callback the next day reads as such)."""
    if seconds is None:
        return ""
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


MANAGER_COLUMNS = (
    "manager",
    "calls taken",
    "their calls",
    "answered",
    "answer rate",
    "missed",
    "called back",
    "time to call back p50",
    "time to call back p90",
    "never called back",
)


def _manager_table(per_manager) -> str:
    """Per manager: a call is theirs when they own its callback (the client's manager,
    else the line's owner); calls taken are those answered at their extension."""
    rows = [
        (
            name,
            taken,
            theirs,
            answered,
            "" if rate is None else f"{float(rate):.0%}",
            missed,
            made,
            duration_text(p50),
            duration_text(p90),
            never,
        )
        for name, taken, theirs, answered, rate, missed, made, p50, p90, never in per_manager
    ]
    return (
        "<h2>Per manager</h2><p>Their calls: their clients' calls, and calls on the lines "
        "they own, as callback tasks are assigned. Calls taken: answered at their extension, "
        "whoever's.</p>" + _table(MANAGER_COLUMNS, rows)
    )


def _funnel_table(months) -> str:
    """The funnel per month of the first call: the team's row, then one per deal manager."""
    rows = [
        (
            f"{month:%Y-%m}",
            "everyone" if by == "all" else manager or "no manager (no deal, or none on it)",
            callers,
            leads,
            with_deal,
            won,
        )
        for month, by, manager, callers, leads, with_deal, won in months
    ]
    head = ("month of first call", "deal's manager", "callers", "leads", "with a deal", "won")
    return "<h2>Sales funnel by month and manager</h2>" + _table(head, rows)


def _missed_table(waiting) -> str:
    rows = [
        (f"{r[1].astimezone(UTC):%Y-%m-%d %H:%M}", r[2], r[3], r[4], r[5], f"{r[7]} h")
        for r in waiting[:50]
    ]
    more = (
        f"<p>and {len(waiting) - 50} more (the CSV export has them all)</p>"
        if len(waiting) > 50
        else ""
    )
    head = ("missed at (UTC)", "number", "client", "owner", "missed calls", "waiting")
    return (
        f"<h2>Missed calls not called back yet ({len(waiting)}), oldest first</h2>"
        + _table(head, rows)
        + more
    )


def _calls_per_day(daily) -> go.Figure:
    days = [r[0] for r in daily]
    fig = go.Figure(
        [
            go.Bar(name=name, x=days, y=[r[i] for r in daily], marker_color=OUTCOME_COLOURS[name])
            for i, name in (
                (2, "answered"),
                (3, "missed"),
                (4, "abandoned"),
                (5, "busy"),
                (9, "rejected"),
            )
        ]
    )
    return _titled(fig.update_layout(barmode="stack"), "Inbound calls per day, by outcome")


def _answer_rate(daily, period: Period) -> go.Figure:
    points = [(r[0], float(r[6])) for r in daily if r[6] is not None]
    fig = go.Figure(
        go.Scatter(x=[d for d, _ in points], y=[v for _, v in points], mode="lines+markers")
    )
    fig.update_xaxes(range=[period.first - timedelta(days=1), period.last + timedelta(days=1)])
    return _titled(fig.update_yaxes(range=[0, 1], tickformat=".0%"), "Answer rate per day")


def _calls_per_hour(hourly) -> go.Figure:
    fig = go.Figure(go.Bar(x=[f"{h:02d}:00" for h, _ in hourly], y=[n for _, n in hourly]))
    return _titled(fig, "Inbound calls per hour of the day")


def response_bins(seconds: list[float]) -> tuple[float, float]:
    """Bin width and axis end for the answer times: whole seconds up to a minute, wider
    beyond, and the axis to the slowest answer (nothing clipped), starting at 0."""
    slowest = max(seconds, default=0.0)
    width = 1.0 if slowest <= 60 else 5.0 if slowest <= 300 else 30.0
    return width, (math.floor(slowest / width) + 1) * width


def _response_times(seconds: list[float]) -> go.Figure:
    width, end = response_bins(seconds)
    ordered = sorted(seconds)
    title = "Response time (answered inbound calls)"
    if ordered:
        median = statistics.median(ordered)
        p90 = ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]
        title += f": median {median:.0f} s, 90% within {p90:.0f} s"
    fig = go.Figure(go.Histogram(x=seconds, xbins={"start": 0, "end": end, "size": width}))
    fig.update_xaxes(title="seconds to answer", range=[0, end])
    return _titled(fig.update_yaxes(title="calls"), title)


def _not_called_back(daily) -> go.Figure:
    days = [r[0] for r in daily]
    fig = go.Figure(
        [
            go.Bar(name="called back", x=days, y=[r[8] for r in daily], marker_color="#2e7d32"),
            go.Bar(
                name="never called back", x=days, y=[r[7] for r in daily], marker_color="#c62828"
            ),
        ]
    )
    return _titled(
        fig.update_layout(barmode="group"), "Missed calls: called back or not (by day of the miss)"
    )


def _funnel(funnel) -> go.Figure:
    fig = go.Figure(
        go.Funnel(
            y=["called", "lead registered", "deal opened", "deal won"],
            x=[int(v) for v in funnel],
            textinfo="value+percent initial",
        )
    )
    return _titled(fig, "Sales funnel: parties whose first call fell in the period's months")


def _own_manager(managers) -> go.Figure:
    """Who answered known clients' calls: their own manager, another, nobody."""
    names = [r[0] for r in managers]
    fig = go.Figure(
        [
            go.Bar(
                name="their own manager",
                x=names,
                y=[r[1] for r in managers],
                marker_color="#2e7d32",
            ),
            go.Bar(name="another", x=names, y=[r[2] for r in managers], marker_color="#f9a825"),
            go.Bar(name="nobody", x=names, y=[r[3] for r in managers], marker_color="#c62828"),
        ]
    )
    return _titled(
        fig.update_layout(barmode="stack"),
        "Known clients' calls, by their manager: answered by that manager, by another, or not",
    )


def _queues(queues) -> go.Figure:
    """Each queue's calls by how they ended, its service level and longest wait in the name."""
    names = [
        f"{q[0]} (service level {float(q[4]):.0%}, longest wait {float(q[5] or 0):.0f} s)"
        if q[4] is not None
        else q[0]
        for q in queues
    ]
    fig = go.Figure(
        [
            go.Bar(name="answered", x=names, y=[q[1] for q in queues], marker_color="#2e7d32"),
            go.Bar(name="abandoned", x=names, y=[q[2] for q in queues], marker_color="#c62828"),
            go.Bar(
                name="timed out or left", x=names, y=[q[3] for q in queues], marker_color="#f9a825"
            ),
        ]
    )
    return _titled(fig.update_layout(barmode="stack"), "Queues: how callers' waits ended")


def _titled(fig: go.Figure, title: str) -> go.Figure:
    return fig.update_layout(title=title, height=380, margin={"t": 60, "b": 40, "l": 50, "r": 20})


def _script_safe(text: str) -> str:
    """JSON inside a <script> element: nothing in it may close the element."""
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


def _chart_loader() -> str:
    """Plotly's own bundle (the one the installed plotly package ships, so the figures and
    the library always match), gzipped into the page: 4.8 MB of JavaScript travel as about
    2 MB and the browser unpacks them (DecompressionStream: Chrome 80, Firefox 113, Safari
    16.4). Plotly publishes smaller partial bundles on npm only, not with the Python package."""
    packed = base64.b64encode(gzip.compress(get_plotlyjs().encode(), 9, mtime=0)).decode()
    return f"""<p id="charts-failed" hidden>The charts need a browser from 2023 or later
(Chrome 80, Firefox 113, Safari 16.4): this one could not unpack them.</p>
<script>
(async () => {{
  try {{
    const packed = Uint8Array.from(atob("{packed}"), c => c.charCodeAt(0));
    const stream = new Blob([packed]).stream().pipeThrough(new DecompressionStream("gzip"));
    const library = document.createElement("script");
    library.textContent = await new Response(stream).text();
    document.head.appendChild(library);
    document.querySelectorAll("section.chart").forEach((section, n) => {{
      const figure = JSON.parse(document.getElementById("figure-" + n).textContent);
      Plotly.newPlot(section, figure.data, figure.layout, {{responsive: true}});
    }});
  }} catch (error) {{
    document.getElementById("charts-failed").hidden = false;
    throw error;
  }}
}})();
</script>"""


def _page(
    period: Period, totals: dict[str, int], figures: list[go.Figure], tables: list[str]
) -> str:
    charts = "\n".join(
        f'<section class="chart" id="chart-{n}"></section>'
        f'<script type="application/json" id="figure-{n}">{_script_safe(fig.to_json())}</script>'
        for n, fig in enumerate(figures)
    )
    finished = totals["answered"] + totals["ended_unanswered"]
    rate = totals["answered"] / finished if finished else 0
    summary = (
        f"{totals['inbound_calls']} inbound calls, {rate:.0%} answered (of those answered "
        f"or ended unanswered); {totals['missed_never_called_back']} callback tasks past due, "
        f"never called back; {totals['first_time_callers']} first-time callers the CRM did "
        f"not know; {totals['deals_won']} deals won in the period"
    )
    title = f"pgcti report {period.first} to {period.last}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} .chart{{margin-bottom:1em}}
td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:left}} table{{border-collapse:collapse}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p>Days in the time zone {html.escape(period.time_zone)}. {html.escape(summary)}.</p>
{charts}
{"".join(tables)}
{_chart_loader()}
</body></html>
"""

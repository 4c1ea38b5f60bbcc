"""`pgcti report` as a user runs it, on the hand-computed history of the analytics tests,
then the page rendered in a real headless Chromium."""

from __future__ import annotations

import collections
import html
import math
import re
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta

import pytest

from tests.conftest import run_cli
from tests.rules.test_analytics_views import history  # noqa: F401  (the fixture)

PERIOD = ["--from", "2026-01-01", "--to", "2026-01-31", "--time-zone", "UTC"]


@pytest.fixture
def report(dsn, history, tmp_path):  # noqa: F811
    out = tmp_path / "report.html"
    done = run_cli("report", "--dsn", dsn, *PERIOD, "--out", str(out))
    return out, done.stdout


def test_the_report_shows_the_periods_figures_in_one_self_contained_file(report):
    out, printed = report
    assert (
        "inbound_calls 6, answered 3, ended_unanswered 3, missed_never_called_back 1, "
        "first_time_callers 2, deals_won 1" in printed
    )
    page = out.read_text()
    assert "6 inbound calls, 50% answered (of those answered or ended unanswered)" in page
    assert "2 first-time callers the CRM did not know; 1 deals won in the period" in page
    assert not re.search(r"<script[^>]+src=", page), "no script fetched from elsewhere"
    assert "Plotly.newPlot" in page and page.count('class="chart"') == 8
    # Plotly travels gzipped (issue 35, part 5: the page was 4.9 MB with it as plain text).
    assert len(page.encode()) < 2_500_000 and "Plotly.register" not in page
    assert "answered by that manager, by another, or not" in page
    # The funnel's stages, as drawn: called 5, lead 1, of those with a deal 1, won 1.
    assert re.search(r'"x":\[5,1,1,1\]', page.replace(" ", ""))


def test_bad_dates_are_a_clear_error(dsn, tmp_path):
    done = run_cli("report", "--dsn", dsn, "--from", "2026-02-30", check=False)
    assert done.returncode == 2 and "dates are YYYY-MM-DD" in done.stderr


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no Chromium here (make test installs Debian's chromium when it runs as root)")


def test_the_report_renders_its_charts_with_data_in_a_real_browser(report, tmp_path):
    out, _ = report
    browser = _browser()
    common = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=15000",
    ]
    shot = tmp_path / "report.png"  # kept in pytest's tmp dir for a look
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1200,3600", out.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert shot.stat().st_size > 30_000, "a screenshot of eight charts, not a blank page"
    dom = subprocess.run(
        [*common, "--dump-dom", out.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert dom.count('class="main-svg"') >= 16, "each of the eight charts drew its SVG layers"
    # Bars, funnel stages and histogram bins are drawn as points with a path each.
    drawn = re.findall(r'<g class="point"><path d="M[^"]+"', dom)
    assert len(drawn) >= 10, f"only {len(drawn)} data marks were drawn"


def _headline_by_hand(conn, first: date, last: date) -> dict[str, int]:
    """The headline worked out in Python from the base rows, by the definitions of
    docs/sql-analytics.md (cti.period_summary_v1), not by the view's SQL."""
    calls = conn.execute(
        "SELECT direction, client_id, client_match, external_number, started_at, answered_at,"
        " outcome FROM cti.call"
    ).fetchall()
    inbound = [c for c in calls if c[0] == "inbound" and first <= c[4].date() <= last]
    parties: dict[str, tuple] = {}
    for c in sorted((c for c in calls if c[0] == "inbound"), key=lambda c: c[4]):
        parties.setdefault(f"client:{c[1]}" if c[1] is not None else f"number:{c[3]}", c)
    starts = {i: s for i, s in conn.execute("SELECT id, started_at FROM cti.call")}
    tasks = conn.execute(
        "SELECT first_call_id, closed_at, due_at FROM cti.callback_task"
    ).fetchall()
    won = conn.execute("SELECT closed_at FROM pgcti_refcrm.deal WHERE stage = 'won'").fetchall()
    now = datetime.now(UTC)
    return {
        "inbound_calls": len(inbound),
        "answered": sum(1 for c in inbound if c[5] is not None),
        "ended_unanswered": sum(
            1 for c in inbound if c[5] is None and c[6] in ("missed", "abandoned", "busy")
        ),
        "missed_never_called_back": sum(
            1
            for f, closed, due in tasks
            if closed is None and due < now and first <= starts[f].date() <= last
        ),
        "first_time_callers": sum(
            1 for c in parties.values() if first <= c[4].date() <= last and c[2] in ("new", "none")
        ),
        "deals_won": sum(1 for (w,) in won if first <= w.date() <= last),
    }


@pytest.mark.parametrize("span", [("2026-01-01", "2026-01-31"), ("2026-01-11", "2026-01-20")])
def test_every_headline_figure_covers_exactly_the_period(dsn, history, tmp_path, conn, span):  # noqa: F811
    """A period inside a month counts its own days only: before, "new callers" and "deals
    won" came from the funnel of every month the period touched (issue 37, part 5)."""
    conn.execute("SET TIME ZONE 'UTC'")
    out = tmp_path / "report.html"
    printed = run_cli(
        "report",
        "--dsn",
        dsn,
        "--from",
        span[0],
        "--to",
        span[1],
        "--time-zone",
        "UTC",
        "--out",
        str(out),
    ).stdout
    shown = dict(re.findall(r"(\w+) (\d+)", printed.split(": ", 1)[1]))
    expected = _headline_by_hand(conn, date.fromisoformat(span[0]), date.fromisoformat(span[1]))
    assert {k: int(v) for k, v in shown.items()} == expected


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago"])
def test_the_default_period_ends_today_in_the_reports_time_zone(dsn, tmp_path, zone):
    """UTC+14 and UTC-11: at most times of a day these are two different dates, and the
    host's own date is one of them or neither (issue 37, part 6)."""
    from zoneinfo import ZoneInfo

    out = tmp_path / "report.html"
    printed = run_cli("report", "--dsn", dsn, "--time-zone", zone, "--out", str(out)).stdout
    today = datetime.now(ZoneInfo(zone)).date()
    assert f"report for {today - timedelta(days=29)} to {today} written" in printed
    wrong = run_cli("report", "--dsn", dsn, "--time-zone", "Mars/Olympus", check=False)
    assert wrong.returncode == 2 and "unknown time zone 'Mars/Olympus'" in wrong.stderr


def test_the_response_time_chart_shows_the_real_distribution():
    """Answer times as the demo's traffic draws them (issue 35: the chart showed whole
    seconds 0-4 with its tallest bar at the edge): the bins start at 0, the axis reaches
    the slowest answer, and the title's median and 90th percentile are the data's."""
    import statistics

    from ingester.clients import report
    from ingester.simulator.traffic import ring_seconds

    seconds = [1 + ring_seconds(1_700_000_000 + i * 37.5) for i in range(2000)]
    assert len({round(s) for s in seconds}) > 20, "a spread of answer times, not one bar"
    fig = report._response_times(seconds)
    bins = fig.data[0].xbins
    assert (bins.start, bins.size) == (0, 1) and bins.end > max(seconds)
    assert fig.layout.xaxis.range[0] == 0 and fig.layout.xaxis.range[1] > max(seconds)
    ordered = sorted(seconds)
    assert f"median {statistics.median(ordered):.0f} s" in fig.layout.title.text
    assert f"90% within {ordered[1799]:.0f} s" in fig.layout.title.text
    assert 5 <= statistics.median(ordered) <= 11
    # Slow answers widen the bins rather than leave the chart.
    assert report.response_bins([3.0, 250.0]) == (5.0, 255.0)
    assert report.response_bins([]) == (1.0, 1.0)


def test_missed_calls_not_called_back_yet_are_listed_and_exported(dsn, history, tmp_path, conn):  # noqa: F811
    import csv

    out, table = tmp_path / "report.html", tmp_path / "missed.csv"
    done = run_cli("report", "--dsn", dsn, *PERIOD, "--out", str(out), "--missed-csv", str(table))
    # By hand: the open tasks, oldest first, from the base rows.
    open_tasks = conn.execute(
        "SELECT t.e164, t.missed_calls FROM cti.callback_task t WHERE t.closed_at IS NULL"
        " ORDER BY t.created_at, t.id"
    ).fetchall()
    with table.open() as sheet:
        rows = list(csv.DictReader(sheet))
    assert [(r["number"], int(r["missed calls"])) for r in rows] == open_tasks
    assert rows[0]["owner"] == "nobody" and float(rows[0]["hours waiting"]) > 0
    assert f"{len(open_tasks)} missed call(s) not called back yet, listed in" in done.stdout
    page = out.read_text()
    assert f"Missed calls not called back yet ({len(open_tasks)}), oldest first" in page
    assert open_tasks[0][0] in page


def _percentile_cont(values: list[float], p: float) -> float | None:
    """PostgreSQL's percentile_cont: linear between the two nearest ranks."""
    if not values:
        return None
    ordered, rank = sorted(values), p * (len(values) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _managers_by_hand(conn, first: date, last: date) -> dict[str, tuple]:
    """Per manager, from the base rows and the reference CRM, by the rules of
    docs/sql-analytics.md (cti.manager_summary_v1): a call is its callback owner's (client's
    manager, else the line's owner, else the default owner), calls taken are those answered
    at the employee's extension."""
    from ingester.clients.report import duration_text

    policy, default = conn.execute(
        "SELECT callback_owner_policy, callback_default_owner FROM cti.config"
    ).fetchone()
    line_owner = dict(conn.execute("SELECT dialled, owner_id FROM pgcti_refcrm.line"))
    extension = dict(conn.execute("SELECT id, extension FROM pgcti_refcrm.employee"))
    surnames = dict(conn.execute("SELECT id, surname FROM pgcti_refcrm.employee"))
    calls = conn.execute(
        "SELECT id, direction, started_at, answered_at, answered_by, outcome, dialled,"
        " (client_card ->> 'manager_id')::bigint FROM cti.call"
    ).fetchall()
    started = {c[0]: c[2] for c in calls}
    answered_at = {c[0]: c[3] for c in calls}
    inbound = [c for c in calls if c[1] == "inbound" and first <= c[2].date() <= last]
    figures: dict[int, dict] = collections.defaultdict(
        lambda: {"answered": 0, "missed": 0, "callbacks": [], "never": 0}
    )
    for c in inbound:
        rules = {"manager": c[7], "line": line_owner.get(c[6]), "default": default}
        owner = next((rules[r] for r in policy if rules[r] is not None), None)
        if owner is None:
            continue
        if c[3] is not None:
            figures[owner]["answered"] += 1
        elif c[5] in ("missed", "abandoned", "busy", "rejected"):
            figures[owner]["missed"] += 1
    now = datetime.now(UTC)
    for owner, first_call, created, closed_by, how, due in conn.execute(
        "SELECT owner_id, first_call_id, created_at, closed_by_call_id, closed_how, due_at"
        " FROM cti.callback_task WHERE owner_id IS NOT NULL"
    ):
        if not first <= started[first_call].date() <= last:
            continue
        if how == "outbound_answered":
            figures[owner]["callbacks"].append((answered_at[closed_by] - created).total_seconds())
        figures[owner]["never"] += how is None and due < now
    expected = {}
    for employee, f in figures.items():
        ext = extension.get(employee)
        name = surnames[employee]  # the reference CRM's crm_employee_name
        taken = sum(1 for c in inbound if c[4] is not None and c[4] == ext)
        theirs = f["answered"] + f["missed"]
        p50, p90 = (_percentile_cont(f["callbacks"], p) for p in (0.5, 0.9))
        expected[f"{name} ({ext})" if ext else name] = (
            str(taken),
            str(theirs),
            str(f["answered"]),
            f"{f['answered'] / theirs:.0%}" if theirs else "",
            str(f["missed"]),
            str(len(f["callbacks"])),
            duration_text(p50),
            duration_text(p90),
            str(f["never"]),
        )
    return expected


def _html_table(page: str, heading: str) -> list[list[str]]:
    table = page.split(f"<h2>{heading}</h2>", 1)[1].split("</table>", 1)[0]
    return [
        [html.unescape(cell) for cell in re.findall(r"<td>(.*?)</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", table)
        if "<td>" in row
    ]


def test_the_per_manager_table_matches_the_history_by_hand(dsn, conn, tmp_path):
    """A week of the demo's history, played through the database (issue 35, part 1): every
    row of the report's per-manager table, worked out again in Python from the base rows."""
    from ingester.demo import history as past_calls
    from ingester.demo import seed
    from ingester.simulator.run import crm_numbers_and_extensions

    conn.execute("SET TIME ZONE 'UTC'")
    seed.seed(conn, clients=80)
    numbers, extensions = crm_numbers_and_extensions(dsn)
    past_calls.seed_history(conn, numbers, extensions, days=7)
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=7), today - timedelta(days=1)
    out = tmp_path / "report.html"
    run_cli(
        "report", "--dsn", dsn, "--from", str(first), "--to", str(last),
        "--time-zone", "UTC", "--out", str(out),
    )  # fmt: skip
    page = out.read_text()
    shown = {row[0]: tuple(row[1:]) for row in _html_table(page, "Per manager")}
    expected = _managers_by_hand(conn, first, last)
    assert shown == expected
    assert len(shown) >= 5 and sum(int(r[4]) for r in shown.values()) > 0, "missed calls seen"
    assert sum(int(r[5]) for r in shown.values()) > 0, "and callbacks made"
    # The funnel per month and deal manager: the team's row first, each manager's after.
    funnel = _html_table(page, "Sales funnel by month and manager")
    months = {r[0] for r in funnel}
    for month in months:
        rows = [r for r in funnel if r[0] == month]
        team, per_manager = rows[0], rows[1:]
        assert team[1] == "everyone"
        # Every party is in exactly one manager's row (or "no manager"): the rows add up.
        assert [sum(int(r[i]) for r in per_manager) for i in range(2, 6)] == [
            int(v) for v in team[2:6]
        ]

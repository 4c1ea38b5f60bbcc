"""`pgcti report` as a user runs it, on the hand-computed history of the analytics tests,
then the page rendered in a real headless Chromium."""

from __future__ import annotations

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
    docs/sql-api.md (cti.period_summary_v1), not by the view's SQL."""
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

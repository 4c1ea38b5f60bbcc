"""`pgcti report` as a user runs it, on the hand-computed history of the analytics tests,
then the page rendered in a real headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import run_cli
from tests.test_analytics_views import history  # noqa: F401  (the fixture)

PERIOD = ["--from", "2026-01-01", "--to", "2026-01-31", "--time-zone", "UTC"]


@pytest.fixture
def report(dsn, history, tmp_path):  # noqa: F811
    out = tmp_path / "report.html"
    done = run_cli("report", "--dsn", dsn, *PERIOD, "--out", str(out))
    return out, done.stdout


def test_the_report_shows_the_periods_figures_in_one_self_contained_file(report):
    out, printed = report
    assert "inbound_calls 6, answered 3, missed_never_called_back 1, callers 5, won 1" in printed
    page = out.read_text()
    assert "6 inbound calls, 50% answered, 1 missed and never called back" in page
    assert not re.search(r"<script[^>]+src=", page), "no script fetched from elsewhere"
    assert "Plotly.newPlot" in page and page.count('class="chart"') == 6
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
        [*common, f"--screenshot={shot}", "--window-size=1200,2800", out.as_uri()],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert shot.stat().st_size > 30_000, "a screenshot of six charts, not a blank page"
    dom = subprocess.run(
        [*common, "--dump-dom", out.as_uri()],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert dom.count('class="main-svg"') >= 12, "each of the six charts drew its SVG layers"
    # Bars, funnel stages and histogram bins are drawn as points with a path each.
    drawn = re.findall(r'<g class="point"><path d="M[^"]+"', dom)
    assert len(drawn) >= 10, f"only {len(drawn)} data marks were drawn"

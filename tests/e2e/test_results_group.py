"""The results page's group level in a real Chromium (issues 13 and 16.5).

The group fit arrives after the page loaded: its facts (trials, participants) and the
"did not converge" caveat must follow it, not stay as the page was rendered; the tables
of the hierarchical fits, the group model comparison and reliability fill in; a chart's
PNG downloads at 3x.
"""

import struct
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, expect

from scoring.models import ModelFit
from scoring.selectors import scored_fingerprint
from scoring.services import model_fit_run
from tests.dashboard.builders import simulate_sessions
from tests.e2e.test_dashboard_browser import DESKTOP, log_in, shot, watch
from trials.services.demo import demo_study_load

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]


def test_a_fit_arriving_after_load_brings_its_caveat_and_tables(
    browser: Browser, live_server: Any
) -> None:
    study, _user, password = demo_study_load(password="demo-password-1")
    simulate_sessions(study, n_participants=12, seed=4)
    n_sessions, fingerprint = scored_fingerprint(study=study)
    # A fit of the current data is under way when the page loads.
    ModelFit.objects.create(
        study=study,
        status=ModelFit.Status.FITTING,
        pending_fingerprint=fingerprint,
        requested_at=timezone.now(),
    )
    context = browser.new_context(**DESKTOP, accept_downloads=True)
    page = log_in(context, live_server.url, "demo", password)
    problems = watch(page)
    page.goto(f"{live_server.url}/dashboard/s/demo/results/")
    expect(page.locator("#model-status")).to_have_attribute("data-state", "stale")
    assert page.locator("#model-unconverged").count() == 0
    expect(page.locator("#bms-table tbody")).to_contain_text("Not fitted yet.")

    # The task stores its fit; the stored model did not converge (as a boundary fit
    # reports it), which the page must say next to the p-values it shows.
    model_fit_run(study_id=study.pk, fingerprint=fingerprint)
    fit = ModelFit.objects.get(study=study)
    fit.result["mixed_model"]["converged"] = False
    fit.result["mixed_model"]["warnings"] = ["boundary (singular) fit: a variance is 0"]
    fit.save(update_fields=["result"])

    expect(page.locator("#model-status")).to_have_attribute("data-state", "done", timeout=20_000)
    expect(page.locator("#model-unconverged")).to_have_text(
        "The fit did not converge: read the estimates with care."
    )
    n_obs = fit.result["mixed_model"]["n_obs"]
    expect(page.locator("#model-facts")).to_contain_text(
        f"{n_obs} valid trials of 12 participants."
    )
    expect(page.locator("#model-warnings li")).to_have_text(
        "boundary (singular) fit: a variance is 0"
    )
    # Estimate, SE, df, t, CI, p for each of the 13 coefficients.
    rows = page.locator("#model-rows tr")
    expect(rows).to_have_count(13)
    assert rows.first.locator("td").count() == 6
    # Two arms x three timepoints: a row of model comparison per group, the
    # hierarchical group means of every parameter of M0, M1 and M2 (2 + 3 + 4 with
    # sigma), reliability, test-retest.
    expect(page.locator("#bms-table tbody tr")).to_have_count(6)
    expect(page.locator("#hb-table tbody tr")).to_have_count(6 * 9)
    assert page.locator("#reliability-table tbody tr").count() >= 6 * 3
    assert page.locator("#retest-table tbody tr").count() >= 3 * 3
    assert n_sessions == 36
    page.wait_for_timeout(300)
    shot(page, "results-group")

    # PNG at 3x the chart's size on screen.
    chart = page.locator("[data-chart=main]")
    expect(chart).to_have_attribute("data-rendered", "chart", timeout=20_000)
    width = float(chart.locator("svg.marks").get_attribute("width") or "0")
    chart.locator("summary").click()
    with page.expect_download() as download:
        chart.locator(".vega-actions a", has_text="Save as PNG (3×)").click()
    png = Path(download.value.path()).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    png_width = struct.unpack(">I", png[16:20])[0]
    assert png_width == round(3 * width)
    assert problems == []
    context.close()

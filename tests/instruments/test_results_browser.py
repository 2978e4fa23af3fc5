"""The paper's second result on the results page, in Chromium: the change table for every
role, the scatter per arm for analysts, drawn from demo data with MADRS ratings."""

from typing import Any

import numpy as np
from playwright.sync_api import Browser, expect

from instruments.models import StudyInstrument
from instruments.services import rating_save
from scoring.models import Score
from tests.dashboard.builders import simulate_sessions
from tests.e2e.test_dashboard_browser import DESKTOP, log_in, watch
from trials.models import Participant, Session
from trials.services.demo import demo_study_load


def rate_patients(study: Any, *, seed: int = 3) -> int:
    """MADRS for every patient visit, falling as m1_lr_good rises (plus noise)."""
    from django.contrib.auth.models import User

    rng = np.random.default_rng(seed)
    rater = User.objects.get(username="demo")
    n = 0
    for participant in Participant.objects.filter(study=study, arm__code="patients"):
        for session in Session.objects.filter(participant=participant).select_related("timepoint"):
            score = Score.objects.filter(session=session).first()
            lr = (score.values.get("m1_lr_good") if score else None) or 0.4
            level = float(np.clip(round(4.5 - 6 * (lr - 0.4) + rng.normal(0, 0.4)), 0, 6))
            rating_save(
                study=study,
                participant=participant.pk,
                timepoint=session.timepoint.label,
                instrument="madrs",
                items={f"madrs_{i}": int(level) for i in range(1, 11)},
                actor=rater,
            )
            n += 1
    return n


def test_load_demo_attaches_the_instruments(db: Any) -> None:
    study, _user, _password = demo_study_load(password="demo-password-1")
    demo_study_load(password="demo-password-1")  # idempotent
    links = [
        (link.timepoint.label, link.instrument.code, link.position)
        for link in StudyInstrument.objects.filter(study=study).order_by(
            "timepoint__order", "instrument__code"
        )
    ]
    assert links == [
        ("baseline", "demographics", "before"),
        ("baseline", "madrs", "after"),
        ("baseline", "phq9", "after"),
        ("+4 h", "madrs", "after"),
        ("+4 h", "phq9", "after"),
        ("+7 days", "madrs", "after"),
        ("+7 days", "phq9", "after"),
    ]


def test_the_change_scatter_is_drawn_per_arm(browser: Browser, live_server: Any) -> None:
    study, _user, password = demo_study_load(password="demo-password-1")
    simulate_sessions(study, n_participants=24, seed=11)
    assert rate_patients(study) == 12 * 3
    context = browser.new_context(**DESKTOP)
    page = log_in(context, live_server.url, "demo", password)
    problems = watch(page)
    page.goto(f"{live_server.url}/dashboard/s/demo/results/")
    rows = page.locator("#change-table tbody tr")
    # Patients only (controls have no rating) x 2 later visits x 4 measures (score v2 has
    # update_bias_ee).
    expect(rows).to_have_count(2 * 4)
    assert page.locator("#change-table tbody tr[data-measure=update_bias_ee]").count() == 2
    node = page.locator("[data-chart=change]")
    expect(node).to_have_attribute("data-rendered", "chart", timeout=20_000)
    # 12 patients x 2 later visits, one point per measure panel.
    assert node.locator("svg .mark-symbol.role-mark path").count() == 12 * 2 * 4
    assert node.locator("svg .mark-line path").count() >= 1
    assert problems == []
    context.close()

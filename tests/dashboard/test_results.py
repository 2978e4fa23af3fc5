"""Results: the figures' data with exact values, 0 / 1 / many sessions, viewers, and the
mixed model fitted outside the page and stored."""

import math
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from dashboard.views.results import term_label
from scoring.models import ModelFit, Score
from tests.dashboard.builders import enrol_and_complete, simulate_sessions
from trials.models import Study

pytestmark = pytest.mark.django_db


def test_no_session_renders_without_a_chart(
    client_as: Callable[[str], Client], study: Study
) -> None:
    response = client_as("analyst").get("/dashboard/s/small/results/")
    assert response.status_code == 200
    data = response.context["chart_data"]
    assert (data["main"], data["bias_bins"], data["models"], data["lr_points"]) == ([], [], [], [])
    assert data["n_sessions"] == 0
    assert b'id="no-results"' in response.content
    assert b'id="results-data"' in response.content
    assert not ModelFit.objects.exists()


def test_one_session(client_as: Callable[[str], Client], study: Study) -> None:
    session = enrol_and_complete(study, external_id="one", arm="patients")
    score = Score.objects.get(session=session)
    response = client_as("analyst").get("/dashboard/s/small/results/")
    data = response.context["chart_data"]
    # Every good-news E2 moved 6 toward the base rate, every bad-news one 3.
    assert [(r["valence"], r["mean"], r["sem"], r["n"]) for r in data["main"]] == [
        ("good", 6.0, None, 1),
        ("bad", 3.0, None, 1),
    ]
    assert score.values["update_bias"] == 3.0
    assert data["bias_bins"] == [
        {
            "arm": "Patients",
            "timepoint": "baseline",
            "tp_order": 0,
            "bin_start": 3.0,
            "bin_end": 4.0,
            "count": 1,
        }
    ]
    assert len(data["lr_points"]) == 1
    assert data["lr_points"][0]["participant"] == session.participant_id
    assert data["trajectories"] == [
        {
            "participant": session.participant_id,
            "arm": "Patients",
            "timepoint": "baseline",
            "tp_order": 0,
            "update_bias": 3.0,
        }
    ]
    # Four trials: no model comparison (score version 2), so no model share either.
    assert score.values["best_model"] is None
    assert data["models"] == []


def test_group_means_and_sems_are_exact(client_as: Callable[[str], Client], study: Study) -> None:
    enrol_and_complete(study, external_id="a", arm="controls", good_shift=6, bad_shift=2)
    enrol_and_complete(study, external_id="b", arm="controls", good_shift=10, bad_shift=4)
    enrol_and_complete(study, external_id="c", arm="patients", good_shift=4, bad_shift=4)
    response = client_as("viewer").get("/dashboard/s/small/results/")
    groups = {g["arm"]: g for g in response.context["results"].groups}
    controls = groups["Controls"]
    assert controls["n_sessions"] == 2
    assert controls["update_good_mean"] == 8.0
    assert controls["update_good_sem"] == pytest.approx(2.0)  # sd 2*sqrt(2) / sqrt(2)
    assert controls["update_bad_mean"] == 3.0
    assert controls["update_bias_mean"] == 5.0
    assert controls["update_bias_sem"] == pytest.approx(1.0)
    assert groups["Patients"]["update_bias_mean"] == 0.0
    assert groups["Patients"]["update_bias_sem"] is None
    main = {(r["arm"], r["valence"]): r for r in response.context["chart_data"]["main"]}
    assert (main[("Controls", "good")]["low"], main[("Controls", "good")]["high"]) == (
        pytest.approx(6.0),
        pytest.approx(10.0),
    )
    # Patients come first: arms keep their creation order.
    assert [g["arm"] for g in response.context["results"].groups] == ["Patients", "Controls"]


def test_update_bias_ee_beside_the_raw_bias(
    client_as: Callable[[str], Client], study: Study
) -> None:
    a = enrol_and_complete(study, external_id="a", arm="controls", good_shift=6, bad_shift=2)
    b = enrol_and_complete(study, external_id="b", arm="controls", good_shift=10, bad_shift=4)
    # The builder's sessions have EE 15 on every good-news and 10 on every bad-news trial:
    # EE cannot be separated from valence, so score version 2 leaves the figure empty.
    assert Score.objects.get(session=a).values["update_bias_ee"] is None
    response = client_as("viewer").get("/dashboard/s/small/results/")
    controls = {g["arm"]: g for g in response.context["results"].groups}["Controls"]
    assert (controls["update_bias_ee_mean"], controls["update_bias_ee_sem"]) == (None, None)
    assert response.context["chart_data"]["bias_ee_bins"] == []

    # Stored figures as a session with varied errors would have them.
    for session, value in ((a, 1.5), (b, 3.5)):
        score = Score.objects.get(session=session)
        score.values = {**score.values, "update_bias_ee": value}
        score.save(update_fields=["values"])
    response = client_as("viewer").get("/dashboard/s/small/results/")
    controls = {g["arm"]: g for g in response.context["results"].groups}["Controls"]
    assert controls["update_bias_ee_mean"] == 2.5
    assert controls["update_bias_ee_sem"] == pytest.approx(1.0)
    assert controls["update_bias_mean"] == 5.0  # the raw bias is unchanged beside it
    data = response.context["chart_data"]
    assert data["bias_ee_bin_width"] == 1.0
    assert [(r["arm"], r["bin_start"], r["count"]) for r in data["bias_ee_bins"]] == [
        ("Controls", 1.0, 1),
        ("Controls", 3.0, 1),
    ]
    assert data["labels"]["update_bias_ee"] == "Update bias controlled for EE"
    body = response.content.decode()
    assert '<option value="update_bias_ee">' in body
    assert "2.50 ± 1.00" in body


def test_viewers_get_aggregates_only(client_as: Callable[[str], Client], study: Study) -> None:
    enrol_and_complete(study, external_id="a", arm="controls")
    response = client_as("viewer").get("/dashboard/s/small/results/")
    data = response.context["chart_data"]
    assert data["per_session"] is False
    assert (data["lr_points"], data["trajectories"], data["trajectory_means"]) == ([], [], [])
    body = response.content.decode()
    assert 'id="chart-lr"' not in body and 'id="chart-trajectories"' not in body
    assert 'id="chart-main"' in body and 'id="chart-bias"' in body and 'id="chart-models"' in body
    assert "/api/v1/studies/small/trials/" not in body


def test_the_page_loads_its_scripts_and_no_inline_script(
    client_as: Callable[[str], Client], study: Study
) -> None:
    enrol_and_complete(study, external_id="a")
    body = client_as("owner").get("/dashboard/s/small/results/").content.decode()
    for script in (
        "/static/vendor/vega/vega.min.js",
        "/static/vendor/vega-lite/vega-lite.min.js",
        "/static/vendor/vega-embed/vega-embed.min.js",
        "/static/dashboard/results.js",
    ):
        assert f'<script src="{script}" defer></script>' in body
    assert "<script>" not in body and "onload=" not in body and "style=" not in body


def test_trajectories_are_sampled_beyond_the_cap(study: Study) -> None:
    from dashboard import selectors

    simulate_sessions(study, n_participants=6, seed=2)
    original = selectors.MAX_TRAJECTORIES
    selectors.MAX_TRAJECTORIES = 4
    try:
        design = selectors.study_design(study=study)
        results = selectors.study_results(study=study, design=design, per_session=True)
    finally:
        selectors.MAX_TRAJECTORIES = original
    assert (results.trajectories_shown, results.trajectories_total) == (4, 6)
    assert len({t["participant"] for t in results.trajectories}) == 4
    # The means use every participant.
    assert len(results.trajectory_means) == 4  # 2 arms x 2 timepoints


def test_the_mixed_model_is_fitted_once_and_stored(
    client_as: Callable[[str], Client],
    study: Study,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    simulate_sessions(study, n_participants=8, seed=5)
    client = client_as("viewer")
    page = client.get("/dashboard/s/small/results/")
    assert page.context["model"]["status"] == "none"
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        model = client.get("/dashboard/s/small/results/model.json").json()
    assert len(callbacks) == 1  # one fit queued (run in-process here)
    model = client.get("/dashboard/s/small/results/model.json").json()
    assert (model["status"], model["fresh"], model["n_sessions"]) == ("done", True, 16)
    assert model["n_groups"] == 8
    terms = [c["term"] for c in model["coefficients"]]
    assert "C(valence, Treatment('bad'))[T.good]" in terms
    assert "C(arm, Treatment('patients'))[T.controls]" in terms
    assert "C(timepoint, Treatment('baseline'))[T.T1]" in terms
    assert terms[:2] == ["Intercept", "C(valence, Treatment('bad'))[T.good]"]
    assert "ee" in terms
    for c in model["coefficients"]:
        assert c["ci_low"] < c["estimate"] < c["ci_high"]
        assert c["df"] > 0 and c["t_value"] == c["estimate"] / c["std_error"]
        assert math.isfinite(c["p_value"])
    # The simulated controls learn more from good news than from bad news.
    valence = next(c for c in model["coefficients"] if c["term"].endswith("[T.good]"))
    assert valence["label"] == "valence good (vs bad)"
    fitted_at = ModelFit.objects.get(study=study).fitted_at
    # Unchanged data: no new fit.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        client.get("/dashboard/s/small/results/model.json")
    assert callbacks == []
    assert ModelFit.objects.get(study=study).fitted_at == fitted_at
    # The page now shows the stored fit.
    page = client.get("/dashboard/s/small/results/")
    assert page.context["model"]["fresh"] is True
    assert "valence good (vs bad)" in page.content.decode()
    # New data: the stored fit is stale and a new one is queued.
    enrol_and_complete(study, external_id="late")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        model = client.get("/dashboard/s/small/results/model.json").json()
    assert len(callbacks) == 1
    model = client.get("/dashboard/s/small/results/model.json").json()
    assert (model["fresh"], model["n_sessions"]) == (True, 17)


def test_a_model_that_cannot_be_fitted_says_why(
    client_as: Callable[[str], Client],
    study: Study,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    enrol_and_complete(study, external_id="alone")
    client = client_as("viewer")
    with django_capture_on_commit_callbacks(execute=True):
        client.get("/dashboard/s/small/results/model.json")
    model = client.get("/dashboard/s/small/results/model.json").json()
    assert model["status"] == "done"
    assert model["coefficients"] == []
    assert model["reason"] == "1 participant(s) with valid trials: need 2"


def test_term_labels() -> None:
    assert term_label("Intercept") == "Intercept"
    assert (
        term_label("C(valence, Treatment('bad'))[T.good]:C(arm, Treatment('patients'))[T.controls]")
        == "valence good (vs bad) × arm controls (vs patients)"
    )


def test_the_summary_api_reads_the_stored_group_fit(
    client_as: Callable[[str], Client],
    study: Study,
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    simulate_sessions(study, n_participants=8, seed=5)
    client = client_as("viewer")
    url = "/api/v1/studies/small/summary/"
    # The first request queues the group fit and answers at once, without fitting.
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        waiting = client.get(url).json()
    assert len(callbacks) == 1
    assert waiting["group_fit"]["status"] == "fitting"
    assert waiting["mixed_model"]["coefficients"] == []
    assert waiting["mixed_model"]["reason"] == "fitting: ask again shortly"
    assert ModelFit.objects.get(study=study).result == {}
    assert not any("hb_m1_lr_good" in s.values for s in Score.objects.all())
    # The queued fit runs (in-process here); API and page then read the same row.
    for callback in callbacks:
        callback()
    summary = client.get(url).json()
    page = client.get("/dashboard/s/small/results/model.json").json()
    assert summary["group_fit"]["status"] == "done" and summary["group_fit"]["fresh"] is True
    assert summary["group_fit"]["n_sessions"] == 16
    assert summary["mixed_model"]["coefficients"] == [
        {k: v for k, v in c.items() if k != "label"} for c in page["coefficients"]
    ]
    stored = ModelFit.objects.get(study=study).result
    assert summary["mixed_model"]["coefficients"] == stored["mixed_model"]["coefficients"]
    # One rule for reference levels: the study's first arm and first timepoint.
    assert summary["mixed_model"]["reference_levels"] == {
        "valence": "bad",
        "arm": "patients",
        "timepoint": "baseline",
    }
    assert [(g["arm"], g["timepoint"]) for g in summary["model_selection"]] == [
        ("patients", "baseline"),
        ("patients", "T1"),
        ("controls", "baseline"),
        ("controls", "T1"),
    ]
    assert summary["model_selection"] == page["group"]["model_selection"]
    assert {r["measure"] for r in summary["reliability"]} >= {"update_bias", "m1_lr_good"}
    # Score version 2's update_bias_ee beside the raw bias in every group.
    expected: dict[tuple[str, str], list[float]] = {}
    for score in Score.objects.select_related("session__participant__arm", "session__timepoint"):
        key = (score.session.participant.arm.code, score.session.timepoint.label)
        if score.values["update_bias_ee"] is not None:
            expected.setdefault(key, []).append(score.values["update_bias_ee"])
    groups = {(g["arm"], g["timepoint"]): g for g in summary["groups"]}
    assert set(groups) == set(expected)
    for key, values in expected.items():
        assert groups[key]["update_bias_ee_mean"] == pytest.approx(sum(values) / len(values))
        assert "update_bias_mean" in groups[key]
    retest = summary["test_retest"][0]
    assert (retest["measure"], retest["timepoints"]) == ("update_bias", ["baseline", "T1"])
    finite: dict[int, int] = {}
    for score in Score.objects.select_related("session"):
        if score.values["update_bias"] is not None:
            pid = score.session.participant_id
            finite[pid] = finite.get(pid, 0) + 1
    assert retest["n_participants"] == sum(1 for n in finite.values() if n == 2)
    assert {(h["model"], h["parameter"]) for h in summary["hierarchical"]} >= {
        ("M1", "lr_good"),
        ("M1", "lr_bad"),
    }
    # The hierarchical fit filled the scores' hb_* values, which the export carries.
    stored_scores = {s.session_id: s.values for s in Score.objects.all()}
    for values in stored_scores.values():
        # A rate without any trial of its valence has no estimate, hierarchical or not.
        for column in ("hb_m0_lr", "hb_m1_lr_good", "hb_m1_lr_bad"):
            if values[column.removeprefix("hb_")] is None:
                assert values[column] is None
            else:
                assert 0.0 <= values[column] <= 1.0
        if values["hb_m1_lr_good"] is not None:
            assert values["hb_m1_lr_good_sd"] > 0
    assert sum(v["hb_m1_lr_good"] is not None for v in stored_scores.values()) >= 8
    exported = client_as("analyst").get("/api/v1/studies/small/scores/?format=json").json()
    rows = exported["results"] if isinstance(exported, dict) else exported
    assert len(rows) == 16
    for row in rows:
        for column in ("hb_m0_lr", "hb_m1_lr_good", "hb_m1_lr_bad", "hb_m1_lr_good_sd"):
            assert row[column] == stored_scores[row["session"]][column]

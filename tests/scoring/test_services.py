"""Score storage, the scoring services, the sweep's selection and `manage.py rescore`.

Tasks run in-process here (no REDIS_URL in the test process); the real broker and
worker are in test_pipeline.py.
"""

import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from scoring.metrics import SCORE_VERSION
from scoring.models import Score
from scoring.pipeline import score_all as score_all_of_services
from scoring.selectors import sessions_unscored
from scoring.services import (
    score_enqueue,
    scores_queue_unscored,
    sessions_score,
    sessions_score_or_fail,
)
from scoring.tasks import score_session
from tests.factories import make_study
from tests.scoring.pipeline_fixtures import (
    django_call,
    expected_score,
    session_answer_all,
    session_id_of,
)
from trials.models import Session, Study
from trials.services.enrolment import study_enrol

pytestmark = pytest.mark.django_db


def exact(value: float) -> Any:
    """Equal up to floating-point summation order."""
    return pytest.approx(value, rel=1e-12, abs=1e-12)


def hand_study(slug: str = "hand") -> Study:
    return make_study(n_events=8, n_timepoints=1, arms=("patients",), slug=slug)


def answered_session(client: Client, study: Study) -> int:
    """A session of `study` with every step answered (HAND_ANSWERS), not completed."""
    return session_id_of(session_answer_all(django_call(client), study.slug))


def complete(client: Client, session_id: int) -> Any:
    token = Session.objects.get(pk=session_id).token
    return client.post(f"/api/v1/sessions/{token}/complete")


def completed_bare(study: Study, *, minutes_ago: float = 10) -> int:
    """A session marked completed without answers (enough for the sweep's selection)."""
    session = study_enrol(study=study).session
    Session.objects.filter(pk=session.pk).update(
        status=Session.Status.COMPLETED,
        completed_at=timezone.now() - timedelta(minutes=minutes_ago),
    )
    return session.pk


def test_completion_stores_the_score_of_score_all_with_hand_values(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    study = hand_study()
    session_id = answered_session(client, study)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = complete(client, session_id)

    assert response.status_code == 200
    assert len(callbacks) == 1  # the publish, after the completion committed
    score = Score.objects.get(session_id=session_id)
    assert (score.score_version, score.status, score.reason) == (SCORE_VERSION, "done", "")
    assert score.scored_at is not None and score.queued_at is not None
    assert score.attempts == 1
    values, flags = expected_score(session_id)
    assert score.values == values
    assert score.flags == flags == ["too_few_bad", "too_few_for_models", "too_few_good"]
    v = score.values
    # By hand (tests/scoring/pipeline_fixtures.py HAND_ANSWERS): good news on events
    # 1, 2, 3, 8 (updates 6, 5, 10, 2; EE 10, 10, 20, 10), bad news on 4, 5, 7 (updates
    # 4, 10, 2; EE 10, 20, 10), event 6 neutral and the practice event excluded.
    assert (v["n_good"], v["n_bad"], v["n_excluded"]) == (4, 3, 2)
    assert v["update_good"] == exact(23 / 4)
    assert v["update_bad"] == exact(16 / 3)
    assert v["update_bias"] == exact(23 / 4 - 16 / 3)
    assert v["ee_good"] == exact(12.5)
    assert v["ee_bad"] == exact(40 / 3)
    assert v["mean_e1"] == exact(37.5)
    assert v["alpha_good"] == exact(330 / 700)
    assert v["alpha_bad"] == exact(260 / 600)
    assert v["norm_update_good"] == exact(0.45)
    assert v["norm_update_bad"] == exact(1.1 / 3)
    assert v["rt_e1_mean_ms"] == exact(2450.0)
    assert v["rt_e2_mean_ms"] == exact(1725.0)
    # Version 2: pooled within-valence slope of update on EE (42.5 + 420/9) / (75 + 600/9).
    assert v["update_bias_ee"] == exact(23 / 4 - 16 / 3 - 802.5 / 1275 * (12.5 - 40 / 3))
    assert (v["ebr_n_good"], v["ebr_n_bad"], v["ebr_update_good"]) == (0, 0, None)
    assert v["best_model"] is None  # 7 valid trials
    # Undefined figures are NaN in score_all and JSON null in the database.
    assert v["memory_error"] is None and v["ebr_update_bias"] is None
    assert Score.objects.filter(pk=score.pk, values__memory_error=None).exists()
    assert "flags" not in v
    json.dumps(v, allow_nan=False)


def test_scoring_twice_updates_the_one_row(client: Client) -> None:
    study = hand_study()
    session_id = answered_session(client, study)
    assert complete(client, session_id).status_code == 200  # pending: no commit here
    assert sessions_score(session_ids=[session_id]) == 1
    first = Score.objects.get(session_id=session_id)
    Score.objects.filter(pk=first.pk).update(values={}, flags=[], status=Score.Status.FAILED)

    assert sessions_score(session_ids=[session_id]) == 1

    again = Score.objects.get(session_id=session_id)
    assert Score.objects.filter(session_id=session_id).count() == 1
    assert again.pk == first.pk
    assert again.status == "done" and again.reason == ""
    assert first.scored_at is not None and again.scored_at is not None
    assert again.scored_at > first.scored_at
    assert (again.values, again.flags) == expected_score(session_id)


def test_a_failing_session_is_marked_failed_and_the_others_are_scored(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = hand_study()
    ids = [answered_session(client, study) for _ in range(3)]
    Session.objects.filter(pk__in=ids).update(
        status=Session.Status.COMPLETED, completed_at=timezone.now()
    )
    bad = ids[1]
    real_score_all = score_all_of_services

    def score_all(frame: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
        if bad in set(frame["session"]):
            raise ValueError("E2 of event A03 is not a number")
        return real_score_all(frame, **kwargs)

    monkeypatch.setattr("scoring.services.score_all", score_all)

    assert sessions_score_or_fail(session_ids=ids) == (2, 1)

    failed = Score.objects.get(session_id=bad)
    assert failed.status == "failed"
    assert failed.reason == "ValueError: E2 of event A03 is not a number"
    assert failed.scored_at is not None
    assert (failed.values, failed.flags) == ({}, [])
    for session_id in (ids[0], ids[2]):
        score = Score.objects.get(session_id=session_id)
        assert score.status == "done"
        assert (score.values, score.flags) == expected_score(session_id)
    # Failed is terminal for this score version: the sweep leaves it alone.
    assert sessions_unscored(score_version=SCORE_VERSION) == []


def test_score_enqueue_creates_the_pending_row_and_publishes_after_commit(
    monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    session_id = completed_bare(hand_study())
    published: list[int] = []
    monkeypatch.setattr(score_session, "delay", published.append)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        score_enqueue(session_id=session_id)
        score = Score.objects.get(session_id=session_id)
        assert (score.status, score.score_version) == ("pending", SCORE_VERSION)
        assert score.queued_at is not None
    assert published == []  # nothing leaves before the transaction commits

    for callback in callbacks:
        callback()
    assert published == [session_id]


def test_completion_stands_when_the_publish_fails(
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
) -> None:
    study = hand_study()
    session_id = answered_session(client, study)

    def broker_down(session_id: int) -> None:
        raise BrokerError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(score_session, "delay", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        response = complete(client, session_id)

    assert response.status_code == 200
    assert response.json()["completion_code"]
    assert Session.objects.get(pk=session_id).status == "completed"
    assert Score.objects.get(session_id=session_id).status == "pending"
    assert f"scoring of session {session_id} not queued (OperationalError" in caplog.text
    # ... and the sweep finds it once its grace period is over.
    assert sessions_unscored(score_version=SCORE_VERSION) == [session_id]


def test_rescore_command_prints_progress_and_rescores(client: Client) -> None:
    study = hand_study()
    other = hand_study("other")
    ids = [answered_session(client, study) for _ in range(3)]
    other_id = answered_session(client, other)
    for session_id in [*ids, other_id]:
        assert complete(client, session_id).status_code == 200
    Score.objects.update(values={}, flags=[], status=Score.Status.FAILED, reason="old")

    out = StringIO()
    call_command("rescore", "--study", "hand", "--batch-size", "2", stdout=out)

    assert out.getvalue().splitlines() == [
        "scored 2/3",
        "scored 3/3",
        f"Done: 3 sessions at score version {SCORE_VERSION}.",
    ]
    for session_id in ids:
        score = Score.objects.get(session_id=session_id)
        assert (score.status, score.reason) == ("done", "")
        assert (score.values, score.flags) == expected_score(session_id)
    untouched = Score.objects.get(session_id=other_id)
    assert (untouched.status, untouched.reason, untouched.values) == ("failed", "old", {})

    out = StringIO()
    call_command("rescore", stdout=out)
    assert out.getvalue().splitlines() == [
        "scored 4/4",
        f"Done: 4 sessions at score version {SCORE_VERSION}.",
    ]
    assert Score.objects.get(session_id=other_id).status == "done"
    assert Score.objects.count() == 4


def test_rescore_writes_version_2_beside_the_version_1_rows(client: Client) -> None:
    study = hand_study()
    session_id = answered_session(client, study)
    assert complete(client, session_id).status_code == 200
    # The database as version 1 left it: its row only (figures as v1 stored them).
    Score.objects.filter(session_id=session_id).delete()
    scored_v1 = timezone.now() - timedelta(days=30)
    v1_values = {"update_bias": 0.4167, "m2_k": 10.0, "best_model": "M2"}
    v1 = Score.objects.create(
        session_id=session_id,
        score_version=1,
        status=Score.Status.DONE,
        values=v1_values,
        flags=["too_few_bad", "too_few_good"],
        scored_at=scored_v1,
    )

    call_command("rescore", "--study", "hand", stdout=StringIO())

    rows = {r.score_version: r for r in Score.objects.filter(session_id=session_id)}
    assert sorted(rows) == [1, 2]
    old = rows[1]
    assert (old.pk, old.status, old.values, old.flags) == (
        v1.pk,
        "done",
        v1_values,
        ["too_few_bad", "too_few_good"],
    )
    assert old.scored_at == scored_v1
    new = rows[2]
    assert (new.status, (new.values, new.flags)) == ("done", expected_score(session_id))
    assert new.values["best_model"] is None and "update_bias_ee" in new.values


def test_a_study_s_learning_rate_bound_reaches_the_stored_fits(client: Client) -> None:
    # HAND_ANSWERS' slopes are 330 / 700 (good) and 260 / 600 (bad): a study bound of 0.4
    # stops both, and M2's effective rate on every trial (EE 10 and 20).
    study = hand_study()
    Study.objects.filter(pk=study.pk).update(lr_max=0.4)
    session_id = answered_session(client, study)
    assert complete(client, session_id).status_code == 200
    assert sessions_score(session_ids=[session_id]) == 1
    score = Score.objects.get(session_id=session_id, score_version=SCORE_VERSION)
    assert (score.values, score.flags) == expected_score(session_id)
    v = score.values
    assert (v["m0_lr"], v["m1_lr_good"], v["m1_lr_bad"]) == (0.4, 0.4, 0.4)
    for w in (v["m2_w_good"], v["m2_w_bad"]):
        for ee in (10, 20):
            assert 0 <= w * (1 + v["m2_k"] * ee / 100) <= 0.4 + 1e-12


def test_rescore_of_an_unknown_study_is_refused() -> None:
    completed_bare(hand_study())

    with pytest.raises(CommandError, match="No study 'nope'"):
        call_command("rescore", "--study", "nope", stdout=StringIO())

    assert not Score.objects.exists()


def test_sessions_unscored_finds_completed_sessions_without_a_finished_score() -> None:
    study = hand_study()
    now = timezone.now()
    done = completed_bare(study, minutes_ago=50)
    Score.objects.create(session_id=done, score_version=SCORE_VERSION, status="done")
    failed = completed_bare(study, minutes_ago=45)
    Score.objects.create(session_id=failed, score_version=SCORE_VERSION, status="failed")
    no_row = completed_bare(study, minutes_ago=40)
    pending_old = completed_bare(study, minutes_ago=30)
    Score.objects.create(
        session_id=pending_old, score_version=SCORE_VERSION, queued_at=now - timedelta(minutes=30)
    )
    old_version_only = completed_bare(study, minutes_ago=20)
    Score.objects.create(
        session_id=old_version_only, score_version=SCORE_VERSION - 1, status="done"
    )
    pending_recent = completed_bare(study, minutes_ago=5)
    Score.objects.create(
        session_id=pending_recent, score_version=SCORE_VERSION, queued_at=now - timedelta(seconds=5)
    )
    just_completed = completed_bare(study, minutes_ago=0.1)
    in_progress = study_enrol(study=study).session.pk
    Session.objects.filter(pk=in_progress).update(status=Session.Status.IN_PROGRESS)

    assert sessions_unscored(score_version=SCORE_VERSION) == [
        no_row,
        pending_old,
        old_version_only,
        pending_recent,
        just_completed,
    ]
    assert sessions_unscored(
        score_version=SCORE_VERSION, queued_before=now - timedelta(minutes=1)
    ) == [no_row, pending_old, old_version_only]
    assert sessions_unscored(score_version=SCORE_VERSION, limit=2) == [no_row, pending_old]


def test_scores_queue_unscored_claims_each_session_once_per_grace_period() -> None:
    study = hand_study()
    no_row = completed_bare(study, minutes_ago=40)
    pending = completed_bare(study, minutes_ago=30)
    Score.objects.create(
        session_id=pending,
        score_version=SCORE_VERSION,
        queued_at=timezone.now() - timedelta(minutes=30),
    )
    recent = completed_bare(study, minutes_ago=0.1)

    claimed = scores_queue_unscored(grace=timedelta(minutes=1))

    assert claimed == [no_row, pending]
    rows = {s.session_id: s for s in Score.objects.all()}
    assert set(rows) == {no_row, pending}  # the recent session is left to its own message
    for session_id in claimed:
        assert rows[session_id].status == "pending"
        queued_at = rows[session_id].queued_at
        assert queued_at is not None and timezone.now() - queued_at < timedelta(seconds=5)
    assert scores_queue_unscored(grace=timedelta(minutes=1)) == []
    assert scores_queue_unscored(grace=timedelta(0)) == [no_row, pending, recent]


def test_the_demo_s_positive_events_are_scored_with_their_polarity(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    # Every estimate 7 above the event's base rate, then 5 toward it; eBR 5 above, then
    # 3 toward it. Adverse events are then good news, the 8 desirable ones bad news.
    from trials.models import Event
    from trials.services.demo import demo_study_load

    demo_study_load(password="demo-password-1")
    study = Study.objects.get(slug="demo-positive")
    base_rates = dict(
        Event.objects.filter(event_list__name="demo-positive").values_list("code", "base_rate")
    )

    def answer(event: str, phase: str, br: int | None) -> int:
        base = base_rates[event]
        return {"e1": base + 7, "e2": base + 2, "ebr1": base + 5, "ebr2": base + 2}.get(phase, base)

    session_id = session_id_of(session_answer_all(django_call(client), study.slug, answer))
    with django_capture_on_commit_callbacks(execute=True):
        assert complete(client, session_id).status_code == 200
    score = Score.objects.get(session_id=session_id, score_version=SCORE_VERSION)
    v = score.values
    assert (v["n_good"], v["n_bad"], v["n_excluded"]) == (16, 8, 2)
    assert (v["update_good"], v["update_bad"], v["update_bias"]) == (5, 5, 0)
    assert (v["ebr_n_good"], v["ebr_n_bad"]) == (16, 8)
    assert (v["ebr_update_good"], v["ebr_update_bad"]) == (3, 3)
    assert (v["self_update_good_by_ebr"], v["self_update_bad_by_ebr"]) == (5, 5)
    assert v["best_model"] is not None  # 24 valid trials
    assert (score.values, score.flags) == expected_score(session_id)

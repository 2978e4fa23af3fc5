"""The Celery tasks and settings of scoring: configuration, retries, failures, the sweep,
the peak batch.

Tasks are applied in-process here (Celery's `apply`); test_pipeline.py runs them on a
real worker.
"""

from datetime import timedelta
from typing import Any

import pytest
from celery import Task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

import scoring.services
import scoring.tasks
from belief_web.celery import app
from scoring.metrics import SCORE_VERSION
from scoring.models import Score
from scoring.pipeline import score_all as metrics_score_all
from scoring.services import MAX_ATTEMPTS
from scoring.tasks import score_batch, score_session, sweep_unscored
from tests.factories import make_study
from trials.models import Session, Study
from trials.services.enrolment import study_enrol

TASKS = {
    "scoring.score_session": score_session,
    "scoring.score_batch": score_batch,
    "scoring.sweep_unscored": sweep_unscored,
}


def test_celery_settings_follow_the_style_guide() -> None:
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"]
    assert (conf.task_serializer, conf.result_serializer) == ("json", "json")
    assert conf.task_ignore_result is True and conf.result_backend is None
    longest = max(t.time_limit or conf.task_time_limit for t in TASKS.values())
    assert longest == conf.task_time_limit == 300
    # A retry countdown is held unacked by the worker too: both must fit the timeout.
    options = conf.broker_transport_options
    assert (
        options["visibility_timeout"]
        == 600
        > longest + scoring.tasks.RETRY_TRANSIENT["retry_backoff_max"]
    )
    assert options["unacked_restore_interval"] == 10
    assert options["unacked_restore_throttle"] == 1
    # A dead or hung broker fails a publish quickly (test_pipeline.py measures it).
    assert conf.broker_connection_timeout == 1
    assert options["socket_connect_timeout"] == options["socket_timeout"] == 1
    assert conf.task_publish_retry_policy == {
        "max_retries": 2,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.5,
    }
    sweep = settings.CELERY_BEAT_SCHEDULE["sweep-unscored-sessions"]
    assert (sweep["task"], sweep["schedule"], sweep["kwargs"]) == (
        "scoring.sweep_unscored",
        60,
        {"grace_seconds": 60},
    )


@pytest.mark.parametrize("name", sorted(TASKS))
def test_tasks_are_registered_by_explicit_name_with_time_limits(name: str) -> None:
    task: Task[Any, Any] = app.tasks[name]
    assert task.name == TASKS[name].name == name  # shared_task gives a proxy
    assert task.acks_late is True and task.ignore_result is True
    assert task.soft_time_limit is not None and task.time_limit is not None
    assert 0 < task.soft_time_limit < task.time_limit <= app.conf.task_time_limit


@pytest.mark.parametrize("task", [score_session, score_batch])
def test_scoring_tasks_retry_transient_errors_only(task: Task[Any, Any]) -> None:
    assert task.reject_on_worker_lost is True
    assert tuple(task.autoretry_for) == (OperationalError, InterfaceError)
    assert (task.retry_backoff, task.retry_backoff_max, task.retry_jitter) == (2, 60, True)
    assert task.max_retries == 8


def hand_study() -> Study:
    return make_study(n_events=8, n_timepoints=1, arms=("patients",))


def completed_session(study: Study, *, minutes_ago: float = 10, pending: bool = True) -> int:
    """A completed session without answers (scored with the no_valid_trials flag)."""
    session = study_enrol(study=study).session
    completed_at = timezone.now() - timedelta(minutes=minutes_ago)
    Session.objects.filter(pk=session.pk).update(
        status=Session.Status.COMPLETED, completed_at=completed_at
    )
    if pending:
        Score.objects.create(session=session, score_version=SCORE_VERSION, queued_at=completed_at)
    return session.pk


@pytest.mark.django_db
def test_score_session_retries_a_transient_error_and_then_scores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session_id = completed_session(hand_study())
    real = scoring.services.sessions_score
    calls: list[list[int]] = []

    def flaky(*, session_ids: list[int]) -> int:
        calls.append(list(session_ids))
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(session_ids=session_ids)

    monkeypatch.setattr(scoring.services, "sessions_score", flaky)

    score_session.apply(args=[session_id])

    assert calls == [[session_id], [session_id]]
    score = Score.objects.get(session_id=session_id)
    assert (score.status, score.attempts, score.flags) == (
        "done",
        2,
        ["no_valid_trials", "too_few_bad", "too_few_for_models", "too_few_good"],
    )


@pytest.mark.django_db
def test_score_session_marks_a_terminal_error_failed_without_retrying(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session_id = completed_session(hand_study())

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("scoring.services.score_all", broken)

    score_session.apply(args=[session_id])

    score = Score.objects.get(session_id=session_id)
    assert (score.status, score.reason, score.attempts) == (
        "failed",
        "ZeroDivisionError: division by zero",
        1,
    )


@pytest.mark.django_db
def test_score_batch_scores_the_others_when_one_session_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    study = hand_study()
    ids = [completed_session(study) for _ in range(3)]
    real = metrics_score_all

    def score_all(frame: Any, **kwargs: Any) -> Any:
        if ids[0] in set(frame["session"]):
            raise ValueError("bad trial")
        return real(frame, **kwargs)

    monkeypatch.setattr("scoring.services.score_all", score_all)

    score_batch.apply(args=[ids])

    statuses = dict(Score.objects.values_list("session_id", "status"))
    assert statuses == {ids[0]: "failed", ids[1]: "done", ids[2]: "done"}
    assert Score.objects.get(session_id=ids[0]).reason == "ValueError: bad trial"
    assert set(Score.objects.values_list("attempts", flat=True)) == {1}


@pytest.mark.django_db
def test_a_session_started_too_often_without_a_result_is_given_up() -> None:
    session_id = completed_session(hand_study())
    Score.objects.filter(session_id=session_id).update(attempts=MAX_ATTEMPTS)

    score_session.apply(args=[session_id])

    score = Score.objects.get(session_id=session_id)
    assert score.status == "failed"
    assert score.reason.startswith(f"scoring started {MAX_ATTEMPTS} times without storing")
    assert score.values == {} and score.attempts == MAX_ATTEMPTS + 1


def passes_of(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The session ids of every scoring pass from now on (sessions_score still runs)."""
    real = scoring.services.sessions_score
    calls: list[list[int]] = []

    def spy(*, session_ids: list[int]) -> int:
        calls.append(list(session_ids))
        return real(session_ids=session_ids)

    monkeypatch.setattr(scoring.services, "sessions_score", spy)
    return calls


@pytest.mark.django_db
def test_a_task_at_a_completion_peak_scores_the_waiting_sessions_in_its_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    study = hand_study()
    first, *waiting = [completed_session(study) for _ in range(3)]
    taken = completed_session(study)  # another worker's pass has started it
    Score.objects.filter(session_id=taken).update(attempts=1)
    done = completed_session(study)
    Score.objects.filter(session_id=done).update(status="done", attempts=1)
    calls = passes_of(monkeypatch)

    score_session.apply(args=[first])

    assert calls == [[first, *waiting]]
    rows = {r.session_id: (r.status, r.attempts) for r in Score.objects.all()}
    assert rows == {
        first: ("done", 1),
        waiting[0]: ("done", 1),
        waiting[1]: ("done", 1),
        taken: ("pending", 1),
        done: ("done", 1),
    }
    scored_at = Score.objects.get(session_id=waiting[0]).scored_at

    score_session.apply(args=[waiting[0]])  # its own message, after the pass: nothing to do

    assert calls == [[first, *waiting]]
    again = Score.objects.get(session_id=waiting[0])
    assert (again.status, again.attempts, again.scored_at) == ("done", 1, scored_at)


@pytest.mark.django_db
def test_a_peak_batch_of_one_scores_each_session_by_its_own_task(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.SCORE_PEAK_BATCH = 1
    study = hand_study()
    first, other = completed_session(study), completed_session(study)
    calls = passes_of(monkeypatch)

    score_session.apply(args=[first])

    assert calls == [[first]]
    rows = dict(Score.objects.values_list("session_id", "status"))
    assert rows == {first: "done", other: "pending"}


@pytest.mark.django_db
def test_the_peak_batch_is_bounded_and_each_row_claimed_once() -> None:
    study = hand_study()
    ids = [completed_session(study) for _ in range(5)]

    assert scoring.services.scores_claim_waiting(session_id=ids[0], limit=2) == ids[1:3]
    assert scoring.services.scores_claim_waiting(session_id=ids[0], limit=2) == ids[3:5]
    assert scoring.services.scores_claim_waiting(session_id=ids[0], limit=2) == []
    assert dict(Score.objects.values_list("session_id", "attempts")) == {
        ids[0]: 0, ids[1]: 1, ids[2]: 1, ids[3]: 1, ids[4]: 1,
    }  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_row_locked_by_another_workers_claim_is_skipped(postgres: None) -> None:
    import psycopg

    from tests.scoring.pipeline_fixtures import database_url

    study = hand_study()
    first, locked, free = (completed_session(study) for _ in range(3))
    row = Score.objects.get(session_id=locked).pk
    with psycopg.connect(database_url().replace("postgres://", "postgresql://", 1)) as other:
        other.execute("SELECT 1 FROM scoring_score WHERE id = %s FOR UPDATE", [row])
        assert scoring.services.scores_claim_waiting(session_id=first) == [free]
        other.rollback()
    assert Score.objects.get(session_id=locked).attempts == 0  # still waiting for a pass


@pytest.mark.django_db
def test_sweep_queues_unscored_sessions_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    study = hand_study()
    old = [completed_session(study, minutes_ago=30 - i) for i in range(3)]
    no_row = completed_session(study, minutes_ago=20, pending=False)
    recent = completed_session(study, minutes_ago=0.2)
    done = completed_session(study, minutes_ago=40)
    Score.objects.filter(session_id=done).update(status="done")
    queued: list[list[int]] = []
    monkeypatch.setattr(score_batch, "delay", queued.append)
    monkeypatch.setattr(scoring.tasks, "SWEEP_BATCH", 2)

    assert sweep_unscored.apply().get() == 4

    assert queued == [[old[0], old[1]], [old[2], no_row]]
    assert Score.objects.get(session_id=no_row).status == "pending"
    recent_queued_at = Score.objects.get(session_id=recent).queued_at
    assert recent_queued_at is not None
    assert recent_queued_at < timezone.now() - timedelta(seconds=10)
    # Claimed: the next sweep within the grace period queues nothing again.
    queued.clear()
    assert sweep_unscored.apply().get() == 0
    assert queued == []
    # With no grace at all (what SWEEP_GRACE_SECONDS=0 gives beat), the recent one too.
    assert sweep_unscored.apply(kwargs={"grace_seconds": 0}).get() == 5


def test_the_test_delay_hook_sleeps_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("scoring.tasks.time.sleep", slept.append)
    monkeypatch.delenv("BW_TEST_SCORE_DELAY_S", raising=False)
    scoring.tasks._hold_for_tests(1)
    assert slept == []
    monkeypatch.setenv("BW_TEST_SCORE_DELAY_S", "2.5")
    scoring.tasks._hold_for_tests(1)
    assert slept == [2.5]

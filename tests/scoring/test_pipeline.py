"""The scoring pipeline end to end: real PostgreSQL, Redis, web server and Celery processes.

The test process uses pytest-django's test database (transactional_db, so every row is
committed); the web server, the worker and beat run as subprocesses on that database with
REDIS_URL set, exactly as in a deployment. Sessions are answered over HTTP with the
hand-built answers of pipeline_fixtures.py.
"""

# ruff: noqa: F811 - the fixtures are imported from pipeline_fixtures and used as arguments

import math
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import redis

from scoring.metrics import SCORE_COLUMNS, SCORE_VERSION
from scoring.models import Score
from tests.factories import make_study
from tests.scoring.pipeline_fixtures import (  # noqa: F401 - fixtures
    PRACTICE_E1,
    REPO,
    VENV_BIN,
    Stack,
    expected_score,
    free_port,
    http_call,
    module_stack,
    own_stack,
    pipeline_redis,
    session_answer_all,
    session_complete_http,
    session_id_of,
    web_url,
)
from trials.exports import csv_python, trials_query
from trials.models import Event, Session, Study

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

# The figure: a completed session has its score within 5 s.
SCORE_WITHIN_S = 5.0
# A completion must not wait on a dead broker for longer than this.
COMPLETE_WITHIN_S = 3.0


def small_study() -> Study:
    return make_study(n_events=8, n_timepoints=1, arms=("patients",))


def score_rows(session_id: int) -> list[Score]:
    return list(Score.objects.filter(session_id=session_id))


def done_row(session_id: int) -> Score | None:
    return Score.objects.filter(session_id=session_id, status=Score.Status.DONE).first()


def assert_one_done_score(session_id: int) -> Score:
    rows = score_rows(session_id)
    assert [(r.score_version, r.status) for r in rows] == [(SCORE_VERSION, "done")]
    score = rows[0]
    assert (score.values, score.flags) == expected_score(session_id)
    return score


def test_a_session_completed_over_http_is_scored_by_the_worker_within_5_s(
    postgres: None, redis_url: str, own_stack: Stack, web_url: str
) -> None:
    worker = own_stack.worker()
    call = http_call(web_url)
    token = session_answer_all(call, small_study().slug)
    session_id = session_id_of(token)
    own_stack.ready(worker)

    status, body = session_complete_http(call, token)
    completed = time.monotonic()

    assert status == 200, body
    own_stack.wait("the done score", lambda: done_row(session_id), timeout=SCORE_WITHIN_S)
    assert time.monotonic() - completed < SCORE_WITHIN_S
    score = assert_one_done_score(session_id)
    assert score.attempts == 1
    session = Session.objects.get(pk=session_id)
    assert session.completed_at is not None and score.scored_at is not None
    assert score.scored_at > session.completed_at


def test_a_worker_killed_mid_task_ends_with_one_done_score_after_redelivery(
    postgres: None, redis_url: str, own_stack: Stack, web_url: str, pipeline_redis: str
) -> None:
    # This worker holds the task open (the BW_TEST_SCORE_DELAY_S hook) until it is killed.
    doomed = own_stack.worker("doomed", BW_TEST_SCORE_DELAY_S="60")
    call = http_call(web_url)
    token = session_answer_all(call, small_study().slug)
    session_id = session_id_of(token)
    own_stack.ready(doomed)
    assert session_complete_http(call, token)[0] == 200
    own_stack.wait_log(doomed, f"holding session {session_id}", timeout=15)
    assert [(r.status, r.attempts) for r in score_rows(session_id)] == [("pending", 1)]
    broker = redis.Redis.from_url(pipeline_redis)
    assert broker.hlen("unacked") == 1  # acks_late: the running task's message is held

    own_stack.kill(doomed)  # SIGKILL to the worker and its pool child, mid-task

    assert doomed.popen.returncode == -9
    assert broker.hlen("unacked") == 1  # nobody acked it
    assert [(r.status, r.attempts) for r in score_rows(session_id)] == [("pending", 1)]
    # A new worker puts the message back once it is older than the visibility timeout.
    rescuer = own_stack.worker("rescuer", CELERY_VISIBILITY_TIMEOUT="5")
    own_stack.ready(rescuer)
    own_stack.wait("the redelivered task's score", lambda: done_row(session_id), timeout=20)
    score = assert_one_done_score(session_id)
    assert score.attempts == 2  # started twice: once on each worker
    own_stack.wait("the message to be acked", lambda: broker.hlen("unacked") == 0, timeout=5)


@pytest.fixture
def hung_broker() -> Iterator[str]:
    """A TCP port that accepts connections and never answers (a hung Redis)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"redis://127.0.0.1:{sock.getsockname()[1]}/0"


def test_completion_with_a_hung_broker_returns_within_3_s(
    postgres: None, redis_url: str, own_stack: Stack, web_url: str, hung_broker: str
) -> None:
    # Only the broker hangs (CELERY_BROKER_URL); the cache stays on the healthy Redis.
    stuck = own_stack.web("stuck-web", CELERY_BROKER_URL=hung_broker)
    # Answer through the healthy web server, complete through the one whose broker hangs.
    token = session_answer_all(http_call(web_url), small_study().slug)
    session_id = session_id_of(token)
    own_stack.ready(stuck)

    started = time.monotonic()
    status, body = session_complete_http(http_call(stuck.url), token)
    took = time.monotonic() - started

    assert status == 200, body
    assert body["completion_code"]
    assert took < COMPLETE_WITHIN_S, f"completion took {took:.2f} s"
    assert Session.objects.get(pk=session_id).status == "completed"
    assert [r.status for r in score_rows(session_id)] == ["pending"]
    own_stack.wait_log(stuck, f"scoring of session {session_id} not queued", timeout=5)


def test_with_redis_stopped_completion_succeeds_and_the_sweep_scores_it_later(
    postgres: None, redis_url: str, own_stack: Stack
) -> None:
    port = free_port()
    broker_url = f"redis://127.0.0.1:{port}/0"
    redis_proc = own_stack.redis_server(port)
    own_stack.ready(redis_proc)
    web = own_stack.web("web-own-redis", REDIS_URL=broker_url)
    worker = own_stack.worker("worker-own-redis", REDIS_URL=broker_url)
    # The beat schedule of settings, sweeping every second with a 1 s grace period.
    beat = own_stack.beat(
        "beat-own-redis", REDIS_URL=broker_url, SWEEP_SECONDS="1", SWEEP_GRACE_SECONDS="1"
    )
    own_stack.ready(web, worker, beat)
    call = http_call(web.url)
    # Enrolment's throttle counts in the Redis cache, so enrol while Redis is up.
    token = session_answer_all(call, small_study().slug)
    session_id = session_id_of(token)

    own_stack.kill(redis_proc)
    started = time.monotonic()
    status, body = session_complete_http(call, token)
    took = time.monotonic() - started

    assert status == 200, body
    assert took < COMPLETE_WITHIN_S, f"completion took {took:.2f} s"
    assert Session.objects.get(pk=session_id).status == "completed"
    assert [r.status for r in score_rows(session_id)] == ["pending"]
    time.sleep(1.5)  # an outage longer than a sweep period: beat's publishes fail too
    assert [r.status for r in score_rows(session_id)] == ["pending"]

    # Back, empty: the completion's message is lost for good; only the sweep can help.
    own_stack.ready(own_stack.redis_server(port, name="redis-back"))
    own_stack.wait("the swept session's score", lambda: done_row(session_id), timeout=30)
    assert_one_done_score(session_id)
    assert "sweep: 1 unscored sessions queued" in worker.text()


# Score version 2 through the worker and through the command line: a 14-event session with
# eBR, four positive events, overshooting updates, and a study that raises the learning-rate
# bound to 1.5.
V2_E1_OFFSET = (15, -12, 8, -20, 10, -6, 18, -9, 14, -16, 7, -11, 5, -13)
V2_EBR1_OFFSET = (-5, 6, 4, -7, 3, 0, -4, 8, -6, 5, -3, 7, -8, 2)
V2_JITTER = (1, -1, 0, 2, -2, 1, 0, -1, 2, 0, -2, 1, -1, 0)
V2_POSITIVE = ("A03", "A06", "A09", "A12")


def v2_answer(event: str, phase: str, br: int | None) -> int:
    """E2 moves 1.2 of the way to the base rate on odd events (an overshoot), 0.6 on even."""
    if phase == "br":
        assert br is not None
        return br
    if event.startswith("PR"):
        return PRACTICE_E1
    n = int(event[1:])
    base = 20 + 10 * ((n - 1) % 5)
    e1 = base + V2_E1_OFFSET[n - 1]
    ebr1 = base + V2_EBR1_OFFSET[n - 1]
    rate = 1.2 if n % 2 else 0.6
    values = {
        "e1": e1,
        "ebr1": ebr1,
        "e2": e1 + round(rate * (base - e1)) + V2_JITTER[n - 1],
        "ebr2": ebr1 + round(0.5 * (base - ebr1)),
    }
    return values[phase]


def test_the_worker_and_the_command_line_give_the_same_version_2_row(
    postgres: None, redis_url: str, own_stack: Stack, web_url: str, tmp_path: Path
) -> None:
    study = make_study(
        n_events=14, n_timepoints=1, arms=("patients",), collect_ebr=True, lr_max=1.5
    )
    Event.objects.filter(code__in=V2_POSITIVE).update(polarity="positive")
    worker = own_stack.worker()
    call = http_call(web_url)
    token = session_answer_all(call, study.slug, answer=v2_answer)
    session_id = session_id_of(token)
    own_stack.ready(worker)
    assert session_complete_http(call, token)[0] == 200
    own_stack.wait("the done score", lambda: done_row(session_id), timeout=SCORE_WITHIN_S * 2)
    stored = assert_one_done_score(session_id)
    assert stored.score_version == SCORE_VERSION == 2

    # The trials export, as a researcher downloads it, scored by `python -m scoring score`.
    export = trials_query(study=study, sessions=Session.objects.filter(pk=session_id))
    trials_csv = tmp_path / "trials.csv"
    trials_csv.write_bytes(b"".join(csv_python(export)))
    scores_csv = tmp_path / "scores.csv"
    done = subprocess.run(
        [str(VENV_BIN / "python"), "-m", "scoring", "score", str(trials_csv)]
        + ["-o", str(scores_csv), "--lr-max", "1.5"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    cli = pd.read_csv(scores_csv, keep_default_na=False, na_values=[""]).iloc[0]
    assert int(cli["session"]) == session_id
    assert int(cli["score_version"]) == SCORE_VERSION
    assert ("" if pd.isna(cli["flags"]) else cli["flags"]) == ";".join(stored.flags) == ""
    for name in SCORE_COLUMNS:
        if name == "flags":
            continue
        value, mine = stored.values[name], cli[name]
        if value is None:
            assert pd.isna(mine) or mine == "", name
        elif isinstance(value, str):
            assert mine == value, name
        else:
            assert float(mine) == pytest.approx(value, rel=1e-12, abs=1e-12), name

    v = stored.values
    # E1 above BR on events 1, 3, 5, 7, 9, 11, 13, below on the others. Negative events
    # above BR are good news; the positive ones (3, 6, 9, 12) the other way round: good
    # news on 1, 5, 6, 7, 11, 12, 13, bad on 2, 3, 4, 8, 9, 10, 14; the practice excluded.
    assert (v["n_good"], v["n_bad"], v["n_excluded"]) == (7, 7, 1)
    assert (v["ebr_n_good"] + v["ebr_n_bad"]) == 13  # A06's eBR1 equals its base rate
    assert v["best_model"] in ("M0", "M1", "M2")  # 14 valid trials: compared
    assert v["m1_lr_good"] > 1 or v["m1_lr_bad"] > 1  # the study's bound 1.5, not 1
    assert math.isfinite(v["update_bias_ee"])

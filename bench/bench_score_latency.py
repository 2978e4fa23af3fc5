"""Completion-to-score latency on the full stack: web server + Celery worker + PostgreSQL + Redis.

Run: .venv/bin/python bench/bench_score_latency.py [--sessions 200] [--events 40] [--threads 8]

The script starts everything itself: a scratch database (created, migrated with
`manage.py migrate`, dropped at the end), its own redis-server on a free port, the web
server (common.serve, as the Procfile) and a prefork Celery worker (concurrency 2,
prefetch 1, as the Procfile), with the project's settings (psycopg pool on, as deployed).
A pool of threads then plays participants over HTTP: each answers every step of a session of a
40-event list through the participant API and completes it. Enrolment goes through the
enrolment service in-process (the enrol endpoint is throttled to 120 per minute per
address; enrolment is not what is measured).

Latency per session = Score.scored_at - Session.completed_at, both stamped by the
server. Prints p50 / p95 / max against the target (p95 < 2 s) and the baseline: the
in-process time to score and store one session (score_all, and sessions_score with its
queries), i.e. what the latency would be with no queue at all. Exits 1 if p95 >= 2 s
or a session is not scored within a minute.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.scoring.pipeline_fixtures import Stack

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCRATCH_DB = "bw_bench_latency"
P95_TARGET_S = 2.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100])."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def admin_url(url: str) -> str:
    return url.rsplit("/", 1)[0].replace("postgres://", "postgresql://", 1) + "/postgres"


def recreate_database(url: str, name: str, *, drop_only: bool = False) -> None:
    import psycopg

    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> int:
    # `timeout` and Ctrl-C alike: unwind through the finally below, which stops every
    # process and drops the scratch database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432"),
        help="server URL; the scratch database bw_bench_latency is created there",
    )
    args = parser.parse_args()

    database_url = f"{args.postgres.rstrip('/')}/{SCRATCH_DB}"
    recreate_database(database_url, SCRATCH_DB)
    # This process reads and writes the scratch database directly (study, enrolments,
    # timestamps); it never publishes a task.
    os.environ.update(
        DJANGO_SETTINGS_MODULE="belief_web.settings", DATABASE_URL=database_url, DB_POOL="0"
    )
    os.environ.pop("REDIS_URL", None)
    os.environ.pop("CELERY_BROKER_URL", None)
    import django

    django.setup()
    from tests.scoring.pipeline_fixtures import Stack, free_port

    log_dir = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    port = free_port()
    stack = Stack(
        database_url=database_url, redis_url=f"redis://127.0.0.1:{port}/0", log_dir=log_dir
    )
    try:
        return run(args, stack, port)
    finally:
        stack.stop_all()
        from django.db import connections

        connections.close_all()
        recreate_database(database_url, SCRATCH_DB, drop_only=True)


def run(args: argparse.Namespace, stack: Stack, port: int) -> int:
    import subprocess

    import requests
    from django.db.models import F

    from scoring.models import Score
    from scoring.pipeline import score_all
    from scoring.selectors import trials_frame
    from scoring.services import sessions_score
    from tests.factories import make_study
    from tests.scoring.pipeline_fixtures import VENV_BIN, http_call, wait_for
    from trials.models import Session
    from trials.services.enrolment import study_enrol

    started = time.monotonic()
    progress(f"migrating {SCRATCH_DB}")
    subprocess.run(
        [str(VENV_BIN / "python"), "manage.py", "migrate", "--no-input", "-v0"],
        cwd=ROOT,
        env=stack.env(),
        check=True,
    )
    redis = stack.redis_server(port)
    stack.ready(redis)
    # The project's own defaults: psycopg pool on (DB_POOL unset), the Procfile's sizes.
    web = stack.web("web", workers=3, DB_POOL="1")
    worker = stack.worker("worker", concurrency=2, DB_POOL="1")
    stack.ready(web)
    progress(f"web up at {web.url}; creating the study and {args.sessions} enrolments")

    study = make_study(n_events=args.events, n_timepoints=1, arms=("bench",))
    tokens = [str(study_enrol(study=study).session.token) for _ in range(args.sessions)]
    brs = dict(study.study_lists.get().event_list.events.values_list("code", "base_rate"))
    stack.ready(worker, timeout=120)
    setup_s = time.monotonic() - started

    def participant(token: str) -> float:
        rng = random.Random(token)
        http = requests.Session()
        call = http_call(web.url, http)
        status, state = call("GET", f"/api/v1/sessions/{token}", None)
        assert status == 200, state
        e1s: dict[str, int] = {}
        for step in state["steps"]:
            event, phase = step["event"], step["phase"]
            br = brs[event]
            if phase == "e1":
                value = rng.randint(10, 70)
                e1s[event] = value
            elif phase == "br":
                value = br
            else:  # e2: a move toward the base rate, with noise
                e1 = e1s[event]
                value = round(e1 + rng.uniform(0.2, 0.8) * (br - e1) + rng.gauss(0, 3))
                value = min(77, max(3, value))
            status, body = call(
                "POST",
                f"/api/v1/sessions/{token}/responses",
                {
                    "client_id": str(uuid.uuid4()),
                    "event": event,
                    "phase": phase,
                    "value": value,
                    "rt_ms": 2000 + rng.randint(0, 1500),
                    "onset_at": None,
                },
            )
            assert status == 201, (step, body)
        t0 = time.monotonic()
        status, body = call("POST", f"/api/v1/sessions/{token}/complete", None)
        assert status == 200, body
        return time.monotonic() - t0

    progress(f"driving {args.sessions} sessions with {args.threads} threads")
    drive_started = time.monotonic()
    complete_times: list[float] = []
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        for took in pool.map(participant, tokens):
            complete_times.append(took)
            if len(complete_times) % 25 == 0:
                progress(f"{len(complete_times)} sessions completed")
    drive_s = time.monotonic() - drive_started
    steps_per_session = 2 * 1 + 3 * args.events  # practice e1+br; e1, br, e2 per event

    wanted = int(args.sessions)

    def all_scored() -> bool:
        return Score.objects.filter(status=Score.Status.DONE).count() == wanted

    try:
        wait_for("every session scored", all_scored, timeout=60, interval=0.2)
    except AssertionError as exc:
        print(f"FAILED: {exc}\n{stack.logs()}")
        return 1
    latencies = [
        (scored - completed).total_seconds()
        for scored, completed in Score.objects.annotate(
            completed=F("session__completed_at")
        ).values_list("scored_at", "completed")
    ]
    assert len(latencies) == args.sessions
    assert Score.objects.count() == args.sessions
    assert Session.objects.filter(status="completed").count() == args.sessions

    # Baseline: one session scored in this process, with no queue and no worker.
    one = Session.objects.order_by("pk").values_list("pk", flat=True).first()
    assert one is not None
    frame = trials_frame(session_ids=[one])
    compute = []
    store = []
    for _ in range(20):
        t0 = time.perf_counter()
        score_all(frame, min_valid_per_valence=5)
        compute.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sessions_score(session_ids=[one])
        store.append(time.perf_counter() - t0)

    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    worst = max(latencies)
    print(
        f"Completion-to-score latency, {args.sessions} sessions x {args.events} events, "
        f"{args.threads} participant threads over HTTP"
    )
    print(
        f"  machine: {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(
        f"  stack: web server (granian) 3 workers, Celery prefork concurrency 2 prefetch 1, "
        f"PostgreSQL (pool on), redis-server on :{port}; setup {setup_s:.1f} s"
    )
    n_requests = args.sessions * (steps_per_session + 2)
    print(
        f"  driving: {drive_s:.1f} s for {n_requests} requests "
        f"({n_requests / drive_s:.0f} requests/s); POST complete median "
        f"{statistics.median(complete_times) * 1000:.0f} ms"
    )
    print(
        f"  latency: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, max {worst * 1000:.0f} ms"
        f" (target p95 < {P95_TARGET_S:.0f} s)"
    )
    print(
        f"  baseline, one session in-process: score_all {statistics.median(compute) * 1000:.1f}"
        f" ms, sessions_score (read trials + score + store) "
        f"{statistics.median(store) * 1000:.1f} ms (medians of 20)"
    )
    ok = p95 < P95_TARGET_S
    print("  OK" if ok else "  MISSED the p95 target")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

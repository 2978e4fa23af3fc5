"""PostgreSQL restarted while answers arrive: the queue retries, nothing is lost or doubled.

The web server (common.serve, 2 workers) runs against a cluster of this module's own; four
participants answer whole sessions through the participant API like the browser queue; the
cluster is restarted (`pg_ctl restart -m fast`) once every participant is a few answers in.
Then the database is checked row by row, and the web process must answer at once (no pool
left holding dead connections).
"""

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from tests.faults.conftest import Cluster
from tests.faults.processes import WebServer
from tests.faults.queue_client import (
    QueueClient,
    assert_rows_match,
    recovery_gaps,
    rows_sql,
    run_session,
)

pytestmark = [pytest.mark.services]

N_PARTICIPANTS = 4
PAUSE_S = 0.05  # between answers: the restart falls in the middle of every session


@pytest.fixture(scope="module")
def fault_study(pg_cluster: Cluster) -> str:
    pg_cluster.manage(
        "shell",
        "-c",
        "from tests.factories import make_study; "
        "make_study(slug='pgfault', n_events=10, n_practice=1, arms=('main',), n_timepoints=1)",
    )
    return "pgfault"


@pytest.mark.parametrize(
    ("pool", "outage_s"),
    [("1", 0), ("0", 0), ("1", 5)],
    ids=["restart-pool", "restart-no-pool", "5s-outage-pool"],
)
def test_postgres_restart_loses_and_doubles_nothing(
    pg_cluster: Cluster,
    fault_study: str,
    fault_redis: str,
    tmp_path: Path,
    pool: str,
    outage_s: float,
) -> None:
    # The production pool settings (DB_POOL_TIMEOUT 10 s): requests wait that long for a
    # connection while the database is away, longer than the client's 5 s timeout.
    web = WebServer(pg_cluster.url, tmp_path, fault_redis, env={"DB_POOL": pool})
    try:
        boot_s = web.start()
        base = web.url
        clients = [QueueClient(base) for _ in range(N_PARTICIPANTS)]
        completions: dict[int, dict[str, Any]] = {}
        errors: list[BaseException] = []

        def participant(i: int) -> None:
            try:
                completions[i] = run_session(clients[i], fault_study, pause_s=PAUSE_S)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=participant, args=(i,)) for i in range(N_PARTICIPANTS)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while min(len(c.sent) for c in clients) < 5:
            assert time.monotonic() < deadline and not errors, errors
            time.sleep(0.01)
        sent_before = sum(len(c.sent) for c in clients)
        restart_started = time.monotonic()
        if outage_s:
            pg_cluster.pg_ctl("stop", "-m", "fast")
            time.sleep(outage_s)
            pg_cluster.pg_ctl("start", *pg_cluster.start_options())
            restart_s = time.monotonic() - restart_started
        else:
            restart_s = pg_cluster.restart()
        for thread in threads:
            thread.join(timeout=120)
        sessions_s = time.monotonic() - restart_started
        assert not errors, errors
        assert len(completions) == N_PARTICIPANTS

        # Row by row: every answer once, in order, as sent; nothing else in the session.
        with psycopg.connect(pg_cluster.dsn) as db:
            for client in clients:
                rows = db.execute(rows_sql(), (client.token,)).fetchall()
                assert_rows_match(rows, client)
                status, completed = db.execute(
                    "SELECT status, completion_code FROM trials_session WHERE token = %s",
                    (client.token,),
                ).fetchone() or (None, None)
                assert status == "completed"
                assert completed == completions[clients.index(client)]["completion_code"]
            tokens = [c.token for c in clients]
            stored = db.execute(
                "SELECT count(*) FROM trials_response r JOIN trials_session s "
                "ON s.id = r.session_id WHERE s.token = ANY(%s)",
                (tokens,),
            ).fetchone()
            assert stored is not None and stored[0] == sum(len(c.sent) for c in clients)

        # The web process recovered: every request answers at once, on both workers.
        check_started = time.monotonic()
        http = requests.Session()
        for _ in range(40):
            assert http.get(f"{base}/api/v1/sessions/{clients[0].token}", timeout=3).ok
            assert http.get(f"{base}/healthz", timeout=3).status_code == 200
            http.close()  # a new connection each time: either worker may take it
        check_s = time.monotonic() - check_started

        outcomes = [o for c in clients for o in c.outcomes]
        failed = [o for o in outcomes if o.status == 0 or o.status >= 500]
        gaps = [g for c in clients for g in recovery_gaps(c.outcomes)]
        after = [o.at - restart_started for o in failed]
        n_5xx = sum(o.status >= 500 for o in failed)
        print(
            f"\n[pg {'down ' + str(outage_s) + ' s' if outage_s else 'restart'}, DB_POOL={pool}] "
            f"database back after {restart_s:.2f} s; "
            f"answers {sum(len(c.sent) for c in clients)} ({sent_before} before the restart); "
            f"attempts {len(outcomes)}, failed {len(failed)} "
            f"(5xx {n_5xx}, network {len(failed) - n_5xx}), "
            f"failures from {min(after, default=0):.2f} s to {max(after, default=0):.2f} s "
            f"after the restart began; queue recovery max {max(gaps, default=0):.2f} s; "
            f"80 requests after it in {check_s:.2f} s; web server up in {boot_s:.1f} s; "
            f"sessions ended {sessions_s:.1f} s after the restart began"
        )
        assert check_s < 10
    finally:
        web.stop()

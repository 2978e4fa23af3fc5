"""Server time of the dashboard's pages on a study with 5,000 sessions.

Run: .venv/bin/python bench/bench_dashboard.py [--sessions 5000] [--repeat 30] [--keep]

Creates a scratch database (bw_bench_dashboard), migrates it, fills it with the same
builder the tests use (tests/dashboard/builders.bulk_study: 2,500 participants x 2
timepoints, ~86 % completed and scored with plausible values, ~12 % flagged), then times
each page through Django's test client in this process: URL routing, middleware, the
view, its queries against PostgreSQL and the template, i.e. the server's time without
the network. Each page is requested a few times to warm up, then --repeat times.

Baseline: the study list (a light page) in the same run. Target: the results page's
median under 500 ms. Prints a table (median, p90, min, queries per request, response
size) and exits 1 when the target is missed. The scratch database is dropped unless
--keep.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCRATCH = "bw_bench_dashboard"
ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SCRATCH_URL = ADMIN_URL.rsplit("/", 1)[0] + "/" + SCRATCH
TARGET_MS = 500.0


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def _setup_django() -> None:
    os.environ["DATABASE_URL"] = SCRATCH_URL.replace("postgresql://", "postgres://", 1)
    os.environ["DB_POOL"] = "0"  # one connection, kept: the test client runs in-process
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "belief_web.settings")
    import django

    django.setup()


def _time(client, url: str, repeat: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    times = []
    with CaptureQueriesContext(connection) as queries:
        for _ in range(repeat):
            start = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "median": statistics.median(times),
        "p90": times[max(0, int(round(0.9 * len(times))) - 1)],
        "min": times[0],
        "queries": len(queries) / repeat,
        "kb": len(response.content) / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    _admin(f"DROP DATABASE IF EXISTS {SCRATCH}")
    _admin(f"CREATE DATABASE {SCRATCH}")
    try:
        _setup_django()
        from django.core.management import call_command
        from django.test import Client

        call_command("migrate", verbosity=0)
        from tests.dashboard.builders import bulk_study, member
        from trials.models import Session

        start = time.perf_counter()
        study = bulk_study(n_sessions=args.sessions, slug="bench")
        built = time.perf_counter() - start
        n = Session.objects.filter(participant__study=study).count()
        owner, viewer = Client(), Client()
        owner.force_login(member(study, "owner", username="bench-owner"))
        viewer.force_login(member(study, "viewer", username="bench-viewer"))

        pages = [
            ("study list (baseline)", owner, "/dashboard/"),
            ("overview", owner, "/dashboard/s/bench/"),
            ("overview JSON (polled)", owner, "/dashboard/s/bench/overview.json"),
            ("results, owner (per-session charts)", owner, "/dashboard/s/bench/results/"),
            ("results, viewer (aggregates)", viewer, "/dashboard/s/bench/results/"),
            ("sessions table, page 1", owner, "/dashboard/s/bench/sessions/"),
            (
                "sessions table, flag=any, page 3",
                owner,
                "/dashboard/s/bench/sessions/?flag=any&page=3",
            ),
        ]
        print(
            f"{n} sessions built in {built:.1f} s; Python {platform.python_version()}, "
            f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
            f"{args.repeat} requests per page after 3 warm-ups"
        )
        print()
        print("| page | median ms | p90 ms | min ms | queries | KiB |")
        print("|---|---|---|---|---|---|")
        figures = {}
        for name, client, url in pages:
            figures[name] = f = _time(client, url, args.repeat)
            print(
                f"| {name} | {f['median']:.1f} | {f['p90']:.1f} | {f['min']:.1f} | "
                f"{f['queries']:.0f} | {f['kb']:.0f} |"
            )
        results = figures["results, owner (per-session charts)"]["median"]
        baseline = figures["study list (baseline)"]["median"]
        print()
        print(
            f"results page: {results:.1f} ms median, {results / baseline:.1f}x the study "
            f"list; target < {TARGET_MS:.0f} ms: {'met' if results < TARGET_MS else 'MISSED'}"
        )
        return 0 if results < TARGET_MS else 1
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            _admin(f"DROP DATABASE IF EXISTS {SCRATCH}")


if __name__ == "__main__":
    sys.exit(main())

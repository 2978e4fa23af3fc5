"""Load benchmark of the participant API against the full stack on this machine.

    .venv/bin/python -m bench.load.run [--participants 2000] [--pause 3] [--events 12] ...

One run: a scratch database, the production web server (granian through common.serve; or
gunicorn's sync or gthread workers, the server before it), a Celery worker and Redis; two
ceilings (a bare view inserting one row behind the production middleware, and the same view
with no middleware at all), the response endpoint at 64 connections and its ratios to
both, realistic participants with a pause between answers, a row-by-row check of
every answer sent against the Response table, the completion-to-score lag, the queries
per request, an optional py-spy profile per layer, and the levers (workers, pool / persistent
/ no connections, the participant API lane, the WSGI server).
Everything is stopped and the database dropped at the end, also on Ctrl-C or an error.
"""

import argparse
import asyncio
import math
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: python bench/load/run.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.load import profile as spy, scenarios  # noqa: E402
from bench.load.loadgen import CpuMeter, children_of, percentile  # noqa: E402
from bench.load.stack import (  # noqa: E402
    ROOT,
    Stack,
    database_drop,
    database_recreate,
    free_port,
    redis_claim,
    redis_flush,
)

SHORT_SLUG = "load-short"


@dataclass
class Round:
    """One alternation: the ORM ceiling, the bare insert, the endpoint."""

    ceiling: dict[str, Any]
    bare: dict[str, Any]
    endpoint: dict[str, Any]
    c_cpu: dict[str, float]
    b_cpu: dict[str, float]
    e_cpu: dict[str, float]

    @property
    def ratio(self) -> float:
        return _ratio(self.endpoint["per_s"], self.ceiling["per_s"])

    @property
    def bare_ratio(self) -> float:
        return _ratio(self.endpoint["per_s"], self.bare["per_s"])

    @property
    def cpu_ratio(self) -> float:
        return _ratio(server_ms(self.c_cpu), server_ms(self.e_cpu))

    @property
    def bare_cpu_ratio(self) -> float:
        return _ratio(server_ms(self.b_cpu), server_ms(self.e_cpu))


@dataclass
class Lever:
    """One configuration of the levers phase."""

    key: str
    label: str
    workers: int
    env: dict[str, str]
    server: str = "granian"
    threads: int = 2


def _ratio(x: float, y: float) -> float:
    return x / y if y else float("nan")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.load.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--participants", type=int, default=2000, help="realistic participants")
    p.add_argument("--pause", type=float, default=3.0, help="mean s between answers (+-25 %%)")
    p.add_argument(
        "--events",
        type=int,
        default=20,
        help="events of the realistic phase's study (3 steps each, no practice); "
        "0: the demo study (2 practice + 40 events = 124 steps, ~6 min per session)",
    )
    p.add_argument("--ramp", type=float, default=90.0, help="s over which participants enrol")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--seconds", type=float, default=8.0, help="ceiling / endpoint duration")
    p.add_argument("--rounds", type=int, default=5, help="ceiling / endpoint alternations")
    p.add_argument("--warmup", type=float, default=2.0, help="s excluded before each measure")
    p.add_argument("--workers", type=int, default=2, help="web server worker processes")
    p.add_argument(
        "--server",
        choices=["granian", "sync", "gthread"],
        default="granian",
        help="production's (granian, common.serve), gunicorn sync or gthread workers",
    )
    p.add_argument(
        "--threads", type=int, default=0, help="threads per worker (0: granian 2, gthread 4)"
    )
    p.add_argument(
        "--profile",
        type=float,
        default=0.0,
        help="s of py-spy profile of the web workers per phase (endpoint, ceilings); 0: none",
    )
    p.add_argument(
        "--profile-before",
        action="store_true",
        help="profile first with the levers put back (no lane, the old throttle read)",
    )
    p.add_argument("--celery-concurrency", type=int, default=2)
    p.add_argument("--lever-seconds", type=float, default=8.0)
    p.add_argument("--lever-rounds", type=int, default=3, help="alternations of the levers")
    p.add_argument(
        "--levers", default="", help="comma-separated lever keys (default: all; see the code)"
    )
    p.add_argument("--no-levers", action="store_true", help="skip the workers / pool sweep")
    p.add_argument("--no-realistic", action="store_true", help="skip the realistic phase")
    p.add_argument("--no-wrk", action="store_true", help="skip the wrk cross-check")
    p.add_argument("--only-queries", action="store_true", help="only count the queries per request")
    p.add_argument("--db", default="bw_bench_load", help="scratch database (dropped!)")
    p.add_argument("--pg", default="postgres@127.0.0.1:5432", help="user@host:port, trust auth")
    p.add_argument("--redis", default="127.0.0.1:6379", help="host:port of a Redis server")
    p.add_argument("--redis-db", type=int, default=14, help="an empty Redis db, flushed at the end")
    p.add_argument("--port", type=int, default=0, help="gunicorn port (0: a free one)")
    p.add_argument("--keep-db", action="store_true", help="do not drop the database at the end")
    args = p.parse_args(argv)
    args.threads = args.threads or {"granian": 2, "gthread": 4, "sync": 0}[args.server]
    return args


def loadavg() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def fmt_ms(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.1f}"


def print_summary(label: str, s: dict[str, Any]) -> None:
    errors = sum(s["errors"].values())
    detail = f" {s['errors']}" if errors else ""
    print(
        f"  {label:<28} {s['per_s']:8.1f}/s  ok {s['ok']:6d}  errors {errors}{detail}  "
        f"p50 {fmt_ms(s['p50_ms'])}  p95 {fmt_ms(s['p95_ms'])}  p99 {fmt_ms(s['p99_ms'])}  "
        f"max {fmt_ms(s['max_ms'])} ms"
    )


def print_cpu(cpu: dict[str, float]) -> None:
    parts = [f"{k} {v:.0f}%" for k, v in cpu.items() if not k.startswith(("ms ", "kernel"))]
    if "kernel share of web workers" in cpu:
        parts.append(
            f"of which kernel (system time) {100 * cpu['kernel share of web workers']:.0f}%"
        )
    print("  CPU (% of one core): " + ", ".join(parts))
    per = [f"{k[3:]} {v:.2f} ms" for k, v in cpu.items() if k.startswith("ms ")]
    if per:
        print("  CPU per request, robust to the machine's load: " + ", ".join(per))


def server_ms(cpu: dict[str, float]) -> float:
    """The server's CPU milliseconds per request: web workers plus PostgreSQL backends."""
    return cpu.get("ms web workers", 0.0) + cpu.get("ms postgres backends", 0.0)


def cpu_per_request(cpu: dict[str, float], wall: float, requests: int) -> None:
    """Adds the CPU milliseconds per request of the server's processes (warm-up included)."""
    for group in ("web workers", "postgres backends"):
        if requests and group in cpu:
            cpu[f"ms {group}"] = cpu[group] / 100 * wall / requests * 1000


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        user, _, hostport = args.pg.partition("@")
        self.admin_url = f"postgresql://{user}@{hostport}/postgres"
        self.db_url = f"postgres://{user}@{hostport}/{args.db}"
        self.redis_url = f"redis://{args.redis}/{args.redis_db}"
        self.port = args.port or free_port()
        self.log_dir = Path(tempfile.mkdtemp(prefix="bench-load-"))
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.load.settings_bench",
            "DATABASE_URL": self.db_url,
            "REDIS_URL": self.redis_url,
            "DB_POOL": "1",
            "DEBUG": "0",
            "PRODUCTION": "0",
            "LOG_LEVEL": "WARNING",
            # As behind one proxy: the throttles key on the X-Forwarded-For each virtual
            # participant sends (a distinct address each, as 2,000 browsers have).
            "TRUSTED_PROXY_COUNT": "1",
            "PYTHONPATH": str(ROOT),
        }
        self.stack = Stack(port=self.port, env=self.env, log_dir=self.log_dir)
        self.results: dict[str, Any] = {}
        self.log: scenarios.AnswerLog = []
        self.redis_owned = False

    # -- setup ------------------------------------------------------------------------
    def setup(self) -> None:
        a = self.args
        t0 = time.perf_counter()
        redis_claim(self.redis_url)
        self.redis_owned = True
        database_recreate(self.admin_url, a.db)
        os.environ.update({k: v for k, v in self.env.items() if k != "PYTHONPATH"})
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", run_syncdb=True, verbosity=0)
        from trials.services.demo import demo_study_load

        demo_study_load()
        if a.events:
            sys.path.insert(0, str(ROOT))
            from tests.factories import make_study

            make_study(
                n_events=a.events, n_practice=0, n_timepoints=1, slug=SHORT_SLUG, min_br_view_ms=0
            )
        print(
            f"setup: database {a.db} (migrated, demo study loaded"
            + (f", study {SHORT_SLUG} with {a.events} events" if a.events else "")
            + f") in {time.perf_counter() - t0:.1f} s"
        )

    def server_label(self) -> str:
        a = self.args
        if a.server == "granian":
            return f"granian (common.serve) x{a.workers}, {a.threads} threads each, keep-alive"
        if a.server == "gthread":
            return f"gunicorn gthread x{a.workers}, {a.threads} threads each, keep-alive"
        return f"gunicorn sync x{a.workers}"

    def stack_start(self) -> None:
        a = self.args
        self.stack.worker_start(concurrency=a.celery_concurrency)
        self.stack.web_start(workers=a.workers, threads=a.threads, server=a.server)
        print(
            f"stack: {self.server_label()} on 127.0.0.1:{self.port}, DB_POOL on, "
            f"Celery worker (concurrency {a.celery_concurrency}), Redis {self.redis_url}; "
            f"logs in {self.log_dir}"
        )

    def pids(self) -> dict[str, list[int]]:
        from django.db import connection

        groups: dict[str, list[int]] = {}
        if self.stack.web is not None:
            groups["web workers"] = self.stack.web_pids()
        if self.stack.worker is not None:
            groups["celery"] = [self.stack.worker.pid, *children_of(self.stack.worker.pid)]
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                [self.args.db],
            )
            groups["postgres backends"] = [r[0] for r in cursor.fetchall()]
        return groups

    # -- queries per request --------------------------------------------------------------
    def query_counts(self) -> None:
        """Queries per participant request, counted in-process on the scratch database."""
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        client = Client()
        counts: dict[str, list[int]] = defaultdict(list)
        samples: dict[str, list[str]] = {}

        def call(name: str, method: str, path: str, body: Any = None) -> Any:
            with CaptureQueriesContext(connection) as q:
                if method == "GET":
                    r = client.get(path)
                else:
                    r = client.post(
                        path,
                        body or {},
                        content_type="application/json",
                        HTTP_X_FORWARDED_FOR=scenarios.fresh_ip(),
                    )
            assert r.status_code in (200, 201), (path, r.status_code, r.content[:300])
            counts[name].append(len(q.captured_queries))
            samples.setdefault(name, [x["sql"] for x in q.captured_queries])
            return r.json()

        # The short study: the demo study's sessions begin with questionnaire items now,
        # whose bodies the generator does not write.
        slug = SHORT_SLUG if self.args.events else "demo"
        token = call("enrol", "POST", f"/api/v1/studies/{slug}/enrol", {"consent": True})[
            "session_token"
        ]
        state = call("state (GET session)", "GET", f"/api/v1/sessions/{token}")
        plan = scenarios.Plan(
            token=token,
            steps=[(s["event"], s["phase"]) for s in state["steps"]],
            scale=(state["scale"]["min"], state["scale"]["max"]),
            min_br_view_ms=state["config"]["min_br_view_ms"],
        )
        for event, phase in plan.steps:
            body = scenarios._answer_body(plan, event, phase)
            out = call(f"response {phase}", "POST", f"/api/v1/sessions/{token}/responses", body)
            if phase == "e1":
                plan.brs[event] = out["br"]
        call("complete", "POST", f"/api/v1/sessions/{token}/complete")
        print("\nqueries per request (django.test.utils.CaptureQueriesContext, demo study):")
        for name, ns in counts.items():
            c = Counter(ns)
            print(f"  {name:<24} {dict(sorted(c.items()))}  (count: n requests)")
        for name in ("response e1", "response br", "response e2"):
            print(f"  SQL of one {name}:")
            for sql in samples.get(name, []):
                print(f"    {sql[:150]}")
        self.results["queries"] = {k: sorted(set(v)) for k, v in counts.items()}

    def enrol_local(self, slug: str, n: int) -> list[scenarios.Plan]:
        """n sessions enrolled in this process (the enrolment service, as the API calls it)
        and read as GET session reads them: the closed loops' supply, not measured."""
        from trials.models import Study
        from trials.selectors import session_state
        from trials.services.enrolment import study_enrol

        t0 = time.perf_counter()
        study = Study.objects.get(slug=slug)
        plans = []
        for _ in range(n):
            session = study_enrol(study=study, source="api").session
            state = session_state(session=session)
            plans.append(
                scenarios.Plan(
                    token=session.token,
                    steps=[(s["event"], s["phase"]) for s in state["steps"]],
                    scale=(state["scale"]["min"], state["scale"]["max"]),
                    min_br_view_ms=state["config"]["min_br_view_ms"],
                )
            )
        print(
            f"  ({n} {slug} sessions of {len(plans[0].steps)} steps enrolled in-process "
            f"beforehand in {time.perf_counter() - t0:.1f} s)"
        )
        return plans

    # -- ceiling and endpoint ---------------------------------------------------------------
    def ceiling(self, path: str, seconds: float) -> tuple[dict[str, Any], dict[str, float]]:
        a = self.args
        meter = CpuMeter(self.pids)
        meter.start()
        rec, start, end = asyncio.run(
            scenarios.closed_loop_ceiling(
                self.port, path, connections=a.connections, seconds=seconds, warmup=a.warmup
            )
        )
        cpu = meter.stop()
        cpu_per_request(cpu, meter.wall, len(rec.samples["ceiling"]))
        cpu["kernel share of web workers"] = meter.kernel_share
        s = rec.summary("ceiling", start, end)
        s["errors"].update(rec.errors.get("ceiling", {}))
        return s, cpu

    def endpoint(
        self, seconds: float, ceiling_rps: float
    ) -> tuple[dict[str, Any], dict[str, float]]:
        a = self.args
        plans = self.supply(ceiling_rps * (seconds + a.warmup))
        meter = CpuMeter(self.pids)
        meter.start()
        rec, start, end, ran_out = asyncio.run(
            scenarios.closed_loop_responses(
                self.port,
                plans,
                connections=a.connections,
                seconds=seconds,
                warmup=a.warmup,
                log=self.log,
            )
        )
        cpu = meter.stop()
        cpu_per_request(cpu, meter.wall, len(rec.samples["response"]))
        cpu["kernel share of web workers"] = meter.kernel_share
        s = rec.summary("response", start, end)
        s["errors"].update(rec.errors.get("response", {}))
        if ran_out:
            s["errors"]["client ran out of sessions"] = ran_out
        return s, cpu

    def supply(self, answers: float) -> list[scenarios.Plan]:
        """Demo sessions with at least `answers` steps left in all and two per connection:
        the sessions of earlier phases that are not finished, topped up with new ones
        (enrolled in-process), so that the levers' phases do not each enrol their own."""
        a = self.args
        pool = self.__dict__.setdefault("plan_pool", [])
        pool[:] = [p for p in pool if not p.done and not p.broken]
        left = sum(len(p.steps) - p.next for p in pool)
        slug, steps = (SHORT_SLUG, 3 * a.events) if a.events else ("demo", 124)
        missing = max(0, math.ceil((answers - left) / steps), 2 * a.connections - len(pool))
        if missing:
            new = self.enrol_local(slug, math.ceil(missing / a.connections) * a.connections)
            self.tokens_checked.extend(p.token for p in new)
            pool.extend(new)
        return list(pool)

    def wrk_check(self, seconds: float) -> None:
        wrk = shutil.which("wrk")
        if wrk is None or self.args.no_wrk:
            return
        script = self.log_dir / "ceiling.lua"
        script.write_text(
            'wrk.method = "POST"\nwrk.body = \'{"value": 1}\'\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
        out = subprocess.run(
            [
                wrk,
                "-t1",
                f"-c{self.args.connections}",
                f"-d{int(seconds)}s",
                "--latency",
                "-s",
                str(script),
                f"http://127.0.0.1:{self.port}/bench/ceiling",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=False,
        ).stdout
        keep = [
            line.strip()
            for line in out.splitlines()
            if line.strip().startswith(("50%", "99%", "Requests/sec", "Non-2xx", "Socket"))
        ]
        print(f"  wrk cross-check of the ORM ceiling ({int(seconds)} s): " + "; ".join(keep))

    # -- profile ------------------------------------------------------------------------------
    def profile(self, seconds: float) -> None:
        """py-spy on every web worker during an endpoint phase and both ceilings' phases."""
        a = self.args
        print(
            f"\nprofiles (py-spy record, 100 Hz, {seconds:.0f} s per phase from the end of the "
            f"warm-up, every web worker; rates under the profiler are not figures); {loadavg()}"
        )
        # The endpoint's sessions are enrolled before the profiler starts.
        plans = self.supply(800 * (seconds + a.warmup))
        for i, (title, path) in enumerate(
            [
                ("response endpoint", ""),
                ("ceiling (ORM insert, production middleware)", "/bench/ceiling"),
                ("bare insert (no middleware)", "/bench/bare"),
            ]
        ):
            files: list[Path] = []

            async def delayed(
                prefix: Path = self.log_dir / f"profile-{i}", files: list[Path] = files
            ) -> None:
                await asyncio.sleep(a.warmup)
                files.extend(spy.record(self.stack.web_pids(), seconds, prefix))

            async def phase(path: str = path) -> Any:
                spy_task = asyncio.create_task(delayed())
                if path:
                    out: Any = await scenarios.closed_loop_ceiling(
                        self.port,
                        path,
                        connections=a.connections,
                        seconds=seconds,
                        warmup=a.warmup,
                    )
                else:
                    out = await scenarios.closed_loop_responses(
                        self.port,
                        plans,
                        connections=a.connections,
                        seconds=seconds,
                        warmup=a.warmup,
                        log=self.log,
                    )
                await spy_task
                return out

            asyncio.run(phase())
            time.sleep(2)  # py-spy writes its file when its duration ends
            spy.print_layers(title, spy.layers(files))
            print(f"    (raw stacks: {self.log_dir}/profile-{i}-<pid>.raw)")

    # -- realistic participants --------------------------------------------------------------
    def realistic(self) -> None:
        a = self.args
        slug = SHORT_SLUG if a.events else "demo"
        steps = 3 * a.events if a.events else 124
        session_s = (steps + 1) * a.pause
        limit = a.ramp + session_s * 1.25 + 120
        print(
            f"\nrealistic: {a.participants} participants on study '{slug}' ({steps} steps each), "
            f"enrolling over {a.ramp:.0f} s, {a.pause:.1f} s +-25 % between answers "
            f"(~{session_s:.0f} s per session), time limit {limit:.0f} s; offered load once all "
            f"have enrolled: {a.participants / a.pause:.0f} responses/s"
        )
        meter = CpuMeter(self.pids)
        meter.start()
        t0 = time.perf_counter()
        log: scenarios.AnswerLog = []
        rec, tl = asyncio.run(
            scenarios.realistic(
                self.port,
                slug,
                participants=a.participants,
                pause=a.pause,
                ramp=a.ramp,
                log=log,
                time_limit=limit,
            )
        )
        t1 = time.perf_counter()
        cpu = meter.stop()
        self.log.extend(log)
        self.tokens_checked.extend(tl.tokens)
        print(f"  ran {t1 - t0:.0f} s; {loadavg()}")
        print(
            f"  enrolled {len(tl.enrolled)}, completed sessions {len(tl.completed_tokens)}, "
            f"participants who failed {tl.failed}"
        )
        results: dict[str, Any] = {"seconds": t1 - t0, "completed": len(tl.completed_tokens)}
        results["failed"] = tl.failed
        for name in ("enrol", "state", "response", "complete"):
            s = rec.summary(name)
            results[name] = s
            print_summary(f"{name} (whole run)", s)
        if tl.enrolled and tl.completing:
            w0, w1 = max(tl.enrolled), min(tl.completing)
            if w1 > w0:
                s = rec.summary("response", w0, w1)
                results["steady"] = {"seconds": w1 - w0, **s}
                print(
                    f"  steady state: all {len(tl.enrolled)} participants enrolled and none "
                    f"completed yet, for {w1 - w0:.0f} s:"
                )
                print_summary("response (steady state)", s)
            else:
                print("  no steady state: the first completion came before the last enrolment")
        print_cpu(cpu)
        self.results["realistic"] = results
        self.realistic_completed = tl.completed_tokens

    # -- checks -------------------------------------------------------------------------------
    def verify(self) -> None:
        """Every answer the clients sent, compared with the Response table, row by row."""
        from trials.models import Response

        rows = list(
            Response.objects.filter(session__token__in=self.tokens_checked).values_list(
                "client_id", "session__token", "event__code", "phase", "value"
            )
        )
        stored: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        per_step: Counter[tuple[str, str, str]] = Counter()
        for cid, token, event, phase, value in rows:
            stored[str(cid)].append((token, event, phase, value))
            per_step[(token, event, phase)] += 1
        sent = {e[0]: e for e in self.log}
        acked = [e for e in self.log if e[5]]
        lost = sum(1 for e in acked if e[0] not in stored)
        wrong = sum(
            1 for e in acked if e[0] in stored and stored[e[0]][0] != (e[1], e[2], e[3], e[4])
        )
        duplicated = sum(n - 1 for n in per_step.values() if n > 1) + sum(
            len(v) - 1 for v in stored.values() if len(v) > 1
        )
        unknown = sum(1 for cid in stored if cid not in sent)
        unacked_stored = sum(1 for e in self.log if not e[5] and e[0] in stored)
        print(
            f"\nrow-by-row check over {len(self.tokens_checked)} sessions: "
            f"{len(self.log)} answers sent, {len(acked)} acknowledged, {len(rows)} rows stored; "
            f"lost {lost}, stored with other values {wrong}, duplicated {duplicated}, "
            f"rows no client sent {unknown}, unacknowledged but stored {unacked_stored}"
        )
        self.results["check"] = {
            "sent": len(self.log),
            "acked": len(acked),
            "rows": len(rows),
            "lost": lost,
            "wrong": wrong,
            "duplicated": duplicated,
            "unknown": unknown,
        }

    def score_lag(self, timeout: float = 180.0) -> None:
        from scoring.models import Score

        tokens = getattr(self, "realistic_completed", [])
        if not tokens:
            return
        deadline = time.monotonic() + timeout
        while True:
            done = Score.objects.filter(
                session__token__in=tokens, status__in=["done", "failed"]
            ).count()
            if done >= len(tokens) or time.monotonic() > deadline:
                break
            time.sleep(1)
        rows = list(
            Score.objects.filter(session__token__in=tokens, scored_at__isnull=False).values_list(
                "status", "scored_at", "session__completed_at"
            )
        )
        lags = sorted((s - c).total_seconds() for _, s, c in rows if s and c)
        status = Counter(r[0] for r in rows)
        print(
            f"completion-to-score lag (Score.scored_at - Session.completed_at) over "
            f"{len(rows)}/{len(tokens)} completed sessions {dict(status)}: "
            f"p50 {percentile(lags, 50):.2f} s, p95 {percentile(lags, 95):.2f} s, "
            f"max {(lags[-1] if lags else float('nan')):.2f} s"
        )
        self.results["score_lag"] = (percentile(lags, 50), percentile(lags, 95), len(rows))

    # -- levers -------------------------------------------------------------------------------
    def lever_configs(self) -> list[Lever]:
        a = self.args
        w = a.workers
        t = a.threads
        base = Lever(
            "baseline",
            f"{a.server} {w} workers x {t} threads, DB_POOL on, the lanes",
            w,
            {},
            a.server,
            t,
        )
        return [
            base,
            *(
                Lever(key, label, w, env, a.server, t)
                for key, label, env in [
                    ("no-answer-lane", "every answer through Django", {"ANSWER_LANE": "0"}),
                    ("no-lane", "without the participant API lane", {"BENCH_LANE": "0"}),
                    (
                        "old-throttle-read",
                        "throttle read as before: MGET of 2 keys via redis-py's pool",
                        {"BENCH_THROTTLE_READ": "old"},
                    ),
                    (
                        "pool-check-full",
                        "pool checkout check as before: a round trip each time",
                        {"DB_POOL_CHECK": "full"},
                    ),
                    ("no-pool-check", "pool without its checkout check", {"DB_POOL_CHECK": "0"}),
                    ("no-access-log", "without the access log", {"ACCESS_LOG": "0"}),
                ]
            ),
            Lever("sync-3", "gunicorn 3 sync workers (production before)", 3, {}, "sync", 0),
            Lever(
                "gthread", "gunicorn 3 gthread workers x 4 threads, keep-alive", 3, {}, "gthread", 4
            ),
            Lever("granian-3x1", "granian 3 workers x 1 thread", 3, {}, "granian", 1),
            Lever("granian-1x4", "granian 1 worker x 4 threads", 1, {}, "granian", 4),
            Lever("granian-3x2", "granian 3 workers x 2 threads", 3, {}, "granian", 2),
        ]

    def levers(self) -> None:
        """Each lever against the baseline, in alternation: every round restarts the web
        server once per configuration and measures the bare insert, then the endpoint."""
        a = self.args
        configs = self.lever_configs()
        if a.levers:
            wanted = set(a.levers.split(","))
            configs = [configs[0], *[c for c in configs[1:] if c.key in wanted]]
        print(
            f"\nlevers: {a.lever_rounds} rounds, each configuration once per round "
            f"({a.lever_seconds:.0f} s bare insert, then {a.lever_seconds:.0f} s endpoint, "
            f"{a.connections} connections):"
        )
        seen: dict[str, list[tuple[dict[str, Any], dict[str, Any], dict[str, float]]]] = {}
        for r in range(a.lever_rounds):
            for lever in configs:
                self.stack.web_start(
                    workers=lever.workers,
                    extra_env=lever.env,
                    threads=lever.threads,
                    server=lever.server,
                )
                print(f" round {r + 1}, {lever.key}: {lever.label}; {loadavg()}")
                b, _ = self.ceiling("/bench/bare", a.lever_seconds)
                print_summary("bare (no middleware)", b)
                e, cpu = self.endpoint(a.lever_seconds, max(b["per_s"], 300))
                print_summary("response endpoint", e)
                print_cpu(cpu)
                seen.setdefault(lever.key, []).append((b, e, cpu))
        base = seen["baseline"]
        print(
            f"\n  {'lever':<14} endpoint/s  x baseline (rounds)        ratio to bare  "
            "web ms/answer  pg ms/answer  p99 ms"
        )
        rows = []
        for lever in configs:
            runs = seen[lever.key]
            rates = [e["per_s"] for _, e, _ in runs]
            gain = [
                _ratio(e["per_s"], be["per_s"])
                for (_, e, _), (_, be, _) in zip(runs, base, strict=True)
            ]
            bare = [_ratio(e["per_s"], b["per_s"]) for b, e, _ in runs]
            web = [c.get("ms web workers", 0.0) for _, _, c in runs]
            pg = [c.get("ms postgres backends", 0.0) for _, _, c in runs]
            p99 = [e["p99_ms"] for _, e, _ in runs]
            row = (
                lever.key,
                statistics.median(rates),
                statistics.median(gain),
                gain,
                statistics.median(bare),
                statistics.median(web),
                statistics.median(pg),
                statistics.median(p99),
            )
            rows.append(row)
            gains = ", ".join(f"{g:.2f}" for g in gain)
            print(
                f"  {lever.key:<14} {row[1]:10.0f}  {row[2]:5.2f} ({gains:<20}) "
                f"{row[4]:5.2f}  {row[5]:13.2f}  {row[6]:12.2f}  {row[7]:6.0f}"
            )
        self.results["levers"] = rows
        self.stack.web_start(workers=a.workers, threads=a.threads, server=a.server)

    def closed_loops(self) -> None:
        """Both ceilings and the endpoint at full speed, alternating over the rounds."""
        a = self.args
        print(
            f"\nceiling and endpoint: {a.connections} connections, {a.rounds} rounds of "
            f"{a.seconds:.0f} s each after {a.warmup:.0f} s warm-up, alternating, same generator; "
            f"{loadavg()}"
        )
        c_cur, cpu = self.ceiling("/bench/ceiling-cursor", a.seconds)
        print_summary("ceiling (cursor insert)", c_cur)
        print_cpu(cpu)
        self.wrk_check(a.seconds)
        # The machine's speed drifts within a run (other tenants): the ceilings and the
        # endpoint are measured in alternation and each ratio is the median of the rounds'.
        rounds = []
        for i in range(a.rounds):
            print(f" round {i + 1}; {loadavg()}")
            c, c_cpu = self.ceiling("/bench/ceiling", a.seconds)
            print_summary("ceiling (ORM insert)", c)
            print_cpu(c_cpu)
            b, b_cpu = self.ceiling("/bench/bare", a.seconds)
            print_summary("bare (no middleware)", b)
            print_cpu(b_cpu)
            e, e_cpu = self.endpoint(a.seconds, max(c["per_s"], b["per_s"]))
            print_summary("response endpoint", e)
            print_cpu(e_cpu)
            r = Round(c, b, e, c_cpu, b_cpu, e_cpu)
            print(
                f"  ratio to the ceiling {r.ratio:.2f}, to the bare insert {r.bare_ratio:.2f}; "
                f"server CPU per request ratios {r.cpu_ratio:.2f}, {r.bare_cpu_ratio:.2f}"
            )
            rounds.append(r)
        ratio = statistics.median(r.ratio for r in rounds)
        cpu_ratio = statistics.median(r.cpu_ratio for r in rounds)
        bare_ratio = statistics.median(r.bare_ratio for r in rounds)
        bare_cpu_ratio = statistics.median(r.bare_cpu_ratio for r in rounds)
        median = sorted(rounds, key=lambda r: r.bare_ratio)[len(rounds) // 2]
        c_orm, bare, e = median.ceiling, median.bare, median.endpoint

        def listed(values: list[float]) -> str:
            return ", ".join(f"{v:.2f}" for v in values)

        print(
            f"  ratio endpoint / ORM ceiling, median of {a.rounds} rounds: {ratio:.2f} "
            f"(rounds: {listed([r.ratio for r in rounds])})\n"
            f"  ratio endpoint / bare insert (no middleware), median: {bare_ratio:.2f} "
            f"(rounds: {listed([r.bare_ratio for r in rounds])}; target >= 0.6)\n"
            f"  server CPU per request (web workers + postgres), ceiling / endpoint, median: "
            f"{cpu_ratio:.2f} (rounds: {listed([r.cpu_ratio for r in rounds])}); "
            f"bare / endpoint {bare_cpu_ratio:.2f} "
            f"(rounds: {listed([r.bare_cpu_ratio for r in rounds])})\n"
            f"  web worker CPU per request, median of rounds: ceiling "
            f"{statistics.median(r.c_cpu.get('ms web workers', 0) for r in rounds):.2f} ms, bare "
            f"{statistics.median(r.b_cpu.get('ms web workers', 0) for r in rounds):.2f} ms, "
            f"endpoint {statistics.median(r.e_cpu.get('ms web workers', 0) for r in rounds):.2f} "
            f"ms; postgres: "
            f"{statistics.median(r.c_cpu.get('ms postgres backends', 0) for r in rounds):.2f}, "
            f"{statistics.median(r.b_cpu.get('ms postgres backends', 0) for r in rounds):.2f}, "
            f"{statistics.median(r.e_cpu.get('ms postgres backends', 0) for r in rounds):.2f} ms\n"
            f"  endpoint p99 in the median round {fmt_ms(e['p99_ms'])} ms (the ceiling's "
            f"{fmt_ms(c_orm['p99_ms'])} ms, the bare insert's {fmt_ms(bare['p99_ms'])} ms)"
        )
        self.results.update(
            ceiling_orm=c_orm,
            ceiling_cursor=c_cur,
            bare=bare,
            endpoint=e,
            ratio=ratio,
            cpu_ratio=cpu_ratio,
            bare_ratio=bare_ratio,
            bare_cpu_ratio=bare_cpu_ratio,
        )

    # -- the run ------------------------------------------------------------------------------
    def run(self) -> int:
        a = self.args
        self.tokens_checked: list[str] = []
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            or "(not a git checkout)"
        )
        print(
            f"bench/load at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC, commit {commit}, "
            f"{os.cpu_count()} cores, {loadavg()}"
        )
        print("options: " + ", ".join(f"{k}={v}" for k, v in vars(a).items()))
        self.setup()
        self.query_counts()
        if a.only_queries:
            return 0
        self.stack_start()

        if a.rounds:
            self.closed_loops()
        if a.profile:
            if a.profile_before:
                # The same profile with the code put back as before issue 17's levers.
                before = {"BENCH_LANE": "0", "BENCH_THROTTLE_READ": "old"}
                self.stack.web_start(
                    workers=a.workers, threads=a.threads, server=a.server, extra_env=before
                )
                print("\nprofile BEFORE: " + ", ".join(f"{k}={v}" for k, v in before.items()))
                self.profile(a.profile)
                self.stack.web_start(workers=a.workers, threads=a.threads, server=a.server)
                print("\nprofile AFTER (the code as it is)")
            self.profile(a.profile)
        if not a.no_realistic:
            self.realistic()
        self.verify()
        self.score_lag()
        if not a.no_levers:
            self.levers()
        self.summary()
        check = self.results["check"]
        return 0 if check["lost"] == check["duplicated"] == check["wrong"] == 0 else 1

    def summary(self) -> None:
        r = self.results
        print(f"\n== summary ({loadavg()})")
        if "endpoint" in r:
            self.summary_closed_loops()
        self.summary_rest()

    def summary_closed_loops(self) -> None:
        r = self.results
        c, e = r["ceiling_orm"], r["endpoint"]
        print(
            f"ceiling (ORM insert) {c['per_s']:.0f}/s p50/p95/p99 {fmt_ms(c['p50_ms'])}/"
            f"{fmt_ms(c['p95_ms'])}/{fmt_ms(c['p99_ms'])} ms; cursor insert "
            f"{r['ceiling_cursor']['per_s']:.0f}/s"
        )
        print(
            f"bare insert (no middleware) {r['bare']['per_s']:.0f}/s p50/p95/p99 "
            f"{fmt_ms(r['bare']['p50_ms'])}/{fmt_ms(r['bare']['p95_ms'])}/"
            f"{fmt_ms(r['bare']['p99_ms'])} ms"
        )
        print(
            f"response endpoint {e['per_s']:.0f}/s p50/p95/p99 {fmt_ms(e['p50_ms'])}/"
            f"{fmt_ms(e['p95_ms'])}/{fmt_ms(e['p99_ms'])} ms, errors {sum(e['errors'].values())}; "
            f"ratio to the ceiling {r['ratio']:.2f} (server CPU {r['cpu_ratio']:.2f}), to the bare "
            f"insert {r['bare_ratio']:.2f} (server CPU {r['bare_cpu_ratio']:.2f}; target >= 0.6)"
        )

    def summary_rest(self) -> None:
        r = self.results
        if "realistic" in r:
            x = r["realistic"]
            s = x.get("steady")
            line = f"realistic: {x['completed']} completed sessions, {x['failed']} failed"
            if s:
                line += (
                    f"; steady state {s['seconds']:.0f} s at {s['per_s']:.0f} responses/s, "
                    "p50/p95/p99 "
                    f"{fmt_ms(s['p50_ms'])}/{fmt_ms(s['p95_ms'])}/{fmt_ms(s['p99_ms'])} ms"
                )
            print(line)
        k = r["check"]
        print(
            f"answers: {k['sent']} sent, {k['rows']} rows; lost {k['lost']}, duplicated "
            f"{k['duplicated']}, other values {k['wrong']}, rows no client sent {k['unknown']}"
        )
        if "score_lag" in r:
            p50, p95, n = r["score_lag"]
            print(f"completion-to-score lag p50 {p50:.2f} s, p95 {p95:.2f} s ({n} scored)")

    def teardown(self) -> None:
        self.stack.stop()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: BLE001, S110 - Django may not be set up yet
            pass
        if not self.args.keep_db:
            database_drop(self.admin_url, self.args.db)
        if self.redis_owned:
            redis_flush(self.redis_url)
        kept = "kept" if self.args.keep_db else "dropped"
        print(f"stopped the web server and Celery, {kept} {self.args.db}")


def _sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)  # a socket per participant
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    signal.signal(signal.SIGTERM, _sigterm)
    bench = Bench(args)
    try:
        return bench.run()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        bench.teardown()


if __name__ == "__main__":
    sys.exit(main())

"""The answer's CPU in one process, per lever: Django's WSGI handler, no HTTP server.

    .venv/bin/python -m bench.load.inprocess [--answers 600] [--rounds 5] [--redis HOST:PORT]

What the code levers of issue 17 buy, measured where other processes cannot blur it: the
CPU time (time.process_time) this process spends per answer, from the WSGI request to the
response, PostgreSQL's work excluded (it runs in its backend). The same scratch database
and Redis as bench/load/run.py. Configurations, in alternation over the rounds:
- now: the code as it is (the answer's WSGI lane, trials.api.answer_lane, in front of
  Django; the participant API lane; the throttle's one-key read on the cache's own
  connection);
- no-answer-lane: Django's handler alone (the participant API lane, the new read);
- no-lane: neither lane: the full middleware stack for the participant API (as before
  issue 17);
- old-read: the throttle's MGET of two keys through redis-py's pool (as before);
- before: no lane and the old read.
Each round answers `--answers` steps of fresh demo sessions per configuration; the figure is
the median over the rounds of the microseconds of CPU per answer.
"""

import argparse
import io
import json
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.load.run import Bench, parse_args as run_args  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench.load.inprocess", description=__doc__.split("\n\n")[0])
    p.add_argument("--answers", type=int, default=600, help="answers per configuration and round")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--redis", default="127.0.0.1:6379")
    p.add_argument("--redis-db", type=int, default=14)
    p.add_argument("--db", default="bw_bench_load")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    bench = Bench(run_args(["--redis", a.redis, "--redis-db", str(a.redis_db), "--db", a.db]))
    bench.tokens_checked = []
    try:
        bench.setup()
        return _measure(bench, a)
    finally:
        bench.teardown()


def _measure(bench: Bench, a: argparse.Namespace) -> int:
    from django.conf import settings
    from django.core.cache import cache
    from django.core.handlers.wsgi import WSGIHandler
    from django.test import override_settings

    from common import throttle
    from trials.api.answer_lane import AnswerLane

    new_read = throttle.Window.blocked_for

    def old_read(self: throttle.Window, ident: str) -> int:
        count_key, start_key = self._keys(ident)
        values = cache.get_many([count_key, start_key])
        if int(values.get(count_key, 0)) < self.limit:
            return 0
        started = float(values.get(start_key, time.time()))
        return max(1, int(started + self.seconds - time.time()) + 1)

    full = [m for m in settings.MIDDLEWARE if not m.endswith(".ParticipantApiLaneMiddleware")]
    configs: dict[str, tuple[list[str], Any, bool]] = {
        "now": (list(settings.MIDDLEWARE), new_read, True),
        "no-answer-lane": (list(settings.MIDDLEWARE), new_read, False),
        "no-lane": (full, new_read, False),
        "old-read": (list(settings.MIDDLEWARE), old_read, True),
        "before": (full, old_read, False),
    }
    # The short study (60 steps): the demo study's sessions begin with questionnaire items.
    plans = bench.enrol_local("load-short", max(4, a.answers // 50 + 2) * len(configs) * a.rounds)
    seen: dict[str, list[float]] = {k: [] for k in configs}
    print(
        f"in-process: {a.answers} answers per configuration per round, {a.rounds} rounds, "
        "Django's WSGI handler called with a WSGI environ (every middleware, no HTTP server)"
    )
    for r in range(a.rounds):
        for name, (middleware, read, answer_lane) in configs.items():
            throttle.Window.blocked_for = read  # type: ignore[method-assign]
            with override_settings(MIDDLEWARE=middleware):
                handler: Any = WSGIHandler()
                if answer_lane:
                    handler = AnswerLane(handler)
                done = 0
                cpu = 0.0
                while done < a.answers:
                    plan = plans.pop()
                    while not plan.done and done < a.answers:
                        event, phase = plan.steps[plan.next]
                        body = _body(plan, event, phase)
                        environ = _environ(f"/api/v1/sessions/{plan.token}/responses", body)
                        t0 = time.process_time()
                        out = b"".join(handler(environ, _start))
                        cpu += time.process_time() - t0
                        assert _status[0].startswith("201"), (_status, out[:200])
                        if phase == "e1":
                            plan.brs[event] = json.loads(out)["br"]
                        plan.next += 1
                        done += 1
            seen[name].append(cpu / done * 1e6)
        print(f" round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f} us" for k, v in seen.items()))
    throttle.Window.blocked_for = new_read  # type: ignore[method-assign]
    now = statistics.median(seen["now"])
    print("\nmicroseconds of this process's CPU per answer, median of the rounds:")
    for name, values in seen.items():
        med = statistics.median(values)
        print(f"  {name:<14} {med:7.0f} us  ({med / now:.2f}x now)")
    return 0


_status: list[str] = [""]


def _start(status: str, headers: Any, exc_info: Any = None) -> None:
    _status[0] = status


def _environ(path: str, body: str) -> dict[str, Any]:
    raw = body.encode()
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(raw)),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "10.1.2.3",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": io.BytesIO(raw),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def _body(plan: Any, event: str, phase: str) -> str:
    if phase == "br":
        value, rt = plan.brs[event], max(plan.min_br_view_ms, 1500) + 100
    else:
        value, rt = (plan.scale[0] + plan.scale[1]) // 2, 1200
    return json.dumps(
        {
            "client_id": str(uuid.uuid4()),
            "event": event,
            "phase": phase,
            "value": value,
            "rt_ms": rt,
            "onset_at": datetime.now(UTC).isoformat(),
        }
    )


if __name__ == "__main__":
    sys.exit(main())

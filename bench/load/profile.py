"""Sampling profiles of the web workers (py-spy) and their breakdown per layer.

`record()` runs `py-spy record` on each worker pid for a phase (raw "collapsed stacks": one
line per distinct stack, frames root first, then the sample count). `layers()` gives each
sample to the innermost frame that belongs to a named layer: the middleware of its own
file, the URL resolver, the throttle's cache read, JSON, SQL (psycopg and Django's db layer),
the answer's own code, the WSGI server's Python side, ... (granian parses HTTP in Rust:
py-spy sees its Python frames only). Frames of generic helpers (django.http, django.utils,
the standard library) count for the layer that called them, so a header set by a
middleware counts for that middleware. py-spy samples only threads that are running
(not idle in accept() or waiting for PostgreSQL), so the shares are shares of the workers'
CPU.
"""

import subprocess
import sys
from collections import Counter
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"

_PLUMBING = "middleware: plumbing (MiddlewareMixin, exception wrappers)"
# (substring of a frame's file path, layer), most specific first. A frame matching none is
# transparent: its samples go to the nearest frame above it that matches one.
RULES: list[tuple[str, str]] = [
    ("/psycopg", "SQL: psycopg (driver, pool)"),
    ("/django/db/", "SQL: Django db layer (ORM, cursor wrapper, connection)"),
    ("belief_web/db.py", "SQL: Django db layer (ORM, cursor wrapper, connection)"),
    ("common/db.py", "SQL: Django db layer (ORM, cursor wrapper, connection)"),
    ("/redis/", "throttle: cache read (Django cache, redis-py)"),
    ("/django/core/cache/", "throttle: cache read (Django cache, redis-py)"),
    ("belief_web/cache.py", "throttle: cache read (Django cache, redis-py)"),
    ("common/cache.py", "throttle: cache read (Django cache, redis-py)"),
    ("/json/", "JSON (parse the body, render the answer, the plan)"),
    ("orjson", "JSON (parse the body, render the answer, the plan)"),
    ("rest_framework/renderers.py", "JSON (parse the body, render the answer, the plan)"),
    ("rest_framework/utils/encoders.py", "JSON (parse the body, render the answer, the plan)"),
    ("throttle.py", "throttle: its own Python (address, window)"),
    ("/django/middleware/security.py", "middleware: SecurityMiddleware"),
    ("csp.py", "middleware: Content-Security-Policy"),
    ("trials/api/answer_lane.py", "answer: WSGI lane (its checks, headers)"),
    ("common/lane.py", "middleware: participant API lane (dispatch)"),
    ("/whitenoise/", "middleware: WhiteNoise"),
    ("/django/contrib/sessions/", "middleware: SessionMiddleware"),
    ("/django/middleware/locale.py", "middleware: LocaleMiddleware (and translation)"),
    ("/django/utils/translation/", "middleware: LocaleMiddleware (and translation)"),
    ("/django/middleware/common.py", "middleware: CommonMiddleware"),
    ("/django/middleware/csrf.py", "middleware: CsrfViewMiddleware"),
    ("/django/contrib/auth/", "middleware: AuthenticationMiddleware"),
    ("/django/contrib/messages/", "middleware: MessageMiddleware"),
    ("/django/middleware/clickjacking.py", "middleware: XFrameOptionsMiddleware"),
    ("/django/utils/deprecation.py", _PLUMBING),
    ("/django/core/handlers/exception.py", _PLUMBING),
    ("/django/urls/", "URL resolution"),
    ("/rest_framework/", "DRF (view dispatch, serializer fields)"),
    ("/django/views/", "DRF (view dispatch, serializer fields)"),
    ("trials/api/", "answer: view (body check, response)"),
    ("trials/", "answer: service (session row, step, checks)"),
    ("protocol/", "answer: service (session row, step, checks)"),
    ("bench/load/", "bench views (ceiling)"),
    ("/django/dispatch/", "Django: signals (request_started / finished)"),
    ("/django/core/handlers/wsgi.py", "Django: WSGI request and handler"),
    ("/django/core/handlers/base.py", "Django: WSGI request and handler"),
    ("/gunicorn/http/", "HTTP: gunicorn parse request, write response"),
    ("/gunicorn/workers/", "HTTP: gunicorn worker loop (accept, close)"),
    ("/gunicorn/", "HTTP: gunicorn other"),
    ("/granian/", "HTTP: granian (Python side)"),
    ("common/requestlog.py", "HTTP: access log and hung-request watchdog (common.requestlog)"),
]


def record(pids: list[int], seconds: float, out_prefix: Path, rate: int = 100) -> list[Path]:
    """Start py-spy on each pid (in the background); returns the raw files it will write."""
    outs = []
    for pid in pids:
        out = out_prefix.with_name(f"{out_prefix.name}-{pid}.raw")
        subprocess.Popen(
            [
                str(PY_SPY),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, int(seconds))),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--full-filenames",
                "--gil",
                "--output",
                str(out),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        outs.append(out)
    return outs


def _frame_file(frame: str) -> str:
    # "function (path/to/file.py:123)"
    start = frame.rfind("(")
    return frame[start + 1 :] if start >= 0 else frame


def layer_of(stack: str) -> str:
    frames = stack.split(";")
    for frame in reversed(frames):
        path = _frame_file(frame)
        for needle, layer in RULES:
            if needle in path:
                return layer
    return "other"


def layers(files: list[Path]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for f in files:
        if not f.exists():
            continue
        for line in f.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if stack and n.isdigit():
                counts[layer_of(stack)] += int(n)
    return counts


def print_layers(title: str, counts: Counter[str]) -> None:
    """Each layer's share of the samples."""
    total = sum(counts.values())
    print(f"  profile of {title}: {total} samples")
    for layer, n in counts.most_common():
        share = 100 * n / total if total else 0.0
        print(f"    {share:5.1f} %  {layer}")

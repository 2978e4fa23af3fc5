"""`python -m common.serve`: the web server, granian's WSGI interface on belief_web.wsgi.

The one place the production server is configured: the Procfile (`make stack`), the
Dockerfile and the Compose file all run this command, and the tests that start a real web
server run it too.

- granian, not gunicorn: an answer costs a third less CPU there (Rust HTTP parsing and
  HTTP/1.1 keep-alive: a browser's next request skips the TCP connect and close), which is
  what holds a Prolific launch of 2,000 participants on two cores (bench/README.md, "Load").
- `--workers` processes (WEB_WORKERS, default 2) of `--threads` threads each (WEB_THREADS,
  default 2), each thread serving one request at a time; granian's own threads keep the
  idle connections. A thread waiting for PostgreSQL or Redis lets the other run: with 2 x 2
  the 2,000 participants' answers held p99 16 ms, where 3 x 1 stalled enrolments for
  seconds (bench/README.md, "Load"). More cores: about one worker per core.
- The app and its URLconf are imported here, once, before the workers fork (gunicorn's
  preload_app did the same): otherwise each worker imports the views (pandas, SciPy) on its
  first request, seconds on a busy machine, and the workers share those pages instead of
  holding a copy each. Nothing here opens a database connection; a bad configuration (no
  SECRET_KEY) stops the server before it listens.
- `--connections` (WEB_CONNECTIONS, default 8,192) open connections in all, idle keep-alive
  ones included: a browser keeps one while its participant thinks.
- The access log (ACCESS_LOG, default on) and the hung-request limit (WEB_TIMEOUT, 120 s)
  are common.requestlog's, in belief_web.wsgi; a worker that exits is started again. Each
  worker listens on its own SO_REUSEPORT socket: connections still queued on a worker that
  ends are reset (their clients retry) unless the host sets net.ipv4.tcp_migrate_req=1.
"""

import argparse
import importlib
import math
import os
import resource
import sys

from common.env import env_int

BACKLOG = 2048
# SIGTERM: requests in flight get this long to finish before their worker is killed.
GRACEFUL_STOP_S = 30


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m common.serve", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=env_int("PORT", 8000))
    p.add_argument("--workers", type=int, default=env_int("WEB_WORKERS", 2))
    p.add_argument(
        "--threads",
        type=int,
        default=env_int("WEB_THREADS", 2),
        help="threads per worker, each serving one request at a time",
    )
    p.add_argument(
        "--connections",
        type=int,
        default=env_int("WEB_CONNECTIONS", 8192),
        help="open connections the server keeps, idle keep-alive ones included",
    )
    p.add_argument(
        "--app", default="belief_web.wsgi:served", help="module:callable (the bench's own)"
    )
    p.add_argument(
        "--check", action="store_true", help="load the application and its views, then exit"
    )
    return p.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "belief_web.settings")
    from django.urls import get_resolver
    from granian import Granian
    from granian.constants import HTTPModes, Interfaces

    importlib.import_module(args.app.partition(":")[0])  # the preload (module docstring)
    get_resolver().url_patterns  # noqa: B018 - imports every view module
    _allow_files(args.connections + 1024)  # the database, Redis and the app's own files
    if args.check:
        print(f"common.serve: the application loads; would serve {args.host}:{args.port}")
        return
    Granian(
        args.app,
        address=args.host,
        port=args.port,
        interface=Interfaces.WSGI,
        workers=args.workers,
        blocking_threads=args.threads,
        http=HTTPModes.http1,
        websockets=False,
        backlog=BACKLOG,
        # granian's "backpressure" caps the connections a worker accepts, idle keep-alive
        # ones included, not its requests in flight; its default (backlog / workers, 1,024
        # each here) left 952 of a launch of 3,000 browsers unserved (bench/README.md).
        backpressure=math.ceil(args.connections / args.workers),
        respawn_failed_workers=True,
        workers_kill_timeout=GRACEFUL_STOP_S,
    ).serve()


def _allow_files(wanted: int) -> None:
    """Raise this process's open-file limit toward `wanted` (its hard limit at most): a
    container often starts with a soft limit of 1,024, below the connections it serves."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


if __name__ == "__main__":
    main(sys.argv[1:])

"""The production web server (`python -m common.serve`) keeps more idle connections open
than granian's own default would.

granian caps the connections each worker accepts ("backpressure"), idle keep-alive ones
included; its default, backlog / workers, is 1,024 per worker here. Browsers keep their
connection while their participant thinks, so a launch of 3,000 left 952 of them unserved
(bench/README.md). 2,200 idle connections are opened to a server of 2 workers (more than
2 x 1,024), then each sends a request: every one is answered.
"""

# ruff: noqa: F811 - db_stack is a fixture of pipeline_fixtures, used as an argument

import socket
import time

import pytest

from common.serve import parse_args
from tests.scoring.pipeline_fixtures import (
    Stack,
    db_stack,  # noqa: F401 - a fixture
    free_port,
)
from tests.serving import serve_argv

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

IDLE = 2200


def test_the_defaults() -> None:
    args = parse_args([])
    assert (args.workers, args.threads, args.connections) == (2, 2, 8192)
    assert args.app == "belief_web.wsgi:served"


def test_more_idle_connections_than_granians_default_are_all_served(db_stack: Stack) -> None:
    port = free_port()
    web = db_stack.start("web", serve_argv(port, workers=2), ACCESS_LOG="0")
    web.is_ready = lambda: _answered(port)
    db_stack.ready(web)

    # granian closes a connection idle for 30 s (its header read timeout), which would let a
    # connection beyond the cap in at last: 10 s tells "answered" from "waited its turn".
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(IDLE)]
    try:
        time.sleep(1)  # every connection accepted and idle before the first request
        request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        for sock in sockets:
            sock.sendall(request)
        statuses = [_status_line(sock) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
    assert statuses.count(b"HTTP/1.1 200 OK") == IDLE, set(statuses)


def _status_line(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return b"closed: " + data
        data += chunk
    return data.split(b"\r\n", 1)[0]


def _answered(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            return sock.recv(16).startswith(b"HTTP/1.1")
    except OSError:
        return False

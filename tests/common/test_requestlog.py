"""common.requestlog.RequestGuard: the access log's lines and the hung-request watchdog.

Called as a WSGI server calls it, with environs; the watchdog's `on_hung` is recorded here
instead of ending the test process. The same guard under the real server (granian, a worker
ended and replaced) is tested in tests/security/test_access_log.py.
"""

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from common.requestlog import RequestGuard

TOKEN = "Zx9_secret-token"


def environ(path: str, query: str = "", **extra: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.7",
        **extra,
    }


def answer(body: bytes = b'{"ok":true}', status: str = "201 Created") -> Any:
    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", "11")])
        return [body]

    return app


def call(app: Any, env: dict[str, Any]) -> tuple[str, bytes]:
    seen: list[str] = []
    chunks = app(env, lambda status, headers, exc_info=None: seen.append(status))
    body = b"".join(chunks)
    getattr(chunks, "close", lambda: None)()
    return seen[0], body


def test_a_line_per_request_with_the_route_not_the_token(caplog: pytest.LogCaptureFixture) -> None:
    guard = RequestGuard(answer(), timeout=0)
    env = environ(
        f"/api/v1/sessions/{TOKEN}/responses",
        HTTP_REFERER=f"https://lab.example/t/{TOKEN}/?PROLIFIC_PID=abc",
        HTTP_USER_AGENT="Firefox/140",
    )
    with caplog.at_level(logging.INFO, logger="belief_web.access"):
        assert call(guard, env) == ("201 Created", b'{"ok":true}')
    (line,) = [r.getMessage() for r in caplog.records if r.name == "belief_web.access"]
    assert TOKEN not in line and "abc" not in line
    head, tail = line.split(" [", 1)
    assert head == "10.0.0.7 - -"
    assert tail.split("] ", 1)[1] == (
        '"POST /api/v1/sessions/<token>/responses HTTP/1.1" 201 11 '
        '"https://lab.example/t/<token>/?PROLIFIC_PID=" "Firefox/140"'
    )


def test_a_query_keeps_its_names_and_a_streamed_answer_logs_once_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed: list[bool] = []

    class Stream:
        def __iter__(self) -> Iterator[bytes]:
            yield b"a,b\n"
            yield b"1,2\n"

        def close(self) -> None:
            closed.append(True)

    def app(env: dict[str, Any], start_response: Any) -> Stream:
        start_response("200 OK", [("Content-Type", "text/csv")])
        return Stream()

    guard = RequestGuard(app, timeout=0)
    with caplog.at_level(logging.INFO, logger="belief_web.access"):
        result = guard(environ("/s/demo/", f"PROLIFIC_PID={TOKEN}&x=1"), lambda *a: None)
        assert [r.name for r in caplog.records] == []  # not before the last byte
        assert b"".join(result) == b"a,b\n1,2\n"
        result.close()  # type: ignore[attr-defined]
    assert closed == [True]
    (line,) = [r.getMessage() for r in caplog.records]
    assert '"POST /s/demo/?PROLIFIC_PID=&x= HTTP/1.1" 200 - "-" "-"' in line
    assert TOKEN not in line


def test_an_exception_is_logged_as_500_and_raised(caplog: pytest.LogCaptureFixture) -> None:
    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        raise RuntimeError("boom")

    with (
        caplog.at_level(logging.INFO, logger="belief_web.access"),
        pytest.raises(RuntimeError, match="boom"),
    ):
        RequestGuard(app, timeout=0)(environ("/healthz"), lambda *a: None)
    assert ['"POST /healthz HTTP/1.1" 500 -' in r.getMessage() for r in caplog.records] == [True]


def test_no_line_when_the_access_log_is_off(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="belief_web.access"):
        call(RequestGuard(answer(), timeout=0, log_requests=False), environ("/healthz"))
    assert caplog.records == []


def test_the_watchdog_ends_a_silent_request_and_spares_a_streaming_one() -> None:
    hung: list[tuple[str, float]] = []
    release = threading.Event()

    def app(env: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        if env["PATH_INFO"] == f"/t/{TOKEN}/":
            release.wait(5)  # silent: no byte for longer than the timeout
            return iter([b"late"])
        return slow_stream()

    def slow_stream() -> Iterator[bytes]:
        for _ in range(8):  # 0.8 s in all, a byte every 0.1 s: never silent for 0.4 s
            time.sleep(0.1)
            yield b"."

    guard = RequestGuard(
        app,
        timeout=0.4,
        log_requests=False,
        on_hung=lambda route, silent: (hung.append((route, silent)), release.set()),
        check_every=0.05,
    )
    streamed: list[bytes] = []
    streaming = threading.Thread(
        target=lambda: streamed.append(b"".join(guard(environ("/export"), lambda *a: None)))
    )
    streaming.start()
    started = time.monotonic()
    assert b"".join(guard(environ(f"/t/{TOKEN}/"), lambda *a: None)) == b"late"
    streaming.join(5)
    assert streamed == [b"........"]
    assert [route for route, _ in hung] == ["/t/<token>/"]  # the stream was never silent
    assert 0.4 < hung[0][1] < 1.0
    assert time.monotonic() - started < 2
    assert guard._in_flight == {}  # noqa: SLF001 - nothing left for the watchdog

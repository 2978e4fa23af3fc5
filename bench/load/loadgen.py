"""A small HTTP/1.1 load generator: asyncio on raw non-blocking sockets, no dependency.

gunicorn's sync workers answer `Connection: close`, so most requests open a new TCP
connection (as wrk does against the same server); a server that keeps the connection
alive gets it reused. Latency runs from the connect to the last byte of the body.
"""

import asyncio
import json
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HOST = "127.0.0.1"


class HttpError(Exception):
    """No complete HTTP answer: refused, reset, timed out or malformed."""


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Connection:
    """One virtual client's connection to 127.0.0.1:port, reopened whenever it is closed."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.host_header = f"Host: {HOST}:{port}\r\n".encode()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Answer:
        payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        head = [f"{method} {path} HTTP/1.1\r\n".encode(), self.host_header]
        if body is not None or method == "POST":
            head.append(b"Content-Type: application/json\r\n")
            head.append(f"Content-Length: {len(payload)}\r\n".encode())
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}\r\n".encode())
        head.append(b"\r\n")
        raw = b"".join(head) + payload
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(raw)
        except (OSError, TimeoutError, HttpError) as exc:
            self.close()
            raise HttpError(type(exc).__name__) from exc

    async def _exchange(self, raw: bytes) -> Answer:
        loop = asyncio.get_running_loop()
        if self.sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                await loop.sock_connect(sock, (HOST, self.port))
            except BaseException:
                sock.close()
                raise
            self.sock = sock
        sock = self.sock
        await loop.sock_sendall(sock, raw)
        buf = bytearray()
        header_end = -1
        length: int | None = None
        keep_alive = True
        while True:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                keep_alive = False
                break
            buf += chunk
            if header_end < 0:
                header_end = buf.find(b"\r\n\r\n")
                if header_end >= 0:
                    for line in bytes(buf[:header_end]).split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        name = name.strip().lower()
                        if name == b"content-length":
                            length = int(value)
                        elif name == b"connection" and value.strip().lower() == b"close":
                            keep_alive = False
            if header_end >= 0 and length is not None and len(buf) >= header_end + 4 + length:
                break
        if header_end < 0:
            raise HttpError("no header")
        status_line = bytes(buf[: buf.find(b"\r\n")])
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise HttpError("bad status line")
        if not keep_alive:
            self.close()
        return Answer(int(parts[1]), bytes(buf[header_end + 4 :]))


@dataclass
class Recorder:
    """Every request's end time, latency and outcome, per endpoint."""

    samples: dict[str, list[tuple[float, float, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    errors: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )

    def add(self, endpoint: str, started: float, status: int) -> float:
        now = time.perf_counter()
        self.samples[endpoint].append((now, now - started, status))
        return now

    def error(self, endpoint: str, kind: str) -> None:
        self.errors[endpoint][kind] += 1

    def summary(
        self, endpoint: str, start: float | None = None, end: float | None = None
    ) -> dict[str, Any]:
        rows = [
            s
            for s in self.samples.get(endpoint, [])
            if (start is None or s[0] >= start) and (end is None or s[0] <= end)
        ]
        ok = [s for s in rows if s[2] < 400]
        bad: dict[str, int] = defaultdict(int)
        for s in rows:
            if s[2] >= 400:
                bad[f"http_{s[2]}"] += 1
        if start is None and end is None:
            for kind, n in self.errors.get(endpoint, {}).items():
                bad[kind] += n
        span = (end - start) if start is not None and end is not None else None
        if span is None and rows:
            first = min(s[0] - s[1] for s in rows)
            span = max(s[0] for s in rows) - first
        lat = sorted(s[1] for s in ok)
        return {
            "requests": len(rows),
            "ok": len(ok),
            "errors": dict(bad),
            "seconds": span or 0.0,
            "per_s": len(ok) / span if span else 0.0,
            "p50_ms": percentile(lat, 50) * 1000,
            "p95_ms": percentile(lat, 95) * 1000,
            "p99_ms": percentile(lat, 99) * 1000,
            "max_ms": (lat[-1] if lat else float("nan")) * 1000,
        }


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (nan when empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


class CpuMeter:
    """CPU used between start() and stop(): the machine, this process and groups of pids.

    `groups` is called at start and at stop, so processes born during the phase count
    (from their birth); processes that died during it are missed.
    """

    TICK = os.sysconf("SC_CLK_TCK")

    def __init__(self, groups: Callable[[], dict[str, list[int]]]) -> None:
        self.groups = groups
        self.kernel_share = float("nan")  # of the web workers' CPU: system time

    @staticmethod
    def _machine() -> tuple[float, float]:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
        idle = fields[3] + fields[4]
        return sum(fields) - idle, sum(fields)

    @classmethod
    def _pid_seconds(cls, pid: int) -> tuple[float, float]:
        """(user + system, system) CPU seconds of a process so far."""
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
            return (int(stat[11]) + int(stat[12])) / cls.TICK, int(stat[12]) / cls.TICK
        except (OSError, IndexError, ValueError):
            return 0.0, 0.0

    def _snapshot(self) -> dict[str, dict[int, tuple[float, float]]]:
        return {
            name: {p: self._pid_seconds(p) for p in pids} for name, pids in self.groups().items()
        }

    def start(self) -> None:
        self.t0 = time.perf_counter()
        self.cpu0 = time.process_time()
        self.m0 = self._machine()
        self.s0 = self._snapshot()

    def stop(self) -> dict[str, float]:
        """Percent of one core per group, and the machine's busy percent of all its cores."""
        wall = self.wall = time.perf_counter() - self.t0
        m1 = self._machine()
        out = {"load generator": 100 * (time.process_time() - self.cpu0) / wall}
        for name, pids in self._snapshot().items():
            before = self.s0.get(name, {})
            used = sum(max(0.0, t[0] - before.get(pid, (0.0, 0.0))[0]) for pid, t in pids.items())
            kernel = sum(max(0.0, t[1] - before.get(pid, (0.0, 0.0))[1]) for pid, t in pids.items())
            out[name] = 100 * used / wall
            if name == "web workers" and used:
                self.kernel_share = kernel / used
        total = m1[1] - self.m0[1]
        out["machine busy, % of all cores"] = 100 * (m1[0] - self.m0[0]) / total if total else 0.0
        return out


def children_of(ppid: int) -> list[int]:
    """The pids whose parent is ppid (gunicorn or Celery workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[1]) == ppid:
            found.append(int(entry))
    return found

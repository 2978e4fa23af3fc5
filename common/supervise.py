"""`python -m common.supervise COMMAND...`: run COMMAND, and start it again when it dies.

honcho (`make stack`) stops every process as soon as one exits: a worker killed by the OOM
killer would take web and beat down with it. The Procfile runs the worker and beat through
this wrapper, which restarts a child that died (after 1 s, doubling up to 30 s while it keeps
dying within 10 s of its start) and exits only when told to (SIGTERM, SIGINT: passed on to
the child, whose exit status it then returns). The Compose file does the same with
`restart: unless-stopped`.
"""

import signal
import subprocess
import sys
import time
from types import FrameType

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
STABLE_AFTER_S = 10.0


def _say(message: str) -> None:
    print(f"supervise: {message}", file=sys.stderr, flush=True)


def supervise(argv: list[str]) -> int:
    """Run argv until a signal asks to stop; returns the child's last exit status."""
    stopping: list[int] = []
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    delay = FIRST_DELAY_S
    while True:
        started = time.monotonic()
        child = subprocess.Popen(argv)  # noqa: S603 - the Procfile's own command line
        _say(f"started {argv[0]} (pid {child.pid})")
        status = child.wait()
        if stopping:
            return status
        lived = time.monotonic() - started
        delay = FIRST_DELAY_S if lived > STABLE_AFTER_S else min(delay * 2, MAX_DELAY_S)
        _say(f"{argv[0]} (pid {child.pid}) exited with {status}; restarting in {delay:.0f} s")
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not stopping:
            time.sleep(0.1)
        if stopping:
            return status


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python -m common.supervise COMMAND [ARG...]")
    sys.exit(supervise(sys.argv[1:]))

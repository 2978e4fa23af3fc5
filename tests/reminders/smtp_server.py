"""A real SMTP server for the reminder tests: aiosmtpd in its own process, into a Maildir.

The test reads what the server received (recipients, headers, body) from the Maildir;
aiosmtpd's Message handler adds the envelope recipients as X-RcptTo.
"""

from __future__ import annotations

import contextlib
import mailbox
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            return sock.recv(3) == b"220"
    except OSError:
        return False


@dataclass
class SmtpServer:
    """`start()` runs the server on `port`, `stop()` kills it; the port stays reserved."""

    port: int
    mail_dir: Path
    log: Path
    popen: subprocess.Popen[bytes] | None = field(default=None)

    handler: str = "aiosmtpd.handlers.Mailbox"

    def start(self) -> SmtpServer:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "aiosmtpd",
                    "-n",
                    "-l",
                    f"127.0.0.1:{self.port}",
                    "-c",
                    self.handler,
                    str(self.mail_dir),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=Path(__file__).resolve().parents[2],  # so that -c finds tests.reminders
            )
        deadline = time.monotonic() + 15
        while not _answers(self.port):
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"aiosmtpd did not start:\n{self.log.read_text()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        self.popen = None

    def messages(self) -> list[Message]:
        if not (self.mail_dir / "new").exists():
            return []
        return [msg for _key, msg in sorted(mailbox.Maildir(self.mail_dir).items())]


def body_of(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    charset = message.get_content_charset() or "utf-8"
    return payload.decode(charset)


def subject_of(message: Message) -> str:
    from email.header import decode_header, make_header

    return str(make_header(decode_header(message["Subject"])))


def header(message: Message, name: str) -> str:
    """A header's value unfolded (long headers are folded over lines on the wire)."""
    return "".join(str(message[name]).splitlines()).strip()


class RefusingMailbox:
    """An aiosmtpd handler that answers every RCPT with the code in the mail_dir's name's
    suffix (e.g. .../refuse-550): a mailbox that does not exist (5xx) or a full one (4xx)."""

    def __init__(self, mail_dir: str) -> None:
        self.code = int(mail_dir.rsplit("-", 1)[1])

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:  # noqa: E501
        return f"{self.code} {self.code // 100}.1.1 <{address}>: refused by the test"

    @classmethod
    def from_cli(cls, parser: Any, *args: str) -> RefusingMailbox:
        return cls(args[0])

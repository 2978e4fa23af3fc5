"""`manage.py send_reminders [--every N]`: the beat's reminder sweep, for `make run`.

The embedded mode has no beat: this runs the sweep once (or every N seconds) in this
process; with the console backend the messages are printed. Under `make stack` and
`docker compose up` beat does it and this command is not needed.
"""

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from reminders.tasks import sweep_reminders


class Command(BaseCommand):
    help = "Find the windows that opened or are about to close and send their reminders."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--every", type=int, default=0, help="Repeat every N seconds (0: once, the default)."
        )

    def handle(self, *args: Any, every: int = 0, **options: Any) -> None:
        while True:
            queued = sweep_reminders()
            self.stdout.write(f"{queued} reminder(s) queued")
            if every <= 0:
                return
            time.sleep(every)

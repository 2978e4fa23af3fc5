from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.services import audit_anchor, audit_verify


class Command(BaseCommand):
    help = (
        "Verify the audit log: its keyed hash chain and the head kept outside the table "
        "(docs/audit.md); exits non-zero on any problem."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--anchor",
            action="store_true",
            help="if the chain verifies, (re)write the head from the table as it is now",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        result = audit_verify()
        if options["anchor"] and result.broken_at is None:
            head = audit_anchor()
            if head is not None:
                self.stdout.write(f"head written: entry {head.entry_id} (number {head.seq})")
            result = audit_verify()
        if not result.ok:
            raise CommandError("; ".join(result.problems))
        for note in result.notes:
            self.stdout.write(note)
        self.stdout.write(f"audit log intact: {result.count} entries")

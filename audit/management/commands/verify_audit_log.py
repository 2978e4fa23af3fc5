from django.core.management.base import BaseCommand, CommandError

from audit.services import audit_verify


class Command(BaseCommand):
    help = "Verify the audit log's hash chain; exits non-zero at the first broken entry."

    def handle(self, *args: object, **options: object) -> None:
        count, broken = audit_verify()
        if broken is not None:
            raise CommandError(f"audit log broken at entry {broken} ({count} entries read)")
        self.stdout.write(f"audit log intact: {count} entries")

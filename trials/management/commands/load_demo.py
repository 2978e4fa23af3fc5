import os

from django.core.management.base import BaseCommand, CommandParser

from trials.services.demo import demo_study_load


class Command(BaseCommand):
    help = (
        "Create or refresh the demonstration studies 'demo' and 'demo-positive' and their "
        "owner 'demo' (idempotent)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--base-url", default=f"http://127.0.0.1:{os.environ.get('PORT', '8000')}"
        )

    def handle(self, *args: object, **options: object) -> None:
        study, user, password = demo_study_load(password=os.environ.get("DEMO_PASSWORD") or None)
        base = str(options["base_url"]).rstrip("/")
        self.stdout.write(
            f"Demo study '{study.slug}' is ready ({study.participants.count()} participants)."
        )
        self.stdout.write(f"  Participant link: {base}/s/{study.slug}/")
        self.stdout.write(f"  French:           {base}/s/{study.slug}/?lang=fr")
        self.stdout.write(f"  Positive events:  {base}/s/demo-positive/  (score version 2)")
        self.stdout.write(f"  Dashboard:        {base}/dashboard/  (user '{user.username}')")
        self.stdout.write(f"  Demo password:    {password}")

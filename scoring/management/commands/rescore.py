"""`python manage.py rescore [--study SLUG]`: re-score completed sessions in this process."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scoring.metrics import SCORE_VERSION
from scoring.services import study_rescore
from trials.models import Study


class Command(BaseCommand):
    help = "Re-score every completed session with the current score version, in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--study", help="only this study (slug)")
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: object, **options: object) -> None:
        study_id = None
        slug = options["study"]
        if slug:
            study = Study.objects.filter(slug=slug).first()
            if study is None:
                raise CommandError(f"No study '{slug}'.")
            study_id = study.pk
        batch_size = options["batch_size"]
        if not isinstance(batch_size, int) or batch_size < 1:
            raise CommandError("--batch-size must be a positive integer.")
        total = 0
        for done, total in study_rescore(study_id=study_id, batch_size=batch_size):
            self.stdout.write(f"scored {done}/{total}")
        self.stdout.write(f"Done: {total} sessions at score version {SCORE_VERSION}.")

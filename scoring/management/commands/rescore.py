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
        if options["study"]:
            study = Study.objects.filter(slug=options["study"]).first()
            if study is None:
                raise CommandError(f"No study '{options['study']}'.")
            study_id = study.pk
        total = 0
        for done, total in study_rescore(study_id=study_id, batch_size=int(options["batch_size"])):  # type: ignore[call-overload]
            self.stdout.write(f"scored {done}/{total}")
        self.stdout.write(f"Done: {total} sessions at score version {SCORE_VERSION}.")

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from trials.services.errors import FileRejected
from trials.services.event_lists import event_list_import


class Command(BaseCommand):
    help = (
        "Import an event list from CSV "
        "(columns: code, text_en, base_rate[, text_fr, source, practice]). The list is shared: "
        "every researcher may attach it (a list imported in a study's dashboard is private "
        "to that study's members)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument("csv_path", type=Path)

    def handle(self, *args: object, **options: object) -> None:
        path = options["csv_path"]
        assert isinstance(path, Path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path}: {exc}") from exc
        try:
            event_list = event_list_import(name=str(options["name"]), text=text, shared=True)
        except FileRejected as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Imported '{event_list.name}': {event_list.events.count()} events.")

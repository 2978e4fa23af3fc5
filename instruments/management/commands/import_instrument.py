from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from instruments.definition import InstrumentInvalid
from instruments.services import instrument_import


class Command(BaseCommand):
    help = (
        "Add or update an instrument from its JSON file (docs/instruments.md); every error "
        "is reported with its place in the file and nothing is stored from a file with errors."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)

    def handle(self, *args: object, **options: object) -> None:
        path = options["path"]
        assert isinstance(path, Path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"{path}: {exc}") from exc
        try:
            instrument, created = instrument_import(data=data)
        except InstrumentInvalid as exc:
            lines = [f"{path}: {len(exc.errors)} error(s); nothing was stored."]
            lines += [f"  {e.path}: {e.message}" for e in exc.errors]
            raise CommandError("\n".join(lines)) from exc
        verb = "Added" if created else "Updated"
        items = len(instrument.definition.get("items", []))
        self.stdout.write(
            f"{verb} instrument '{instrument.code}' version {instrument.version}: {items} items."
        )

"""Event lists from CSV: every row checked, every error listed, nothing stored on error."""

import csv
import io
import re

from django.db import IntegrityError, transaction

from scoring.columns import DEFAULT_POLARITY, POLARITIES
from trials.models import Event, EventList, Study
from trials.services.errors import FileRejected, RowError

REQUIRED_COLUMNS = ("code", "text_en", "base_rate")
_TEXT_COLUMN = re.compile(r"^text_([a-z]{2})$")
_TRUE = {"1", "true", "yes", "y"}
_FALSE = {"0", "false", "no", "n", ""}
MAX_EVENTS = 500


def event_list_parse(text: str) -> list[dict[str, object]]:
    """Rows of an event-list CSV as dicts ready for Event(); FileRejected lists every problem.

    Optional columns: text_<language>, source, practice (0/1), polarity (negative, the
    default when the column or the cell is empty, or positive).
    """
    if "\x00" in text:
        raise FileRejected("This is not a CSV text file.")
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    try:
        fieldnames = reader.fieldnames
    except csv.Error as exc:
        raise FileRejected(
            "This is not a readable CSV file.", [RowError(1, "-", f"not readable as CSV: {exc}")]
        ) from None
    header = [h.strip() for h in (fieldnames or [])]
    if not header:
        raise FileRejected("The file is empty.")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise FileRejected(
            "Missing required column(s): " + ", ".join(missing),
            [RowError(1, c, "required column is missing") for c in missing],
        )
    reader.fieldnames = header
    errors: list[RowError] = []
    rows: list[dict[str, object]] = []
    seen: dict[str, int] = {}
    languages = [m.group(1) for h in header if (m := _TEXT_COLUMN.match(h))]
    line = 1
    try:
        for line, raw in enumerate(reader, start=2):
            if None in raw:
                errors.append(RowError(line, "-", "more cells than columns"))
                continue
            row = {k: (v or "").strip() for k, v in raw.items()}
            code = row["code"]
            if not code:
                errors.append(RowError(line, "code", "empty"))
            elif len(code) > 32:
                errors.append(RowError(line, "code", "longer than 32 characters"))
            elif code in seen:
                errors.append(RowError(line, "code", f"duplicate of row {seen[code]}"))
            else:
                seen[code] = line
            if not row["text_en"]:
                errors.append(RowError(line, "text_en", "empty"))
            base_rate: int | None = None
            try:
                base_rate = int(row["base_rate"])
                if not 0 <= base_rate <= 100:
                    errors.append(RowError(line, "base_rate", f"{base_rate} is not a percentage"))
            except ValueError:
                errors.append(
                    RowError(line, "base_rate", f"'{row['base_rate']}' is not a whole number")
                )
            practice_raw = row.get("practice", "").lower()
            if practice_raw not in _TRUE | _FALSE:
                errors.append(RowError(line, "practice", f"'{row['practice']}' is not 0 or 1"))
            polarity = row.get("polarity", "").lower() or DEFAULT_POLARITY
            if polarity not in POLARITIES:
                errors.append(
                    RowError(line, "polarity", f"'{row['polarity']}' is not negative or positive")
                )
            rows.append(
                {
                    "code": code,
                    "texts": {
                        lang: row[f"text_{lang}"] for lang in languages if row[f"text_{lang}"]
                    },
                    "base_rate": base_rate,
                    "source": row.get("source", ""),
                    "practice": practice_raw in _TRUE,
                    "polarity": polarity,
                    "position": line - 1,
                }
            )
    except csv.Error as exc:
        # The csv module stops at the first unreadable record (a cell over its size
        # limit, a bare carriage return): report it like any other row error.
        errors.append(RowError(line + 1, "-", f"not readable as CSV: {exc}"))
    if not rows and not errors:
        raise FileRejected("The file has no event rows.")
    if len(rows) > MAX_EVENTS:
        errors.append(RowError(MAX_EVENTS + 2, "-", f"more than {MAX_EVENTS} events"))
    if errors:
        raise FileRejected(f"{len(errors)} error(s); nothing was imported.", errors)
    return rows


@transaction.atomic
def event_list_import(
    *,
    name: str,
    text: str,
    description: str = "",
    shared: bool = False,
    owner_study: Study | None = None,
) -> EventList:
    """Create an event list from CSV text, all rows or none.

    Private to `owner_study`'s members unless `shared` (trials.selectors.event_lists_visible).
    """
    name = name.strip()
    if not name:
        raise FileRejected("The list needs a name.", [RowError(0, "name", "empty")])
    if len(name) > 100:
        raise FileRejected(
            "The list name is too long.", [RowError(0, "name", "over 100 characters")]
        )
    rows = event_list_parse(text)
    try:
        # The unique name decides, not a check first: two imports may race.
        with transaction.atomic():
            event_list = EventList.objects.create(
                name=name, description=description, shared=shared, owner_study=owner_study
            )
    except IntegrityError:
        raise FileRejected(
            f"An event list named '{name}' exists already.", [RowError(0, "name", "taken")]
        ) from None
    Event.objects.bulk_create([Event(event_list=event_list, **row) for row in rows])
    return event_list

"""Import a trial-level CSV of sessions run elsewhere (a lab computer), stored and scored
like any other session.

The whole file is checked before anything is written: every error is collected with its
row (the header is row 1, as in a spreadsheet), its column and why, and one error refuses
the whole file. A good file is stored in one transaction.
"""

import csv
import io
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from audit.services import audit_record
from protocol import phases
from scoring.columns import POLARITIES
from trials.models import (
    Event,
    Participant,
    ParticipantIdentity,
    Response,
    Session,
    Study,
    StudyEventList,
    Trial,
    study_config,
)
from trials.services.errors import Conflict, FileRejected, RowError
from trials.steps import session_steps

IMPORT_MAX_BYTES: Final = 20 * 1024 * 1024
MAX_ERRORS: Final = 1000
IDENTITY_SOURCE: Final = "import"

# The phases' columns in the order a row's values are checked, its errors reported and its
# responses stored: the estimates on the study's scale, the base rate, the ratings.
VALUE_PHASES: Final = (
    *(p for p in phases.PHASES if p.range == phases.STUDY_SCALE),
    *(p for p in phases.PHASES if p.range == phases.PERCENT),
    *(p for p in phases.PHASES if p.range not in (phases.STUDY_SCALE, phases.PERCENT)),
)
RT_PHASES: Final = tuple(p.name for p in phases.PHASES if p.rt_column)
REQUIRED: Final = (
    "participant",
    "arm",
    "timepoint",
    "event_code",
    *(p.name for p in phases.PHASES if p.required),
)
OPTIONAL: Final = (
    *(p.name for p in phases.TRIAL_COLUMNS if not p.required),
    *(f"rt_{name}_ms" for name in RT_PHASES),
    "block1_position",
    "block2_position",
    "list",
    # The session's language, as the exports write it; empty or absent: the study's first.
    "language",
    "polarity",
)
# Columns of a trials export that an import reads past: derived, or fixed by the study.
IGNORED: Final = (
    "study",
    "session",
    "event",
    "br_mode",
    "valence",
    "ee",
    "update",
    "excluded",
    "exclusion_reason",
    "practice",
    "external_id",
)
RT_MAX: Final = 86_400_000
# What trials.exports.neutralise puts before a text cell: taken off again on the way in.
_NEUTRALISED: Final = ("'=", "'+", "'-", "'@", "'\t", "'\r")


@dataclass
class _Row:
    number: int
    participant: str
    arm: str
    timepoint: str
    event_code: str
    list_name: str
    values: dict[str, int | None]
    rt: dict[str, int | None]
    block1: int | None
    block2: int | None
    language: str


@dataclass
class _SessionPlan:
    participant: str
    arm: str
    timepoint: str
    language: str
    rows: list[_Row] = field(default_factory=list)
    events: dict[str, Event] = field(default_factory=dict)
    list_id: int | None = None


def _text(cell: str) -> str:
    cell = cell.strip()
    return cell[1:] if cell.startswith(_NEUTRALISED) else cell


def _decode(data: bytes) -> str:
    if not data.strip():
        raise FileRejected("The file is empty.")
    if b"\x00" in data:
        raise FileRejected("Not a CSV file: it holds binary data.")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileRejected("Not a CSV file: it is not UTF-8 text.") from None


def _records(text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    first = next((line for line in io.StringIO(text) if line.strip()), "")
    delimiter = max((",", ";", "\t"), key=first.count)
    if first.count(delimiter) == 0:
        raise FileRejected("Not a CSV file: the first line has no comma-separated columns.")
    header: list[str] | None = None
    records: list[tuple[int, list[str]]] = []
    try:
        for number, cells in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), 1):
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip().lower() for c in cells]
            else:
                records.append((number, cells))
    except csv.Error as error:
        raise FileRejected(f"Not a CSV file: {error}.") from None
    assert header is not None
    return header, records


def _integer(
    cell: str, *, low: int, high: int, column: str, number: int, errors: list[RowError]
) -> int | None:
    cell = cell.strip()
    if cell.lower() in ("", "na", "nan", "null"):
        return None
    try:
        value = float(cell)
    except ValueError:
        errors.append(RowError(number, column, f"{cell[:40]!r} is not a number."))
        return None
    if not value.is_integer():
        errors.append(RowError(number, column, f"{cell[:40]!r} is not a whole number."))
        return None
    if not low <= value <= high:
        errors.append(RowError(number, column, f"{int(value)} is outside {low}-{high}."))
        return None
    return int(value)


class _Checker:
    """Reads and checks every row against the study; collects the errors."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.errors: list[RowError] = []
        self.arms = {a.code: a for a in study.arms.all()}
        self.timepoints = {t.label: t for t in study.timepoints.all()}
        links = list(StudyEventList.objects.filter(study=study).select_related("event_list"))
        self.list_position = {link.event_list_id: link.position for link in links}
        self.list_names = {link.event_list.name: link.event_list_id for link in links}
        self.events: dict[str, list[Event]] = defaultdict(list)
        for event in Event.objects.filter(event_list_id__in=list(self.list_position)):
            self.events[event.code].append(event)

    def error(self, number: int, column: str, message: str) -> None:
        self.errors.append(RowError(number, column, message))

    def header(self, header: list[str]) -> None:
        known = set(REQUIRED) | set(OPTIONAL) | set(IGNORED)
        for name in REQUIRED:
            if name not in header:
                self.error(1, name, "Required column missing.")
        seen: set[str] = set()
        for name in header:
            if name in seen:
                self.error(1, name, "Column appears twice.")
            seen.add(name)
            if name not in known:
                self.error(1, name or "(blank)", "Unknown column.")

    def row(self, number: int, cells: dict[str, str]) -> _Row | None:
        before = len(self.errors)
        participant = _text(cells.get("participant", ""))
        if not participant:
            self.error(number, "participant", "Empty.")
        elif len(participant) > 200:
            self.error(number, "participant", "Longer than 200 characters.")
        arm = _text(cells.get("arm", ""))
        if arm not in self.arms:
            self.error(number, "arm", f"{arm[:40]!r} is not an arm of this study.")
        timepoint = _text(cells.get("timepoint", ""))
        if timepoint not in self.timepoints:
            self.error(number, "timepoint", f"{timepoint[:40]!r} is not a timepoint of this study.")
        code = _text(cells.get("event_code", ""))
        list_name = _text(cells.get("list", ""))
        if list_name and list_name not in self.list_names:
            self.error(number, "list", f"{list_name[:40]!r} is not a list of this study.")
        if code not in self.events:
            self.error(number, "event_code", f"{code[:40]!r} is in none of this study's lists.")
        elif list_name in self.list_names and not any(
            e.event_list_id == self.list_names[list_name] for e in self.events[code]
        ):
            self.error(number, "event_code", f"{code[:40]!r} is not in list {list_name!r}.")
        # The polarity is the event's (its list says it); a file may repeat it, as the
        # trials export does, but not contradict it.
        polarity = _text(cells.get("polarity", "")).lower()
        if polarity and polarity not in POLARITIES:
            self.error(number, "polarity", f"{polarity[:40]!r} is not negative or positive.")
        elif polarity and code in self.events:
            listed = {e.polarity for e in self.events[code]}
            if polarity not in listed:
                self.error(
                    number,
                    "polarity",
                    f"event {code[:40]!r} is {' / '.join(sorted(listed))} in this study's lists.",
                )
        low, high = self.study.scale_min, self.study.scale_max
        values: dict[str, int | None] = {}
        for phase in VALUE_PHASES:
            least, most = phase.range.bounds(scale_min=low, scale_max=high)
            values[phase.name] = _integer(
                cells.get(phase.name, ""),
                low=least,
                high=most,
                column=phase.name,
                number=number,
                errors=self.errors,
            )
        rt = {
            phase: _integer(
                cells.get(f"rt_{phase}_ms", ""),
                low=0,
                high=RT_MAX,
                column=f"rt_{phase}_ms",
                number=number,
                errors=self.errors,
            )
            for phase in RT_PHASES
        }
        positions = [
            _integer(
                cells.get(name, ""),
                low=1,
                high=32767,
                column=name,
                number=number,
                errors=self.errors,
            )
            for name in ("block1_position", "block2_position")
        ]
        languages = self.study.languages or ["en"]
        language = _text(cells.get("language", "")) or languages[0]
        if language not in languages:
            self.error(number, "language", f"{language[:40]!r} is not a language of this study.")
        if len(self.errors) > before:
            return None
        return _Row(
            number,
            participant,
            arm,
            timepoint,
            code,
            list_name,
            values,
            rt,
            block1=positions[0],
            block2=positions[1],
            language=language,
        )


def _sessions(checker: _Checker, rows: list[_Row]) -> dict[tuple[str, str], _SessionPlan]:
    """Rows grouped by (participant, timepoint), each session's list decided."""
    sessions: dict[tuple[str, str], _SessionPlan] = {}
    arms: dict[str, tuple[str, int]] = {}
    for row in rows:
        first_arm = arms.setdefault(row.participant, (row.arm, row.number))
        if first_arm[0] != row.arm:
            checker.error(
                row.number,
                "arm",
                f"Participant {row.participant!r} is in arm {first_arm[0]!r} on row "
                f"{first_arm[1]}.",
            )
            continue
        plan = sessions.setdefault(
            (row.participant, row.timepoint),
            _SessionPlan(row.participant, row.arm, row.timepoint, row.language),
        )
        if plan.language != row.language:
            checker.error(
                row.number,
                "language",
                f"Participant {row.participant!r} at {row.timepoint!r} is in language "
                f"{plan.language!r} on row {plan.rows[0].number}.",
            )
            continue
        if any(r.event_code == row.event_code for r in plan.rows):
            first = next(r.number for r in plan.rows if r.event_code == row.event_code)
            checker.error(
                row.number,
                "event_code",
                f"Duplicate: participant {row.participant!r}, timepoint {row.timepoint!r}, "
                f"event {row.event_code!r} is on row {first} already.",
            )
            continue
        plan.rows.append(row)
    for plan in sessions.values():
        # The session's list: the one list that holds every event code of its rows.
        candidates: set[int] | None = None
        for row in plan.rows:
            lists = {e.event_list_id for e in checker.events[row.event_code]}
            if row.list_name:
                lists &= {checker.list_names[row.list_name]}
            candidates = lists if candidates is None else candidates & lists
        if not candidates or len(candidates) != 1:
            checker.error(
                plan.rows[0].number,
                "event_code",
                f"The events of participant {plan.participant!r} at {plan.timepoint!r} do not "
                "all come from one list of this study"
                + (" (several fit: add a `list` column)." if candidates else "."),
            )
            continue
        plan.list_id = next(iter(candidates))
        plan.events = {
            r.event_code: next(
                e for e in checker.events[r.event_code] if e.event_list_id == plan.list_id
            )
            for r in plan.rows
        }
        if checker.study.br_mode == Study.BaseRateMode.FIXED:
            # Fixed mode shows each event's base rate from the list: another value in the
            # file is another task (or a wrong list), and would score as if it were this one.
            for row in plan.rows:
                expected = plan.events[row.event_code].base_rate
                if row.values["br"] is not None and row.values["br"] != expected:
                    checker.error(
                        row.number,
                        "br",
                        f"{row.values['br']} is not the base rate of {row.event_code!r} in "
                        f"this study's list ({expected}; the study's base rates are fixed).",
                    )
    return sessions


def _existing(
    study: Study, sessions: dict[tuple[str, str], _SessionPlan], checker: _Checker
) -> dict[str, Participant]:
    """Participants already imported under these ids; a session already there is an error."""
    ids = {p for p, _ in sessions}
    identities = {
        i.external_id: i.participant
        # A duplicate (enrolled again with the id, without proof) is not the id's owner.
        for i in ParticipantIdentity.objects.filter(
            study=study, external_id__in=ids, duplicate=False
        ).select_related("participant__arm")
    }
    taken = set(
        Session.objects.filter(participant__in=[p.pk for p in identities.values()]).values_list(
            "participant_id", "timepoint__label"
        )
    )
    for (external_id, label), plan in sessions.items():
        participant = identities.get(external_id)
        if participant is None:
            continue
        if not participant.imported:
            # The id belongs to someone who enrolled online: an import adds sessions only to
            # participants that imports created, never to a live participant's record.
            checker.error(
                plan.rows[0].number,
                "participant",
                f"{external_id!r} is the id of a participant who enrolled online: an import "
                "never adds to an online participant.",
            )
            continue
        if participant.arm.code != plan.arm:
            checker.error(
                plan.rows[0].number,
                "arm",
                f"Participant {external_id!r} is already in this study, in arm "
                f"{participant.arm.code!r}.",
            )
        if (participant.pk, label) in taken:
            checker.error(
                plan.rows[0].number,
                "timepoint",
                f"Participant {external_id!r} already has a session at {label!r}.",
            )
    return identities


def _plan_json(plan: _SessionPlan) -> dict[str, list[list[Any]]]:
    practice = [r for r in plan.rows if plan.events[r.event_code].practice]
    main = [r for r in plan.rows if not plan.events[r.event_code].practice]

    def order(rows: list[_Row], block: str) -> list[list[Any]]:
        ranked = sorted(
            enumerate(rows),
            key=lambda ir: (getattr(ir[1], block) is None, getattr(ir[1], block) or 0, ir[0]),
        )
        return [[plan.events[r.event_code].pk, r.event_code] for _, r in ranked]

    return {
        "practice": order(practice, "block1"),
        "order1": order(main, "block1"),
        "order2": order(main, "block2"),
    }


@dataclass
class CheckedImport:
    """A file that passed every check: what trials_import_store writes."""

    study: Study
    sessions: dict[tuple[str, str], _SessionPlan]
    identities: dict[str, Participant]
    checker: _Checker


# How often the check reports its progress (rows).
PROGRESS_EVERY: Final = 5000


def trials_import_check(
    *, study: Study, data: bytes, progress: Callable[[int, int], None] | None = None
) -> CheckedImport:
    """Check a trials CSV whole; FileRejected with every error found, by place.

    progress(rows checked, rows in the file) is called every PROGRESS_EVERY rows.
    """
    header, records = _records(_decode(data))
    checker = _Checker(study)
    checker.header(header)
    if checker.errors:
        raise FileRejected("The header is not a trials file's.", checker.errors[:MAX_ERRORS])
    if not records:
        raise FileRejected("The file has a header and no rows.")
    rows: list[_Row] = []
    total = len(records)
    for index, (number, cells) in enumerate(records):
        if progress is not None and index % PROGRESS_EVERY == 0:
            progress(index, total)
        if len(cells) != len(header):
            checker.error(number, "(row)", f"{len(cells)} cells for {len(header)} columns.")
            continue
        row = checker.row(number, dict(zip(header, cells, strict=True)))
        if row is not None:
            rows.append(row)
    del records
    sessions = _sessions(checker, rows)
    identities = _existing(study, sessions, checker) if not checker.errors else {}
    if progress is not None:
        progress(total, total)
    if checker.errors:
        errors = sorted(checker.errors, key=lambda e: (e.row, e.column))
        raise FileRejected(
            f"{len(errors)} error(s): nothing was imported."
            + (f" The first {MAX_ERRORS} are listed." if len(errors) > MAX_ERRORS else ""),
            errors[:MAX_ERRORS],
        )
    return CheckedImport(study, sessions, identities, checker)


def trials_import_store(checked: CheckedImport, *, actor: Any) -> dict[str, Any]:
    """Store a checked file in one transaction (a savepoint of the caller's, if any) and
    queue its sessions' scoring; Conflict if another import took the same ids meanwhile."""
    from scoring.services import scores_enqueue

    study = checked.study
    try:
        with transaction.atomic():
            result = _store(
                study=study,
                sessions=checked.sessions,
                identities=checked.identities,
                checker=checked.checker,
            )
            scores_enqueue(session_ids=result["session_ids"])
            audit_record(
                actor=actor,
                action="trials.import",
                study=study.slug,
                detail={k: v for k, v in result.items() if k != "session_ids"},
            )
    except IntegrityError:
        raise Conflict(
            "Another import of the same participants ran at the same time: nothing was "
            "imported; send the file again.",
            code="import_conflict",
        ) from None
    return result


def trials_import(*, study: Study, data: bytes, actor: Any) -> dict[str, Any]:
    """Check a trials CSV whole, then store its sessions and queue their scoring."""
    return trials_import_store(trials_import_check(study=study, data=data), actor=actor)


def _store(
    *,
    study: Study,
    sessions: dict[tuple[str, str], _SessionPlan],
    identities: dict[str, Participant],
    checker: _Checker,
) -> dict[str, Any]:
    now = timezone.now()
    timepoint_index = {
        t.label: i for i, t in enumerate(sorted(checker.timepoints.values(), key=lambda t: t.order))
    }
    n_lists = max(len(checker.list_position), 1)
    new_participants: dict[str, Participant] = {}
    for (external_id, label), plan in sessions.items():
        if external_id in identities or external_id in new_participants:
            continue
        assert plan.list_id is not None
        # The Latin-square row that gives this list at this timepoint.
        sequence = (checker.list_position[plan.list_id] - timepoint_index[label]) % n_lists
        new_participants[external_id] = Participant(
            study=study,
            arm=checker.arms[plan.arm],
            sequence=sequence,
            # A participant's language: that of their first session in the file.
            language=plan.language,
            imported=True,
        )
    Participant.objects.bulk_create(list(new_participants.values()))
    ParticipantIdentity.objects.bulk_create(
        [
            ParticipantIdentity(
                participant=p, study=study, source=IDENTITY_SOURCE, external_id=external_id
            )
            for external_id, p in new_participants.items()
        ]
    )
    participants = {**identities, **new_participants}
    config = study_config(study)
    session_rows = []
    for (external_id, label), plan in sessions.items():
        assert plan.list_id is not None  # decided by _sessions, or the file was refused
        plan_json = _plan_json(plan)
        session_rows.append(
            Session(
                participant=participants[external_id],
                timepoint=checker.timepoints[label],
                event_list_id=plan.list_id,
                status=Session.Status.COMPLETED,
                language=plan.language,
                plan=plan_json,
                step_index=len(session_steps(plan_json, config)),
                imported=True,
                created_at=now,
                started_at=now,
                last_activity_at=now,
                completed_at=now,
            )
        )
    Session.objects.bulk_create(session_rows, batch_size=1000)
    # Plain tuples in the columns' order, written with COPY on PostgreSQL: a 20 MB file holds
    # ~400,000 trials and ~1,200,000 responses, which model instances would take minutes to
    # build and insert (bulk_create: ~80 us a row).
    trials: list[tuple[Any, ...]] = []
    responses: list[tuple[Any, ...]] = []
    for session, plan in zip(session_rows, sessions.values(), strict=True):
        positions = {
            event_id: i + 1
            for block in ("practice", "order1")
            for i, (event_id, _) in enumerate(session.plan[block])
        }
        positions2 = {event_id: i + 1 for i, (event_id, _) in enumerate(session.plan["order2"])}
        for row in plan.rows:
            event = plan.events[row.event_code]
            trials.append(
                (
                    session.pk,
                    event.pk,
                    event.practice,
                    row.block1 or positions[event.pk],
                    None if event.practice else row.block2 or positions2.get(event.pk),
                    row.values["br"],
                    study.br_mode,
                    "",
                )
            )
            for phase, value in row.values.items():
                if value is None:
                    continue
                responses.append(
                    (
                        session.pk,
                        event.pk,
                        phase,
                        value,
                        row.rt.get(phase) or 0,
                        None,
                        now,
                        uuid.uuid4(),
                    )
                )
    _insert(Trial, TRIAL_COLUMNS, trials)
    _insert(Response, RESPONSE_COLUMNS, responses)
    return {
        "participants": len(new_participants),
        "sessions": len(session_rows),
        "trials": len(trials),
        "responses": len(responses),
        "session_ids": [s.pk for s in session_rows],
    }


TRIAL_COLUMNS: Final = (
    "session_id",
    "event_id",
    "practice",
    "block1_position",
    "block2_position",
    "br",
    "br_mode",
    "planned_valence",
)
RESPONSE_COLUMNS: Final = (
    "session_id",
    "event_id",
    "phase",
    "value",
    "rt_ms",
    "onset_at",
    "received_at",
    "client_id",
)


def _insert(
    model: type[models.Model], columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """Insert rows (tuples in `columns`' order): COPY on PostgreSQL, bulk_create elsewhere.

    Inside the caller's transaction; a unique violation is Django's IntegrityError, as from
    bulk_create. The constraints (unique, check) hold for COPY as for INSERT.
    """
    if not rows:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(
            [model(**dict(zip(columns, row, strict=True))) for row in rows], batch_size=5000
        )
        return
    column_of = {f.attname: f.column for f in model._meta.concrete_fields}
    names = ", ".join(connection.ops.quote_name(column_of[c]) for c in columns)
    sql = f"COPY {connection.ops.quote_name(model._meta.db_table)} ({names}) FROM STDIN"
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.cursor.copy(sql) as copy,
    ):
        for row in rows:
            copy.write_row(row)

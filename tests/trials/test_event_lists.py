"""Event lists from CSV (service and command) and the demonstration study loader."""

from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from trials.models import Event, EventList, Study, StudyMembership
from trials.services.errors import FileRejected, RowError
from trials.services.event_lists import event_list_import, event_list_parse

pytestmark = pytest.mark.usefixtures("postgres")

GOOD = (
    "\ufeffcode , text_en,text_fr,base_rate,source,practice\n"
    "P1,Losing your keys,Perdre ses clés,60,Illustrative,1\n"
    'E1,Having a car accident,Avoir un accident de voiture,30,"Registry, 2019",0\n'
    "E2,Catching the flu,Attraper la grippe,20,,\n"
    "\n"
    "E3,Back pain,,45,Survey,no\n"
)

BAD = (
    "code,text_en,base_rate,practice\n"
    ",Empty code,30,0\n"  # row 2
    "E1,Fine,30,0\n"  # row 3
    "E1,Duplicate,30,0\n"  # row 4
    "E2,Not a number,x,0\n"  # row 5
    "E3,Too big,101,0\n"  # row 6
    "E4,Unsure,30,maybe\n"  # row 7
    "E5,,30,0\n"  # row 8
    "E6,Extra cell,30,0,surplus\n"  # row 9
    "E7,Fine too,0,yes\n"  # row 10
)

BAD_ERRORS = [
    RowError(2, "code", "empty"),
    RowError(4, "code", "duplicate of row 3"),
    RowError(5, "base_rate", "'x' is not a whole number"),
    RowError(6, "base_rate", "101 is not a percentage"),
    RowError(7, "practice", "'maybe' is not 0 or 1"),
    RowError(8, "text_en", "empty"),
    RowError(9, "-", "more cells than columns"),
]


def nothing_stored() -> bool:
    return not EventList.objects.exists() and not Event.objects.exists()


@pytest.mark.django_db
def test_good_file_is_imported_with_texts_and_practice_flags() -> None:
    event_list = event_list_import(name=" illustrative-a ", text=GOOD, description="Demo")

    assert (event_list.name, event_list.description) == ("illustrative-a", "Demo")
    rows = list(
        event_list.events.order_by("position").values_list(
            "code", "texts", "base_rate", "source", "practice", "position"
        )
    )
    assert rows == [
        ("P1", {"en": "Losing your keys", "fr": "Perdre ses clés"}, 60, "Illustrative", True, 1),
        (
            "E1",
            {"en": "Having a car accident", "fr": "Avoir un accident de voiture"},
            30,
            "Registry, 2019",
            False,
            2,
        ),
        ("E2", {"en": "Catching the flu", "fr": "Attraper la grippe"}, 20, "", False, 3),
        ("E3", {"en": "Back pain"}, 45, "Survey", False, 4),
    ]


@pytest.mark.django_db
def test_polarity_column_in_both_directions() -> None:
    text = (
        "code,text_en,base_rate,polarity\n"
        "N1,Having a car accident,30,negative\n"
        "P1,Living past 90,20,Positive\n"
        "N2,Catching the flu,20,\n"
    )
    event_list = event_list_import(name="mixed", text=text)
    assert list(event_list.events.order_by("position").values_list("code", "polarity")) == [
        ("N1", "negative"),
        ("P1", "positive"),
        ("N2", "negative"),
    ]
    # No polarity column at all: every event negative (GOOD has none).
    plain = event_list_import(name="plain", text=GOOD)
    assert set(plain.events.values_list("polarity", flat=True)) == {"negative"}


@pytest.mark.django_db
def test_a_bad_polarity_is_a_row_error_and_nothing_is_stored() -> None:
    text = (
        "code,text_en,base_rate,polarity\n"
        "N1,Having a car accident,30,negative\n"
        "P1,Living past 90,20,good\n"
        "P2,Winning a prize,15,postive\n"
    )
    with pytest.raises(FileRejected) as info:
        event_list_import(name="mixed", text=text)
    assert info.value.errors == [
        RowError(3, "polarity", "'good' is not negative or positive"),
        RowError(4, "polarity", "'postive' is not negative or positive"),
    ]
    assert nothing_stored()


@pytest.mark.django_db
def test_file_with_bad_rows_lists_every_error_and_stores_nothing() -> None:
    with pytest.raises(FileRejected) as info:
        event_list_import(name="bad", text=BAD)

    assert info.value.message == "7 error(s); nothing was imported."
    assert info.value.errors == BAD_ERRORS
    assert str(info.value).splitlines()[1:] == [
        "row 2, code: empty",
        "row 4, code: duplicate of row 3",
        "row 5, base_rate: 'x' is not a whole number",
        "row 6, base_rate: 101 is not a percentage",
        "row 7, practice: 'maybe' is not 0 or 1",
        "row 8, text_en: empty",
        "row 9, -: more cells than columns",
    ]
    assert nothing_stored()


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("code,base_rate", ["text_en"]),
        ("text_en,text_fr", ["code", "base_rate"]),
        ("Code,Text_EN,Base_Rate", ["code", "text_en", "base_rate"]),
    ],
)
def test_missing_required_column(header: str, missing: list[str]) -> None:
    with pytest.raises(FileRejected) as info:
        event_list_parse(header + "\nX,Y,1\n")

    assert info.value.message == "Missing required column(s): " + ", ".join(missing)
    assert info.value.errors == [RowError(1, c, "required column is missing") for c in missing]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "The file is empty."),
        ("\n\n", "The file is empty."),
        ("code,text_en,base_rate\n", "The file has no event rows."),
        ("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "This is not a CSV text file."),
        ("code,text_en,base_rate\nA,\x00,10\n", "This is not a CSV text file."),
    ],
)
def test_not_an_event_list(text: str, message: str) -> None:
    with pytest.raises(FileRejected) as info:
        event_list_parse(text)

    assert info.value.message == message


TOO_LONG = "not readable as CSV: field larger than field limit (131072)"


@pytest.mark.parametrize(
    ("text", "message", "errors"),
    [
        (
            "code,text_en,base_rate\nB,b,1\nA," + "x" * 200_000 + ",10\n",
            "1 error(s); nothing was imported.",
            [RowError(3, "-", TOO_LONG)],
        ),
        (
            "code,text_en,base_rate\r\nA,a\rb,10\r\n",
            "1 error(s); nothing was imported.",
            [
                RowError(
                    2,
                    "-",
                    "not readable as CSV: new-line character seen in unquoted field"
                    " - do you need to open the file in universal-newline mode?",
                )
            ],
        ),
        (
            "code,text_en," + "x" * 200_000 + "\n",
            "This is not a readable CSV file.",
            [RowError(1, "-", TOO_LONG)],
        ),
        (
            'code,text_en,base_rate\nA,"unterminated,10\n',
            "1 error(s); nothing was imported.",
            [RowError(2, "base_rate", "'' is not a whole number")],
        ),
    ],
)
def test_unreadable_csv_is_rejected_not_raised(
    text: str, message: str, errors: list[RowError]
) -> None:
    with pytest.raises(FileRejected) as info:
        event_list_parse(text)

    assert (info.value.message, info.value.errors) == (message, errors)


@pytest.mark.django_db
def test_name_taken_is_refused() -> None:
    event_list_import(name="taken", text=GOOD)

    with pytest.raises(FileRejected) as info:
        event_list_import(name="taken", text=GOOD)

    assert info.value.errors == [RowError(0, "name", "taken")]
    assert Event.objects.count() == 4


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "error"),
    [("  ", RowError(0, "name", "empty")), ("n" * 101, RowError(0, "name", "over 100 characters"))],
)
def test_list_name_is_checked(name: str, error: RowError) -> None:
    with pytest.raises(FileRejected) as info:
        event_list_import(name=name, text=GOOD)

    assert info.value.errors == [error]
    assert nothing_stored()


@pytest.mark.django_db
def test_too_many_events() -> None:
    rows = "".join(f"E{i},Event {i},30\n" for i in range(501))

    with pytest.raises(FileRejected) as info:
        event_list_import(name="big", text="code,text_en,base_rate\n" + rows)

    assert info.value.errors == [RowError(502, "-", "more than 500 events")]
    assert nothing_stored()


# --- the command ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_import_command(tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(GOOD, encoding="utf-8")
    out = StringIO()

    call_command("import_event_list", "cmd-list", str(path), stdout=out)

    assert out.getvalue() == "Imported 'cmd-list': 4 events.\n"
    assert EventList.objects.get().events.count() == 4


@pytest.mark.django_db
def test_import_command_reports_every_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(BAD, encoding="utf-8")

    with pytest.raises(CommandError) as info:
        call_command("import_event_list", "bad", str(path))

    assert str(info.value).splitlines() == [
        "7 error(s); nothing was imported.",
        "row 2, code: empty",
        "row 4, code: duplicate of row 3",
        "row 5, base_rate: 'x' is not a whole number",
        "row 6, base_rate: 101 is not a percentage",
        "row 7, practice: 'maybe' is not 0 or 1",
        "row 8, text_en: empty",
        "row 9, -: more cells than columns",
    ]
    assert nothing_stored()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content",
    [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01", b"code,text_en,base_rate\nA,\x00,1\n"],
)
def test_import_command_refuses_binary(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "list.csv"
    path.write_bytes(content)

    with pytest.raises(CommandError):
        call_command("import_event_list", "bin", str(path))

    assert nothing_stored()


@pytest.mark.django_db
def test_import_command_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CommandError):
        call_command("import_event_list", "none", str(tmp_path / "absent.csv"))


# --- the demonstration study ---------------------------------------------------------------


def load_demo() -> list[str]:
    out = StringIO()
    call_command("load_demo", "--base-url", "http://127.0.0.1:8123", stdout=out)
    return out.getvalue().splitlines()


def assert_demo_shape() -> None:
    study = Study.objects.get(slug="demo")
    assert list(study.arms.values_list("code", flat=True)) == ["patients", "controls"]
    assert list(study.timepoints.values_list("order", "label")) == [
        (0, "baseline"),
        (1, "+4 h"),
        (2, "+7 days"),
    ]
    lists = [sel.event_list for sel in study.study_lists.order_by("position")]
    assert [e.name for e in lists] == ["demo-a", "demo-b", "demo-c"]
    for event_list in lists:
        events = list(event_list.events.all())
        assert len(events) == 42
        assert sum(e.practice for e in events) == 2
        assert all(10 <= e.base_rate <= 70 for e in events)
        assert all(set(e.texts) == {"en", "fr"} for e in events)
        assert all("llustrative" in e.source for e in events)
        assert {e.polarity for e in events} == {"negative"}
    # The study that asks for positive events (score version 2).
    positive = Study.objects.get(slug="demo-positive")
    assert positive.collect_ebr is True
    (link,) = positive.study_lists.all()
    events = list(link.event_list.events.order_by("position"))
    assert [e.code for e in events[:3]] == ["PR01", "PR02", "N01"]
    assert len(events) == 26 and sum(e.practice for e in events) == 2
    assert [e.code for e in events if e.polarity == "positive"] == [
        f"P{i:02d}" for i in range(1, 9)
    ]
    assert all(10 <= e.base_rate <= 70 and "llustrative" in e.source for e in events)
    assert all(set(e.texts) == {"en", "fr"} for e in events)
    assert EventList.objects.count() == 4
    assert Event.objects.count() == 126 + 26
    assert Study.objects.count() == 2
    assert User.objects.filter(username="demo").count() == 1
    assert set(StudyMembership.objects.values_list("study__slug", "role")) == {
        ("demo", "owner"),
        ("demo-positive", "owner"),
    }
    assert "ILLUSTRATIVE" in study.consent_text["en"]
    assert "ILLUSTRATIVES" in study.consent_text["fr"]


@pytest.mark.django_db
def test_load_demo_is_idempotent_and_prints_links(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEMO_PASSWORD", raising=False)

    first = load_demo()
    second = load_demo()

    assert_demo_shape()
    for lines in (first, second):
        assert "  Participant link: http://127.0.0.1:8123/s/demo/" in lines
        assert "  French:           http://127.0.0.1:8123/s/demo/?lang=fr" in lines
        assert (
            "  Positive events:  http://127.0.0.1:8123/s/demo-positive/  (score version 2)" in lines
        )
        assert "  Dashboard:        http://127.0.0.1:8123/dashboard/  (user 'demo')" in lines
    password = next(line for line in second if "Demo password:" in line).split()[-1]
    assert len(password) >= 12
    assert User.objects.get(username="demo").check_password(password)


@pytest.mark.django_db
def test_load_demo_uses_demo_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEMO_PASSWORD", "correct-horse-battery")

    lines = load_demo()
    load_demo()

    assert "  Demo password:    correct-horse-battery" in lines
    assert User.objects.get(username="demo").check_password("correct-horse-battery")
    assert_demo_shape()

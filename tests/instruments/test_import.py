"""`manage.py import_instrument`: adds or updates; a file with errors lists every one with
its place and stores nothing (not even the valid parts)."""

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from instruments.models import Instrument, ItemAnswer
from instruments.services import SHIPPED_DIR, instrument_import

pytestmark = pytest.mark.django_db


def test_import_adds_then_updates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("import_instrument", str(SHIPPED_DIR / "phq9.json"))
    assert capsys.readouterr().out == "Added instrument 'phq9' version 1: 9 items.\n"
    data = json.loads((SHIPPED_DIR / "phq9.json").read_text(encoding="utf-8"))
    data["version"] = "1.1"
    path = tmp_path / "phq9.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    call_command("import_instrument", str(path))
    assert capsys.readouterr().out == "Updated instrument 'phq9' version 1.1: 9 items.\n"
    instrument = Instrument.objects.get()
    assert (instrument.code, instrument.version, instrument.kind) == ("phq9", "1.1", "self_report")
    assert instrument.licence.startswith("Copyright Pfizer Inc.")


def test_a_file_with_errors_stores_nothing(tmp_path: Path) -> None:
    data = json.loads((SHIPPED_DIR / "madrs.json").read_text(encoding="utf-8"))
    data["items"][2]["options"] = [{"value": 0, "label": {"en": "0"}}, {"value": 0, "label": {}}]
    del data["licence"]
    path = tmp_path / "madrs.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(CommandError) as caught:
        call_command("import_instrument", str(path))
    assert str(caught.value) == "\n".join(
        [
            f"{path}: 3 error(s); nothing was stored.",
            "  $.licence: a non-empty string is required",
            "  $.items[2].options[1].label.en: the en text is missing",
            "  $.items[2].options[1].value: the value 0 is used twice",
        ]
    )
    assert Instrument.objects.count() == 0


def test_not_json_is_reported_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "format": 1,\n  "code": "x",,\n}', encoding="utf-8")
    with pytest.raises(CommandError) as caught:
        call_command("import_instrument", str(path))
    assert str(caught.value).splitlines()[1] == (
        "  $: not valid JSON: Expecting property name enclosed in double quotes at line 3, "
        "column 15"
    )
    assert Instrument.objects.count() == 0


def test_an_update_may_not_drop_items_that_have_answers(attached: object) -> None:
    from trials.models import Session

    session = Session.objects.order_by("id").first()
    assert session is not None
    phq9 = Instrument.objects.get(code="phq9")
    from django.utils import timezone

    ItemAnswer.objects.create(
        session=session,
        participant_id=session.participant_id,
        instrument=phq9,
        item="phq9_9",
        value=0,
        source="participant",
        answered_at=timezone.now(),
    )
    data = json.loads((SHIPPED_DIR / "phq9.json").read_text(encoding="utf-8"))
    data["items"] = data["items"][:8]
    data["version"] = "2"
    from instruments.definition import InstrumentInvalid

    with pytest.raises(InstrumentInvalid) as caught:
        instrument_import(data=json.dumps(data))
    assert [(e.path, e.message) for e in caught.value.errors] == [
        ("$.items", "'phq9_9' has stored answers: it cannot be removed")
    ]
    assert Instrument.objects.get(code="phq9").version == "1"

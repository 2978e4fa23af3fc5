"""The instrument format (good and bad files, every error with its place) and scoring
against hand-computed totals: reverse-keyed items, max-of groups, prorating, subscales."""

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from instruments.definition import (
    InstrumentInvalid,
    answer_error,
    answers_errors,
    instrument_parse,
    instrument_score,
)

DATA = Path(__file__).resolve().parents[2] / "instruments" / "data"


def shipped(code: str) -> dict[str, Any]:
    return dict(json.loads((DATA / f"{code}.json").read_text(encoding="utf-8")))


def errors_of(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(InstrumentInvalid) as caught:
        instrument_parse(data)
    return [(e.path, e.message) for e in caught.value.errors]


@pytest.mark.parametrize("code", ["demographics", "phq9", "qids_sr16", "lotr", "madrs"])
def test_shipped_files_are_valid_with_source_and_licence(code: str) -> None:
    instrument = instrument_parse(shipped(code))
    assert instrument.code == code
    assert instrument.source and instrument.licence
    assert "en" in instrument.languages
    if code != "demographics":
        assert [i.code for i in instrument.items] == [
            f"{code}_{n}" for n in range(1, len(instrument.items) + 1)
        ]


def test_shipped_item_codes_and_kinds() -> None:
    assert [i.code for i in instrument_parse(shipped("demographics")).items] == [
        "age",
        "sex",
        "education_years",
    ]
    madrs = instrument_parse(shipped("madrs"))
    assert madrs.kind == "clinician"
    assert len(madrs.items) == 10
    assert all(i.values() == (0, 1, 2, 3, 4, 5, 6) for i in madrs.items)
    age = instrument_parse(shipped("demographics")).item("age")
    assert age is not None and age.numeric and (age.minimum, age.maximum) == (16, 110)


def test_every_error_is_reported_with_its_json_path() -> None:
    data = shipped("lotr")
    data["format"] = 2
    data["kind"] = "robot"
    data["items"][1]["code"] = "Bad Code"
    data["items"][2]["reverse"] = "yes"
    data["items"][3]["text"] = {"en": ""}
    data["items"][4] = data["items"][0]  # lotr_1 twice
    data["options"][1]["value"] = 0  # a value used twice
    data["subscales"][0]["items"].append("lotr_99")
    data["scoring"]["missing"] = "guess"
    data["colour"] = "blue"
    assert errors_of(data) == [
        ("$.colour", "unknown key 'colour'"),
        ("$.format", "format 1 is required"),
        ("$.kind", "one of self_report, clinician is required"),
        ("$.options[1].value", "the value 0 is used twice"),
        (
            "$.items[1].code",
            "a code is required: lower-case letters, digits and _, starting with a letter, "
            "at most 32 characters",
        ),
        ("$.items[2].reverse", "true or false is required"),
        ("$.items[3].text.en", "the en text is missing"),
        ("$.items[4].code", "the item 'lotr_1' is defined twice"),
        ("$.scoring.missing", "one of none, prorate is required"),
        ("$.subscales[0].items[3]", "'lotr_99' is not an item"),
    ]


def test_numeric_and_option_errors() -> None:
    data = shipped("demographics")
    data["items"][0]["min"] = 50
    data["items"][0]["max"] = 20
    data["items"][1]["options"] = [{"value": 1, "label": {"en": "Female"}}]
    data["items"][2]["reverse"] = True
    data["name"] = {"en": "About you", "fr": "À propos", "de": "Über Sie"}
    assert errors_of(data) == [
        ("$.name.de", "'de' is not one of the file's languages"),
        ("$.items[0].max", "max must be greater than min"),
        ("$.items[1].options", "a list of at least 2 options is required"),
        ("$.items[2].reverse", "only an item with options can be reverse-keyed"),
    ]


def test_missing_translation_and_not_an_object() -> None:
    data = shipped("phq9")
    data["languages"] = ["en", "fr"]
    errors = errors_of(data)
    assert ("$.name.fr", "the fr text is missing") in errors
    assert ("$.items[8].text.fr", "the fr text is missing") in errors
    assert ("$.options[3].label.fr", "the fr text is missing") in errors
    assert errors_of([1, 2]) == [("$", "the file must hold one JSON object")]


def test_clinician_items_need_options_and_prorate_needs_a_count() -> None:
    data = shipped("madrs")
    data["items"][0] = {"code": "madrs_1", "text": {"en": "x"}, "min": 0, "max": 6}
    data["scoring"] = {"rule": "sum", "missing": "prorate", "max_missing": 0}
    assert errors_of(data) == [
        ("$.scoring.max_missing", "at least 1 is required to prorate"),
        ("$.items", "a clinician-rated instrument's items have options"),
    ]


def test_phq9_total_and_prorating() -> None:
    phq9 = instrument_parse(shipped("phq9"))
    answers: dict[str, int | None] = {
        f"phq9_{n}": v for n, v in zip(range(1, 10), [3, 2, 1, 0, 3, 2, 1, 0, 1], strict=True)
    }
    score = instrument_score(phq9, answers)
    assert (score.total, score.n_answered, score.n_missing, score.status) == (
        13.0,
        9,
        0,
        "complete",
    )
    # One missing item (allowed: up to 1): 13 - 1 = 12 over 8 answered, times 9 = 13.5.
    answers["phq9_9"] = None
    score = instrument_score(phq9, answers)
    assert (score.total, score.n_answered, score.n_missing, score.status) == (
        13.5,
        8,
        1,
        "prorated",
    )
    del answers["phq9_8"]
    score = instrument_score(phq9, answers)
    assert (score.total, score.n_answered, score.n_missing, score.status) == (
        None,
        7,
        2,
        "incomplete",
    )


def test_lotr_reverse_keyed_fillers_and_subscales() -> None:
    lotr = instrument_parse(shipped("lotr"))
    raw = [4, 0, 1, 3, 4, 4, 0, 2, 2, 3]  # items 1..10
    answers: dict[str, int | None] = {
        f"lotr_{n}": v for n, v in zip(range(1, 11), raw, strict=True)
    }
    score = instrument_score(lotr, answers)
    # Scored: 1, 4, 10 as they are (4 + 3 + 3 = 10); 3, 7, 9 reversed (3 + 4 + 2 = 9).
    assert score.total == 19.0
    assert (score.n_answered, score.n_missing, score.status) == (6, 0, "complete")
    assert score.subscales == {"optimism": 10.0, "pessimism_reversed": 9.0}
    # A filler left out changes nothing; a scored item left out (rule none) empties the total.
    del answers["lotr_2"]
    assert instrument_score(lotr, answers).total == 19.0
    answers["lotr_3"] = None
    score = instrument_score(lotr, answers)
    assert (score.total, score.status, score.subscales) == (
        None,
        "incomplete",
        {"optimism": 10.0, "pessimism_reversed": None},
    )


def test_qids_takes_the_highest_item_of_each_domain() -> None:
    qids = instrument_parse(shipped("qids_sr16"))
    raw = [1, 3, 0, 2, 2, 0, 1, 0, 3, 1, 2, 0, 1, 2, 1, 2]
    answers: dict[str, int | None] = {
        f"qids_sr16_{n}": v for n, v in zip(range(1, 17), raw, strict=True)
    }
    score = instrument_score(qids, answers)
    # sleep max(1,3,0,2)=3, mood 2, weight max(0,1,0,3)=3, 1+2+0+1+2, psychomotor max(1,2)=2
    assert score.total == 3 + 2 + 3 + 1 + 2 + 0 + 1 + 2 + 2 == 16.0
    assert (score.n_answered, score.n_missing) == (9, 0)
    # A domain with one of its items answered still counts (its highest answered item).
    for n in (1, 2, 3):
        answers[f"qids_sr16_{n}"] = None
    assert instrument_score(qids, answers).total == 15.0


def test_madrs_total_and_demographics_unscored() -> None:
    madrs = instrument_parse(shipped("madrs"))
    answers = {f"madrs_{n}": n % 7 for n in range(1, 11)}
    assert instrument_score(madrs, answers).total == sum(n % 7 for n in range(1, 11)) == 27.0
    demographics = instrument_parse(shipped("demographics"))
    score = instrument_score(demographics, {"age": 30, "sex": 1})
    assert (score.total, score.n_answered, score.n_missing, score.status) == (
        None,
        2,
        1,
        "incomplete",
    )


def test_answer_checks() -> None:
    demographics = instrument_parse(shipped("demographics"))
    age, sex = demographics.item("age"), demographics.item("sex")
    assert age is not None and sex is not None
    assert answer_error(age, 16) is None
    assert answer_error(age, 15) == "The answer must be between 16 and 110."
    assert answer_error(age, 30.5) == "The answer must be a whole number."
    assert answer_error(age, True) == "The answer must be a whole number."
    assert answer_error(sex, 4) == "4 is not one of this item's options (1, 2, 3, 9)."
    assert answer_error(sex, None) == "This item is required: it cannot be skipped."
    madrs = instrument_parse(shipped("madrs"))
    given: dict[str, object] = {f"madrs_{n}": 2 for n in range(1, 10)}
    given["madrs_11"] = 1
    given["madrs_1"] = 7
    assert answers_errors(madrs, given, complete=True) == {
        "madrs_11": "'madrs_11' is not an item of madrs.",
        "madrs_1": "7 is not one of this item's options (0, 1, 2, 3, 4, 5, 6).",
        "madrs_10": "This item is required: it cannot be skipped.",
    }


def test_parse_does_not_change_its_input() -> None:
    data = shipped("lotr")
    before = copy.deepcopy(data)
    instrument_parse(data)
    assert data == before

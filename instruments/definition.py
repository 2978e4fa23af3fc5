"""Instruments as data: read and check an instrument file, check an answer, score answers.

Pure (no Django): the format is docs/instruments.md. `instrument_parse` reports every
error of a file at once, each with its place as a JSON path (`$.items[3].options[0].value`),
so a lab fixes a file in one round; the importer stores nothing from a file with errors.

Scoring (PROTOCOL.md, Questionnaires): the total is the sum of the scored terms, a term
being one item's keyed value (reverse-keyed items mirrored on their option range) or, for
a `max_of` group, the largest keyed value among its items (QIDS-SR16's sleep, appetite
and psychomotor domains). Missing terms: with the rule `none` any missing term leaves the
total empty (`incomplete`); with `prorate` up to `max_missing` missing terms the sum is
scaled by terms / answered terms (`prorated`), beyond that `incomplete`. Subscales follow
the same rule over their own terms.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

FORMAT_VERSION: Final = 1
KINDS: Final = ("self_report", "clinician")
POSITIONS: Final = ("before", "after")
RULES: Final = ("sum", "none")
MISSING_RULES: Final = ("none", "prorate")
STATUSES: Final = ("complete", "prorated", "incomplete")
CODE_PATTERN: Final = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
LANGUAGE_PATTERN: Final = re.compile(r"^[a-z]{2}(-[A-Za-z]{2})?$")
# Answers are stored in a SMALLINT column.
VALUE_LIMIT: Final = 32767
# An instrument's score version: bump when the scoring of this module changes, as the
# task's SCORE_VERSION is bumped, so stored scores say which rules made them.
INSTRUMENT_SCORE_VERSION: Final = 1

Kind = Literal["self_report", "clinician"]
Status = Literal["complete", "prorated", "incomplete"]

_TOP_KEYS: Final = frozenset(
    {
        "format",
        "code",
        "version",
        "kind",
        "name",
        "languages",
        "instructions",
        "source",
        "licence",
        "options",
        "items",
        "subscales",
        "scoring",
        "note",
    }
)
_ITEM_KEYS: Final = frozenset(
    {"code", "text", "options", "min", "max", "required", "reverse", "scored", "unit"}
)


@dataclass(frozen=True, slots=True)
class Option:
    value: int
    label: dict[str, str]


@dataclass(frozen=True, slots=True)
class Item:
    code: str
    text: dict[str, str]
    options: tuple[Option, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    required: bool = True
    reverse: bool = False
    scored: bool = True
    unit: dict[str, str] = field(default_factory=dict)

    @property
    def numeric(self) -> bool:
        """An answer typed as a number (age) rather than chosen among options."""
        return not self.options

    def values(self) -> tuple[int, ...]:
        return tuple(o.value for o in self.options)

    def keyed(self, value: int) -> int:
        """The value as scored: reverse-keyed items mirrored on their options' range."""
        if not self.reverse:
            return value
        values = self.values()
        return min(values) + max(values) - value


@dataclass(frozen=True, slots=True)
class Subscale:
    code: str
    items: tuple[str, ...]
    name: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Scoring:
    rule: str = "sum"
    missing: str = "none"
    max_missing: int = 0
    max_of: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class Instrument:
    code: str
    version: str
    kind: Kind
    name: dict[str, str]
    languages: tuple[str, ...]
    source: str
    licence: str
    items: tuple[Item, ...]
    instructions: dict[str, str] = field(default_factory=dict)
    subscales: tuple[Subscale, ...] = ()
    scoring: Scoring = field(default_factory=Scoring)

    def item(self, code: str) -> Item | None:
        for item in self.items:
            if item.code == code:
                return item
        return None

    @property
    def scored(self) -> bool:
        return self.scoring.rule != "none"


@dataclass(frozen=True, slots=True)
class FileError:
    """One error of an instrument file: where (a JSON path) and what."""

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class InstrumentInvalid(ValueError):
    """The file has errors; `errors` lists every one with its place."""

    def __init__(self, errors: Sequence[FileError]) -> None:
        super().__init__(f"{len(errors)} error(s) in the instrument file")
        self.errors = list(errors)


@dataclass(frozen=True, slots=True)
class Score:
    """One instrument's score for one participant and timepoint."""

    total: float | None
    n_answered: int
    n_missing: int
    status: Status
    subscales: dict[str, float | None]


# ---------------------------------------------------------------------------- reading


class _Reader:
    """Collects errors while reading; every check goes on after a failure."""

    def __init__(self) -> None:
        self.errors: list[FileError] = []

    def error(self, path: str, message: str) -> None:
        self.errors.append(FileError(path, message))

    def keys(self, data: Mapping[str, Any], allowed: frozenset[str], path: str) -> None:
        for key in sorted(set(data) - allowed):
            self.error(f"{path}.{key}", f"unknown key {key!r}")

    def text(self, data: Mapping[str, Any], key: str, path: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            self.error(f"{path}.{key}", "a non-empty string is required")
            return ""
        return value

    def code(self, data: Mapping[str, Any], key: str, path: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not CODE_PATTERN.match(value):
            self.error(
                f"{path}.{key}",
                "a code is required: lower-case letters, digits and _, starting with a "
                "letter, at most 32 characters",
            )
            return ""
        return value

    def flag(self, data: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            self.error(f"{path}.{key}", "true or false is required")
            return default
        return value

    def integer(self, data: Mapping[str, Any], key: str, path: str) -> int | None:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(f"{path}.{key}", "an integer is required")
            return None
        if abs(value) > VALUE_LIMIT:
            self.error(f"{path}.{key}", f"must be between -{VALUE_LIMIT} and {VALUE_LIMIT}")
            return None
        return value

    def texts(
        self, data: Mapping[str, Any], key: str, path: str, languages: Sequence[str]
    ) -> dict[str, str]:
        """{language: text} with a non-empty text for every declared language."""
        value = data.get(key)
        where = f"{path}.{key}"
        if not isinstance(value, dict):
            self.error(where, "an object {language: text} is required")
            return {}
        out: dict[str, str] = {}
        for language in languages:
            text = value.get(language)
            if not isinstance(text, str) or not text.strip():
                self.error(f"{where}.{language}", f"the {language} text is missing")
            else:
                out[language] = text
        for language in sorted(set(value) - set(languages)):
            self.error(f"{where}.{language}", f"{language!r} is not one of the file's languages")
        return out

    def options(self, raw: Any, path: str, languages: Sequence[str]) -> tuple[Option, ...]:
        if not isinstance(raw, list) or len(raw) < 2:
            self.error(path, "a list of at least 2 options is required")
            return ()
        options: list[Option] = []
        seen: set[int] = set()
        for i, entry in enumerate(raw):
            where = f"{path}[{i}]"
            if not isinstance(entry, dict):
                self.error(where, "an object {value, label} is required")
                continue
            self.keys(entry, frozenset({"value", "label"}), where)
            value = self.integer(entry, "value", where)
            label = self.texts(entry, "label", where, languages)
            if value is None:
                continue
            if value in seen:
                self.error(f"{where}.value", f"the value {value} is used twice")
                continue
            seen.add(value)
            options.append(Option(value, label))
        return tuple(options)


def _languages(reader: _Reader, data: Mapping[str, Any]) -> tuple[str, ...]:
    raw = data.get("languages")
    if not isinstance(raw, list) or not raw:
        reader.error("$.languages", "a non-empty list of language codes is required")
        return ("en",)
    languages: list[str] = []
    for i, language in enumerate(raw):
        if not isinstance(language, str) or not LANGUAGE_PATTERN.match(language):
            reader.error(f"$.languages[{i}]", "a language code such as en or fr is required")
        elif language in languages:
            reader.error(f"$.languages[{i}]", f"{language!r} is listed twice")
        else:
            languages.append(language)
    if "en" not in languages:
        reader.error("$.languages", "English (en) is required: it is every text's fallback")
    return tuple(languages) or ("en",)


def _item(
    reader: _Reader,
    raw: Any,
    path: str,
    languages: Sequence[str],
    shared: tuple[Option, ...] | None,
) -> Item | None:
    if not isinstance(raw, dict):
        reader.error(path, "an object is required")
        return None
    reader.keys(raw, _ITEM_KEYS, path)
    code = reader.code(raw, "code", path)
    text = reader.texts(raw, "text", path, languages)
    required = reader.flag(raw, "required", path, True)
    reverse = reader.flag(raw, "reverse", path, False)
    scored = reader.flag(raw, "scored", path, True)
    numeric = "min" in raw or "max" in raw
    unit = reader.texts(raw, "unit", path, languages) if "unit" in raw else {}
    if numeric:
        if "options" in raw:
            reader.error(f"{path}.options", "an item has either options or min and max")
        minimum = reader.integer(raw, "min", path)
        maximum = reader.integer(raw, "max", path)
        if minimum is not None and maximum is not None and minimum >= maximum:
            reader.error(f"{path}.max", "max must be greater than min")
        if reverse:
            reader.error(f"{path}.reverse", "only an item with options can be reverse-keyed")
        return Item(code, text, (), minimum, maximum, required, False, scored, unit)
    if "options" in raw:
        options = reader.options(raw["options"], f"{path}.options", languages)
    elif shared is not None:
        options = shared
    else:
        reader.error(path, "options (or min and max) are required: the file has no shared options")
        options = ()
    return Item(code, text, options, None, None, required, reverse, scored, unit)


def _scoring(reader: _Reader, raw: Any, item_codes: Mapping[str, Item]) -> Scoring:
    if raw is None:
        return Scoring()
    if not isinstance(raw, dict):
        reader.error("$.scoring", "an object is required")
        return Scoring()
    reader.keys(raw, frozenset({"rule", "missing", "max_missing", "max_of"}), "$.scoring")
    rule = raw.get("rule", "sum")
    if rule not in RULES:
        reader.error("$.scoring.rule", f"one of {', '.join(RULES)} is required")
        rule = "sum"
    missing = raw.get("missing", "none")
    if missing not in MISSING_RULES:
        reader.error("$.scoring.missing", f"one of {', '.join(MISSING_RULES)} is required")
        missing = "none"
    max_missing = 0
    if missing == "prorate":
        value = reader.integer(raw, "max_missing", "$.scoring")
        if value is not None and value < 1:
            reader.error("$.scoring.max_missing", "at least 1 is required to prorate")
        max_missing = value if value is not None and value >= 1 else 0
    elif "max_missing" in raw:
        reader.error("$.scoring.max_missing", "max_missing needs missing: prorate")
    groups: list[tuple[str, ...]] = []
    grouped: set[str] = set()
    raw_groups = raw.get("max_of", [])
    if not isinstance(raw_groups, list):
        reader.error("$.scoring.max_of", "a list of lists of item codes is required")
        raw_groups = []
    for g, group in enumerate(raw_groups):
        where = f"$.scoring.max_of[{g}]"
        if not isinstance(group, list) or len(group) < 2:
            reader.error(where, "a list of at least 2 item codes is required")
            continue
        for i, code in enumerate(group):
            item = item_codes.get(code) if isinstance(code, str) else None
            if item is None:
                reader.error(f"{where}[{i}]", f"{code!r} is not an item of this instrument")
            elif not item.scored or item.numeric:
                reader.error(f"{where}[{i}]", f"{code!r} is not a scored item with options")
            elif code in grouped:
                reader.error(f"{where}[{i}]", f"{code!r} is in two max_of groups")
            else:
                grouped.add(code)
        groups.append(tuple(c for c in group if isinstance(c, str)))
    return Scoring(rule, missing, max_missing, tuple(groups))


def _subscales(
    reader: _Reader, raw: Any, item_codes: Mapping[str, Item], languages: Sequence[str]
) -> tuple[Subscale, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        reader.error("$.subscales", "a list is required")
        return ()
    out: list[Subscale] = []
    seen: set[str] = set()
    for s, entry in enumerate(raw):
        where = f"$.subscales[{s}]"
        if not isinstance(entry, dict):
            reader.error(where, "an object {code, items} is required")
            continue
        reader.keys(entry, frozenset({"code", "name", "items"}), where)
        code = reader.code(entry, "code", where)
        if code and code in seen:
            reader.error(f"{where}.code", f"the subscale {code!r} is defined twice")
        seen.add(code)
        name = reader.texts(entry, "name", where, languages) if "name" in entry else {}
        items = entry.get("items")
        if not isinstance(items, list) or not items:
            reader.error(f"{where}.items", "a non-empty list of item codes is required")
            continue
        for i, item_code in enumerate(items):
            item = item_codes.get(item_code) if isinstance(item_code, str) else None
            if item is None:
                reader.error(f"{where}.items[{i}]", f"{item_code!r} is not an item")
            elif not item.scored:
                reader.error(f"{where}.items[{i}]", f"{item_code!r} is not scored")
        out.append(Subscale(code, tuple(c for c in items if isinstance(c, str)), name))
    return tuple(out)


def instrument_parse(data: Any) -> Instrument:
    """The instrument a file describes; raises InstrumentInvalid listing every error."""
    reader = _Reader()
    if not isinstance(data, dict):
        raise InstrumentInvalid([FileError("$", "the file must hold one JSON object")])
    reader.keys(data, _TOP_KEYS, "$")
    if data.get("format") != FORMAT_VERSION:
        reader.error("$.format", f"format {FORMAT_VERSION} is required")
    languages = _languages(reader, data)
    code = reader.code(data, "code", "$")
    version = reader.text(data, "version", "$")
    kind: Kind = "clinician" if data.get("kind") == "clinician" else "self_report"
    if data.get("kind") not in KINDS:
        reader.error("$.kind", f"one of {', '.join(KINDS)} is required")
    name = reader.texts(data, "name", "$", languages)
    instructions = (
        reader.texts(data, "instructions", "$", languages) if "instructions" in data else {}
    )
    source = reader.text(data, "source", "$")
    licence = reader.text(data, "licence", "$")
    shared = reader.options(data["options"], "$.options", languages) if "options" in data else None
    raw_items = data.get("items")
    items: list[Item] = []
    if not isinstance(raw_items, list) or not raw_items:
        reader.error("$.items", "a non-empty list of items is required")
        raw_items = []
    by_code: dict[str, Item] = {}
    for i, raw in enumerate(raw_items):
        item = _item(reader, raw, f"$.items[{i}]", languages, shared)
        if item is None:
            continue
        if item.code and item.code in by_code:
            reader.error(f"$.items[{i}].code", f"the item {item.code!r} is defined twice")
            continue
        if item.code:
            by_code[item.code] = item
        items.append(item)
    scoring = _scoring(reader, data.get("scoring"), by_code)
    subscales = _subscales(reader, data.get("subscales"), by_code, languages)
    if scoring.rule == "sum" and not any(i.scored for i in items):
        reader.error("$.scoring.rule", "sum needs at least one scored item (or rule none)")
    if kind == "clinician" and any(i.numeric for i in items):
        reader.error("$.items", "a clinician-rated instrument's items have options")
    if reader.errors:
        raise InstrumentInvalid(reader.errors)
    return Instrument(
        code=code,
        version=version,
        kind=kind,
        name=name,
        languages=languages,
        source=source,
        licence=licence,
        items=tuple(items),
        instructions=instructions,
        subscales=subscales,
        scoring=scoring,
    )


# ---------------------------------------------------------------------------- answers


def answer_error(item: Item, value: object) -> str | None:
    """Why a value is not an answer to this item (None when it is one)."""
    if value is None:
        return "This item is required: it cannot be skipped." if item.required else None
    if isinstance(value, bool) or not isinstance(value, int):
        return "The answer must be a whole number."
    if item.numeric:
        low = item.minimum if item.minimum is not None else -VALUE_LIMIT
        high = item.maximum if item.maximum is not None else VALUE_LIMIT
        if not low <= value <= high:
            return f"The answer must be between {low} and {high}."
        return None
    if value not in item.values():
        allowed = ", ".join(str(v) for v in item.values())
        return f"{value} is not one of this item's options ({allowed})."
    return None


def answers_errors(
    instrument: Instrument, answers: Mapping[str, object], *, complete: bool
) -> dict[str, str]:
    """{item code: message} for every unknown item, bad value, and (complete) required gap."""
    errors: dict[str, str] = {}
    for code in answers:
        if instrument.item(code) is None:
            errors[code] = f"{code!r} is not an item of {instrument.code}."
    for item in instrument.items:
        if item.code in answers:
            message = answer_error(item, answers[item.code])
        elif complete and item.required:
            message = "This item is required: it cannot be skipped."
        else:
            message = None
        if message:
            errors[item.code] = message
    return errors


# ---------------------------------------------------------------------------- scoring


def _terms(instrument: Instrument, codes: Sequence[str]) -> list[tuple[str, ...]]:
    """The scored terms among these items: single items, or max_of groups (kept whole)."""
    wanted = set(codes)
    terms: list[tuple[str, ...]] = []
    grouped: set[str] = set()
    for group in instrument.scoring.max_of:
        members = tuple(c for c in group if c in wanted)
        if members:
            terms.append(members)
            grouped.update(group)
    for code in codes:
        item = instrument.item(code)
        if item is not None and item.scored and code not in grouped:
            terms.append((code,))
    return terms


def _sum(
    instrument: Instrument, terms: list[tuple[str, ...]], answers: Mapping[str, int | None]
) -> tuple[float | None, int, int]:
    """(total or None, answered terms, missing terms) under the missing-item rule."""
    total = 0
    answered = 0
    for term in terms:
        keyed = [
            item.keyed(value)
            for code in term
            if (item := instrument.item(code)) is not None
            and (value := answers.get(code)) is not None
        ]
        if keyed:
            total += max(keyed)
            answered += 1
    missing = len(terms) - answered
    if missing == 0:
        return float(total), answered, 0
    rule = instrument.scoring
    if rule.missing == "prorate" and missing <= rule.max_missing and answered:
        return total * len(terms) / answered, answered, missing
    return None, answered, missing


def instrument_score(instrument: Instrument, answers: Mapping[str, int | None]) -> Score:
    """Total, counts, status and subscales of one participant's answers at one timepoint."""
    codes = [i.code for i in instrument.items]
    if not instrument.scored:
        n_answered = sum(1 for c in codes if answers.get(c) is not None)
        missing = sum(1 for i in instrument.items if i.required and answers.get(i.code) is None)
        status: Status = "complete" if missing == 0 else "incomplete"
        return Score(None, n_answered, missing, status, {})
    terms = _terms(instrument, codes)
    total, n_answered, n_missing = _sum(instrument, terms, answers)
    if n_missing == 0:
        status = "complete"
    elif total is not None:
        status = "prorated"
    else:
        status = "incomplete"
    subscales = {
        s.code: _sum(instrument, _terms(instrument, s.items), answers)[0]
        for s in instrument.subscales
    }
    return Score(
        _round(total), n_answered, n_missing, status, {k: _round(v) for k, v in subscales.items()}
    )


def _round(value: float | None) -> float | None:
    # Prorated totals are fractions (e.g. 17 * 9 / 8); 4 decimals keep exports readable and
    # exact for every sum of integers.
    if value is None or not math.isfinite(value):
        return None
    return round(value, 4)

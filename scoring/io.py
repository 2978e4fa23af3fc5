"""Reading a trials CSV strictly, and writing scores, for the CLI and imports.

A file from a lab computer or a spreadsheet is checked before anything is
scored: a wrong file must stop with a message that names the row and column
to fix, not turn silently into missing values.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Final, TextIO

import numpy as np
import pandas as pd

from protocol.phases import PHASES
from scoring.metrics import (
    DEFAULT_POLARITY,
    POLARITIES,
    REQUIRED_COLUMNS,
    SCORE_COLUMNS,
    SCORE_VERSION,
    scores_for_export,
)

NUMERIC_COLUMNS: Final = (
    *(phase.name for phase in PHASES),
    *(f"rt_{phase.name}_ms" for phase in PHASES if phase.rt_column),
    "scale_min",
    "scale_max",
    "block1_position",
    "block2_position",
)
# R writes NA, pandas and Python nan, databases null: all mean "no answer",
# as an empty cell does.
MISSING_TOKENS: Final = frozenset({"", "na", "nan", "null"})
_TRUE: Final = frozenset({"true", "t", "yes", "y", "1"})
_FALSE: Final = frozenset({"false", "f", "no", "n", "0"})
# French spreadsheets export with ';', some tools with tabs.
_DELIMITERS: Final = (",", ";", "\t")


class TrialsFileError(ValueError):
    """A trials file that cannot be scored; the message says where and why."""


def read_trials_csv(path: str | Path) -> pd.DataFrame:
    """Read and validate a trials CSV file (see parse_trials_csv)."""
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise TrialsFileError(f"file not found: {file}") from None
    except IsADirectoryError:
        raise TrialsFileError(f"not a CSV file: {file} is a directory") from None
    except OSError as error:
        raise TrialsFileError(f"cannot read {file}: {error.strerror}") from None
    if b"\x00" in raw:
        raise TrialsFileError(f"not a CSV file: {file} holds binary data")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise TrialsFileError(f"not a CSV file: {file} is not UTF-8 text") from None
    return parse_trials_csv(text, source=str(file))


def _records(text: str, source: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (spreadsheet row number, cells) of every non-blank row."""
    lines = text.splitlines()
    header_line = next((line for line in lines if line.strip()), None)
    if header_line is None:
        raise TrialsFileError(f"not a CSV file: {source} is empty")
    delimiter = max(_DELIMITERS, key=header_line.count)
    if header_line.count(delimiter) == 0:
        raise TrialsFileError(
            f"not a CSV file: the first line of {source} has no columns separated by ',' or ';'"
        )
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter)
    header: list[str] | None = None
    records: list[tuple[int, list[str]]] = []
    try:
        # One reader record is one spreadsheet row (a quoted field may span
        # several physical lines), blank rows included, so count records.
        for row, cells in enumerate(reader, start=1):
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = [c.strip() for c in cells]
            else:
                records.append((row, cells))
    except csv.Error as error:
        raise TrialsFileError(f"not a CSV file: {source}: {error}") from None
    assert header is not None  # a non-blank line exists, checked above
    return header, records


def parse_trials_csv(text: str, *, source: str = "<text>") -> pd.DataFrame:
    """Validate trials CSV text into a DataFrame for scoring.

    Required columns: session, event, e1, br, e2; every other column is
    optional. Empty cells and NA / NaN / null are missing values. Numeric
    columns become floats, practice becomes bool, polarity negative (the
    default for an empty cell) or positive, session and event stay text.
    Raises TrialsFileError naming the row (header = row 1) and the column.
    """
    header, records = _records(text, source)
    seen: set[str] = set()
    for name in filter(None, header):
        if name in seen:
            raise TrialsFileError(f"column {name!r} appears twice in the header")
        seen.add(name)
    missing = [c for c in REQUIRED_COLUMNS if c not in seen]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise TrialsFileError(f"missing required column{plural}: {', '.join(missing)}")

    width = len(header)
    for row, cells in records:
        if len(cells) < width or any(c.strip() for c in cells[width:]):
            raise TrialsFileError(f"row {row}: {len(cells)} fields where the header has {width}")
    rows = [row for row, _ in records]
    # Spreadsheets often save trailing unnamed columns; they carry nothing.
    columns = {
        name: pd.Series([cells[i].strip() for _, cells in records], dtype=object)
        for i, name in enumerate(header)
        if name
    }
    frame = pd.DataFrame(
        {name: _parse_column(name, values, rows) for name, values in columns.items()}
    )
    _check_unique(frame, rows)
    return frame


def _parse_column(name: str, values: pd.Series, rows: Sequence[int]) -> pd.Series:
    """One column's cells converted to its type; an error names the first bad cell."""
    missing = values.str.lower().isin(MISSING_TOKENS)
    if name in ("session", "event"):
        _fail_at(missing, rows, name, values, "an empty {name} is not allowed")
        return values
    if name in NUMERIC_COLUMNS:
        parsed = pd.to_numeric(values.where(~missing), errors="coerce")
        number = np.asarray(parsed, dtype=np.float64)
        bad = ~missing.to_numpy(dtype=np.bool_) & ~np.isfinite(number)
        _fail_at(bad, rows, name, values, "{value!r} is not a number")
        return pd.Series(number)
    if name == "practice":
        lowered = values.str.lower()
        unknown = ~(missing | lowered.isin(_TRUE) | lowered.isin(_FALSE))
        _fail_at(unknown, rows, name, values, "{value!r} is not true or false")
        return lowered.isin(_TRUE)
    if name == "polarity":
        lowered = values.str.lower()
        unknown = ~(missing | lowered.isin(POLARITIES))
        _fail_at(unknown, rows, name, values, "{value!r} is not negative or positive")
        return lowered.where(~missing, DEFAULT_POLARITY)
    return values.where(~missing, None)


def _fail_at(
    bad: pd.Series | np.ndarray,
    rows: Sequence[int],
    name: str,
    values: pd.Series,
    template: str,
) -> None:
    """Raise for the first flagged cell, naming its row and column."""
    flagged = np.flatnonzero(np.asarray(bad, dtype=np.bool_))
    if flagged.size:
        first = int(flagged[0])
        message = template.format(name=name, value=values.iloc[first])
        raise TrialsFileError(f"row {rows[first]}, column {name}: {message}")


def _check_unique(frame: pd.DataFrame, rows: Sequence[int]) -> None:
    """Refuse a second row for the same (session, event)."""
    keys = ["session", "event"]
    repeated = np.flatnonzero(frame.duplicated(keys, keep="first").to_numpy())
    if repeated.size:
        second = int(repeated[0])
        session, event = frame.iloc[second][keys]
        same = (frame["session"] == session) & (frame["event"] == event)
        first = int(np.flatnonzero(same.to_numpy())[0])
        raise TrialsFileError(
            f"row {rows[second]}: duplicate (session, event) = ({session!r}, "
            f"{event!r}), first on row {rows[first]}"
        )


def write_scores_csv(scores: pd.DataFrame, stream: TextIO) -> None:
    """Write scores as CSV: session, score_version, then SCORE_COLUMNS, flags ';'-joined.

    Columns beyond SCORE_COLUMNS (the hierarchical fit's hb_*) follow, in their order.
    """
    export = scores_for_export(scores)
    export.insert(1, "score_version", SCORE_VERSION)
    known = {"session", "score_version", *SCORE_COLUMNS}
    extra = [c for c in export.columns if c not in known]
    export.loc[:, ["session", "score_version", *SCORE_COLUMNS, *extra]].to_csv(
        stream, index=False, lineterminator="\n"
    )

"""The codebook: every export's columns, as the researcher API documents them.

It gathers the tables declared where their data lives (trials.exports: trials, responses,
questionnaires, instrument scores, visits; scoring.exports: scores), in the order the
codebook has always listed them.
"""

from __future__ import annotations

import csv
import io
from typing import Final

from scoring.exports import SCORE_COLUMNS_EXPORT
from trials.exports import (
    EXTERNAL_ID,
    INSTRUMENT_SCORE_COLUMNS,
    QUESTIONNAIRE_COLUMNS,
    RESPONSE_COLUMNS,
    SUBSCALE_COLUMN,
    TRIAL_COLUMNS,
    VISIT_COLUMNS,
    neutralise,
)

CODEBOOK: Final = {
    "trials": TRIAL_COLUMNS,
    "responses": RESPONSE_COLUMNS,
    "scores": SCORE_COLUMNS_EXPORT,
    "questionnaires": QUESTIONNAIRE_COLUMNS,
    "instrument-scores": (*INSTRUMENT_SCORE_COLUMNS, SUBSCALE_COLUMN),
    "visits": VISIT_COLUMNS,
}
CODEBOOK_CSV_HEADER: Final = ("table", "name", "type", "unit", "meaning")


def codebook() -> dict[str, list[dict[str, str]]]:
    """Every export's columns (name, type, unit, meaning), external_id last in each."""
    return {
        table: [
            {"name": c.name, "type": c.type, "unit": c.unit, "meaning": c.meaning}
            for c in (*columns, EXTERNAL_ID)
        ]
        for table, columns in CODEBOOK.items()
    }


def codebook_csv() -> str:
    """The codebook as one CSV table (table, name, type, unit, meaning)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CODEBOOK_CSV_HEADER)
    for table, entries in codebook().items():
        for entry in entries:
            writer.writerow([table, *(neutralise(entry[k]) for k in CODEBOOK_CSV_HEADER[1:])])
    return out.getvalue()

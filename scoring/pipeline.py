"""Score every session: derive the trials, compute the per-session scores, fit the models.

The one entry point from a trial table to SCORE_COLUMNS. It sits above both scoring.metrics
(derivation and scores) and scoring.fitting (the M0/M1/M2 fits, built on that derivation),
so neither of those imports the other's caller.
"""

from __future__ import annotations

import pandas as pd

from scoring.fitting import fit_sessions
from scoring.metrics import (
    FAST_RT_MS,
    LR_MAX_DEFAULT,
    MAX_AWAY_FRACTION,
    MIN_VALID_PER_VALENCE,
    SCORE_COLUMNS,
    derive_trials,
    score_sessions,
)


def score_all(
    trials: pd.DataFrame,
    *,
    min_valid_per_valence: int = MIN_VALID_PER_VALENCE,
    fast_rt_ms: float = FAST_RT_MS,
    max_away_fraction: float = MAX_AWAY_FRACTION,
    lr_max: float = LR_MAX_DEFAULT,
) -> pd.DataFrame:
    """Derive, score and fit every session: SCORE_COLUMNS indexed by session.

    lr_max is the upper bound of every fitted learning rate (the study's setting).
    """
    derived = derive_trials(trials)
    scores = score_sessions(
        derived,
        min_valid_per_valence=min_valid_per_valence,
        fast_rt_ms=fast_rt_ms,
        max_away_fraction=max_away_fraction,
    )
    fits = fit_sessions(derived, lr_max=lr_max)
    combined = pd.concat([scores, fits], axis=1)
    return combined.loc[:, list(SCORE_COLUMNS)]

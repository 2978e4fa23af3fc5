"""Names and constants of the scores: no NumPy or pandas, so that web processes can import
them without loading the numerical stack (scoring.metrics re-exports every name here)."""

from __future__ import annotations

from typing import Final

# PROTOCOL.md "Score version 2": positive events, update_bias_ee, M2's effective rate
# bounded, no model comparison under MIN_TRIALS_FOR_MODELS, the eBR split per valence.
# Version 1 rows stay in the database as they were; the current version is written
# beside them (rescore), never over them.
SCORE_VERSION: Final = 2

REQUIRED_COLUMNS: Final = ("session", "event", "e1", "br", "e2")

# A flag, not an exclusion: PROTOCOL.md says such a session "is scored but
# flagged"; the study setting overrides the default through score_sessions.
MIN_VALID_PER_VALENCE: Final = 5
# Fewer answers than this cannot show a participant who answers by rote: a
# repeated answer over two or three events happens by chance.
CONSTANT_MIN_TRIALS: Final = 5
# Reading an event and typing a percentage takes well over half a second; a
# median below it means the participant was clicking through.
FAST_RT_MS: Final = 500.0
# Moving away from the base rate now and then is noise; more than a quarter of
# the valid trials suggests the scale or the instructions were misread.
MAX_AWAY_FRACTION: Final = 0.25
# Pearson's r is reported only from this many trials of a valence: with two
# points it is always +-1 and says nothing.
MIN_TRIALS_FOR_R: Final = 3
# Under this many valid trials a BIC difference says nothing (BIC ties at n = 1, M2
# "won" with 4 in version 1): the models are still fitted, best_model is left empty.
MIN_TRIALS_FOR_MODELS: Final = 12
# update_bias_ee's regression needs two trials per valence to have an intercept and
# a slope to separate from the good-news effect.
MIN_TRIALS_FOR_BIAS_EE: Final = 2

# An event's polarity (PROTOCOL.md "Score version 2"): for a positive event (winning
# a prize), a base rate above one's estimate is the good news.
POLARITIES: Final = ("negative", "positive")
DEFAULT_POLARITY: Final = "negative"
# Learning rates are bounded to [0, LR_MAX_DEFAULT] unless a study asks otherwise
# (Study.lr_max); the lower bound 0 is fixed (see scoring.fitting).
LR_MAX_DEFAULT: Final = 1.0

FLAG_NAMES: Final = (
    "constant_e1",
    "constant_e2",
    "fast_rt",
    "many_away",
    "no_valid_trials",
    "too_few_bad",
    "too_few_for_models",
    "too_few_good",
)

EXCLUSION_REASONS: Final = (
    "practice",
    "missing_e1",
    "missing_br",
    "missing_e2",
    "neutral",
)

DERIVED_COLUMNS: Final = (
    "valence",
    "ee",
    "signed_error",
    "update",
    "excluded",
    "exclusion_reason",
    "ebr_valence",
    "ebr_update",
)

METRIC_COLUMNS: Final = (
    "n_good",
    "n_bad",
    "n_excluded",
    "update_good",
    "update_bad",
    "update_bias",
    "ee_good",
    "ee_bad",
    "mean_e1",
    "alpha_good",
    "alpha_bad",
    "norm_update_good",
    "norm_update_bad",
    "learn_r_good",
    "learn_r_bad",
    "memory_error",
    "rt_e1_mean_ms",
    "rt_e2_mean_ms",
    "ebr_update_bias",
)
# Added by score version 2 (DESIGN.md "Score version 2 adds to scores").
V2_METRIC_COLUMNS: Final = (
    "update_bias_ee",
    "ebr_n_good",
    "ebr_n_bad",
    "ebr_update_good",
    "ebr_update_bad",
    "self_update_good_by_ebr",
    "self_update_bad_by_ebr",
)
COUNT_COLUMNS: Final = ("n_good", "n_bad", "n_excluded", "ebr_n_good", "ebr_n_bad")

# DESIGN.md "Export columns" fixes the names and the order of the first block;
# the second block adds the likelihood figures behind each BIC.
MODEL_COLUMNS: Final = (
    "m0_lr",
    "m0_bic",
    "m1_lr_good",
    "m1_lr_bad",
    "m1_scaling",
    "m1_asymmetry",
    "m1_bic",
    "m2_w_good",
    "m2_w_bad",
    "m2_k",
    "m2_bic",
    "best_model",
)
MODEL_EXTRA_COLUMNS: Final = (
    "m0_sigma",
    "m0_loglik",
    "m0_aic",
    "m1_sigma",
    "m1_loglik",
    "m1_aic",
    "m2_sigma",
    "m2_loglik",
    "m2_aic",
)
SCORE_COLUMNS: Final = (
    *METRIC_COLUMNS,
    *MODEL_COLUMNS,
    "flags",
    *MODEL_EXTRA_COLUMNS,
    *V2_METRIC_COLUMNS,
)

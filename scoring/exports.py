# ruff: noqa: S608 - every interpolated piece is a table name or a constant of this module; values are bound as parameters.
"""The scores export: its columns (the codebook's `scores`) and its SELECT, in the shape of
trials.exports (its Query runs through the same CSV / Parquet / JSON-page machinery).

Scores keep their figures in a JSON column, so their rows always go through Python
(`_score_row`, one row per session: a few thousand rows, not millions).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from django.db.models import QuerySet

from scoring.columns import MODEL_EXTRA_COLUMNS
from scoring.models import Score
from trials.exports import (
    _KEYS,
    _KEYS_SELECT,
    _NUM,
    LANGUAGE,
    PCT,
    Column,
    Query,
    _c,
    _identity,
    _keys_from,
    _sessions_subquery,
    _t,
    _with_page,
    with_external_id,
)
from trials.models import Session, Study

SCORE_COLUMNS_EXPORT: Final = (
    *_KEYS,
    _c("score_version", "integer", "", "Version of the scoring formulas (PROTOCOL.md)."),
    _c("status", "text", "", "pending, done or failed."),
    _c("n_good", "integer", "trials", "Valid good-news trials."),
    _c("n_bad", "integer", "trials", "Valid bad-news trials."),
    _c("n_excluded", "integer", "trials", "Excluded trials, practice included."),
    _c("update_good", _NUM, "percentage points", "Mean update after good news."),
    _c("update_bad", _NUM, "percentage points", "Mean update after bad news."),
    _c("update_bias", _NUM, "percentage points", "update_good - update_bad."),
    _c("ee_good", _NUM, PCT, "Mean estimation error, good-news trials."),
    _c("ee_bad", _NUM, PCT, "Mean estimation error, bad-news trials."),
    _c("mean_e1", _NUM, PCT, "Mean E1 over non-practice trials."),
    _c("alpha_good", _NUM, "", "Slope of update on EE through the origin, good news."),
    _c("alpha_bad", _NUM, "", "Slope of update on EE through the origin, bad news."),
    _c("norm_update_good", _NUM, "", "Mean update / EE, good news."),
    _c("norm_update_bad", _NUM, "", "Mean update / EE, bad news."),
    _c("learn_r_good", _NUM, "", "Pearson r(update, EE), good news."),
    _c("learn_r_bad", _NUM, "", "Pearson r(update, EE), bad news."),
    _c("memory_error", _NUM, "percentage points", "Mean |recalled BR - BR|."),
    _c("rt_e1_mean_ms", _NUM, "ms", "Mean reaction time of E1."),
    _c("rt_e2_mean_ms", _NUM, "ms", "Mean reaction time of E2."),
    _c("ebr_update_bias", _NUM, "percentage points", "Update bias computed from eBR."),
    _c("m0_lr", _NUM, "", "M0 (rational): one learning rate."),
    _c("m0_bic", _NUM, "", "M0: Bayesian information criterion."),
    _c("m1_lr_good", _NUM, "", "M1 (asymmetric): learning rate, good news."),
    _c("m1_lr_bad", _NUM, "", "M1: learning rate, bad news."),
    _c("m1_scaling", _NUM, "", "M1: (LR_good + LR_bad) / 2."),
    _c("m1_asymmetry", _NUM, "", "M1: LR_good - LR_bad."),
    _c("m1_bic", _NUM, "", "M1: Bayesian information criterion."),
    _c("m2_w_good", _NUM, "", "M2 (EE scaling): weight, good news."),
    _c("m2_w_bad", _NUM, "", "M2: weight, bad news."),
    _c(
        "m2_k",
        _NUM,
        "",
        "M2: EE scaling k in LR = w (1 + k EE/100); from score version 2 k may be negative "
        "and LR stays within the learning-rate bounds on every trial.",
    ),
    _c("m2_bic", _NUM, "", "M2: Bayesian information criterion."),
    _c(
        "best_model",
        "text",
        "",
        "M0, M1 or M2: lowest BIC; empty when no model was fitted or, from score version 2, "
        "under 12 valid trials (flag too_few_for_models).",
    ),
    _c("flags", "text", "", "Quality flags, ';'-separated (e.g. too_few_good;fast_rt)."),
    _c("scored_at", "datetime", "UTC", "When the score was computed (ISO 8601)."),
    *(
        _c(name, _NUM, "", f"{name[:2].upper()}: {name[3:].replace('loglik', 'log-likelihood')}.")
        for name in MODEL_EXTRA_COLUMNS
    ),
    LANGUAGE,
    _c(
        "update_bias_ee",
        _NUM,
        "percentage points",
        "Update bias controlled for the estimation error: the coefficient of good news in "
        "update ~ 1 + good + EE over the valid trials (score version 2; Shah et al. 2016); "
        "empty when a valence has fewer than 2 trials or EE is constant within each.",
    ),
    _c("ebr_n_good", "integer", "trials", "eBR trials that are good news (BR vs eBR1)."),
    _c("ebr_n_bad", "integer", "trials", "eBR trials that are bad news (BR vs eBR1)."),
    _c(
        "ebr_update_good",
        _NUM,
        "percentage points",
        "Mean eBR update sign(BR - eBR1) * (eBR2 - eBR1), good news by eBR.",
    ),
    _c("ebr_update_bad", _NUM, "percentage points", "Mean eBR update, bad news by eBR."),
    _c(
        "self_update_good_by_ebr",
        _NUM,
        "percentage points",
        "Mean self update sign(BR - E1) * (E2 - E1) over the trials whose eBR valence is good.",
    ),
    _c(
        "self_update_bad_by_ebr",
        _NUM,
        "percentage points",
        "Mean self update over the trials whose eBR valence is bad.",
    ),
    *(
        _c(name, _NUM, "", f"{meaning} Empty until the study's group fit has run.")
        for name, meaning in (
            ("hb_m0_lr", "Hierarchical M0 (group prior per arm x timepoint): learning rate."),
            ("hb_m1_lr_good", "Hierarchical M1: learning rate, good news (posterior mean)."),
            ("hb_m1_lr_bad", "Hierarchical M1: learning rate, bad news (posterior mean)."),
            ("hb_m1_lr_good_sd", "Hierarchical M1: posterior sd of hb_m1_lr_good."),
            ("hb_m1_lr_bad_sd", "Hierarchical M1: posterior sd of hb_m1_lr_bad."),
        )
    ),
)


def scores_query(
    *,
    study: Study,
    sessions: QuerySet[Session],
    score_version: int,
    external_id: bool = False,
    after: int | None = None,
    limit: int | None = None,
) -> Query:
    """Score rows of the filtered sessions: keys, version, status, values, flags, scored_at."""
    sessions_sql, sessions_params = _sessions_subquery(sessions)
    ident_select, ident_join = _identity(external_id)
    sql = (
        f'SELECT se.id AS "_key", {_KEYS_SELECT}, sc.score_version AS "score_version", '
        'sc.status AS "status", '
        'sc."values" AS "values", sc.flags AS "flags", sc.scored_at AS "scored_at", '
        f'se.language AS "language"{ident_select} FROM {_t(Score)} sc '
        + _keys_from().format(session_col="sc.session_id")
        + f"{ident_join} WHERE sc.score_version = %s AND sc.session_id IN ({sessions_sql})"
    )
    sql, params = _with_page(sql, [score_version, *sessions_params], "se.id", after, limit)
    columns = with_external_id(SCORE_COLUMNS_EXPORT, external_id=external_id)
    return Query(sql, params, columns, "scores", expand=_score_row)


def _score_row(raw: Sequence[Any], columns: tuple[Column, ...]) -> list[Any]:
    """Expand a scores_query row (values JSON, flags JSON) to the export's columns."""
    study, participant, arm, timepoint, session, version, status, values, flags, scored_at = raw[
        :10
    ]
    language = raw[10]
    values = json.loads(values) if isinstance(values, str) else (values or {})
    flags = json.loads(flags) if isinstance(flags, str) else (flags or [])
    known = {
        "study": study,
        "participant": participant,
        "arm": arm,
        "timepoint": timepoint,
        "session": session,
        "score_version": version,
        "status": status,
        "flags": ";".join(str(f) for f in flags),
        "scored_at": scored_at,
        "language": language,
    }
    if len(raw) > 11:
        known["external_id"] = raw[11]
    return [known[c.name] if c.name in known else values.get(c.name) for c in columns]

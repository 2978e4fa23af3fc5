"""Command line: ``python -m scoring score|summary trials.csv``."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

import pandas as pd

from scoring.io import TrialsFileError, read_trials_csv, write_scores_csv
from scoring.metrics import LR_MAX_DEFAULT, MIN_VALID_PER_VALENCE, SCORE_VERSION
from scoring.pipeline import score_all

# argparse's own code for a usage error; a bad input file is the same kind of
# mistake, so it gets the same code.
EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m scoring",
        description=f"Score belief-updating trials (score version {SCORE_VERSION}).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser("score", help="one row of scores per session")
    score.add_argument("trials", help="trials CSV: session, event, e1, br, e2, ...")
    score.add_argument("-o", "--output", help="scores CSV to write (default: stdout)")
    score.add_argument(
        "--min-valid",
        type=int,
        default=MIN_VALID_PER_VALENCE,
        help="valid trials per valence under which a session is flagged",
    )
    score.add_argument(
        "--lr-max",
        type=float,
        default=LR_MAX_DEFAULT,
        help="upper bound of every fitted learning rate (the study's setting; default 1)",
    )
    score.add_argument(
        "--hierarchical",
        action="store_true",
        help="add the hb_* columns: hierarchical fits with a group prior per arm x timepoint",
    )
    summary = commands.add_parser(
        "summary",
        help="group level: means / SEMs, mixed model, hierarchical fits, model selection, "
        "reliability",
    )
    summary.add_argument("trials", help="trials CSV with arm, timepoint, participant")
    summary.add_argument("--json", action="store_true", help="print JSON")
    summary.add_argument(
        "--lr-max",
        type=float,
        default=LR_MAX_DEFAULT,
        help="upper bound of every fitted learning rate (the study's setting; default 1)",
    )
    summary.add_argument(
        "--arm-order",
        type=_levels,
        help="arms in order, comma-separated; the first is the reference",
    )
    summary.add_argument(
        "--timepoint-order",
        type=_levels,
        help="timepoints in order, comma-separated; the first is the reference",
    )
    summary.add_argument(
        "--covariates",
        help="CSV with a participant column and numeric columns (age, education, ...) "
        "added to the mixed model",
    )
    summary.add_argument(
        "--random-slope", action="store_true", help="a random valence slope per participant"
    )
    return parser


def _levels(text: str) -> list[str]:
    levels = [part.strip() for part in text.split(",")]
    if not all(levels) or len(set(levels)) != len(levels):
        raise argparse.ArgumentTypeError(f"{text!r}: give distinct, non-empty names")
    return levels


def _covariates(path: str) -> pd.DataFrame:
    """Participant attributes for the mixed model: participant column + numeric columns."""
    try:
        frame = pd.read_csv(path, dtype={"participant": str})
    except (OSError, ValueError) as error:
        raise TrialsFileError(f"cannot read covariates {path}: {error}") from None
    if "participant" not in frame.columns or len(frame.columns) < 2:
        raise TrialsFileError(f"covariates {path}: need a participant column and one more")
    if frame["participant"].duplicated().any():
        raise TrialsFileError(f"covariates {path}: a participant appears twice")
    values = frame.set_index("participant")
    for column in values.columns:
        if not pd.api.types.is_numeric_dtype(values[column]):
            raise TrialsFileError(f"covariates {path}: column {column!r} is not numeric")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    try:
        trials = read_trials_csv(args.trials)
    except TrialsFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT

    if not (math.isfinite(args.lr_max) and args.lr_max > 0):
        print(f"error: --lr-max must be a number above 0, not {args.lr_max}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.command == "score":
        scores = score_all(trials, min_valid_per_valence=args.min_valid, lr_max=args.lr_max)
        if args.hierarchical:
            from scoring.hierarchical import HB_COLUMNS, hierarchical_fit

            shrunk = hierarchical_fit(trials, lr_max=args.lr_max).sessions.reindex(scores.index)
            scores = scores.join(shrunk.loc[:, list(HB_COLUMNS)])
        if args.output is None:
            write_scores_csv(scores, sys.stdout)
            return 0
        try:
            with open(args.output, "w", encoding="utf-8", newline="") as stream:
                write_scores_csv(scores, stream)
        except OSError as error:
            print(f"error: cannot write {args.output}: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return 0

    # SciPy's optimisers take a while to import: only the summary needs them.
    from scoring.analysis import analysis_to_text, group_analysis

    try:
        covariates = _covariates(args.covariates) if args.covariates else None
        analysis = group_analysis(
            trials,
            arm_order=args.arm_order,
            timepoint_order=args.timepoint_order,
            covariates=covariates,
            random_slope=args.random_slope,
            lr_max=args.lr_max,
        )
    except (TrialsFileError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    sys.stdout.write(analysis.to_json() + "\n" if args.json else analysis_to_text(analysis))
    return 0


if __name__ == "__main__":
    sys.exit(main())

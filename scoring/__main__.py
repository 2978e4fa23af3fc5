"""Command line: ``python -m scoring score|summary trials.csv``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from scoring.io import (
    TrialsFileError,
    read_trials_csv,
    summary_to_json,
    summary_to_text,
    write_scores_csv,
)
from scoring.metrics import MIN_VALID_PER_VALENCE, SCORE_VERSION, score_all

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
    summary = commands.add_parser("summary", help="group means / SEMs and the linear mixed model")
    summary.add_argument("trials", help="trials CSV with arm, timepoint, participant")
    summary.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    try:
        trials = read_trials_csv(args.trials)
    except TrialsFileError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT

    if args.command == "score":
        scores = score_all(trials, min_valid_per_valence=args.min_valid)
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
    from scoring.group import attach_session_attributes, group_summary, mixed_model

    scores = attach_session_attributes(score_all(trials), trials)
    summary = group_summary(scores)
    model = mixed_model(trials)
    if args.json:
        sys.stdout.write(summary_to_json(summary, model) + "\n")
    else:
        sys.stdout.write(summary_to_text(summary, model))
    return 0


if __name__ == "__main__":
    sys.exit(main())

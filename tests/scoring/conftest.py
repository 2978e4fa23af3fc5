"""Fixtures for the pure science modules: plain DataFrames, no Django."""

import math
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest

NAN = math.nan

TRIAL_COLUMNS = (
    "session",
    "event",
    "practice",
    "e1",
    "br",
    "e2",
    "memory",
    "rt_e1_ms",
    "rt_e2_ms",
    "ebr1",
    "ebr2",
)

# Session "A", computed by hand in test_metrics.py; "B" opens the frame so that
# the order of first appearance is checked, and sits between A's rows so that
# the per-session sums are checked not to mix.
HAND_ROWS = (
    ("B", "b1", False, 50, 40, 45, NAN, NAN, NAN, NAN, NAN),
    ("A", "p1", True, 40, 20, 30, 0, 100, 100, 50, 20),
    ("A", "e1", False, 50, 30, 40, 30, 1000, 900, 40, 34),
    ("A", "e2", False, 20, 40, 30, 45, 2000, 1100, 30, 36),
    ("A", "e3", False, 60, 50, 62, NAN, 1500, 1300, 50, 52),
    ("B", "b2", False, 30, 50, 40, NAN, NAN, NAN, NAN, NAN),
    ("A", "e4", False, 25, 25, 30, 20, 3000, 700, NAN, NAN),
    ("A", "e5", False, 30, 60, NAN, 60, 800, NAN, 50, 58),
    ("A", "e6", False, 70, 40, 46, 40, 1200, 1000, 60, 50),
    ("A", "e7", False, 10, 15, 14, 25, 2500, 1000, 20, NAN),
)


@pytest.fixture
def hand_trials() -> pd.DataFrame:
    """Two sessions of trials whose every score is worked out by hand."""
    return pd.DataFrame(list(HAND_ROWS), columns=list(TRIAL_COLUMNS))


def _session(
    rows: list[tuple[float, float, float]], session: str = "S", **extra: list[Any]
) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "session": [session] * len(rows),
            "event": [f"ev{i}" for i in range(len(rows))],
            "e1": [float(r[0]) for r in rows],
            "br": [float(r[1]) for r in rows],
            "e2": [float(r[2]) for r in rows],
        }
    )
    for name, values in extra.items():
        frame[name] = values
    return frame


@pytest.fixture
def make_session() -> Callable[..., pd.DataFrame]:
    """Build one session from (e1, br, e2) triples, plus optional per-trial columns."""
    return _session

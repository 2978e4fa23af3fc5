"""common.scalars.json_scalar: the one NaN-to-None (and NumPy-to-Python) conversion."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.scalars import json_scalar

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, np.float64("nan"), np.float32("inf"), np.nan]
)
def test_non_finite_floats_become_none(value: object) -> None:
    assert json_scalar(value) is None


def test_numpy_scalars_become_python_values_of_the_same_kind() -> None:
    cases = [(np.float64(1.25), 1.25, float), (np.int64(7), 7, int), (np.bool_(True), True, bool)]
    for value, expected, kind in cases:
        out = json_scalar(value)
        assert out == expected
        assert type(out) is kind


def test_everything_else_is_returned_as_it_is() -> None:
    stamp = np.datetime64("2026-12-02T13:00:00.000000000")
    for value in (None, "M1", 3, 0.5, False, ["a"], stamp):
        assert json_scalar(value) is value


def test_importing_it_does_not_load_numpy() -> None:
    code = "import sys, common.scalars; print('numpy' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"

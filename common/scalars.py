"""One value as plain JSON: NumPy scalars become Python ones, NaN and infinities become None.

Pure (no Django, and NumPy is not imported: a web process that never touches a DataFrame does
not load it), so the science modules and the views share it.
"""

import math

_NOT_SCALARS = {"datetime64", "timedelta64"}  # .item() of a nanosecond one is a bare int


def json_scalar(value: object) -> object:
    """value, with a NumPy scalar as its Python value and a non-finite float as None."""
    kind = type(value)
    if kind.__module__ == "numpy" and kind.__name__ not in _NOT_SCALARS and hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value

"""JSON cleaning, shared by every layer: what a results file, a record or a cache key may hold.

:func:`jsonable` makes a JSON-ready copy (NumPy scalars and arrays to Python, dataclasses
to dicts, tuples to lists, non-finite floats to None), so the JSON written is standard
(``allow_nan=False`` never trips).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any


def jsonable(obj: Any) -> Any:
    """JSON-ready copy: NumPy scalars and arrays to Python, tuples to lists, non-finite floats to None."""
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):
        return jsonable(obj.tolist())
    if hasattr(obj, "item"):
        return jsonable(obj.item())
    return str(obj)


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None

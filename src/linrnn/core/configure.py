"""Configuration is data: a TOML table (or flags) applied to a frozen dataclass of defaults, checked once.

:func:`configure` is the one way a table reaches a configuration dataclass (a claim's
``Config``, the model specification, the derivation's table): unknown keys name
themselves and the known ones, every value is coerced to its annotation (64-bit
integers, finite numbers, lists of them), and the dataclass then checks its values
(``__post_init__``).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any

from linrnn.core.errors import UsageError


#: The largest integer a configuration holds (a signed 64-bit integer, as TOML and NumPy define them).
MAX_INT = 2**63 - 1


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    if origin in (tuple, list):
        inner = typing.get_args(hint)[0]
        return "a list of " + {int: "integers", float: "numbers", str: "strings"}.get(inner, "values")
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the annotation ``hint`` (int, float, str, bool, tuple[X, ...], unions), else UsageError.

    Every value of every table passes here first: an integer must fit 64 bits and a
    number must be finite (TOML's ``nan`` and ``inf`` are refused), whatever the field.
    """
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for h in typing.get_args(hint):
            try:
                return _coerce(value, h, where)
            except UsageError:
                continue
        raise UsageError(f"{where} must be {_type_name(hint)}, got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise UsageError(f"{where} must be {_type_name(hint)}, got {value!r}")
        inner = typing.get_args(hint)[0]
        try:
            return tuple(_coerce(v, inner, where) for v in value)
        except UsageError:
            raise UsageError(f"{where} must be {_type_name(hint)}, got {value!r}") from None
    ok = False
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        if ok and not -MAX_INT <= value <= MAX_INT:
            raise UsageError(f"{where} must be an integer of at most 64 bits (|value| <= 2^63 - 1), got "
                             f"{'a number of ' + str(len(str(abs(value)))) + ' digits' if abs(value) > 10**30 else value}")
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok:
            try:
                value = float(value)
            except OverflowError:
                raise UsageError(f"{where} must be a finite number, got an integer beyond float64's range") from None
            if not math.isfinite(value):
                raise UsageError(f"{where} must be a finite number, got {value!r}")
    elif hint is str:
        ok = isinstance(value, str)
    elif hint is type(None):
        ok = value is None
    else:  # pragma: no cover - an annotation this function does not know
        raise TypeError(f"{where}: unsupported configuration type {hint!r}")
    if not ok:
        raise UsageError(f"{where} must be {_type_name(hint)}, got {value!r}")
    return value


def set_fields(obj: Any, **values: Any) -> None:
    """Assign normalised values in a frozen dataclass's ``__post_init__``."""
    for k, v in values.items():
        object.__setattr__(obj, k, v)


def field_names(cls_or_obj: Any) -> tuple[str, ...]:
    """The fields a configuration takes (its constructor's: a field with init=False is the class's own)."""
    return tuple(f.name for f in dataclasses.fields(cls_or_obj) if f.init)


def configure(base: Any, values: Mapping[str, Any], section: str) -> Any:
    """``base`` (a frozen configuration dataclass) with ``values`` applied, checked and validated.

    Unknown keys are a :class:`UsageError` naming ``section.key`` and listing the known
    keys; a value of the wrong type names ``section.key`` and the expected type; the
    dataclass then validates the values (its ``__post_init__``).
    """
    if not isinstance(values, Mapping):
        raise UsageError(f"[{section}] must be a table of keys in the configuration")
    names = field_names(base)
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise UsageError(f"unknown key{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(f'{section}.{k}' for k in unknown)} in the configuration; "
                         f"known keys of [{section}]: {', '.join(sorted(names))}")
    hints = typing.get_type_hints(type(base))
    changes = {k: _coerce(v, hints[k], f"{section}.{k}") for k, v in values.items()}
    if not changes:
        return base
    try:
        return dataclasses.replace(base, **changes)
    except UsageError as exc:  # the dataclass's own check: say which table it is
        text = str(exc)
        raise UsageError(text if f"{section}." in text or f"[{section}]" in text else f"[{section}] {text}") from None

"""Hypothesis strategies for every model family's specification, made from the specifications' own rules.

Each family's specification (:class:`linrnn.core.spec.FamilySpec`) states its fields'
rules in ``FIELD_RULES`` (``positive``, ``nonnegative``, ``size``, ``unit``, ``angle``)
and its fixed choices in ``CHOICES`` (``param``); :func:`specs` draws every field from
the strategy of its rule (:data:`RULE_STRATEGIES`) or its choices, builds the
specification (which checks the rules across fields: r_min <= r_max, some multiplier
positive, ...) and keeps the values it accepts. A new family needs nothing here::

    from hypothesis import given
    from linrnn.testing.strategies import models, specs

    @given(specs("diagonal"))
    def test_my_property(spec): ...

    @given(models())          # any family's model object (linrnn.family)
    def test_any_family(model): ...

Ranges (keep the numerics sane; pass ``fields`` to narrow or widen one):
``positive`` in [1e-3, 1e3], ``nonnegative`` in [0, 1e3], ``size`` 1..3 (the input and
output dimensions), ``unit`` in [0, 1], ``angle`` in [0, 2 pi]. Needs ``hypothesis``
(in the test extra of this package).
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from linrnn.core.errors import UsageError

#: The strategy of each field rule of :data:`linrnn.core.spec.RULES`.
RULE_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "positive": st.floats(min_value=1e-3, max_value=1e3, allow_nan=False, allow_infinity=False),
    "nonnegative": st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=1e3, allow_nan=False,
                                                     allow_infinity=False)),
    "size": st.integers(min_value=1, max_value=3),
    "unit": st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
    "angle": st.floats(min_value=0.0, max_value=2 * math.pi, allow_nan=False),
    "real": st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False),
}


def field_strategies(cls: type) -> dict[str, st.SearchStrategy[Any]]:
    """A strategy per constructor field of the specification class ``cls``, from its rules and choices."""
    from linrnn.core.spec import RULES

    out: dict[str, st.SearchStrategy[Any]] = {}
    for name in cls.fields():  # type: ignore[attr-defined]
        if name in cls.CHOICES:  # type: ignore[attr-defined]
            out[name] = st.sampled_from(cls.CHOICES[name])  # type: ignore[attr-defined]
            continue
        rule = cls.FIELD_RULES.get(name, (None,))[0]  # type: ignore[attr-defined]
        if rule not in RULES:
            raise ValueError(f"{cls.__name__}.{name} has no rule in FIELD_RULES (one of {', '.join(RULES)})")
        out[name] = RULE_STRATEGIES[rule]
    return out


def _build(cls: type, values: dict[str, Any]) -> Any:
    try:
        return cls(**values)
    except UsageError:  # a rule across fields (r_min <= r_max, every multiplier 0, ...): drawn again
        return None


def specs(family: str | None = None, **fields: Any) -> st.SearchStrategy[Any]:
    """Valid specifications of ``family`` (any registered family when None).

    ``fields``: a value or a strategy per field to use instead of the rule's.
    """
    from linrnn.families import FAMILIES, spec_class

    if family is None:
        return st.one_of(*[specs(name, **fields) for name in FAMILIES])
    cls = spec_class(family)
    strategies = field_strategies(cls)
    unknown = sorted(set(fields) - set(strategies))
    if unknown:
        raise UsageError(f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} of the {family} family; "
                         f"its fields: {', '.join(strategies)}")
    for name, value in fields.items():
        strategies[name] = value if isinstance(value, st.SearchStrategy) else st.just(value)
    return st.fixed_dictionaries(strategies).map(lambda v: _build(cls, v)).filter(lambda s: s is not None)


def models(family: str | None = None, **fields: Any) -> st.SearchStrategy[Any]:
    """Model objects (:func:`linrnn.families.model_of`) of :func:`specs`."""
    from linrnn.families import model_of

    return specs(family, **fields).map(model_of)


__all__ = ["RULE_STRATEGIES", "field_strategies", "models", "specs"]

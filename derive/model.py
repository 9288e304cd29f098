"""The model's SymPy side: binding the symbols of :mod:`linrnn.derive.symbols` to a :class:`ModelSpec`.

The specification itself (fields, validation, parameterization scales) is defined
once in :mod:`linrnn.core.spec`; it is re-exported here for derive's users.
"""

from __future__ import annotations

import math
from typing import Any

from linrnn.core.spec import PARAMS, ModelSpec, Param  # noqa: F401  (re-exported)

__all__ = ["PARAMS", "ModelSpec", "Param", "substitutions"]


def substitutions(spec: ModelSpec) -> dict[Any, Any]:
    """SymPy substitutions binding every model symbol of :mod:`linrnn.derive.symbols` to ``spec``.

    Values become exact rationals (``Rational`` of the decimal literal) so that
    symbolic consequences stay exact; numeric paths convert as they need.
    """
    import sympy as sp

    from linrnn.derive import symbols as s

    def exact(x: float) -> sp.Expr:
        return sp.Rational(repr(x)) if math.isfinite(x) else sp.Float(x)

    return {
        s.q: exact(spec.sigma_w2),
        s.sigma_c2: exact(spec.sigma_c2),
        s.sigma_f2: exact(spec.sigma_f2),
        s.n_x: sp.Integer(spec.n_in),
        s.eta_c: exact(spec.lr_c),
        s.eta_f: exact(spec.lr_f),
        s.eta_w: exact(spec.lr_w),
    }

"""derive: exact symbolic derivation of the lag weights of wide linear RNNs.

The public API (imported lazily, so ``import linrnn.derive`` does not load SymPy):

* :class:`ModelSpec` - one configuration (parameterization, variances, n_x, rates).
* :func:`derive_lag_weights` - the full derivation for a parameterization, as data
  (ordered steps of SymPy objects) with the closed forms it arrives at.
* :func:`weights`, :func:`nngp_variance` - lambda_j and Var L_j(0)[a,b] for
  j = 0..lags-1 (float64 through ``lambdify``, or mpmath at ``dps`` digits).
* :func:`limit_lag_ntk` - the n -> infinity lag NTK as a full array of shape
  (lags, n_y, n_x, lags, n_y, n_x).
* :func:`evaluate` - evaluate any SymPy expression in ``j`` and the model symbols
  (for example a deliberately wrong theory used as a negative control).
* :func:`consequences` - generating function, sum, ratio, peak, horizon, regimes.
* :func:`lag_formulas`, :func:`consequence_formulas` - the same closed forms as data
  (:class:`Formula`: text, LaTeX and lambdified source), cached on disk keyed by the
  derivation's source, so the numeric paths run without importing SymPy.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "ModelSpec": "linrnn.core.spec",
    "derive_lag_weights": "linrnn.derive.lag_weights",
    "LagWeightsDerivation": "linrnn.derive.lag_weights",
    "weights": "linrnn.derive.numeric",
    "nngp_variance": "linrnn.derive.numeric",
    "limit_lag_ntk": "linrnn.derive.numeric",
    "evaluate": "linrnn.derive.numeric",
    "consequences": "linrnn.derive.weight_consequences",
    "Consequences": "linrnn.derive.weight_consequences",
    "Formula": "linrnn.derive.formulas",
    "lag_formulas": "linrnn.derive.formulas",
    "consequence_formulas": "linrnn.derive.formulas",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'linrnn.derive' has no attribute {name!r}")

"""verify: Monte Carlo checks of the derived formulas on wide linear RNNs (NumPy/CuPy).

The public API is imported lazily, so ``import linrnn.verify`` stays light:

* :func:`empirical_lag_ntk` - the exact lag NTK of one draw, from Krylov vectors.
* :func:`sample_rnn`, :class:`RNNDraw`, :func:`impulse_response` - draws and their impulse responses
  (:func:`get_backend` makes the seeded backend a draw comes from; a name such as ``"numpy"`` works too).
* :func:`estimate_width` - Monte Carlo mean and standard error at one width.
* :func:`check_lag_ntk` - the full ``linrnn verify ntk`` run as a plain function.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "empirical_lag_ntk": "linrnn.verify.ntk",
    "sample_rnn": "linrnn.verify.sample",
    "RNNDraw": "linrnn.verify.sample",
    "get_backend": "linrnn.verify.backend",
    "impulse_response": "linrnn.verify.sample",
    "estimate_width": "linrnn.verify.montecarlo",
    "check_lag_ntk": "linrnn.verify.check_ntk",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'linrnn.verify' has no attribute {name!r}")

"""Model families: one object per model that gives its sampler, forward map, empirical kernel and derived kernel.

The neural-tangents lesson (every layer is one definition giving ``init_fn, apply_fn,
kernel_fn``) applied to linear recurrences: a family is one folder here, registered in
:data:`FAMILIES`, and :func:`family` makes a model of it from keyword parameters::

    import linrnn
    model = linrnn.family("gaussian", sigma_w2=0.9)
    params = model.init(width=256, seed=0)          # a draw of the raw parameters
    model.impulse(params, 8)                        # L_0 .. L_7 of that draw
    model.empirical_ntk(params, 8)                  # its exact lag NTK (structured, no Jacobian)
    model.kernel(8)["ntk"]                          # the derived wide-limit lag NTK
    model.derivation()                              # the SymPy derivation behind it

Layering: the families sit above :mod:`linrnn.verify` (their arrays) and
:mod:`linrnn.derive` (their derivations) and below the reports and the application;
the engines receive a model object and never import this package
(``tests/test_layers.py``).

Today the Gaussian family is the only one and its code still lives in the engines'
modules (``derive/lag_weights.py``, ``verify/sample.py``, ``verify/ntk.py``), which this
object delegates to; moving it into its folder and adding the orthogonal family is the
rest of issue 18.
"""

from __future__ import annotations

import importlib
from typing import Any

from linrnn.core.errors import UsageError

#: family name -> the module that defines it (its ``make(**params)`` returns the model).
FAMILIES: dict[str, str] = {
    "gaussian": "linrnn.families.gaussian",
}


def family(name: str, **params: Any) -> Any:
    """A model of the family ``name`` with the specification ``params`` (validated once, here).

    An unknown family or parameter is one sentence (:class:`linrnn.core.errors.UsageError`)
    naming the known ones.
    """
    if not isinstance(name, str) or name not in FAMILIES:
        raise UsageError(f"unknown model family {name!r}; known families: {', '.join(sorted(FAMILIES))}")
    return importlib.import_module(FAMILIES[name]).make(**params)


__all__ = ["FAMILIES", "family"]

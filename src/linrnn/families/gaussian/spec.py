"""The Gaussian family's specification: the dense recurrence's :class:`~linrnn.core.spec.ModelSpec` with its exact
finite-width means (the loop equations of :mod:`linrnn.families.gaussian.finite_width`).

Imports the standard library and the core only (the command-line flags read it); the
exact means import their engine when they are asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from linrnn.core.spec import ModelSpec


@dataclass(frozen=True)
class GaussianSpec(ModelSpec):
    """A dense linear RNN with iid Gaussian C, F, W at initialisation: the fields of :class:`ModelSpec`, its hooks
    (W as drawn, the Gaussian wide-width law) and the exact finite-width means of the loop equations."""

    exact_finite_width: ClassVar[bool] = True
    #: The most lags the exact finite-width engine reaches (``finite_width_arrays.REACH``; a test keeps them equal).
    exact_reach: ClassVar[int] = 16

    def exact_means(self, lags: int, width: int) -> Any:
        """(E[Theta[(i,0,0),(j,0,0)]](n), E[L_i L_j](n)), lags x lags each, exact at ``width``
        (:func:`linrnn.families.gaussian.finite_width_arrays.exact_matrices`)."""
        from linrnn.families.gaussian.finite_width_arrays import exact_matrices

        return exact_matrices(self, lags, width)


SPEC = GaussianSpec

__all__ = ["GaussianSpec", "SPEC"]

"""The Gaussian family's model object (:class:`GaussianRNN`) and ``make``; the package docstring says what it is."""


from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from linrnn.core.spec import ModelSpec
from linrnn.families.dense import DenseRNN

@dataclass(frozen=True)
class GaussianRNN(DenseRNN):
    """A dense linear RNN with Gaussian C, F, W at initialisation (see the module docstring)."""

    def finite_width(self, lags: int, width: int) -> dict[str, Any]:
        """The exact finite-width means at ``width`` (loop equations): ``ntk`` E[Theta[(i,0,0),(j,0,0)]] and
        ``nngp`` E[L_i L_j], lags x lags each."""
        from linrnn.core.validate import check_size
        from linrnn.derive.finite_width_arrays import exact_matrices

        theta, nngp = exact_matrices(self.spec, check_size("lags", lags), check_size("width", width))
        return {"ntk": theta, "nngp": nngp}


def make(**params: Any) -> GaussianRNN:
    """A Gaussian RNN with the :class:`~linrnn.core.spec.ModelSpec` fields ``params`` (unknown keys named)."""
    return GaussianRNN(ModelSpec.from_mapping(params, where="the gaussian family's parameters"))

"""The shifted family's model object (:class:`ShiftedRNN`) and ``make``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from linrnn.core.validate import check_size
from linrnn.families.dense import DenseRNN
from linrnn.families.shifted.spec import ShiftedSpec


@dataclass(frozen=True)
class ShiftedRNN(DenseRNN):
    """The shifted family's model: :class:`~linrnn.families.dense.DenseRNN` (init, impulse, empirical NTK: W_e =
    a I + sqrt(q/n) G comes from the spec's ``transition``) with its own derived kernels, full lag x lag."""

    spec: ShiftedSpec

    def kernel(self, lags: int) -> dict[str, np.ndarray]:
        """The derived wide-limit lag NTK and NNGP, float64, in the layout of :meth:`empirical_ntk`
        (:mod:`linrnn.families.shifted.kernel`): not diagonal in the lags unless the shift is 0."""
        from linrnn.families.shifted.kernel import kernel_matrices

        L = check_size("lags", lags)
        K = kernel_matrices(self.closed_forms(), self.spec, L)
        eye_y, eye_x = np.eye(self.spec.n_out), np.eye(self.spec.n_in)
        return {name: np.einsum("jk,ac,bd->jabkcd", K[name], eye_y, eye_x) for name in ("ntk", "nngp")}

    def derivation(self) -> Any:
        """The SymPy derivation of the kernels for the spec's parameterization (:class:`linrnn.derive.steps.Derivation`)."""
        return self.closed_forms().steps

    def closed_forms(self) -> Any:
        """The derived closed forms g(p, r), Theta_inf(j, k), E[L_j L_k] and the steps
        (:class:`linrnn.families.shifted.derivation.ShiftedDerivation`)."""
        from linrnn.families.shifted.derivation import derive_shifted

        return derive_shifted(self.spec.param)


def make(**params: Any) -> ShiftedRNN:
    """A shifted RNN with the :class:`~linrnn.families.shifted.spec.ShiftedSpec` fields ``params``."""
    return ShiftedRNN(ShiftedSpec.from_mapping(params, where="the shifted family's parameters"))

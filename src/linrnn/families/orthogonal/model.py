"""The orthogonal family's model object (:class:`OrthogonalRNN`) and ``make``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from linrnn.families.dense import DenseRNN
from linrnn.families.orthogonal.spec import OrthogonalSpec


@dataclass(frozen=True)
class OrthogonalRNN(DenseRNN):
    """The orthogonal family's model: :class:`~linrnn.families.dense.DenseRNN` plus its exact finite-width NNGP."""

    def finite_width(self, lags: int, width: int) -> dict[str, Any]:
        """The exact finite-width means at ``width``: ``nngp`` (lags x lags, entry (0, 0)); ``ntk`` None (not derived)."""
        from linrnn.core.validate import check_size
        from linrnn.families.orthogonal.derivation import exact_nngp_matrix

        return {"nngp": exact_nngp_matrix(self.spec, check_size("lags", lags), check_size("width", width)),
                "ntk": None}

    def derivation(self) -> Any:
        """The lag-weight derivation under the Haar law, followed by the exact finite-width NNGP's steps."""
        import copy

        from linrnn.families.orthogonal.derivation import exact_nngp

        der = copy.copy(super().derivation())
        steps = copy.deepcopy(der.steps)
        for step in exact_nngp(self.spec.param).steps:
            steps.steps.append(step)
        der.steps = steps
        return der


def make(**params: Any) -> OrthogonalRNN:
    """An orthogonal RNN with the :class:`~linrnn.core.spec.ModelSpec` fields ``params`` (unknown keys named)."""
    return OrthogonalRNN(OrthogonalSpec.from_mapping(params, where="the orthogonal family's parameters"))

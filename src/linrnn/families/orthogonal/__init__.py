r"""The scaled-orthogonal linear RNN: the second model family.

Model: as the Gaussian family (``docs/conventions.md``: C and F Gaussian, both
parameterizations, the trainable W the full n x n matrix), except that at
initialisation W_e = sqrt(q) O with O Haar-distributed on the orthogonal group O(n):
the raw W is sqrt(n) O (``ntk``, where W_e = sigma_W / sqrt(n) W) or sqrt(q) O
(``standard``). O is drawn as Q diag(sign(diag R)) from the QR decomposition of an
n x n matrix of iid Gaussian entries (Mezzadri, Notices AMS 54, 2007), in the array's
own namespace, batch axes kept (:meth:`OrthogonalSpec.transition`).

Derived (``derivation.py``, with the Haar moments of ``law.py``):

* the wide-limit lag NTK and NNGP, by the engines' derivation with this family's law of
  W: they come out equal to the Gaussian family's (a test compares them);
* the exact finite-width NNGP E[L_i L_j](n): no correction on the diagonal at any width
  (O preserves norms), (j - k even) correlations of order 1/n across lags;
* not the finite-width NTK mean: the NTK checks use the wide limit with the Richardson
  allowance (``exact_finite_width`` is False).

Its claim (``claim.py``, section ``[orthogonal]``): at small widths the Monte Carlo of
E[L_i L_j] agrees with the family's exact mean, and the Gaussian family's exact
finite-width mean is rejected for it; the ratio of the two families' per-entry
standard deviations of the empirical lag NTK is measured beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar


from linrnn.core.spec import ModelSpec
from linrnn.families.dense import DenseRNN


@dataclass(frozen=True)
class OrthogonalSpec(ModelSpec):
    """A scaled-orthogonal linear RNN: the fields of :class:`~linrnn.core.spec.ModelSpec`, W_e = sqrt(q) O at init."""

    family: str = field(init=False, default="orthogonal")
    exact_finite_width: ClassVar[bool] = False

    def transition(self, W: Any) -> Any:
        """sqrt(n v_W) O per matrix (raw scale), O = Q diag(sign diag R) from the QR of the Gaussian ``W``."""
        from linrnn.verify.backend import array_namespace

        xp = array_namespace(W)
        n = int(W.shape[-1])
        Q, R = xp.linalg.qr(W)
        d = xp.linalg.diagonal(R)
        signs = xp.where(d < 0, xp.asarray(-1.0, dtype=W.dtype), xp.asarray(1.0, dtype=W.dtype))
        scale = self.raw_stds(n)[2] * math.sqrt(n)  # ntk: sqrt(n); standard: sqrt(q)
        return Q * (signs[..., None, :] * scale)

    def derivation_law(self) -> Any:
        from linrnn.families.orthogonal.law import LAW

        return LAW


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


SPEC = OrthogonalSpec


def make(**params: Any) -> OrthogonalRNN:
    """An orthogonal RNN with the :class:`~linrnn.core.spec.ModelSpec` fields ``params`` (unknown keys named)."""
    return OrthogonalRNN(OrthogonalSpec.from_mapping(params, where="the orthogonal family's parameters"))


def __getattr__(name: str) -> Any:
    if name == "CLAIMS":  # the claim module imports the claim contract only when the registry is built
        from linrnn.families.orthogonal.claim import CLAIM

        return (CLAIM,)
    raise AttributeError(name)


__all__ = ["OrthogonalRNN", "OrthogonalSpec", "SPEC", "make"]

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

from typing import Any

from linrnn.families.orthogonal.spec import SPEC, OrthogonalSpec


def __getattr__(name: str) -> Any:
    if name in ("make", "OrthogonalRNN"):  # the model object imports NumPy: only when a model is made
        from linrnn.families.orthogonal import model

        return getattr(model, name)
    if name == "CLAIMS":  # the claim module imports the claim contract only when the registry is built
        from linrnn.families.orthogonal.claim import CLAIM

        return (CLAIM,)
    raise AttributeError(name)


__all__ = ["OrthogonalRNN", "OrthogonalSpec", "SPEC", "make"]

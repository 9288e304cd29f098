r"""Diagonal complex linear recurrences (the diagonal state-space layers: LRU, S4D-like): the diagonal family.

Model (``docs/conventions.md``, "Model families"): n units, unit i with a complex
eigenvalue lambda_i, input b_i and read-out c_i; h_t = Lambda h_{t-1} + b x_t,
y_t = Re(c h_t) / sqrt(n), so the impulse response is L_j = Re(sum_i c_i lambda_i^j b_i)
/ sqrt(n). At initialisation c_i, b_i ~ CN(0, 1), |lambda_i|^2 ~ U[r_min^2, r_max^2],
arg lambda_i ~ U[0, theta_max]; trained: c, b, lambda with the multipliers ``lr_c``,
``lr_f``, ``lr_w``. Never an n x n matrix: a draw is three arrays of n entries per channel.

Derived (``derivation.py``, by SymPy from the unit: gradients by ``sympy.diff``, the
law's expectations by ``sympy.integrate``), exact at every width (the units are iid):

    Theta(j, k) = Phi(j - k) [(eta_C + eta_F) R(j + k) + eta_W j k R(j + k - 2)],
    E[L_j L_k] = Phi(j - k) R(j + k) / 2,

R(p) = E|lambda|^p, Phi(d) = E cos(d arg lambda): not diagonal in the lags.

Its claims: ``claim.py`` (section ``[diagonal]``): the Monte Carlo means of the
empirical lag NTK and of L_j L_k at small widths equal the derived kernel, with the
wrong radial law (|lambda| uniform) and the kernel forced diagonal rejected;
``training_claim.py`` (``[diagonal_training]``): wide networks trained by gradient descent
(``training.py``, the structured O(n L) step) follow kernel regression with the derived
kernel at rate n^{-1/2}, with the forced-diagonal, wrong-radial-law and dense Gaussian
kernels rejected.
"""

from __future__ import annotations

from typing import Any

from linrnn.families.diagonal.spec import SPEC, DiagonalSpec


def __getattr__(name: str) -> Any:
    if name in ("make", "DiagonalRNN", "DiagonalDraw"):  # the model object imports NumPy: only when made
        from linrnn.families.diagonal import model

        return getattr(model, name)
    if name == "CLAIMS":
        from linrnn.families.diagonal.claim import CLAIM
        from linrnn.families.diagonal.training_claim import CLAIM as TRAINING

        return (CLAIM, TRAINING)
    raise AttributeError(name)


__all__ = ["DiagonalDraw", "DiagonalRNN", "DiagonalSpec", "SPEC", "make"]

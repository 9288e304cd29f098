r"""The Gaussian linear RNN (Emami et al., ICML 2021): the first model family.

Model (``docs/conventions.md``): h_t = W_e h_{t-1} + F_e x_t, y_t = C_e h_t with raw
C, F, W and effective P_e = alpha_P P; ``ntk`` (raw entries N(0, 1), alpha_C =
sigma_C / sqrt(n), alpha_F = sigma_F / sqrt(n_x), alpha_W = sigma_W / sqrt(n)) or
``standard`` (raw entries are the effective ones, drawn with those variances). The
specification is :class:`linrnn.core.spec.ModelSpec` itself (q = ``sigma_w2``, the
learning-rate multipliers ``lr_c``, ``lr_f``, ``lr_w``): its hooks are the engines'
defaults (W as drawn, the Gaussian wide-width law :data:`linrnn.derive.law.GAUSSIAN`,
exact finite-width means by the loop equations of :mod:`linrnn.families.gaussian.finite_width`).

Derived in the wide limit (:func:`linrnn.derive.lag_weights.derive_lag_weights`):
Theta_inf[(j,a,b),(k,a',b')] = lambda_j delta_jk delta_aa' delta_bb' and the NNGP
Var L_j(0)[a,b] delta_jk, uncorrelated across lags. Its own claim is
``finite_width`` (:mod:`linrnn.families.gaussian.claim`: the exact finite-width means
against the Monte Carlo at small widths).
"""

from __future__ import annotations

from typing import Any

from linrnn.families.gaussian.spec import SPEC, GaussianSpec


def __getattr__(name: str) -> Any:
    if name in ("make", "GaussianRNN"):  # the model object imports NumPy: only when a model is made
        from linrnn.families.gaussian import model

        return getattr(model, name)
    if name == "CLAIMS":  # the claim module imports the claim contract only when the registry is built
        from linrnn.families.gaussian.claim import CLAIM

        return (CLAIM,)
    raise AttributeError(name)


__all__ = ["SPEC", "GaussianRNN", "GaussianSpec", "make"]

r"""The identity-shifted dense linear RNN (IRNN-like initialisation): the shifted family.

Model (``docs/conventions.md``, "Model families"): as the Gaussian family, except that
at initialisation W_e = a I + sqrt(q / n) G, G with iid N(0, 1) entries (the Gaussian
family's W, trained with its scales and multiplier), a = ``shift`` fixed (not trained);
both parameterizations. The raw W is (a / alpha_W) I + G (:meth:`ShiftedSpec.transition`),
so the dense engines (sampler, Monte Carlo, empirical lag NTK, training) run it unchanged.

Derived (``derivation.py``, SymPy operations on the model: the binomial sums of
(a I + X)^p with X circular, the rule tau(X*^m X^m') = delta_mm' q^m applied word by word,
the deltas summed; then the dense engines' gradient and Frobenius steps):

    g(p, r) = sum_{m=0}^{min(p, r)} C(p, m) C(r, m) a^(p+r-2m) q^m,
    Theta_inf(j, k) = (sigma_C^2 sigma_F^2 / n_x) [(eta_C + eta_F) g(j, k)
                      + eta_W q sum_{s<j} sum_{t<k} g(s, t) g(j-1-s, k-1-t)]   (ntk),
    E[L_j L_k] = (sigma_C^2 sigma_F^2 / n_x) g(j, k),

not diagonal in the lags unless a = 0 (the Gaussian family). ``kernel.py`` evaluates them
(float64, mpmath where float64 fails).

Its claim (``claim.py``, section ``[shifted]``): ``verify ntk`` of the family (wide limit
with the Richardson allowance: no exact finite-width mean) passes, with the kernel forced
lag-diagonal, the Gaussian "spectral twin" at q' = a^2 + q and the kernel at a = 0 rejected.
"""

from __future__ import annotations

from typing import Any

from linrnn.families.shifted.spec import SPEC, ShiftedSpec


def __getattr__(name: str) -> Any:
    if name in ("make", "ShiftedRNN"):  # the model object imports NumPy: only when a model is made
        from linrnn.families.shifted import model

        return getattr(model, name)
    if name == "CLAIMS":  # the claim module imports the claim contract only when the registry is built
        from linrnn.families.shifted.claim import CLAIM

        return (CLAIM,)
    raise AttributeError(name)


__all__ = ["SPEC", "ShiftedRNN", "ShiftedSpec", "make"]

r"""The linear recurrent unit (LRU; Orvieto et al., ICML 2023): the diagonal family in the LRU's parameters.

Model (``docs/conventions.md``, "Model families"): y_j = Re(sum_i c_i gamma_i
lambda_i^j b_i) / sqrt(n) with lambda = exp(-exp(nu_log) + i exp(theta_log)), gamma =
exp(gamma_log); at initialisation the diagonal family's ring law, gamma_log = log
sqrt(1 - |lambda|^2) (the LRU's normalisation), c, b ~ CN(0, 1). Trained: c, b,
gamma_log, nu_log, theta_log with the multipliers ``lr_c``, ``lr_f``, ``lr_gamma``,
``lr_nu``, ``lr_theta``.

Derived by the diagonal families' derivation (:mod:`linrnn.families.diagonal.derivation`)
from the LRU's unit (``derivation.py``), exact at every width: every part carries
gamma^2 = 1 - |lambda|^2; the real parameters carry a factor 1/2; nu_log gives
j k E[(log |lambda|)^2 ...] and theta_log gives j k E[arg(lambda)^2 cos((j - k) arg lambda)],
a part that is never diagonal in the lags.

Its claim (``claim.py``, section ``[lru]``): as the diagonal family's, with a third
control, the kernel without the factor 1/2 of the real parameters.
"""

from __future__ import annotations

from typing import Any

from linrnn.families.lru.spec import SPEC, LRUSpec


def __getattr__(name: str) -> Any:
    if name in ("make", "LRURNN", "LRUDraw"):  # the model object imports NumPy: only when made
        from linrnn.families.lru import model

        return getattr(model, name)
    if name == "CLAIMS":
        from linrnn.families.lru.claim import CLAIM

        return (CLAIM,)
    raise AttributeError(name)


__all__ = ["LRUDraw", "LRURNN", "LRUSpec", "SPEC", "make"]

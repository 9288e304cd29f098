"""The shifted family's limit theories for ``verify ntk`` and its claim: the derived kernels and the negative controls.

Reached from :meth:`linrnn.families.shifted.spec.ShiftedSpec.limit_theories`; the model is made through the
registry (:func:`linrnn.families.model_of`), so this module does not import the specification back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The negative controls of the shifted family's limit kernels: name -> one sentence.
CONTROL_STATEMENTS = {
    "forced_diagonal": "the derived kernel with every entry j != k set to 0 (the lag-diagonal structure of the "
                       "dense Gaussian family)",
    "spectral_twin": "the Gaussian family's kernel at q' = a^2 + q, the dense recurrence with the same "
                     "tau(W_e^T W_e) (so the same lag-1 NNGP variance)",
    "no_shift": "the derived kernel at a = 0 (the Gaussian family at the same q: the shift ignored)",
}


def control_kernels(spec: Any, lags: int, truth: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """The controls' kernels (full layout), name -> {"ntk", "nngp"} (:data:`CONTROL_STATEMENTS`); ``truth``: the
    derived kernels at ``spec`` where the caller has them.

    ``spectral_twin`` comes from the Gaussian family's own derivation (:mod:`linrnn.derive.numeric`), an
    independent route; ``no_shift`` from this family's at a = 0.
    """
    from linrnn.core.spec import ModelSpec
    from linrnn.derive.numeric import limit_lag_ntk, nngp_variance
    from linrnn.families import model_of
    from linrnn.verify.check_ntk import kernel_from_diagonal

    truth = model_of(spec).kernel(lags) if truth is None else truth
    mask = np.eye(lags)[:, None, None, :, None, None]
    twin = ModelSpec(**{**{k: v for k, v in spec.as_dict().items() if k != "shift"},
                        "sigma_w2": spec.shift**2 + spec.sigma_w2})
    return {
        "forced_diagonal": {name: truth[name] * mask for name in ("ntk", "nngp")},
        "spectral_twin": {"ntk": np.asarray(limit_lag_ntk(twin, lags), dtype=np.float64),
                          "nngp": kernel_from_diagonal(nngp_variance(twin, lags), spec.n_out, spec.n_in)},
        "no_shift": model_of(spec.replace(shift=0.0)).kernel(lags),
    }


def limit_theories(spec: Any, lags: int) -> Any:
    """The :class:`linrnn.verify.check_ntk.Theories` of ``verify ntk --family shifted``: the derived kernels and
    the controls of :data:`CONTROL_STATEMENTS` (a control equal to the theory here is skipped and listed)."""
    import sympy as sp

    from linrnn.families import model_of
    from linrnn.verify.check_ntk import Theories

    model = model_of(spec)
    der = model.closed_forms()
    truth = model.kernel(lags)
    controls = control_kernels(spec, lags, truth)
    wrong: dict[str, dict[str, np.ndarray]] = {"ntk": {}, "nngp": {}}
    skipped = []
    for name, arrays in controls.items():
        for kind in ("ntk", "nngp"):
            if np.allclose(arrays[kind], truth[kind], rtol=1e-12, atol=0.0):
                skipped.append(f"{kind}:{name}")
            else:
                wrong[kind][name] = arrays[kind]
    g_text = f"g(p, r) = {sp.sstr(der.g_sum)}"
    exprs = {f"{kind}:{name}": text for name, text in CONTROL_STATEMENTS.items() for kind in ("ntk", "nngp")}
    return Theories(truth["ntk"], truth["nngp"], wrong["ntk"], wrong["nngp"],
                    weight_expr=f"Theta_inf(j, k) = {sp.sstr(der.ntk)}, {g_text}",
                    nngp_expr=f"E[L_j L_k] = {sp.sstr(der.nngp)}", control_exprs=exprs, skipped_controls=skipped,
                    lag_diagonal=False)

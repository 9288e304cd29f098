"""Claim ``ntk_limit``: the empirical lag NTK tends to lambda_i delta_ij delta_aa' delta_bb' as n grows.

Statistic: max |z| over the upper-triangle entries of the lag NTK at the largest
width (the Monte Carlo mean against the exact finite-width mean where it is derived,
else the two-point bias-corrected estimate at n and n // 2 against the limit; the
statistic's name says which), against Holm's thresholds at family-wise alpha. Controls: the lag weights without their term linear in j, and
with q replaced by 1.1 q, under the same test. Configuration: the shared width sweep
``[ntk]`` (:class:`linrnn.verify.claims.ntk_sweep.NtkConfig`).
"""

from __future__ import annotations

from typing import Any

from linrnn.verify.claims import ntk_sweep
from linrnn.verify.claims.base import Claim, ClaimResult, Progress

Config = ntk_sweep.NtkConfig
check = ntk_sweep.check


def run(config: Config, model: Any, *, seed: int = 0, backend: str = "numpy", dtype: str = "float64",
        progress: Progress | None = None) -> ClaimResult:
    import numpy as np

    from linrnn.derive import lag_formulas

    check(config, model)
    r = ntk_sweep.sweep(config, model, seed=seed, backend=backend, dtype=dtype)
    c = r.check_results()["ntk_entries"]
    ctrls = ntk_sweep.controls(r, "ntk", "ntk_entries")
    stat, thr = ntk_sweep.entry_stat(c, r.exact)
    L, M = r.shape[0], int(np.prod(r.shape[:3]))
    top = r.verdict_width
    axis = "lag j" if M == L else "(lag, output, input), flattened"
    ntk = r.kernel("ntk")
    mean = np.asarray(ntk.mean, dtype=np.float64).reshape(M, M)
    theory = np.asarray(ntk.limit, dtype=np.float64).reshape(M, M)
    design = r.design
    lam = lag_formulas(model.param, model.derivation_law()).weight.latex_doc
    return ntk_sweep.result(
        r, config, model,
        id="ntk_limit", title="NTK limit of the lag weights",
        statement="As the width grows, the empirical lag NTK of a linear RNN at initialisation tends to the "
                  "diagonal kernel with the derived lag weights lambda_j.",
        formula=r"\Theta_\infty[(i,a,b),(j,a',b')] = \lambda_i\,\delta_{ij}\,\delta_{aa'}\,\delta_{bb'},"
                r"\quad \lambda_j = " + lam,
        statistic=stat, threshold=thr, verdict=c.outcome,
        figures={
            "heatmap": {
                "kind": "heatmap", "title": "Empirical lag NTK against its limit",
                "caption": f"Left: Monte Carlo mean of the empirical lag NTK at width n = {top} "
                           f"({r.top.replicas} draws); right: the derived limit, diagonal with lambda_j. "
                           "Same colour scale.",
                "panels": [{"title": f"Monte Carlo mean, n = {top}", "matrix": mean},
                           {"title": r"derived limit $\lambda_i\,\delta_{ij}$", "matrix": theory}],
                "axis_label": axis.replace("lag j", "lag j'"), "axis_label_y": axis.replace("lag j", "lag i"),
                "colorbar_label": r"$\Theta[i, j']$ (dimensionless)",
            },
            "per_lag": ntk_sweep.per_lag_figure(r, "ntk", c, r"NTK diagonal $\Theta[(j,0,0),(j,0,0)]$ (dimensionless)",
                                                "Lag NTK"),
        },
        controls=ctrls, **ntk_sweep.claim_fields(r, c, ctrls),
        notes=[design.correction + ".", design.allowance + ".", *ntk_sweep.exact_note(r)],
    )


CLAIM = Claim(name="ntk_limit", section=ntk_sweep.SECTION, experiment="ntk", title="NTK limit of the lag weights",
              config_type=Config, run=run, check=check, memory=ntk_sweep.memory)

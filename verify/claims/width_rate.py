"""Claim ``width_rate``: the relative error of the empirical lag NTK falls like n^(-1/2).

Statistic: the fitted log-log slope of the mean per-draw relative Frobenius error
against the width (shared width sweep ``[ntk]``), whose interval must contain -1/2.
Control: the rate -1 (fluctuations of order 1/n) on the same fit.
"""

from __future__ import annotations

from typing import Any

from linrnn.verify.claims import ntk_sweep
from linrnn.verify.claims.base import Claim, ClaimResult, Progress

Config = ntk_sweep.NtkConfig
check = ntk_sweep.check


def run(config: Config, model: Any, *, seed: int = 0, backend: str = "numpy", dtype: str = "float64",
        progress: Progress | None = None) -> ClaimResult:
    check(config, model)
    r = ntk_sweep.sweep(config, model, seed=seed, backend=backend, dtype=dtype)
    c = r.check_results()["rate"]
    ctrls = ntk_sweep.controls(r, "rate", "rate")
    stat, thr = ntk_sweep.rate_stat(c)
    rate = r.rate
    assert rate is not None  # a sweep (two or more widths) fits the rate
    return ntk_sweep.result(
        r, config, model,
        id="width_rate", title="Convergence rate in the width",
        statement="The per-draw relative Frobenius error of the empirical lag NTK against its limit falls "
                  "like n^(-1/2).",
        formula=(r"e(n) = \frac{\|\Theta_r - \mathrm{E}\,\Theta(n)\|_F}{\|\mathrm{E}\,\Theta(n)\|_F} \propto n^{-1/2}"
                 if r.exact else
                 r"e(n) = \frac{\|\Theta_r - \Theta_\infty\|_F}{\|\Theta_\infty\|_F} \propto n^{-1/2}"),
        statistic=stat, threshold=thr, verdict=c.outcome,
        figures={"width_rate": {
            "kind": "width_rate", "title": "Relative error of the lag NTK against the width",
            "caption": f"Mean per-draw relative error e(n) over {r.top.replicas} draws per width (bars: +-2 "
                       f"standard errors), log-log axes. Dashed: the fitted slope ({rate.extra['model']}), "
                       "drawn through the largest width; dotted: the expected slope -1/2.",
            "widths": r.widths, "rel_error": r.rel_error, "rel_error_stderr": r.rel_error_stderr,
            "slope": rate.slope, "slope_ci": list(rate.ci), "expected_slope": rate.expected,
            "ylabel": r"relative error $e(n)$ (dimensionless)",
        }},
        controls=ctrls, **ntk_sweep.claim_fields(r, c, ctrls),
        notes=[r.design.rate + ".", *ntk_sweep.exact_note(r)],
    )


CLAIM = Claim(name="width_rate", section=ntk_sweep.SECTION, experiment="ntk", title="Convergence rate in the width",
              config_type=Config, run=run, check=check, memory=ntk_sweep.memory)

"""Claim ``nngp``: the initial impulse response L_j(0) = C W^j F has the derived NNGP covariance.

Statistic: max |z| over the upper-triangle entries of the second moment of L(0) at
the largest width (against the exact finite-width mean where it is derived, else
bias-corrected against the limit; Holm thresholds), from the shared width sweep
``[ntk]``. Control: the NNGP variance with q replaced by 1.1 q.
"""

from __future__ import annotations

from typing import Any

from linrnn.verify.claims import ntk_sweep
from linrnn.verify.claims.base import Claim, ClaimResult, Progress

Config = ntk_sweep.NtkConfig
check = ntk_sweep.check


def run(config: Config, model: Any, *, seed: int = 0, backend: str = "numpy", dtype: str = "float64",
        progress: Progress | None = None) -> ClaimResult:
    from linrnn.derive import lag_formulas

    check(config, model)
    r = ntk_sweep.sweep(config, model, seed=seed, backend=backend, dtype=dtype)
    c = r.check_results()["nngp_entries"]
    ctrls = ntk_sweep.controls(r, "nngp", "nngp_entries")
    stat, thr = ntk_sweep.entry_stat(c, r.exact)
    var = lag_formulas(model.param, model.derivation_law()).nngp.latex_doc
    return ntk_sweep.result(
        r, config, model,
        id="nngp", title="NNGP of the initial impulse response",
        statement="At initialisation the impulse response L_j(0) = C W^j F of a wide linear RNN has independent "
                  "entries with the derived variance.",
        formula=r"\mathrm{E}\left[L_i(0)[a,b]\,L_j(0)[a',b']\right] = \delta_{ij}\,\delta_{aa'}\,\delta_{bb'}\,"
                + var,
        statistic=stat, threshold=thr, verdict=c.outcome,
        figures={"per_lag": ntk_sweep.per_lag_figure(r, "nngp", c, r"$\mathrm{Var}\,L_j(0)[0,0]$ (dimensionless)",
                                                     "NNGP variance")},
        controls=ctrls, **ntk_sweep.claim_fields(r, c, ctrls),
        notes=[r.design.test + ".", *ntk_sweep.exact_note(r)],
    )


CLAIM = Claim(name="nngp", section=ntk_sweep.SECTION, experiment="ntk", title="NNGP of the initial impulse response",
              config_type=Config, run=run, check=check, memory=ntk_sweep.memory)

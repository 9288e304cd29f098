"""Claim ``min_norm``: trained RNNs converge to the lambda-weighted min-norm interpolant closest to L(0).

With loss ``last`` and fewer sequences than lags the loss has many minimisers; the
trained RNN converges to the one closest to L(0) in the norm sum_j ||L_j - L_j(0)||^2
/ lambda_j (:func:`linrnn.verify.scnn.min_norm_solution`). Check: the two-part
:func:`linrnn.verify.claims_train.candidate_checks` on the distance D(n) of the
trained impulse response to each candidate interpolant. Controls: the unweighted
(lambda_j = 1) and wrong-weight interpolants, whose distance plateaus.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from linrnn.core.errors import UsageError
from linrnn.verify.claims.base import (
    Claim, ClaimResult, Progress, TrainConfig, check_scalar_model, check_widths, result_config, set_fields,
)


@dataclass(frozen=True)
class Config(TrainConfig):
    """Sizes of the min-norm sweep: loss ``last`` with fewer sequences than lags."""

    loss: str = "last"
    seq_len: int = 12
    n_seq: int = 4
    seeds: int = 12
    steps: int = 150
    lr_factor: float = 0.9
    widths: tuple[int, ...] = (64, 128, 256, 512, 1024)

    def __post_init__(self) -> None:
        super().__post_init__()
        set_fields(self, widths=check_widths(self.widths))


def check(config: Config, model: Any) -> None:
    check_scalar_model(model, "min_norm")
    if config.seeds < 2:
        raise UsageError("the min-norm claim needs at least two seeds for standard errors")
    if config.loss != "last" or config.n_seq >= config.seq_len:
        raise UsageError("the min-norm claim needs loss 'last' and fewer sequences than lags (n_seq < seq_len)")


def run(config: Config, model: Any, *, seed: int = 0, backend: Any = "numpy", dtype: str = "float64",
        progress: Progress | None = None) -> ClaimResult:
    """Trained RNNs converge to the lambda-weighted min-norm interpolant closest to L(0).

    The statistic is the slope of log D(n), D = ||L_rnn(K) - L_mn||_F / ||L*||_F, against
    log n, with the paired comparison at the largest width; controls replace the
    weights in L_mn by lambda_j = 1 (plain min-norm) and by the derivation's wrong
    weights (``controls``).
    """
    import numpy as np

    from linrnn.derive import weights
    from linrnn.verify.claims_train import (
        candidate_checks, candidate_controls, choose_lr, distance_figure, draw_rnn, make_data, resolve_backend, tick,
        train_pair, wrong_weights,
    )
    from linrnn.verify.scnn import LagCurvature, min_norm_solution
    from linrnn.verify.train import lagged_correlations

    check(config, model)
    backend = resolve_backend(backend, seed, dtype)
    spec = model
    x, y, teacher = make_data(config, backend, seed)
    corr = lagged_correlations(x, y, None, "last", backend)
    T = config.seq_len
    lam = np.asarray(weights(spec, T), dtype=np.float64)
    lr = choose_lr(config, corr, spec)
    alts = {"plain_min_norm": np.ones(T), **wrong_weights(spec, T, lam, config.controls)}
    norm = float(np.linalg.norm(teacher))
    widths, R = config.widths, config.seeds
    dist = np.zeros((len(widths), R))
    cdist = {k: np.zeros((len(widths), R)) for k in alts}
    resid = np.zeros((len(widths), R))
    for i, n in enumerate(widths):
        for r in range(R):
            imp, scnn, res = train_pair(draw_rnn(seed, spec, n, r, backend), corr, lr, config.steps, lam)
            L0, Lk = imp[0], imp[-1]
            dist[i, r] = float(np.linalg.norm(Lk - min_norm_solution(L0, corr, lam))) / norm
            for k, wl in alts.items():
                cdist[k][i, r] = float(np.linalg.norm(Lk - min_norm_solution(L0, corr, wl))) / norm
            resid[i, r] = float(np.linalg.norm(scnn[-1] - min_norm_solution(L0, corr, lam))) / norm
            tick(progress, n * n, f"n={n} seed {r}")
    alpha = float(config.alpha)
    cands = {"derived": dist, **{f"interpolant:{k}": v for k, v in cdist.items()}}
    checks, crit, m_pairs = candidate_checks(widths, cands, alpha)
    fit = checks["derived"]["fit"]
    controls = candidate_controls(checks, crit, alpha, "The trained RNN converges to the {name} interpolant.")
    cfits = {k: c["fit"] for k, c in checks.items() if k != "derived"}
    derived_ok = checks["derived"]["passed"]
    mu = LagCurvature(corr, lam).mu
    rank = int(np.sum(backend.to_numpy(mu) > 1e-10 * float(mu[-1])))
    ratio = {k: float(v.mean(axis=1)[-1] / dist.mean(axis=1)[-1]) for k, v in cdist.items()}
    return ClaimResult(
        id="min_norm",
        title="Implicit bias: lambda-weighted minimum norm",
        statement=("With more lags than constraints, gradient descent on a wide linear RNN converges to the "
                   "interpolant closest to L(0) in the norm sum_j ||L_j - L_j(0)||^2 / lambda_j."),
        formula=(r"L^\infty = \arg\min_{L:\,\nabla\mathcal{L}(L)=0} \sum_j "
                 r"\frac{\lVert L_j - L_j(0)\rVert^2}{\lambda_j} + O(n^{-1/2})"),
        statistic={"name": "fitted slope of log ||L_rnn(K) - L_mn|| / ||L*|| vs log n; largest paired t "
                           "of (D_derived - D_control) at the largest width",
                   "value": fit["slope"], "stderr": fit["stderr"],
                   "paired_t": checks["derived"]["t_max"] if math.isfinite(checks["derived"]["t_max"]) else None},
        threshold={"description": f"expected slope -1/2 inside the {100 * (1 - alpha / 2):g}% CI (Birge-inflated "
                                  f"SE) and no candidate significantly closer (one-sided paired t <= {crit:.3g}: "
                                  f"alpha/2 split by Bonferroni over {m_pairs} pairs, {R - 1} dof)",
                   "value": {"ci": fit["ci"], "t_crit": crit}},
        verdict="pass" if derived_ok and all(c["verdict"] == "fail" for c in controls) else "fail",
        figures={"distance_vs_width": distance_figure({
            "widths": list(widths), "distance_mean": fit["mean"], "distance_se": fit["se"],
            "controls": {k: {"mean": v["mean"], "se": v["se"]} for k, v in cfits.items()},
            "scnn_residual_mean": resid.mean(axis=1).tolist(),
        })},
        controls=controls,
        config=result_config(model, config, seed=seed, backend=backend.describe(), lr_used=lr, constraint_rank=rank),
        notes=[
            f"{config.n_seq} sequences constrain {rank} of {T} lag coefficients (loss 'last').",
            "Distance ratio control / weighted min-norm at the largest width: "
            + ", ".join(f"{k} {v:.3g}" for k, v in ratio.items()) + ".",
            f"The SCNN after {config.steps} steps is within {resid.max():.2e} (relative) of the min-norm point "
            "(the optimisation residual, a floor for the measured distance).",
        ],
        backend=backend.describe(),
    )


CLAIM = Claim(name="min_norm", section="min_norm", experiment="min_norm",
              title="Implicit bias: lambda-weighted minimum norm", config_type=Config, run=run, check=check)

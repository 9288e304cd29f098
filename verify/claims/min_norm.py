"""Claim ``min_norm``: trained RNNs converge to the lambda-weighted min-norm interpolant closest to L(0).

With loss ``last`` and fewer sequences than lags the loss has many minimisers; the
trained RNN converges to the one closest to L(0) in the norm ||v||_lambda^2 = sum_j
||v_j||^2 / lambda_j (:func:`linrnn.verify.scnn.min_norm_solution`), up to O(n^{-1/2}).

The test is a set of t-tests on independent replicas (one fresh draw at every width,
trained; every candidate interpolant computed from the same L(0)). With delta = L_rnn(K)
- L_mn (relative to ||L*||) and, for a wrong candidate c (plain lambda_j = 1, or the
derivation's wrong weights), Delta_c = L_mn^c - L_mn:

* **closeness**: u_c = (D_c^2 - D^2) / ||Delta_c||^2 = 1 - 2 <delta, Delta_c> / ||Delta_c||^2
  in the claim's own metric ||.||_lambda at the largest width: the RNN's noise cancels in the
  paired difference and the division removes the L(0)-driven scale. u_c -> +1 if the derived
  interpolant is the limit, -> -1 if c is; the midpoint 0 separates them. The claim is
  refuted if mean u_c is significantly below 0 (one-sided, level a/(2m)); control c is
  rejected if it is significantly above 0 at the same level.
* **rate**: D = O(n^{-1/2}) is an upper bound, so the claim is refuted if the mean
  per-replica slope of log D(n) on log n is significantly above -1/2 (one-sided, level
  a/2); faster decay at these widths (the O(1/n) curvature) is no refutation.

Here a = alpha / looks, the claim's alpha split over the looks of its design.
Sizes: the group-sequential design (:func:`linrnn.verify.claims.training.run_design`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from linrnn.core.errors import UsageError
from linrnn.core.configure import set_fields
from linrnn.core.validate import check_widths
from linrnn.verify.claims.base import Claim, ClaimResult, Progress, result_config
from linrnn.verify.claims.training_config import TrainConfig, check_scalar_model, replica_memory, training_memory


@dataclass(frozen=True)
class Config(TrainConfig):
    """Sizes of the min-norm sweep: loss ``last`` with fewer sequences than lags."""

    loss: str = "last"
    seq_len: int = 12
    n_seq: int = 4
    seeds: int = 12
    steps: int = 60
    lr_factor: float = 0.9
    widths: tuple[int, ...] = (128, 512)

    def __post_init__(self) -> None:
        super().__post_init__()
        set_fields(self, widths=check_widths(self.widths))


def check(config: Config, model: Any) -> None:
    check_scalar_model(model, "min_norm")
    if config.loss != "last" or config.n_seq >= config.seq_len:
        raise UsageError("the min-norm claim needs loss 'last' and fewer sequences than lags (n_seq < seq_len)")
    from linrnn.verify.claims.training import require_weight_controls

    # the interpolant does not change when every lag weight is scaled: a control proportional to lambda_j is none
    require_weight_controls(model, config.seq_len, config.controls, "min_norm", plain=True, up_to_scale=True)


def run(config: Config, model: Any, *, seed: int = 0, backend: Any = "numpy", dtype: str = "float64",
        progress: Progress | None = None) -> ClaimResult:
    """Trained RNNs converge to the lambda-weighted min-norm interpolant closest to L(0)."""
    import numpy as np

    from linrnn.derive import weights
    from linrnn.verify.claims.training import (
        TTest, choose_lr, control_entry, guard_draws, distance_figure, distinct_controls, draw_rnn, make_data,
        resolve_backend, run_design, t_summary, tick, train_pair, wrong_weights,
    )
    from linrnn.verify.scnn import LagCurvature, min_norm_solution
    from linrnn.verify.threads import blas_threads
    from linrnn.verify.train import lagged_correlations

    check(config, model)
    backend = resolve_backend(backend, seed, dtype)
    spec = model
    x, y, teacher = make_data(config, backend, seed)
    corr = lagged_correlations(x, y, None, "last", backend)
    T = config.seq_len
    lam = np.asarray(weights(spec, T), dtype=np.float64)
    lr = choose_lr(config, corr, spec, guard=guard_draws(seed, spec, config.widths, backend))
    # a candidate proportional to lambda_j has the same interpolant: no control (linrnn.core.outcome)
    alts = distinct_controls(lam, {"plain_min_norm": np.ones(T), **wrong_weights(spec, T, lam, config.controls)},
                             up_to_scale=True)
    norm = float(np.linalg.norm(teacher))
    widths = list(config.widths)
    metric = 1.0 / lam  # the claim's own norm sum_j ||v_j||^2 / lambda_j
    resid_max = [0.0]

    def replica(index: int) -> dict[str, float]:
        out: dict[str, float] = {}
        logs = []
        for n in widths:
            try:
                imp, scnn, _ = train_pair(draw_rnn(seed, spec, n, index, backend), corr, lr, config.steps, lam)
            except UsageError:  # this draw diverged at the step used: the replica's statistics are not finite
                return {**{f"D{m}": math.nan for m in widths}, "slope": math.nan,
                        **{f"u:{k}": math.nan for k in alts}, **{f"Dc:{k}": math.nan for k in alts}}
            L0, Lk = imp[0], imp[-1]
            mn = min_norm_solution(L0, corr, lam)
            delta = (np.asarray(Lk) - mn)[:, 0, 0] / norm
            D = float(np.sqrt(np.sum(delta ** 2)))
            out[f"D{n}"] = D
            logs.append(math.log(D) if D > 0 else -math.inf)
            resid_max[0] = max(resid_max[0], float(np.linalg.norm(scnn[-1] - mn)) / norm)
            if n == widths[-1]:
                for k, wl in alts.items():
                    dc = (min_norm_solution(L0, corr, wl) - mn)[:, 0, 0] / norm
                    b = float(np.sum(metric * dc ** 2))
                    out[f"u:{k}"] = 1.0 - 2.0 * float(np.sum(metric * delta * dc)) / b if b > 0 else math.nan
                    out[f"Dc:{k}"] = float(np.sqrt(np.sum((delta - dc) ** 2)))
        xl = np.log(np.asarray(widths, dtype=np.float64))
        xc = xl - xl.mean()
        out["slope"] = float(np.sum(xc * np.asarray(logs)) / np.sum(xc ** 2))
        tick(progress, float(sum(n * n for n in widths)), f"replica {index % 1_000_000}")
        return out

    alpha = float(config.alpha)
    m = len(alts)
    own = {"rate": TTest("slope", -0.5, "greater", alpha / 2),
           **{f"closer:{k}": TTest(f"u:{k}", 0.0, "less", alpha / (2 * m)) for k in alts}}
    ctrl = {f"interpolant:{k}": TTest(f"u:{k}", 0.0, "greater", alpha / (2 * m)) for k in alts}
    with blas_threads(1):
        staged = run_design(replica, ctrl, config, progress, own=own)
    main, design, own, ctrl = staged.values, staged.record, staged.own, staged.controls  # tests at alpha / looks
    R = design["replicas"]
    a_look = design["alpha_per_look"]
    own_s = {k: t_summary(t, main[t.key], design["power_target"]) for k, t in own.items()}
    cause = ("the distance between the trained RNN and the min-norm interpolant is zero or not finite for some "
             "replica (an RNN draw that diverged at the step used, or a vanishing difference of interpolants)")
    finite = all(s["finite"] for s in own_s.values())
    statistic_verdict = "error" if not finite else ("fail" if any(s["rejected"] for s in own_s.values()) else "pass")
    controls = [control_entry(
        cid, f"The trained RNN converges to the {cid.split(':', 1)[1]} interpolant.", t, staged.values_for(cid)[t.key],
        design,
        f"t of the mean of u = (D_c^2 - D^2) / ||L_c - L_mn||_lambda^2 at n = {widths[-1]} against 0", cause)
        for cid, t in ctrl.items()]
    mu = LagCurvature(corr, lam).mu
    rank = int(np.sum(backend.to_numpy(mu) > 1e-10 * float(mu[-1])))
    dist = np.stack([main[f"D{n}"] for n in widths])
    mean, se = dist.mean(axis=1), dist.std(axis=1, ddof=1) / math.sqrt(R)
    cmeans = {k: float(np.mean(main[f"Dc:{k}"])) for k in alts}
    rate = own_s["rate"]
    slope_se = rate["sd"] / math.sqrt(R)
    closer = {k: {"mean": s["mean"], "t": s["t"] if math.isfinite(s["t"]) else None, "crit": s["crit"],
                  "rejected": s["rejected"]} for k, s in own_s.items() if k != "rate"}
    return ClaimResult(
        id="min_norm",
        title="Implicit bias: lambda-weighted minimum norm",
        statement=("With more lags than constraints, gradient descent on a wide linear RNN converges to the "
                   "interpolant closest to L(0) in the norm sum_j ||L_j - L_j(0)||^2 / lambda_j."),
        formula=(r"L^\infty = \arg\min_{L:\,\nabla\mathcal{L}(L)=0} \sum_j "
                 r"\frac{\lVert L_j - L_j(0)\rVert^2}{\lambda_j} + O(n^{-1/2})"),
        statistic={"name": "per wrong interpolant c, mean u = (D_c^2 - D^2)/||L_c - L_mn||_lambda^2 at the largest "
                           "width (t against 0); mean per-replica slope of log D(n) on log n (t against -1/2)",
                   "value": rate["mean"], "stderr": slope_se, "t": rate["t"] if math.isfinite(rate["t"]) else None,
                   "closer": closer},
        threshold={"description": (f"closeness: mean u not significantly below 0 (one-sided, a/(2 m) = "
                                   f"{a_look / (2 * m):.3g} each); rate: the slope not significantly above -1/2 "
                                   f"(one-sided at a/2, t <= {rate['crit']:.3g}, {R - 1} dof); a = alpha / "
                                   f"{design['looks']} = {a_look:.3g} per look (alpha = {alpha:g})"),
                   "value": {"t_crit": rate["crit"]}},
        verdict=statistic_verdict,
        statistic_verdict=statistic_verdict,
        error=cause if statistic_verdict == "error" else None,
        alpha=alpha,
        design=design,
        figures={"distance_vs_width": distance_figure({
            "widths": widths, "distance_mean": mean.tolist(), "distance_se": se.tolist(),
            "controls": {k: {"mean": [None] * (len(widths) - 1) + [v], "se": None} for k, v in cmeans.items()},
            "fit": {"slope": rate["mean"]},
        })},
        controls=controls,
        config=result_config(model, config, seed=seed, backend=backend.describe(), lr_used=lr, constraint_rank=rank),
        notes=[
            f"{config.n_seq} sequences constrain {rank} of {T} lag coefficients (loss 'last').",
            f"{R} replicas in the deciding stage (pilot {design['pilot']}, stages "
            f"{[st['replicas'] for st in design['stages']]}, fresh draws each) at widths {widths}.",
            f"The SCNN after {config.steps} steps is within {resid_max[0]:.2e} (relative) of the min-norm point "
            "(the optimisation residual, a floor for the measured distance).",
        ],
        backend=backend.describe(),
    )


def memory(config: Config, model: Any) -> int:
    """Peak bytes of one training run at the largest width, plus the per-replica values of the design
    (:func:`replica_memory`: D per width, the slope, u and Dc per control)."""
    return (training_memory(config, model, config.widths)
            + replica_memory(config, len(config.widths) + 1 + 2 * len(config.controls)))


CLAIM = Claim(name="min_norm", section="min_norm", experiment="min_norm",
              title="Implicit bias: lambda-weighted minimum norm", config_type=Config, run=run, check=check, memory=memory)

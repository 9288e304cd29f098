"""Claim ``dynamics_equivalence``: a wide RNN trained by gradient descent moves like the scaled CNN.

The RNN and the scaled CNN (SCNN) with the derived lag weights lambda_j, started from
the RNN's own initial impulse response L(0), stay close: d(n) = sup_k ||L_rnn(k) -
L_scnn(k)|| / ||L*|| falls like n^{-1/2} (the NTK of a width-n draw fluctuates by
O(n^{-1/2}) around its limit). Check
(:func:`linrnn.verify.claims_train.candidate_checks`, applied alike to the derived
weights and to each control): (a) a weighted log-log fit of the seed-mean d(n)
against n (Birge-inflated standard error) whose (1 - alpha/2) interval contains -1/2,
and (b) no other candidate significantly closer to the RNN at the largest width
(one-sided paired t over the same draws, alpha/2 split by Bonferroni). Controls:
SCNNs with wrong lag weights (``derive_lag_weights(param).controls``), whose distance
plateaus, and the rate -1 tested on the true theory's fit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from linrnn.verify.claims.base import (
    Claim, ClaimResult, Progress, TrainConfig, check_scalar_model, check_widths, result_config, set_fields,
)


@dataclass(frozen=True)
class Config(TrainConfig):
    """Sizes of the dynamics-equivalence sweep (:class:`TrainConfig` fields, plus the widths)."""

    widths: tuple[int, ...] = (64, 128, 256, 512, 1024)

    def __post_init__(self) -> None:
        super().__post_init__()
        set_fields(self, widths=check_widths(self.widths))


def check(config: Config, model: Any) -> None:
    check_scalar_model(model, "dynamics_equivalence")


def sweep(config: Config, model: Any, seed: int, backend: Any, progress: Progress | None = None) -> dict[str, Any]:
    """The width sweep behind the claim (raw numbers, host arrays).

    Returns ``widths``, ``lr``, ``distance`` (widths x seeds, true lag weights) and
    ``control_distance`` {name: widths x seeds} for the stable wrong-weight SCNNs, with
    d = max_k ||L_rnn(k) - L_scnn(k)||_F / ||L*||_F over k = 0..steps.
    """
    import numpy as np

    from linrnn.derive import weights
    from linrnn.verify.claims_train import (
        choose_lr, draw_rnn, make_data, stable, sup_dist, tick, train_pair, wrong_weights,
    )
    from linrnn.verify.scnn import scnn_trajectory
    from linrnn.verify.train import lagged_correlations

    spec = model
    x, y, teacher = make_data(config, backend, seed)
    corr = lagged_correlations(x, y, None, config.loss, backend)
    lam = np.asarray(weights(spec, config.seq_len), dtype=np.float64)
    lr = choose_lr(config, corr, spec)
    all_wrong = wrong_weights(spec, config.seq_len, lam, config.controls)
    wrong = {k: v for k, v in all_wrong.items() if stable(corr, v, lr)}
    norm = float(np.linalg.norm(teacher))
    widths, R = config.widths, config.seeds
    dist = np.zeros((len(widths), R))
    cdist = {k: np.zeros((len(widths), R)) for k in wrong}
    for i, n in enumerate(widths):
        for r in range(R):
            imp, scnn, _ = train_pair(draw_rnn(seed, spec, n, r, backend), corr, lr, config.steps, lam)
            dist[i, r] = sup_dist(imp, scnn) / norm
            if i == len(widths) - 1 and r == 0:
                example = (n, np.asarray(imp)[:, :, 0, 0].copy(), np.asarray(scnn)[:, :, 0, 0].copy())
            for k, wl in wrong.items():
                cdist[k][i, r] = sup_dist(imp, scnn_trajectory(imp[0], corr, wl, lr=lr, steps=config.steps)) / norm
            tick(progress, n * n, f"n={n} seed {r}")
    return {"widths": list(widths), "lr": lr, "distance": dist, "control_distance": cdist, "teacher_norm": norm,
            "unstable_controls": sorted(set(all_wrong) - set(wrong)), "example": example,
            "teacher": np.asarray(teacher)[:, 0, 0].tolist()}


def trajectory_figure(example: tuple[int, Any, Any], teacher: list[float]) -> dict[str, Any]:
    """RNN against scaled-CNN impulse-response trajectories L_j(k) for a few lags (one draw)."""
    n, imp, scnn = example
    steps = imp.shape[0]
    lags = [j for j in (0, 1, 3, 6) if j < imp.shape[1]]  # four lags: eight series with distinct styles
    ks = list(range(steps))
    stride = max(1, steps // 12)
    series: list[dict[str, Any]] = []
    for j in lags:
        series.append({"label": f"SCNN, lag j = {j}", "x": ks, "y": scnn[:, j].tolist(), "style": "line"})
        series.append({"label": f"RNN (n = {n}), lag j = {j}", "x": ks[::stride], "y": imp[::stride, j].tolist(),
                       "style": "points"})
    return {"kind": "lines", "title": "RNN against scaled-CNN trajectories",
            "caption": (f"Impulse-response entries L_j(k) during gradient descent for one width-{n} RNN (points) and "
                        "the scaled CNN with the derived lag weights started from the same L(0) (lines), against the "
                        "step k, for a few lags j; the teacher's values are "
                        + ", ".join(f"L*_{j} = {teacher[j]:.3g}" for j in lags) + "."),
            "xlabel": "gradient step k", "ylabel": "impulse response $L_j(k)$ (output units per input unit)",
            "series": series}


def run(config: Config, model: Any, *, seed: int = 0, backend: Any = "numpy", dtype: str = "float64",
        progress: Progress | None = None) -> ClaimResult:
    """Wide-RNN gradient descent follows the SCNN with the derived lag weights, at rate n^{-1/2}."""
    from linrnn.verify.claims_train import candidate_checks, candidate_controls, distance_figure, rate_check, \
        resolve_backend

    check(config, model)
    backend = resolve_backend(backend, seed, dtype)
    sw = sweep(config, model, seed, backend, progress)
    alpha = float(config.alpha)
    cands = {"derived": sw["distance"], **{f"lag_weights:{k}": v for k, v in sw["control_distance"].items()}}
    checks, crit, m_pairs = candidate_checks(sw["widths"], cands, alpha)
    fit = checks["derived"]["fit"]
    rate1 = rate_check(sw["widths"], sw["distance"], alpha / 2, -1.0, "rate_minus_one")
    cfits = {k: c["fit"] for k, c in checks.items() if k != "derived"}
    controls = candidate_controls(
        checks, crit, alpha, "The SCNN with the wrong lag weights {name} follows the RNN at rate n^-1/2.")
    for k in sw["unstable_controls"]:
        controls.append({
            "id": f"lag_weights:{k}", "statement": f"The SCNN with the wrong lag weights {k} follows the RNN.",
            "statistic": {"name": "eta mu_max of the wrong weights (the SCNN diverges at this step)", "value": None},
            "threshold": {"description": "eta mu_max < 2 (else the SCNN diverges while the RNN does not)", "value": 2.0},
            "verdict": "fail",
        })
    controls.append({
        "id": "rate:-1", "statement": "The distance to the SCNN with the derived weights falls at rate n^-1.",
        "statistic": {"name": "fitted log-log slope", "value": rate1["slope"], "stderr": rate1["stderr"]},
        "threshold": {"description": f"expected slope -1 inside the {100 * (1 - alpha / 2):g}% CI", "value": rate1["ci"]},
        "verdict": "pass" if rate1["passed"] else "fail",
    })
    figures = {"trajectories": trajectory_figure(sw["example"], sw["teacher"]), "distance_vs_width": distance_figure({
        "widths": sw["widths"], "distance_mean": fit["mean"], "distance_se": fit["se"],
        "distance_per_seed": sw["distance"].tolist(),
        "controls": {k: {"mean": v["mean"], "se": v["se"]} for k, v in cfits.items()},
        "fit": {"slope": fit["slope"], "ci": fit["ci"]},
    })}
    return ClaimResult(
        id="dynamics_equivalence",
        title="Dynamics equivalence",
        statement=("Gradient descent on a width-n linear RNN moves its impulse response like the scaled CNN "
                   "with the derived lag weights, started from the same L(0), up to O(n^-1/2)."),
        formula=(r"\sup_k \frac{\lVert L^{\mathrm{rnn}}(k) - L^{\mathrm{scnn}}(k)\rVert}{\lVert L^*\rVert} "
                 r"= O(n^{-1/2}),\quad L^{\mathrm{scnn}}(k+1) = L^{\mathrm{scnn}}(k) - \eta\,\mathrm{diag}(\lambda_j)\,"
                 r"\nabla_L \mathcal{L}"),
        statistic={"name": "fitted slope of log d(n) vs log n; largest paired t of (d_derived - d_control) "
                           "at the largest width", "value": fit["slope"], "stderr": fit["stderr"],
                   "paired_t": checks["derived"]["t_max"] if math.isfinite(checks["derived"]["t_max"]) else None},
        threshold={"description": f"expected slope -1/2 inside the {100 * (1 - alpha / 2):g}% CI (Birge-inflated "
                                  f"SE) and no control significantly closer (one-sided paired t <= {crit:.3g}: "
                                  f"alpha/2 split by Bonferroni over {m_pairs} pairs, {sw['distance'].shape[1] - 1} dof)",
                   "value": {"ci": fit["ci"], "t_crit": crit}},
        verdict="pass" if checks["derived"]["passed"] and all(c["verdict"] == "fail" for c in controls) else "fail",
        figures=figures,
        controls=controls,
        config=result_config(model, config, seed=seed, backend=backend.describe(), lr_used=sw["lr"]),
        notes=[
            f"d(n) averaged over {config.seeds} draws per width; SE = sd/sqrt(R); weighted least squares on log d.",
            f"Step lr = {sw['lr']:.4g} ({'lr_factor x 1/mu_max of the lag-weighted curvature' if config.lr == 'auto' else 'given'}).",
            "The verdict is pass only if the derived theory passes and every control is rejected.",
        ],
        backend=backend.describe(),
    )


CLAIM = Claim(name="dynamics_equivalence", section="dynamics_equivalence", experiment="dynamics_equivalence",
              title="Dynamics equivalence", config_type=Config, run=run, check=check)

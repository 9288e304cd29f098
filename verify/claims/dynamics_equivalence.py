"""Claim ``dynamics_equivalence``: a wide RNN trained by gradient descent moves like the scaled CNN.

The RNN and the scaled CNN (SCNN) with the derived lag weights lambda_j, started from
the RNN's own initial impulse response L(0), stay close: with delta(k) = L_rnn(k) -
L_scnn(k), the distance d(n) = sqrt(mean_k ||delta(k)||^2) / ||L*|| (root mean square
over the steps k = 1..K) is O(n^{-1/2}): the lag NTK of a width-n draw fluctuates by
O(n^{-1/2}) around its limit, so sqrt(n) delta has an n-independent limit law.

The test is a set of t-tests on independent *replicas* (one fresh draw at every width,
trained, every candidate theory evaluated on the same trajectories):

* **rate**: the replica's least-squares slope s of log d(n) on log n. If sqrt(n) d(n)
  has an n-independent law, E log d(n) = c - 1/2 log n exactly, so E s = -1/2: a
  two-sided t-test of mean s = -1/2 (level alpha/2). Control ``rate:minus_1``: the same test
  of mean s = -1.
* **closeness** to each wrong candidate c (lag weights lambda', SCNN L'(k), Delta_c =
  L' - L_scnn): u_c = (d_c^2 - d^2) / ||Delta_c||^2 = 1 - 2 <delta, Delta_c> / ||Delta_c||^2
  at the largest width (sums over steps and lags). The RNN noise of d_c and d cancels in
  the paired difference, and dividing by ||Delta_c||^2 removes the L(0)-driven scale; u_c
  -> +1 if the derived theory holds and -> -1 if c does, so the midpoint 0 separates the
  two hypotheses: the claim is refuted if mean u_c is significantly below 0 (one-sided,
  level alpha/(2m), m wrong candidates), and control ``lag_weights:c`` is rejected if it
  is significantly above 0 at the same level. A wrong candidate whose SCNN diverges at
  the step used is rejected outright (the RNN does not diverge).

Sizes: the group-sequential design (:func:`linrnn.verify.claims.training.run_design`): a pilot
sizes the main stage so that every control is rejected with probability 0.999, and a
further stage is drawn where a control is not rejected; every level above is split over
the looks (alpha / looks in place of alpha).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from linrnn.core.configure import set_fields
from linrnn.core.validate import check_widths
from linrnn.verify.claims.base import Claim, ClaimResult, Progress, result_config
from linrnn.verify.claims.training_config import TrainConfig, check_scalar_model, replica_memory, training_memory


@dataclass(frozen=True)
class Config(TrainConfig):
    """Sizes of the dynamics-equivalence sweep (:class:`TrainConfig` fields, plus the widths of every replica)."""

    widths: tuple[int, ...] = (64, 128, 256, 512)

    def __post_init__(self) -> None:
        super().__post_init__()
        set_fields(self, widths=check_widths(self.widths))


def check(config: Config, model: Any) -> None:
    check_scalar_model(model, "dynamics_equivalence")


def setup(config: Config, model: Any, seed: int, backend: Any) -> dict[str, Any]:
    """Data, correlations, step, the derived and the (stable) wrong lag weights."""
    import numpy as np

    from linrnn.derive import weights
    from linrnn.verify.claims.training import choose_lr, guard_draws, make_data, stable, wrong_weights
    from linrnn.verify.train import lagged_correlations

    x, y, teacher = make_data(config, backend, seed)
    corr = lagged_correlations(x, y, None, config.loss, backend)
    lam = np.asarray(weights(model, config.seq_len), dtype=np.float64)
    lr = choose_lr(config, corr, model, guard=guard_draws(seed, model, config.widths, backend))
    all_wrong = wrong_weights(model, config.seq_len, lam, config.controls)
    wrong = {k: v for k, v in all_wrong.items() if stable(corr, v, lr)}
    return {"corr": corr, "lam": lam, "lr": lr, "wrong": wrong, "teacher": teacher,
            "norm": float(np.linalg.norm(teacher)), "unstable": sorted(set(all_wrong) - set(wrong))}


def replica_values(config: Config, model: Any, seed: int, backend: Any, st: dict[str, Any], index: int,
                   keep: dict[str, Any] | None = None) -> dict[str, float]:
    """One replica: per width the RMS distance, the slope of log d on log n, and u_c at the largest width."""
    import numpy as np

    from linrnn.verify.claims.training import draw_rnn, train_pair
    from linrnn.verify.scnn import scnn_trajectory

    out: dict[str, float] = {}
    logs = []
    widths = config.widths
    from linrnn.core.errors import UsageError

    for n in widths:
        try:
            imp, scnn, _ = train_pair(draw_rnn(seed, model, n, index, backend), st["corr"], st["lr"], config.steps,
                                      st["lam"])
        except UsageError:  # this draw diverged at the step used: the replica's statistics are not finite
            return {**{f"d{m}": math.nan for m in widths}, "slope": math.nan,
                    **{f"u:{k}": math.nan for k in st["wrong"]}}
        delta = (np.asarray(imp) - np.asarray(scnn))[1:] / st["norm"]
        d = float(np.sqrt(np.sum(delta ** 2) / delta.shape[0]))
        out[f"d{n}"] = d
        logs.append(math.log(d) if d > 0 else -math.inf)
        if n == widths[-1]:
            for k, wl in st["wrong"].items():
                dc = (scnn_trajectory(imp[0], st["corr"], wl, lr=st["lr"], steps=config.steps) - np.asarray(scnn))[1:]
                dc = dc / st["norm"]
                b = float(np.sum(dc ** 2))
                out[f"u:{k}"] = 1.0 - 2.0 * float(np.sum(delta * dc)) / b if b > 0 else math.nan
            if keep is not None and "example" not in keep:
                keep["example"] = (n, np.asarray(imp)[:, :, 0, 0].copy(), np.asarray(scnn)[:, :, 0, 0].copy())
    x = np.log(np.asarray(widths, dtype=np.float64))
    xc = x - x.mean()
    out["slope"] = float(np.sum(xc * np.asarray(logs)) / np.sum(xc ** 2))
    return out


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


def tests(config: Config, wrong: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the claim's tests, the controls' tests): TTest objects keyed by name (level split by Bonferroni)."""
    from linrnn.verify.claims.training import TTest

    alpha, m = float(config.alpha), max(len(wrong), 1)
    own = {"rate": TTest("slope", -0.5, "two", alpha / 2),
           **{f"closer:{k}": TTest(f"u:{k}", 0.0, "less", alpha / (2 * m)) for k in wrong}}
    ctrl = {"rate:minus_1": TTest("slope", -1.0, "two", alpha / 2),
            **{f"lag_weights:{k}": TTest(f"u:{k}", 0.0, "greater", alpha / (2 * m)) for k in wrong}}
    return own, ctrl


def run(config: Config, model: Any, *, seed: int = 0, backend: Any = "numpy", dtype: str = "float64",
        progress: Progress | None = None) -> ClaimResult:
    """Wide-RNN gradient descent follows the SCNN with the derived lag weights, at rate n^{-1/2}."""
    return run_table(config, model, seed=seed, backend=backend, dtype=dtype, progress=progress).claim


def run_table(config: Config, model: Any, *, seed: int = 0, backend: Any = "numpy", dtype: str = "float64",
              progress: Progress | None = None) -> Any:
    """:func:`run` as the table ``linrnn verify train --widths`` prints
    (:class:`linrnn.verify.claims.training.DistanceTable`, its result as ``claim``)."""
    import numpy as np

    from linrnn.verify.claims.training import distance_sweep, resolve_backend

    check(config, model)
    backend = resolve_backend(backend, seed, dtype)
    st = setup(config, model, seed, backend)
    widths = list(config.widths)
    alpha = float(config.alpha)
    cause = ("the RMS distance between the RNN and the SCNN is zero or not finite for some replica "
             "(a log of zero, or an RNN draw that diverged at the step used), so the statistics are not finite")
    statements = {"rate:minus_1": "The distance to the SCNN with the derived weights falls at rate n^-1.",
                  **{f"lag_weights:{k}": f"The SCNN with the wrong lag weights {k} follows the RNN (it is closer "
                                         "than the SCNN with the derived weights)." for k in st["wrong"]}}
    names = {"rate:minus_1": "t of the mean per-replica slope of log d(n) on log n against -1",
             **{f"lag_weights:{k}": f"t of the mean of u = (d_{k}^2 - d^2) / ||L_{k} - L_scnn||^2 at n = "
                                    f"{widths[-1]} against 0" for k in st["wrong"]}}
    unstable = [{
        "id": f"lag_weights:{k}", "statement": f"The SCNN with the wrong lag weights {k} follows the RNN.",
        "statistic": {"name": "eta mu_max of the wrong weights (the SCNN diverges at this step)", "value": None},
        "threshold": {"description": "eta mu_max < 2 (else the SCNN diverges while the RNN does not)", "value": 2.0},
        "verdict": "rejected", "power": 1.0,
    } for k in st["unstable"]]
    # one matrix-vector product per Krylov step in each replica
    sw = distance_sweep(config, lambda index, keep: replica_values(config, model, seed, backend, st, index, keep),
                        tests(config, list(st["wrong"])), wrong=st["wrong"], cost=float(sum(n * n for n in widths)),
                        progress=progress, cause=cause, statements=statements, names=names, unstable=unstable)
    R, design, rate, statistic_verdict = sw.R, sw.design, sw.rate, sw.statistic_verdict
    figures = {"distance_vs_width": sw.figure}
    if "example" in sw.keep:
        figures = {"trajectories": trajectory_figure(sw.keep["example"], np.asarray(st["teacher"])[:, 0, 0].tolist()),
                   **figures}
    claim = ClaimResult(
        id="dynamics_equivalence",
        title="Dynamics equivalence",
        statement=("Gradient descent on a width-n linear RNN moves its impulse response like the scaled CNN "
                   "with the derived lag weights, started from the same L(0), up to O(n^-1/2)."),
        formula=(r"\Big(\tfrac{1}{K}\sum_{k=1}^{K}\lVert L^{\mathrm{rnn}}(k) - L^{\mathrm{scnn}}(k)\rVert^2\Big)^{1/2}"
                 r"\big/\lVert L^*\rVert = \Theta(n^{-1/2}),\quad L^{\mathrm{scnn}}(k+1) = L^{\mathrm{scnn}}(k) - "
                 r"\eta\,\mathrm{diag}(\lambda_j)\,\nabla_L \mathcal{L}"),
        statistic={"name": "mean per-replica slope of log d(n) on log n (t against -1/2); per wrong candidate, mean "
                           "u = (d_c^2 - d^2)/||L_c - L_scnn||^2 at the largest width (t against 0)",
                   "value": rate["mean"], "stderr": sw.slope_se, "t": rate["t"] if math.isfinite(rate["t"]) else None,
                   "closer": sw.closer},
        threshold={"description": sw.threshold, "value": {"ci": sw.ci, "t_crit": rate["crit"]}},
        verdict=statistic_verdict,
        statistic_verdict=statistic_verdict,
        error=cause if statistic_verdict == "error" else None,
        alpha=alpha,
        design=design,
        figures=figures,
        controls=sw.controls,
        config=result_config(model, config, seed=seed, backend=backend.describe(), lr_used=st["lr"]),
        notes=[
            f"{R} replicas in the deciding stage (pilot {design['pilot']}, stages "
            f"{[st['replicas'] for st in design['stages']]}, fresh draws each), each a draw at every width "
            f"{widths}; d = RMS over the {config.steps} steps of ||L_rnn(k) - L_scnn(k)|| / ||L*||.",
            f"Step lr = {st['lr']:.4g} ({'lr_factor x 1/mu_max of the lag-weighted curvature, capped at 2 / (1.25 mu_max) of the pilot draws own finite-width curvature' if config.lr == 'auto' else 'given'}).",
            "Pass: the derived theory is not refuted and every control is rejected; inconclusive: not refuted, "
            "but a control was not rejected (the control names the size that would decide it).",
        ],
        backend=backend.describe(),
    )
    return sw.table(claim, widths)


def memory(config: Config, model: Any) -> int:
    """Peak bytes of one training run at the largest width (the replicas run one after another), plus the
    per-replica values of the design (:func:`replica_memory`: d per width, the slope, u per control)."""
    return (training_memory(config, model, config.widths)
            + replica_memory(config, len(config.widths) + 1 + len(config.controls)))


CLAIM = Claim(name="dynamics_equivalence", section="dynamics_equivalence", experiment="dynamics_equivalence",
              title="Dynamics equivalence", config_type=Config, run=run, check=check, memory=memory)

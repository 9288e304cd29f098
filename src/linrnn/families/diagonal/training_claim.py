r"""Claim ``diagonal_training``: wide diagonal RNNs trained by gradient descent follow kernel regression with the
derived lag kernel, at rate n^{-1/2} (the dense ``dynamics_equivalence`` claim, for a kernel not diagonal in the lags).

A width-n diagonal RNN (:mod:`linrnn.families.diagonal`) trained by full-batch gradient
descent on c, b and lambda (:mod:`linrnn.families.diagonal.training`, the structured
O(n L) step) moves its impulse response, to first order, as L <- L - eta Theta_n grad Loss
with Theta_n its empirical lag NTK. The units are iid, so E Theta_n is the derived kernel
Theta at every width and Theta_n - Theta = O(n^{-1/2}); each parameter moves by
O(n^{-1/2}) (the lazy regime), so Theta_n changes by O(n^{-1/2}) during training. The
prediction is kernel gradient descent with the derived Theta from the network's own L(0)
(:func:`linrnn.verify.kernel_gd.kernel_trajectory`), and with delta(k) = L_rnn(k) - L_kr(k),
d(n) = sqrt(mean_k ||delta(k)||^2) / ||L*|| (k = 1..K) is O(n^{-1/2}).

The tests are those of the dense claim (:mod:`linrnn.verify.claims.dynamics_equivalence`),
t-tests on independent replicas (a fresh draw at every width, trained; every candidate
kernel evaluated on the same trajectories):

* **rate**: the replica's least-squares slope of log d(n) on log n has mean -1/2 (two-sided,
  level a/2); control ``rate:minus_1``: the same test of mean -1;
* **closeness** to each wrong kernel c (its kernel trajectory L_c, Delta_c = L_c - L_kr):
  u_c = 1 - 2 <delta, Delta_c> / ||Delta_c||^2 at the largest width tends to +1 if the
  derived kernel holds and to -1 if c does: refuted if mean u_c is significantly below 0
  (one-sided, a/(2m)), the control ``kernel:c`` rejected if significantly above 0. A wrong
  kernel whose trajectory diverges at the step used is rejected outright.

The wrong kernels (:data:`KERNEL_CONTROLS`): ``forced_diagonal`` (the derived kernel with
every entry j != k set to 0: the dense family's structure), ``radius`` (the kernel derived
with |lambda| uniform on [r_min, r_max] instead of |lambda|^2) and ``gaussian_twin`` (the
dense Gaussian family's lag kernel at the same radius, q = r_max^2, the same multipliers).

Where it breaks (the results record it: ``statistic.max_modulus`` and
``statistic.diverged_fraction`` per width): the lazy regime needs the lambda
updates, whose gradient carries j lambda^{j-1}, to stay small over the lags: at r_max
near 1 with long sequences the kernel's lambda part grows as j k, the automatic step
shrinks with it, and a finite-width draw's units near the circle can be pushed out of the
unit disc (``max_modulus`` > 1 in the results: an impulse response that grows with the
lag), where the linearisation fails. The LRU's parameterisation keeps |lambda| < 1.

Sizes: the group-sequential design (:func:`linrnn.verify.claims.training.run_design`), as
the dense claim's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from linrnn.core.configure import set_fields
from linrnn.core.errors import UsageError
from linrnn.core.validate import check_widths
from linrnn.verify.claims.base import Claim, ClaimResult, Progress, result_config
from linrnn.verify.claims.training_config import TrainConfig, check_scalar_model, replica_memory

#: The wrong kernels of the negative controls (module docstring).
KERNEL_CONTROLS = ("forced_diagonal", "radius", "gaussian_twin")


@dataclass(frozen=True)
class Config(TrainConfig):
    """Sizes of the diagonal family's training sweep (the :class:`TrainConfig` fields, the widths of every replica);
    ``controls`` names wrong kernels (:data:`KERNEL_CONTROLS`), not the dense family's wrong lag weights."""

    widths: tuple[int, ...] = (256, 1024, 4096)
    seq_len: int = 12
    n_seq: int = 16
    steps: int = 100
    controls: tuple[str, ...] = KERNEL_CONTROLS

    def __post_init__(self) -> None:
        mine = tuple(self.controls)
        unknown = [c for c in mine if c not in KERNEL_CONTROLS]
        if unknown or not mine:
            raise UsageError(f"[diagonal_training] controls must name some of {', '.join(KERNEL_CONTROLS)}, got "
                             f"{list(mine)!r}")
        set_fields(self, controls=())  # the dense lag-weight names are checked by TrainConfig; these are kernels
        super().__post_init__()
        set_fields(self, controls=mine, widths=check_widths(self.widths))


def control_kernels(model: Any, lags: int, names: tuple[str, ...]) -> dict[str, Any]:
    """The (lags, lags) wrong kernels ``names`` (:data:`KERNEL_CONTROLS`) for the ring model ``model``."""
    import numpy as np

    from linrnn.families import family

    theta = model.kernel(lags)["ntk"][:, 0, 0, :, 0, 0]
    out = {}
    for name in names:
        if name == "forced_diagonal":
            out[name] = np.diag(np.diag(theta))
        elif name == "radius":
            out[name] = model.kernel(lags, radial_law="radius")["ntk"][:, 0, 0, :, 0, 0]
        else:
            s = model.spec
            twin = family("gaussian", sigma_w2=s.r_max ** 2, lr_c=s.lr_c, lr_f=s.lr_f, lr_w=s.lr_w)
            out[name] = twin.kernel(lags)["ntk"][:, 0, 0, :, 0, 0]
    return out


def check(config: Config, model: Any) -> None:
    """Scalar sequences; every control kernel must differ from the derived one (else it tests nothing)."""
    import numpy as np

    from linrnn.core.outcome import untestable
    from linrnn.families import model_of

    check_scalar_model(model, "diagonal_training")
    m = model_of(model)
    theta = m.kernel(config.seq_len)["ntk"][:, 0, 0, :, 0, 0]
    for name, k in control_kernels(m, config.seq_len, config.controls).items():
        if np.allclose(k, theta, rtol=1e-12, atol=1e-12 * float(np.max(np.abs(theta)))):
            raise untestable(f"[diagonal_training] with r_min = {model.r_min:g}, r_max = {model.r_max:g}, theta_max "
                             f"= {model.theta_max:g}", "the derived kernel",
                             f"the control kernel {name!r} equals it at every lag",
                             "choose r_min < r_max and a theta_max at which the lags correlate")


def memory(config: Config, model: Any) -> int:
    """Peak bytes: one training run at the largest width (the powers, gradients and a few copies, complex, L x n per
    step, and the recorded impulse responses), the kernel algebra (L x L) and the per-replica values."""
    n, L = max(config.widths), config.seq_len
    run = 16 * 8 * L * n + 8 * (config.steps + 1) * L * (len(config.controls) + 2) + 8 * 16 * L * L
    data = 8 * 2 * config.n_seq * L
    return run + data + replica_memory(config, 3 * len(config.widths) + 1 + len(config.controls))


def setup(config: Config, model: Any, seed: int, backend: Any) -> dict[str, Any]:
    """Data, correlations, the derived kernel, the step (``lr_factor`` / mu_max of its curvature, or the given one)
    and the control kernels that stay stable at that step."""
    import numpy as np

    from linrnn.families import model_of
    from linrnn.verify.claims.training import make_data
    from linrnn.verify.claims.training_config import check_lr
    from linrnn.verify.kernel_gd import KernelCurvature
    from linrnn.verify.scnn import STABILITY_LIMIT
    from linrnn.verify.train import lagged_correlations

    m = model_of(model)
    x, y, teacher = make_data(config, backend, seed)
    corr = lagged_correlations(x, y, None, config.loss, backend)
    theta = m.kernel(config.seq_len)["ntk"][:, 0, 0, :, 0, 0]
    mu = KernelCurvature.of(corr, theta).mu_max
    lr = float(config.lr_factor) / mu if config.lr == "auto" else float(check_lr(config.lr))
    if lr * mu >= STABILITY_LIMIT:
        raise UsageError(f"the step lr = {lr:g} exceeds the stability limit 2/mu_max = {STABILITY_LIMIT / mu:.6g} of "
                         "the derived kernel on these data; use a smaller step or lr = 'auto'")
    all_wrong = control_kernels(m, config.seq_len, config.controls)
    wrong = {k: v for k, v in all_wrong.items() if lr * KernelCurvature.of(corr, v).mu_max < STABILITY_LIMIT}
    return {"model": m, "corr": corr, "theta": theta, "lr": lr, "wrong": wrong, "teacher": teacher,
            "norm": float(np.linalg.norm(teacher)), "unstable": sorted(set(all_wrong) - set(wrong))}


def replica_values(config: Config, seed: int, backend: Any, st: dict[str, Any], index: int,
                   keep: dict[str, Any] | None = None) -> dict[str, float]:
    """One replica: per width the RMS distance d, the largest |lambda| reached and whether the run diverged
    (``x{n}``: 1 or 0; then d is NaN), the slope of log d on log n, and u_c at the largest width."""
    import numpy as np

    from linrnn.verify.claims.training import reseeded
    from linrnn.verify.kernel_gd import kernel_trajectory

    m, corr, lr, K = st["model"], st["corr"], st["lr"], config.steps
    widths = config.widths
    out: dict[str, float] = {}
    logs = []
    for n in widths:
        res = m.train(m.init(width=n, backend=reseeded(backend, seed, 2, n, index)), corr, lr=lr, steps=K)
        out[f"m{n}"], out[f"x{n}"] = float(np.max(res.max_modulus)), float(res.diverged)
        if res.diverged:  # the replica's statistics are not finite; the claim reports an error
            out[f"d{n}"] = math.nan
            logs.append(math.nan)
            out.update({f"u:{k}": math.nan for k in st["wrong"]} if n == widths[-1] else {})
            continue
        kr = kernel_trajectory(res.impulse[0], corr, st["theta"], lr=lr, steps=K)
        delta = (res.impulse - kr)[1:] / st["norm"]
        d = float(np.sqrt(np.sum(delta ** 2) / K))
        out[f"d{n}"] = d
        logs.append(math.log(d) if d > 0 else -math.inf)
        if n == widths[-1]:
            for k, theta_c in st["wrong"].items():
                dc = (kernel_trajectory(res.impulse[0], corr, theta_c, lr=lr, steps=K) - kr)[1:] / st["norm"]
                b = float(np.sum(dc ** 2))
                out[f"u:{k}"] = 1.0 - 2.0 * float(np.sum(delta * dc)) / b if b > 0 else math.nan
            if keep is not None and "example" not in keep:
                keep["example"] = (n, res.impulse[:, :, 0, 0].copy(), kr[:, :, 0, 0].copy())
    x = np.log(np.asarray(widths, dtype=np.float64))
    xc = x - x.mean()
    out["slope"] = float(np.sum(xc * np.asarray(logs)) / np.sum(xc ** 2))
    return out


def tests(config: Config, wrong: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the claim's tests, the controls' tests), as the dense claim's (module docstring)."""
    from linrnn.verify.claims.training import TTest

    alpha, m = float(config.alpha), max(len(wrong), 1)
    own = {"rate": TTest("slope", -0.5, "two", alpha / 2),
           **{f"closer:{k}": TTest(f"u:{k}", 0.0, "less", alpha / (2 * m)) for k in wrong}}
    ctrl = {"rate:minus_1": TTest("slope", -1.0, "two", alpha / 2),
            **{f"kernel:{k}": TTest(f"u:{k}", 0.0, "greater", alpha / (2 * m)) for k in wrong}}
    return own, ctrl


def trajectory_figure(example: tuple[int, Any, Any]) -> dict[str, Any]:
    """Trained-network against kernel-regression impulse-response entries L_j(k) for a few lags (one draw)."""
    n, imp, kr = example
    ks = list(range(imp.shape[0]))
    stride = max(1, len(ks) // 12)
    series: list[dict[str, Any]] = []
    for j in [j for j in (0, 1, 3, 6) if j < imp.shape[1]]:
        series.append({"label": f"kernel regression, lag j = {j}", "x": ks, "y": kr[:, j].tolist(), "style": "line"})
        series.append({"label": f"diagonal RNN (n = {n}), lag j = {j}", "x": ks[::stride],
                       "y": imp[::stride, j].tolist(), "style": "points"})
    return {"kind": "lines", "title": "Diagonal RNN against kernel regression with the derived kernel",
            "caption": f"Impulse-response entries L_j(k) during gradient descent for one width-{n} diagonal RNN "
                       "(points) and kernel gradient descent with the derived lag kernel from the same L(0) (lines).",
            "xlabel": "gradient step k", "ylabel": "impulse response $L_j(k)$", "series": series}


_STATEMENTS = {
    "forced_diagonal": "kernel regression with the derived kernel forced diagonal (j != k set to 0)",
    "radius": "kernel regression with the kernel derived under |lambda| uniform on [r_min, r_max]",
    "gaussian_twin": "kernel regression with the dense Gaussian family's lag kernel at q = r_max^2",
}


def run(config: Config, model: Any, *, seed: int = 0, backend: Any = "numpy", dtype: str = "float64",
        progress: Progress | None = None) -> ClaimResult:
    """Wide diagonal RNNs follow kernel regression with the derived lag kernel, at rate n^{-1/2}."""
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
    cause = ("the RMS distance between the trained network and kernel regression is zero or not finite for some "
             "replica (a diverged run), so the statistics are not finite")
    statements = {"rate:minus_1": "The distance to kernel regression with the derived kernel falls at rate n^-1.",
                  **{f"kernel:{k}": f"The trained network follows {_STATEMENTS[k]} (closer than the derived kernel)."
                     for k in st["wrong"]}}
    names = {"rate:minus_1": "t of the mean per-replica slope of log d(n) on log n against -1",
             **{f"kernel:{k}": f"t of the mean of u = (d_{k}^2 - d^2) / ||L_{k} - L_kr||^2 at n = {widths[-1]} "
                               "against 0" for k in st["wrong"]}}
    unstable = [{
        "id": f"kernel:{k}", "statement": f"The trained network follows {_STATEMENTS[k]}.",
        "statistic": {"name": "eta mu_max of the wrong kernel (its kernel regression diverges at this step)",
                      "value": None},
        "threshold": {"description": "eta mu_max < 2 (else it diverges while the network does not)", "value": 2.0},
        "verdict": "rejected", "power": 1.0,
    } for k in st["unstable"]]
    # products of an (L x n) array with a vector in each replica
    sw = distance_sweep(config, lambda index, keep: replica_values(config, seed, backend, st, index, keep),
                        tests(config, list(st["wrong"])), wrong=st["wrong"], cost=float(sum(widths)),
                        progress=progress, cause=cause, statements=statements, names=names, unstable=unstable)
    main, R, design, rate, statistic_verdict = sw.main, sw.R, sw.design, sw.rate, sw.statistic_verdict
    modulus = [float(np.max(main[f"m{n}"])) for n in widths]
    diverged = [float(np.mean(main[f"x{n}"])) for n in widths]
    figures = {"distance_vs_width": sw.figure}
    if "example" in sw.keep:
        figures = {"trajectories": trajectory_figure(sw.keep["example"]), **figures}
    claim = ClaimResult(
        id="diagonal_training",
        title="Diagonal units: training follows the derived kernel",
        statement=("Gradient descent on a width-n diagonal linear RNN (c, b, lambda trained) moves its impulse "
                   "response like kernel gradient descent with the derived lag kernel (not diagonal in the lags), "
                   "started from the same L(0), up to O(n^-1/2)."),
        formula=(r"\Big(\tfrac{1}{K}\sum_{k=1}^{K}\lVert L^{\mathrm{rnn}}(k) - L^{\mathrm{kr}}(k)\rVert^2\Big)^{1/2}"
                 r"\big/\lVert L^*\rVert = \Theta(n^{-1/2}),\quad L^{\mathrm{kr}}(k+1) = L^{\mathrm{kr}}(k) - "
                 r"\eta\,\Theta_\infty \nabla_L \mathcal{L}"),
        statistic={"name": "mean per-replica slope of log d(n) on log n (t against -1/2); per wrong kernel, mean "
                           "u = (d_c^2 - d^2)/||L_c - L_kr||^2 at the largest width (t against 0)",
                   "value": rate["mean"], "stderr": sw.slope_se, "t": rate["t"] if math.isfinite(rate["t"]) else None,
                   "closer": sw.closer, "max_modulus": dict(zip(map(str, widths), modulus)),
                   "diverged_fraction": dict(zip(map(str, widths), diverged))},
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
            f"{[s['replicas'] for s in design['stages']]}, fresh draws each), each a draw at every width {widths}; "
            f"d = RMS over the {config.steps} steps of ||L_rnn(k) - L_kr(k)|| / ||L*||.",
            f"Step lr = {st['lr']:.4g} ({'lr_factor / mu_max of the derived kernel on the data' if config.lr == 'auto' else 'given'}).",
            "Largest |lambda| reached during training, per width (over the deciding stage): "
            + ", ".join(f"n = {n}: {v:.4g}" for n, v in zip(widths, modulus))
            + " (above 1: a unit left the unit disc and the lazy regime); fraction of runs that diverged: "
            + ", ".join(f"n = {n}: {v:.3g}" for n, v in zip(widths, diverged)) + ".",
            "Pass: the derived kernel is not refuted and every control is rejected; inconclusive: not refuted, "
            "but a control was not rejected (the control names the size that would decide it).",
        ],
        backend=backend.describe(),
    )
    return sw.table(claim, widths)


CLAIM = Claim(name="diagonal_training", section="diagonal_training", experiment="diagonal_training",
              title="Diagonal units: training follows the derived kernel", config_type=Config, run=run, check=check,
              memory=memory, family="diagonal")

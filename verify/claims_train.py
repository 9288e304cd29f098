"""Training claims of the implicit-bias theory, each a plain function returning a claim dict.

The claims (Emami et al., "Implicit Bias of Linear RNNs", ICML 2021) and their
checks; the result format is the contract of ``docs/claims.md``:

* :func:`claim_dynamics_equivalence` - a wide RNN trained by gradient descent and the
  scaled CNN (SCNN) with the derived lag weights lambda_j, started from the RNN's own
  initial impulse response L(0), stay close: d(n) = sup_k ||L_rnn(k) - L_scnn(k)|| /
  ||L*|| falls like n^{-1/2} (the NTK of a width-n draw fluctuates by O(n^{-1/2})
  around its limit). Check (:func:`candidate_checks`, applied alike to the derived
  weights and to each control): (a) a weighted log-log fit of the seed-mean d(n)
  against n (:func:`linrnn.verify.stats.loglog_fit`, Birge-inflated standard error) whose
  (1 - alpha/2) interval contains -1/2, and (b) no other candidate significantly
  closer to the RNN at the largest width (one-sided paired t over the same draws,
  alpha/2 split by Bonferroni). Controls: SCNNs with wrong lag weights
  (``derive_lag_weights(param).controls``), whose distance plateaus, and the rate -1
  tested on the true theory's fit.
* :func:`claim_min_norm` - with loss ``last`` and fewer sequences than lags the loss has
  many minimisers; the trained RNN converges to the one closest to L(0) in the norm
  sum_j ||L_j - L_j(0)||^2 / lambda_j (:func:`linrnn.verify.scnn.min_norm_solution`). Check:
  the same two-part :func:`candidate_checks` on the distance D(n) of the trained
  impulse response to each candidate interpolant. Controls: the unweighted
  (lambda_j = 1) and wrong-weight interpolants, whose distance plateaus.
* :func:`claim_short_memory` - the expected test error after a fixed number of steps,
  as a function of q = sigma_W^2, predicted in closed form from the SCNN (the SCNN
  iterate is affine in L(0), L(K) = L(0) A_K + m_K, so averaging over the NNGP
  L(0) ~ N(0, diag(v_j)) gives E loss = loss(m_K) + 1/2 n_y tr(A_K R A_K^T S)), against
  trained RNNs. Check: per q, z = (a - theory) / SE_a with the bias-corrected estimate a
  from widths n and n/2 (:func:`linrnn.verify.stats.richardson`, the allowance for the O(1/n)
  finite-width bias); all |z| below the Bonferroni t quantile. Controls: the curves of
  wrong lag weights under the same test. Also reported: the best q by theory and by
  experiment.

Every function takes ``config`` (a dict; missing keys take the defaults in
``DEFAULTS_*``) and ``backend`` (a :class:`linrnn.verify.backend.Backend` or a backend name).
Seeds are fixed by ``config["seed"]``: the results are deterministic on one backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from linrnn.core.errors import UsageError
from linrnn.verify.backend import Backend, get_backend

#: Defaults of :func:`claim_dynamics_equivalence`.
DEFAULTS_DYNAMICS: dict[str, Any] = {
    "param": "ntk", "sigma_w2": 0.8, "sigma_c2": 1.0, "sigma_f2": 1.0, "lr_c": 1.0, "lr_f": 1.0, "lr_w": 1.0,
    "loss": "all", "seq_len": 16, "n_seq": 32, "teacher": "decay", "rho": 0.8, "delay": 4, "r": 0.9, "omega": 0.5,
    "inputs": "white", "phi": 0.0, "noise": 0.0,
    "widths": [64, 128, 256, 512, 1024], "seeds": 10, "steps": 100, "lr": "auto", "lr_factor": 0.5,
    "alpha": 1e-3, "seed": 0, "controls": ["no_linear_term", "q_times_1.1"],
}
#: Defaults of :func:`claim_min_norm`.
DEFAULTS_MIN_NORM: dict[str, Any] = {
    **DEFAULTS_DYNAMICS, "loss": "last", "seq_len": 12, "n_seq": 4, "sigma_w2": 0.7, "widths": [64, 128, 256, 512, 1024],
    "seeds": 12, "steps": 150, "lr_factor": 0.9,
}
#: Defaults of :func:`claim_short_memory`.
DEFAULTS_SHORT_MEMORY: dict[str, Any] = {
    **DEFAULTS_DYNAMICS, "seq_len": 24, "n_seq": 16, "rho": 0.95, "sigma_w2s": [0.5, 0.8, 0.95, 1.05, 1.2],
    "width": 1024, "seeds": 8, "steps": 30, "n_test": 512, "controls": ["no_linear_term"],
}

Progress = Callable[[float, str], None]


# ----------------------------------------------------------------- configuration


def _merge(defaults: dict[str, Any], config: dict[str, Any] | None) -> dict[str, Any]:
    cfg = dict(defaults)
    for k, v in (config or {}).items():
        if k not in defaults:
            raise UsageError(f"unknown configuration key {k!r}; known keys: {', '.join(sorted(defaults))}")
        cfg[k] = v
    for key in ("seq_len", "n_seq", "steps", "seeds"):
        if key in cfg:
            v = cfg[key]
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise UsageError(f"{key} must be a positive integer, got {v!r}")
            cfg[key] = int(v)
    if "widths" in cfg:
        ws = [int(w) for w in cfg["widths"]]
        if len(set(ws)) < 2 or min(ws) < 1:
            raise UsageError(f"widths must hold at least two different positive widths, got {cfg['widths']!r}")
        cfg["widths"] = sorted(set(ws))
    if "width" in cfg and (int(cfg["width"]) != cfg["width"] or cfg["width"] < 2):
        raise UsageError(f"width must be an integer of at least 2, got {cfg['width']!r}")
    if not 0 < float(cfg["alpha"]) < 1:
        raise UsageError(f"alpha must lie in (0, 1), got {cfg['alpha']!r}")
    if not 0 < float(cfg["lr_factor"]) < 2:
        raise UsageError(f"lr_factor must lie in (0, 2) (2 is the stability limit), got {cfg['lr_factor']!r}")
    return cfg


def resolve_backend(backend: Backend | str | None) -> Backend:
    """A :class:`Backend` from a backend or its name (``None`` means NumPy)."""
    if isinstance(backend, Backend):
        return backend
    return get_backend(backend or "numpy")


def _reseeded(backend: Backend, *key: int) -> Backend:
    """A fresh backend of the same kind whose generator is seeded from ``key`` (SeedSequence)."""
    seed = int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0])
    return get_backend(backend.name, seed=seed, dtype=backend.dtype_name)


def model_spec(cfg: dict[str, Any], sigma_w2: float | None = None, n_in: int = 1) -> Any:
    from linrnn.core.spec import ModelSpec

    return ModelSpec(
        param=cfg["param"], sigma_w2=cfg["sigma_w2"] if sigma_w2 is None else sigma_w2, sigma_c2=cfg["sigma_c2"],
        sigma_f2=cfg["sigma_f2"], n_in=n_in, lr_c=cfg["lr_c"], lr_f=cfg["lr_f"], lr_w=cfg["lr_w"],
    )


def teacher_of(cfg: dict[str, Any]) -> np.ndarray:
    """The teacher impulse response (T, 1, 1) named by ``cfg['teacher']`` with its options."""
    from linrnn.verify.teachers import teacher_impulse

    opts = {"decay": {"rho": cfg["rho"]}, "spike": {"delay": cfg["delay"]},
            "oscillator": {"r": cfg["r"], "omega": cfg["omega"]}}
    if cfg["teacher"] not in opts:
        raise UsageError(f"unknown teacher {cfg['teacher']!r}; choose one of {', '.join(opts)}")
    return teacher_impulse(cfg["teacher"], cfg["seq_len"], **opts[cfg["teacher"]])


def make_data(cfg: dict[str, Any], backend: Backend, n_seq: int | None = None, stream: int = 0) -> tuple[Any, Any, np.ndarray]:
    """(x, y, L*) from the configured teacher and inputs; data stream ``stream`` of the seed."""
    from linrnn.verify.teachers import make_dataset

    teacher = teacher_of(cfg)
    b = _reseeded(backend, cfg["seed"], 1, stream)
    x, y = make_dataset(teacher, n_seq or cfg["n_seq"], inputs=cfg["inputs"], phi=cfg["phi"],
                        noise_std=cfg["noise"], backend=b)
    return x, y, teacher


def choose_lr(cfg: dict[str, Any], corr: Any, spec: Any) -> float:
    """The base step: ``lr_factor`` x :func:`linrnn.verify.scnn.auto_lr_rnn` (``lr = 'auto'``) or the given float."""
    from linrnn.verify.scnn import auto_lr_rnn

    if cfg["lr"] == "auto":
        return float(cfg["lr_factor"]) * auto_lr_rnn(corr, spec)
    try:
        lr = float(cfg["lr"])
    except (TypeError, ValueError):
        raise UsageError(f"lr must be 'auto' or a positive number, got {cfg['lr']!r}") from None
    if not math.isfinite(lr) or lr <= 0:
        raise UsageError(f"lr must be 'auto' or a positive number, got {cfg['lr']!r}")
    return lr


def draw_rnn(cfg: dict[str, Any], spec: Any, n: int, replica: int, backend: Backend) -> Any:
    """Replica ``replica`` of ``spec`` at width n (an RNNDraw of host arrays), seeded from (seed, n, replica)."""
    from linrnn.verify.sample import RNNDraw, sample_rnn

    b = _reseeded(backend, cfg["seed"], 2, n, replica)
    d = sample_rnn(b, spec, n)
    return RNNDraw(b.to_numpy(d.W), b.to_numpy(d.F), b.to_numpy(d.C), spec)


def train_pair(draw: Any, corr: Any, lr: float, steps: int, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
    """Train the RNN ``draw`` and the SCNN (lag weights ``lam``) from the RNN's L(0): (impulse, scnn, TrainResult)."""
    from linrnn.verify.scnn import scnn_trajectory
    from linrnn.verify.train import train_rnn

    res = train_rnn(draw, None, None, loss=corr.loss, lr=lr, steps=steps, corr=corr)
    res.raise_if_diverged()
    assert res.impulse is not None
    scnn = scnn_trajectory(res.impulse[0], corr, lam, lr=lr, steps=steps)
    return res.impulse, scnn, res


def wrong_weights(spec: Any, lags: int, truth: np.ndarray, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """The lag weights of the derivation's negative controls ``names`` (all by default) that differ from the truth."""
    from linrnn.derive import derive_lag_weights, evaluate

    forms = derive_lag_weights(spec.param).controls
    names = list(forms) if names is None else list(names)
    unknown = sorted(set(names) - set(forms))
    if unknown:
        raise UsageError(f"unknown control {unknown[0]!r}; choose from {', '.join(forms)}")
    out = {}
    for name in names:
        expr = forms[name]
        arr = np.asarray(evaluate(expr, spec, lags), dtype=np.float64)
        if not np.allclose(arr, truth, rtol=1e-12, atol=0.0):
            out[name] = arr
    return out


def _stable(corr: Any, lam: np.ndarray, lr: float) -> bool:
    from linrnn.verify.scnn import LagCurvature

    return lr * LagCurvature(corr, lam).mu_max < 2.0


def _rate_check(widths: Sequence[int], per_seed: np.ndarray, alpha: float, expected: float, name: str) -> dict[str, Any]:
    """Log-log fit of the seed means of ``per_seed`` (widths x seeds) with SE = sd / sqrt(R)."""
    from linrnn.verify.stats import loglog_fit

    mean = per_seed.mean(axis=1)
    se = per_seed.std(axis=1, ddof=1) / math.sqrt(per_seed.shape[1])
    se = np.maximum(se, 1e-300)
    fit = loglog_fit(np.asarray(widths, float), mean, se, expected=expected, alpha=alpha, name=name)
    return {"slope": fit.slope, "stderr": fit.stderr, "ci": [float(fit.ci[0]), float(fit.ci[1])],
            "birge": fit.birge, "passed": bool(fit.passed), "mean": mean.tolist(), "se": se.tolist()}


def candidate_checks(
    widths: Sequence[int], cands: dict[str, np.ndarray], alpha: float
) -> tuple[dict[str, dict[str, Any]], float, int]:
    """The two-part check that every candidate theory faces (the derived one and each control).

    ``cands`` maps a name to distances (widths x seeds, the same seeds for every
    candidate). A candidate passes when (a) the expected slope -1/2 lies in the
    (1 - alpha/2) interval of its log-log fit and (b) no other candidate is
    significantly closer at the largest width: the one-sided paired t of
    (D_this - D_other) over the seeds stays below the t quantile at alpha/2 split by
    Bonferroni over the m - 1 comparisons. Returns (checks, t quantile, m - 1).
    """
    from linrnn.verify.stats import t_isf

    R = next(iter(cands.values())).shape[1]
    fits = {k: _rate_check(widths, v, alpha / 2, -0.5, k) for k, v in cands.items()}
    m_pairs = max(len(cands) - 1, 1)
    crit = t_isf(alpha / (2 * m_pairs), R - 1)
    checks = {}
    for name in cands:
        worst, who = -math.inf, ""
        for other, v in cands.items():
            if other == name:
                continue
            diff = cands[name][-1] - v[-1]
            se = diff.std(ddof=1) / math.sqrt(R)
            t = float(diff.mean() / se) if se > 0 else (math.inf if diff.mean() > 0 else -math.inf)
            if t > worst:
                worst, who = t, other
        checks[name] = {"fit": fits[name], "t_max": worst, "closer": who,
                        "passed": bool(fits[name]["passed"] and worst <= crit)}
    return checks, crit, m_pairs


def _candidate_controls(checks: dict[str, dict[str, Any]], crit: float, alpha: float, statement: str) -> list[dict[str, Any]]:
    out = []
    for k, c in checks.items():
        if k == "derived":
            continue
        out.append({
            "id": k, "statement": statement.format(name=k.split(":", 1)[-1]),
            "statistic": {"name": "fitted log-log slope; largest paired t of (D_this - D_other) at the largest width",
                          "value": c["fit"]["slope"], "stderr": c["fit"]["stderr"],
                          "paired_t": None if not math.isfinite(c["t_max"]) else c["t_max"],
                          "closer_candidate": c["closer"]},
            "threshold": {"description": f"-1/2 inside the {100 * (1 - alpha / 2):g}% CI and paired t <= {crit:.3g}",
                          "value": {"ci": c["fit"]["ci"], "t_crit": crit}},
            "verdict": "pass" if c["passed"] else "fail",
        })
    return out


def _spec_config(cfg: dict[str, Any], backend: Backend) -> dict[str, Any]:
    out = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in cfg.items()}
    out["backend"] = backend.describe()
    return out


def _tick(progress: Progress | None, amount: float, note: str) -> None:
    if progress is not None:
        progress(amount, note)


# ------------------------------------------------------------ dynamics equivalence


def dynamics_sweep(
    cfg: dict[str, Any], backend: Backend, progress: Progress | None = None
) -> dict[str, Any]:
    """The width sweep behind :func:`claim_dynamics_equivalence` (raw numbers, host arrays).

    Returns ``widths``, ``lr``, ``distance`` (widths x seeds, true lag weights) and
    ``control_distance`` {name: widths x seeds} for the stable wrong-weight SCNNs, with
    d = max_k ||L_rnn(k) - L_scnn(k)||_F / ||L*||_F over k = 0..steps.
    """
    from linrnn.derive import weights
    from linrnn.verify.scnn import scnn_trajectory
    from linrnn.verify.train import lagged_correlations

    spec = model_spec(cfg)
    x, y, teacher = make_data(cfg, backend)
    corr = lagged_correlations(x, y, None, cfg["loss"], backend)
    lam = np.asarray(weights(spec, cfg["seq_len"]), dtype=np.float64)
    lr = choose_lr(cfg, corr, spec)
    all_wrong = wrong_weights(spec, cfg["seq_len"], lam, cfg["controls"])
    wrong = {k: v for k, v in all_wrong.items() if _stable(corr, v, lr)}
    norm = float(np.linalg.norm(teacher))
    widths, R = cfg["widths"], cfg["seeds"]
    dist = np.zeros((len(widths), R))
    cdist = {k: np.zeros((len(widths), R)) for k in wrong}
    for i, n in enumerate(widths):
        for r in range(R):
            imp, scnn, _ = train_pair(draw_rnn(cfg, spec, n, r, backend), corr, lr, cfg["steps"], lam)
            dist[i, r] = _sup_dist(imp, scnn) / norm
            if i == len(widths) - 1 and r == 0:
                example = (n, np.asarray(imp)[:, :, 0, 0].copy(), np.asarray(scnn)[:, :, 0, 0].copy())
            for k, wl in wrong.items():
                cdist[k][i, r] = _sup_dist(imp, scnn_trajectory(imp[0], corr, wl, lr=lr, steps=cfg["steps"])) / norm
            _tick(progress, n * n, f"n={n} seed {r}")
    return {"widths": list(widths), "lr": lr, "distance": dist, "control_distance": cdist, "teacher_norm": norm,
            "unstable_controls": sorted(set(all_wrong) - set(wrong)), "example": example,
            "teacher": np.asarray(teacher)[:, 0, 0].tolist()}


def _trajectory_figure(example: tuple[int, np.ndarray, np.ndarray], teacher: list[float]) -> dict[str, Any]:
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


def _sup_dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.sqrt(np.sum((a - b) ** 2, axis=tuple(range(1, a.ndim))))))


def claim_dynamics_equivalence(
    config: dict[str, Any] | None = None, backend: Backend | str | None = None, *, progress: Progress | None = None
) -> dict[str, Any]:
    """Wide-RNN gradient descent follows the SCNN with the derived lag weights, at rate n^{-1/2}.

    Config keys and defaults: :data:`DEFAULTS_DYNAMICS`. See the module docstring for
    the statistic, the threshold and the controls.
    """
    cfg = _merge(DEFAULTS_DYNAMICS, config)
    backend = resolve_backend(backend)
    sw = dynamics_sweep(cfg, backend, progress)
    alpha = float(cfg["alpha"])
    cands = {"derived": sw["distance"], **{f"lag_weights:{k}": v for k, v in sw["control_distance"].items()}}
    checks, crit, m_pairs = candidate_checks(sw["widths"], cands, alpha)
    fit = checks["derived"]["fit"]
    rate1 = _rate_check(sw["widths"], sw["distance"], alpha / 2, -1.0, "rate_minus_one")
    cfits = {k: c["fit"] for k, c in checks.items() if k != "derived"}
    controls = _candidate_controls(
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
    figures = {"trajectories": _trajectory_figure(sw["example"], sw["teacher"]), "distance_vs_width": {
        "widths": sw["widths"], "distance_mean": fit["mean"], "distance_se": fit["se"],
        "distance_per_seed": sw["distance"].tolist(),
        "controls": {k: {"mean": v["mean"], "se": v["se"]} for k, v in cfits.items()},
        "fit": {"slope": fit["slope"], "ci": fit["ci"]},
    }}
    return {
        "id": "dynamics_equivalence",
        "title": "Dynamics equivalence",
        "statement": ("Gradient descent on a width-n linear RNN moves its impulse response like the scaled CNN "
                      "with the derived lag weights, started from the same L(0), up to O(n^-1/2)."),
        "formula": (r"\sup_k \frac{\lVert L^{\mathrm{rnn}}(k) - L^{\mathrm{scnn}}(k)\rVert}{\lVert L^*\rVert} "
                    r"= O(n^{-1/2}),\quad L^{\mathrm{scnn}}(k+1) = L^{\mathrm{scnn}}(k) - \eta\,\mathrm{diag}(\lambda_j)\,"
                    r"\nabla_L \mathcal{L}"),
        "statistic": {"name": "fitted slope of log d(n) vs log n; largest paired t of (d_derived - d_control) "
                              "at the largest width", "value": fit["slope"], "stderr": fit["stderr"],
                      "paired_t": checks["derived"]["t_max"] if math.isfinite(checks["derived"]["t_max"]) else None},
        "threshold": {"description": f"expected slope -1/2 inside the {100 * (1 - alpha / 2):g}% CI (Birge-inflated "
                                     f"SE) and no control significantly closer (one-sided paired t <= {crit:.3g}: "
                                     f"alpha/2 split by Bonferroni over {m_pairs} pairs, {sw['distance'].shape[1] - 1} dof)",
                      "value": {"ci": fit["ci"], "t_crit": crit}},
        "verdict": "pass" if checks["derived"]["passed"] and all(c["verdict"] == "fail" for c in controls) else "fail",
        "figures": figures,
        "controls": controls,
        "config": {**_spec_config(cfg, backend), "lr_used": sw["lr"]},
        "notes": [
            f"d(n) averaged over {cfg['seeds']} draws per width; SE = sd/sqrt(R); weighted least squares on log d.",
            f"Step lr = {sw['lr']:.4g} ({'lr_factor x 1/mu_max of the lag-weighted curvature' if cfg['lr'] == 'auto' else 'given'}).",
            "The verdict is pass only if the derived theory passes and every control is rejected.",
        ],
    }


# ------------------------------------------------------------------- min-norm bias


def claim_min_norm(
    config: dict[str, Any] | None = None, backend: Backend | str | None = None, *, progress: Progress | None = None
) -> dict[str, Any]:
    """Trained RNNs converge to the lambda-weighted min-norm interpolant closest to L(0).

    Config keys and defaults: :data:`DEFAULTS_MIN_NORM` (loss ``last``, N < T). The
    statistic is the slope of log D(n), D = ||L_rnn(K) - L_mn||_F / ||L*||_F, against
    log n, with the paired comparison at the largest width (:func:`candidate_checks`);
    controls replace the weights in L_mn by lambda_j = 1 (plain min-norm) and by the
    derivation's wrong weights (``controls``).
    """
    from linrnn.derive import weights
    from linrnn.verify.scnn import LagCurvature, min_norm_solution
    from linrnn.verify.train import lagged_correlations

    cfg = _merge(DEFAULTS_MIN_NORM, config)
    backend = resolve_backend(backend)
    if cfg["seeds"] < 2:
        raise UsageError("the min-norm claim needs at least two seeds for standard errors")
    if cfg["loss"] != "last" or cfg["n_seq"] >= cfg["seq_len"]:
        raise UsageError("the min-norm claim needs loss 'last' and fewer sequences than lags (n_seq < seq_len)")
    spec = model_spec(cfg)
    x, y, teacher = make_data(cfg, backend)
    corr = lagged_correlations(x, y, None, "last", backend)
    T = cfg["seq_len"]
    lam = np.asarray(weights(spec, T), dtype=np.float64)
    lr = choose_lr(cfg, corr, spec)
    alts = {"plain_min_norm": np.ones(T), **wrong_weights(spec, T, lam, cfg["controls"])}
    norm = float(np.linalg.norm(teacher))
    widths, R = cfg["widths"], cfg["seeds"]
    dist = np.zeros((len(widths), R))
    cdist = {k: np.zeros((len(widths), R)) for k in alts}
    resid = np.zeros((len(widths), R))
    for i, n in enumerate(widths):
        for r in range(R):
            imp, scnn, res = train_pair(draw_rnn(cfg, spec, n, r, backend), corr, lr, cfg["steps"], lam)
            L0, Lk = imp[0], imp[-1]
            dist[i, r] = float(np.linalg.norm(Lk - min_norm_solution(L0, corr, lam))) / norm
            for k, wl in alts.items():
                cdist[k][i, r] = float(np.linalg.norm(Lk - min_norm_solution(L0, corr, wl))) / norm
            resid[i, r] = float(np.linalg.norm(scnn[-1] - min_norm_solution(L0, corr, lam))) / norm
            _tick(progress, n * n, f"n={n} seed {r}")
    alpha = float(cfg["alpha"])
    cands = {"derived": dist, **{f"interpolant:{k}": v for k, v in cdist.items()}}
    checks, crit, m_pairs = candidate_checks(widths, cands, alpha)
    fit = checks["derived"]["fit"]
    controls = _candidate_controls(checks, crit, alpha, "The trained RNN converges to the {name} interpolant.")
    cfits = {k: c["fit"] for k, c in checks.items() if k != "derived"}
    derived_ok = checks["derived"]["passed"]
    mu = LagCurvature(corr, lam).mu
    rank = int(np.sum(backend.to_numpy(mu) > 1e-10 * float(mu[-1])))
    ratio = {k: float(v.mean(axis=1)[-1] / dist.mean(axis=1)[-1]) for k, v in cdist.items()}
    return {
        "id": "min_norm",
        "title": "Implicit bias: lambda-weighted minimum norm",
        "statement": ("With more lags than constraints, gradient descent on a wide linear RNN converges to the "
                      "interpolant closest to L(0) in the norm sum_j ||L_j - L_j(0)||^2 / lambda_j."),
        "formula": (r"L^\infty = \arg\min_{L:\,\nabla\mathcal{L}(L)=0} \sum_j "
                    r"\frac{\lVert L_j - L_j(0)\rVert^2}{\lambda_j} + O(n^{-1/2})"),
        "statistic": {"name": "fitted slope of log ||L_rnn(K) - L_mn|| / ||L*|| vs log n; largest paired t "
                              "of (D_derived - D_control) at the largest width",
                      "value": fit["slope"], "stderr": fit["stderr"],
                      "paired_t": checks["derived"]["t_max"] if math.isfinite(checks["derived"]["t_max"]) else None},
        "threshold": {"description": f"expected slope -1/2 inside the {100 * (1 - alpha / 2):g}% CI (Birge-inflated "
                                     f"SE) and no candidate significantly closer (one-sided paired t <= {crit:.3g}: "
                                     f"alpha/2 split by Bonferroni over {m_pairs} pairs, {R - 1} dof)",
                      "value": {"ci": fit["ci"], "t_crit": crit}},
        "verdict": "pass" if derived_ok and all(c["verdict"] == "fail" for c in controls) else "fail",
        "figures": {"distance_vs_width": {
            "widths": list(widths), "distance_mean": fit["mean"], "distance_se": fit["se"],
            "controls": {k: {"mean": v["mean"], "se": v["se"]} for k, v in cfits.items()},
            "scnn_residual_mean": resid.mean(axis=1).tolist(),
        }},
        "controls": controls,
        "config": {**_spec_config(cfg, backend), "lr_used": lr, "constraint_rank": rank},
        "notes": [
            f"{cfg['n_seq']} sequences constrain {rank} of {T} lag coefficients (loss 'last').",
            "Distance ratio control / weighted min-norm at the largest width: "
            + ", ".join(f"{k} {v:.3g}" for k, v in ratio.items()) + ".",
            f"The SCNN after {cfg['steps']} steps is within {resid.max():.2e} (relative) of the min-norm point "
            "(the optimisation residual, a floor for the measured distance).",
        ],
    }


# ---------------------------------------------------------------- short memory


def expected_test_loss(
    corr_train: Any, corr_test: Any, lam: np.ndarray, nngp: np.ndarray, lr: float, steps: int
) -> float:
    """E over L(0) ~ N(0, diag(nngp)) of the test loss of the SCNN after ``steps`` GD steps.

    In matrix layout (rows p = outputs, columns (j, a)), L(K) = L(0) A + R_yx P with
    P = D^{1/2} Q diag(eta phi_K(eta mu)) Q^T D^{1/2} (see :mod:`linrnn.verify.scnn`) and
    A = I - R_xx P. With the test quadratic Loss_t(L) = 1/2 r_yy - <L, R^t_yx> +
    1/2 tr(L R^t_xx L^T) and independent rows of covariance S = diag(nngp_j (x) 1_{n_x}):

        E Loss_t = Loss_t(R_yx P) + (n_y / 2) tr(A R^t_xx A^T S).
    """
    from linrnn.verify.backend import array_namespace
    from linrnn.verify.scnn import LagCurvature, gd_filter

    curv = LagCurvature(corr_train, lam)
    be = corr_train.backend
    xp = array_namespace(curv.mu)
    phi = gd_filter(xp, lr * curv.mu, xp.asarray(np.array([steps], dtype=np.int64)))[0]
    qs = curv.q * curv.s[:, None]
    P = be.to_numpy((qs * (lr * phi)[None, :]) @ qs.T)
    rxx, ryx = be.to_numpy(corr_train.rxx), be.to_numpy(corr_train.ryx)
    rt, yt = be.to_numpy(corr_test.rxx), be.to_numpy(corr_test.ryx)
    m = ryx @ P
    mean_loss = 0.5 * corr_test.ryy - float(np.sum(m * yt)) + 0.5 * float(np.sum(m * (m @ rt)))
    A = np.eye(P.shape[0]) - rxx @ P
    s = np.repeat(np.asarray(nngp, dtype=np.float64), corr_train.n_x)
    var = 0.5 * corr_train.n_y * float(np.trace(A @ rt @ A.T * s[:, None]))
    return mean_loss + var


def claim_short_memory(
    config: dict[str, Any] | None = None, backend: Backend | str | None = None, *, progress: Progress | None = None
) -> dict[str, Any]:
    """Test error after a fixed number of steps vs q = sigma_W^2: theory (SCNN + NNGP) against trained RNNs.

    Config keys and defaults: :data:`DEFAULTS_SHORT_MEMORY`. The test error is the
    test-set loss divided by its value at L = 0 (relative error). The experiment
    trains ``seeds`` RNNs at widths n and n // 2 for each q; a = 2 m_n - m_{n/2}
    (Richardson) removes the O(1/n) bias; z_q = (a_q - theory_q) / SE_a. Pass: max |z|
    below the two-sided Bonferroni t quantile (alpha / m, t with seeds - 1 dof) and the
    theory's best q within the experiment's uncertainty (its bias-corrected error no
    more than that quantile times the SE of the difference above the experiment's best).
    """
    from linrnn.derive import nngp_variance, weights
    from linrnn.verify.stats import richardson, t_isf
    from linrnn.verify.train import impulse_loss_and_grad, lagged_correlations, train_rnn

    cfg = _merge(DEFAULTS_SHORT_MEMORY, config)
    backend = resolve_backend(backend)
    qs = [float(q) for q in cfg["sigma_w2s"]]
    if len(qs) < 2 or any(not (math.isfinite(q) and q > 0) for q in qs):
        raise UsageError(f"sigma_w2s must hold at least two positive values, got {cfg['sigma_w2s']!r}")
    T, n, R = cfg["seq_len"], int(cfg["width"]), cfg["seeds"]
    h = n // 2
    if R < 2:
        raise UsageError("the short-memory claim needs at least two seeds for standard errors")
    x, y, teacher = make_data(cfg, backend)
    xt, yt, _ = make_data(cfg, backend, cfg["n_test"], stream=1)
    corr = lagged_correlations(x, y, None, cfg["loss"], backend)
    ctest = lagged_correlations(xt, yt, None, cfg["loss"], backend)
    base = 0.5 * ctest.ryy

    def test_loss(L: np.ndarray) -> float:
        return impulse_loss_and_grad(L, ctest)[0] / base

    theory, lrs = [], []
    ctheory: dict[str, list[float | None]] = {}
    meas = {n: np.zeros((len(qs), R)), h: np.zeros((len(qs), R))}
    learned = np.zeros((len(qs), T))  # mean learned L_j[0,0] at width n, per q
    for iq, q in enumerate(qs):
        spec = model_spec(cfg, q)
        lam = np.asarray(weights(spec, T), dtype=np.float64)
        nngp = np.asarray(nngp_variance(spec, T), dtype=np.float64)
        lr = choose_lr(cfg, corr, spec)
        lrs.append(lr)
        theory.append(expected_test_loss(corr, ctest, lam, nngp, lr, cfg["steps"]) / base)
        for k, wl in wrong_weights(spec, T, lam, cfg["controls"]).items():
            val = expected_test_loss(corr, ctest, wl, nngp, lr, cfg["steps"]) / base if _stable(corr, wl, lr) else None
            ctheory.setdefault(k, []).append(val)
        for width in (n, h):
            for r in range(R):
                res = train_rnn(draw_rnn(cfg, spec, width, r, backend), None, None, loss=cfg["loss"], lr=lr,
                                steps=cfg["steps"], corr=corr, record_impulse=True)
                res.raise_if_diverged()
                assert res.impulse is not None
                meas[width][iq, r] = test_loss(res.impulse[-1])
                if width == n:
                    learned[iq] += np.asarray(res.impulse[-1])[:, 0, 0] / R
                _tick(progress, width * width, f"q={q:g} n={width} seed {r}")
    m_n, m_h = meas[n].mean(axis=1), meas[h].mean(axis=1)
    se_n = meas[n].std(axis=1, ddof=1) / math.sqrt(R)
    se_h = meas[h].std(axis=1, ddof=1) / math.sqrt(R)
    est, se = richardson(m_n, se_n, n, m_h, se_h, h)
    theory_a = np.asarray(theory)
    alpha = float(cfg["alpha"])
    crit = t_isf(alpha / (2 * len(qs)), R - 1)
    z = (est - theory_a) / se
    # best q: the experiment's raw means at width n (the bias-corrected estimates are too noisy to rank)
    best_th, best_ex = int(np.argmin(theory_a)), int(np.argmin(m_n))
    gap = m_n[best_th] - m_n[best_ex]
    gap_se = math.sqrt(se_n[best_th] ** 2 + se_n[best_ex] ** 2) if best_th != best_ex else 0.0
    best_ok = best_th == best_ex or gap <= crit * gap_se
    passed = bool(np.max(np.abs(z)) <= crit) and best_ok
    controls = []
    for k, vals in ctheory.items():
        if any(v is None for v in vals):
            controls.append({
                "id": f"lag_weights:{k}", "statement": f"The SCNN with the wrong lag weights {k} predicts the test error.",
                "statistic": {"name": "eta mu_max of the wrong weights at the step used (the theory predicts divergence)",
                              "value": None},
                "threshold": {"description": "eta mu_max < 2 at every q (else it predicts a diverging error, "
                                             "while the trained RNNs stay finite)", "value": 2.0},
                "verdict": "fail",
            })
            continue
        zc = (est - np.asarray(vals)) / se
        controls.append({
            "id": f"lag_weights:{k}", "statement": f"The SCNN with the wrong lag weights {k} predicts the test error.",
            "statistic": {"name": "max |z| over q", "value": float(np.max(np.abs(zc))), "z": zc.tolist()},
            "threshold": {"description": f"Bonferroni t quantile (alpha = {alpha:g}, m = {len(qs)}, {R - 1} dof)",
                          "value": crit},
            "verdict": "pass" if np.max(np.abs(zc)) <= crit else "fail",
        })
    verdict = "pass" if passed and controls and all(c["verdict"] == "fail" for c in controls) else "fail"
    return {
        "id": "short_memory",
        "title": "Short-memory bias vs sigma_W^2",
        "statement": ("The test error of trained wide linear RNNs after a fixed number of steps follows the SCNN "
                      "prediction averaged over the NNGP initialisation, across q = sigma_W^2, with the same best q."),
        "formula": (r"\mathbb{E}\,\mathcal{L}_{\mathrm{test}}(L(K)) = \mathcal{L}_{\mathrm{test}}(R_{yx}P_K) + "
                    r"\tfrac{n_y}{2}\operatorname{tr}(A_K R^{\mathrm{test}}_{xx} A_K^\top S),\ "
                    r"P_K = D^{1/2}Q\,\eta\phi_K(\eta\mu)\,Q^\top D^{1/2},\ A_K = I - R_{xx}P_K"),
        "statistic": {"name": "max |z| over q (bias-corrected, widths n and n/2)", "value": float(np.max(np.abs(z)))},
        "threshold": {"description": f"two-sided Bonferroni t quantile (alpha = {alpha:g}, m = {len(qs)}, "
                                     f"{R - 1} dof); best q of the theory within the experiment's uncertainty",
                      "value": crit},
        "verdict": verdict,
        "figures": {"learned_impulse": {
            "kind": "lines", "title": "Learned impulse responses against the teacher",
            "caption": (f"Mean learned impulse response L_j of the trained width-{n} RNNs ({R} seeds, {cfg['steps']} "
                        "steps) for each q = sigma_W^2, against the teacher's L*_j: small q learns only the first "
                        "lags (short memory), q near 1 reaches further, q > 1 amplifies the noise of long lags."),
            "xlabel": "lag j (time steps)", "ylabel": "impulse response $L_j$ (output units per input unit)",
            "series": [{"label": "teacher L*", "x": list(range(T)), "y": np.asarray(teacher)[:, 0, 0].tolist(),
                        "style": "line"}]
                      + [{"label": f"trained RNNs, q = {q:g}", "x": list(range(T)), "y": learned[iq].tolist(),
                          "style": "points" if iq % 2 else "line"} for iq, q in enumerate(qs)],
        }, "test_error_vs_q": {
            "sigma_w2": qs, "theory": theory_a.tolist(), "experiment_mean": m_n.tolist(),
            "experiment_se": se_n.tolist(), "experiment_half_width_mean": m_h.tolist(),
            "bias_corrected": est.tolist(), "bias_corrected_se": se.tolist(), "z": z.tolist(),
            "controls": {k: v for k, v in ctheory.items()},
            "best_q_theory": qs[best_th], "best_q_experiment": qs[best_ex],
        }},
        "controls": controls,
        "config": {**_spec_config(cfg, backend), "lr_used": lrs},
        "notes": [
            f"Best q by theory {qs[best_th]:g}, by experiment (mean at width {n}) {qs[best_ex]:g}"
            + ("" if best_th == best_ex else f"; gap {gap:.3g} vs allowance {crit * gap_se:.3g}") + ".",
            "Test error = test loss / test loss of L = 0, on a separate test set from the same teacher.",
            "The finite-width allowance is the Richardson fit a + B/n from widths n and n/2.",
        ],
    }

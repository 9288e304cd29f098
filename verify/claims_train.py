"""Shared machinery of the training claims (``linrnn.verify.claims``): data, draws, training, checks.

The training claims of the implicit-bias theory (Emami et al., "Implicit Bias of
Linear RNNs", ICML 2021) are registry entries, one module each:
:mod:`linrnn.verify.claims.dynamics_equivalence`, :mod:`~linrnn.verify.claims.min_norm`,
:mod:`~linrnn.verify.claims.short_memory` and :mod:`~linrnn.verify.claims.co2`. This
module holds what they share:

* data and draws from a configuration (:class:`linrnn.verify.claims.base.TrainConfig`
  fields) and a seed: :func:`make_data` (teacher and inputs, data stream ``stream``),
  :func:`draw_rnn` (raw C, F, W seeded from (seed, n, replica)), :func:`reseeded`;
* the step (:func:`choose_lr`) and the paired RNN/SCNN training (:func:`train_pair`);
* the two-part check that every candidate theory faces (:func:`candidate_checks`:
  a weighted log-log fit whose (1 - alpha/2) interval must contain -1/2, and no other
  candidate significantly closer at the largest width, one-sided paired t, Bonferroni)
  and the controls it yields (:func:`candidate_controls`);
* the wrong lag weights of the negative controls (:func:`wrong_weights`), the
  closed-form expected test loss of the SCNN over the NNGP initialisation
  (:func:`expected_test_loss`) and the distance-against-width figure
  (:func:`distance_figure`).

The model (parameterization, variances, learning-rate multipliers, q) is a model
specification passed whole; the seed is an argument. Results are deterministic on
one backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from linrnn.core.errors import UsageError
from linrnn.verify.backend import Backend, get_backend
from linrnn.verify.claims.base import errbars

Progress = Callable[[float, str], None]


# ----------------------------------------------------------------- data and draws


def resolve_backend(backend: Backend | str | None, seed: int | None = 0, dtype: str = "float64") -> Backend:
    """A :class:`Backend` from a backend or its name (``None`` means NumPy)."""
    if isinstance(backend, Backend):
        return backend
    return get_backend(backend or "numpy", seed=seed, dtype=dtype)


def reseeded(backend: Backend, *key: int) -> Backend:
    """A fresh backend of the same kind whose generator is seeded from ``key`` (SeedSequence)."""
    seed = int(np.random.SeedSequence([int(k) for k in key]).generate_state(1)[0])
    return get_backend(backend.name, seed=seed, dtype=backend.dtype_name)


def teacher_of(config: Any) -> np.ndarray:
    """The teacher impulse response (T, 1, 1) named by ``config.teacher`` with its options."""
    from linrnn.verify.teachers import teacher_impulse

    opts = {"decay": {"rho": config.rho}, "spike": {"delay": config.delay},
            "oscillator": {"r": config.r, "omega": config.omega}}
    if config.teacher not in opts:
        raise UsageError(f"unknown teacher {config.teacher!r}; choose one of {', '.join(opts)}")
    return teacher_impulse(config.teacher, config.seq_len, **opts[config.teacher])


def make_data(config: Any, backend: Backend, seed: int, n_seq: int | None = None,
              stream: int = 0) -> tuple[Any, Any, np.ndarray]:
    """(x, y, L*) from the configured teacher and inputs; data stream ``stream`` of the seed."""
    from linrnn.verify.teachers import make_dataset

    teacher = teacher_of(config)
    b = reseeded(backend, seed, 1, stream)
    x, y = make_dataset(teacher, n_seq or config.n_seq, inputs=config.inputs, phi=config.phi,
                        noise_std=config.noise, backend=b)
    return x, y, teacher


def choose_lr(config: Any, corr: Any, spec: Any) -> float:
    """The base step: ``lr_factor`` x :func:`linrnn.verify.scnn.auto_lr_rnn` (``lr = 'auto'``) or the given float."""
    from linrnn.verify.claims.base import check_lr
    from linrnn.verify.scnn import auto_lr_rnn

    if config.lr == "auto":
        return float(config.lr_factor) * auto_lr_rnn(corr, spec)
    return float(check_lr(config.lr))


def draw_rnn(seed: int, spec: Any, n: int, replica: int, backend: Backend) -> Any:
    """Replica ``replica`` of ``spec`` at width n (an RNNDraw of host arrays), seeded from (seed, n, replica)."""
    from linrnn.verify.sample import RNNDraw, sample_rnn

    b = reseeded(backend, seed, 2, n, replica)
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


def stable(corr: Any, lam: np.ndarray, lr: float) -> bool:
    """Whether gradient descent with step ``lr`` on the SCNN with lag weights ``lam`` is stable (eta mu_max < 2)."""
    from linrnn.verify.scnn import LagCurvature

    return lr * LagCurvature(corr, lam).mu_max < 2.0


def rate_check(widths: Sequence[int], per_seed: np.ndarray, alpha: float, expected: float, name: str) -> dict[str, Any]:
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
    fits = {k: rate_check(widths, v, alpha / 2, -0.5, k) for k, v in cands.items()}
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


def candidate_controls(checks: dict[str, dict[str, Any]], crit: float, alpha: float, statement: str) -> list[dict[str, Any]]:
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


def tick(progress: Progress | None, amount: float, note: str) -> None:
    if progress is not None:
        progress(amount, note)


def sup_dist(a: np.ndarray, b: np.ndarray) -> float:
    """max_k ||a[k] - b[k]||_F over the first axis."""
    return float(np.max(np.sqrt(np.sum((a - b) ** 2, axis=tuple(range(1, a.ndim))))))


# ----------------------------------------------------------------- shared figures and theory


def distance_figure(fig: dict[str, Any]) -> dict[str, Any]:
    """Kind ``lines`` from the distance-against-width data of the dynamics and min-norm claims.

    ``fig`` holds ``widths``, ``distance_mean``, ``distance_se``, optionally ``controls``
    ({name: {mean, se}}) and ``fit`` ({slope, ci}); the data are kept in the figure.
    """
    series = [{"label": "derived lag weights (bars: +-2 SE)", "x": fig["widths"], "y": fig["distance_mean"],
               "yerr": errbars(fig["distance_se"]), "style": "points"}]
    for k, v in (fig.get("controls") or {}).items():
        series.append({"label": f"control {k}", "x": fig["widths"], "y": v["mean"], "yerr": errbars(v.get("se")),
                       "style": "points"})
    slope = (fig.get("fit") or {}).get("slope")
    return {**fig, "kind": "lines", "title": "Distance to the theory against the width",
            "caption": "Mean relative distance between the trained RNN and the prediction of the theory over "
                       "the seeds, against the width, log-log axes; derived lag weights against the wrong "
                       "weights of the negative controls (bars: +-2 standard errors)"
                       + (f"; fitted slope {slope:.3f}." if isinstance(slope, float) else "."),
            "xlabel": "width n (hidden units)", "ylabel": "relative distance (dimensionless)",
            "xscale": "log", "yscale": "log", "series": series}


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

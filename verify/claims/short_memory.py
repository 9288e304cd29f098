"""Claim ``short_memory``: the test error after a fixed number of steps, across q = sigma_W^2, follows the SCNN.

The expected test error as a function of q is predicted in closed form from the SCNN
(the SCNN iterate is affine in L(0), L(K) = L(0) A_K + m_K, so averaging over the
NNGP L(0) ~ N(0, diag(v_j)) gives T(q) = E loss = loss(m_K) + 1/2 n_y tr(A_K R A_K^T S);
:func:`linrnn.verify.claims.training.expected_test_loss`), against trained RNNs.

Estimator (a control variate): the trained RNN's test error varies across draws mostly
through L(0), whose SCNN counterpart has known mean T(q). Per replica and q, the RNN at
widths n and n/2 (fresh draws) and the SCNN from each RNN's own L(0) give the paired
differences Delta_n = e_rnn - e_scnn; e = T(q) + 2 Delta_n - Delta_{n/2} is unbiased for
the infinite-width mean test error of the RNN (Richardson: the O(1/n) terms of the
finite-width L(0) law and of the dynamics cancel), with the small variance of the paired
difference. Check: per q, a two-sided t-test of mean e = T(q) (level alpha/(4m), m
values of q); per q, the closed form itself against the SCNN test errors over the same
L(0) draws, 2 e_scnn,n - e_scnn,n/2 (two-sided, alpha/(4m): the control variate is valid
only if E e_scnn = T(q)); and the theory's best q within the experiment's uncertainty (one-sided,
alpha/2). Control: the curve T'(q) of wrong lag weights under the same t-test, decided at
the q the pilot finds most telling (the group-sequential design of
:func:`linrnn.verify.claims.training.run_design`; every level here is split over its looks,
alpha / looks in place of alpha). The grid ``sigma_w2s`` is claim
configuration; the other model fields come from the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from linrnn.core.errors import UsageError
from linrnn.core.configure import set_fields
from linrnn.core.figdata import errbars
from linrnn.core.validate import positive_int
from linrnn.verify.claims.base import Claim, ClaimResult, Progress, result_config
from linrnn.verify.claims.training_config import TrainConfig, check_scalar_model, replica_memory, training_memory


@dataclass(frozen=True)
class Config(TrainConfig):
    """Sizes of the short-memory sweep: widths ``width`` and ``width // 2`` at every q of ``sigma_w2s``."""

    seq_len: int = 24
    n_seq: int = 16
    rho: float = 0.95
    sigma_w2s: tuple[float, ...] = (0.5, 0.8, 0.95, 1.05, 1.2)
    width: int = 1024
    seeds: int = 8
    steps: int = 30
    pilot: int = 8
    min_replicas: int = 8
    n_test: int = 512
    controls: tuple[str, ...] = ("no_linear_term",)

    def __post_init__(self) -> None:
        super().__post_init__()
        set_fields(self, n_test=positive_int("short_memory.n_test", self.n_test))
        if isinstance(self.width, bool) or int(self.width) != self.width or self.width < 2:
            raise UsageError(f"width must be an integer of at least 2, got {self.width!r}")
        qs = tuple(float(q) for q in self.sigma_w2s)
        if len(set(qs)) < 2 or any(not (math.isfinite(q) and q > 0) for q in qs):
            raise UsageError(f"sigma_w2s must hold at least two different positive values, got {list(self.sigma_w2s)!r}")
        set_fields(self, sigma_w2s=qs, width=int(self.width))


def check(config: Config, model: Any) -> None:
    """Scalar sequences, and a control that differs from the derived lag weights at some q (before any work)."""
    from linrnn.verify.claims.training import require_weight_controls

    check_scalar_model(model, "short_memory")
    require_weight_controls(model, config.seq_len, config.controls, "short_memory", qs=config.sigma_w2s)


def test_error_figure(fig: dict[str, Any]) -> dict[str, Any]:
    """Kind ``lines``: theory, bias-corrected and raw experiment, and the controls against q (data kept)."""
    series = [{"label": "theory (SCNN + NNGP)", "x": fig["sigma_w2"], "y": fig["theory"], "style": "line"},
              {"label": "trained RNNs, bias-corrected (bars: +-2 SE)", "x": fig["sigma_w2"],
               "y": fig["bias_corrected"], "yerr": errbars(fig["bias_corrected_se"]), "style": "points"}]
    if "experiment_mean" in fig:
        series.append({"label": "trained RNNs, raw mean at width n (bars: +-2 SE)", "x": fig["sigma_w2"],
                       "y": fig["experiment_mean"], "yerr": errbars(fig.get("experiment_se")),
                       "style": "points"})
    for k, v in (fig.get("controls") or {}).items():
        series.append({"label": f"control {k}", "x": fig["sigma_w2"], "y": v, "style": "line"})
    return {**fig, "kind": "lines", "title": "Test error against the transition variance",
            "caption": "Relative test error after a fixed number of gradient steps against q = sigma_W^2: "
                       "the closed-form prediction of the scaled CNN averaged over the NNGP initialisation, "
                       "trained RNNs, and the predictions of wrong lag weights (negative controls).",
            "xlabel": r"transition variance $q = \sigma_W^2$", "ylabel": "relative test error (dimensionless)",
            "yscale": "log", "series": series}


def run(config: Config, model: Any, *, seed: int = 0, backend: Any = "numpy", dtype: str = "float64",
        progress: Progress | None = None) -> ClaimResult:
    """Test error after a fixed number of steps vs q = sigma_W^2: theory (SCNN + NNGP) against trained RNNs.

    The test error is the test-set loss divided by its value at L = 0 (relative error);
    see the module docstring for the estimator, the tests and the design.
    """
    return run_table(config, model, seed=seed, backend=backend, dtype=dtype, progress=progress).claim


def run_table(config: Config, model: Any, *, seed: int = 0, backend: Any = "numpy", dtype: str = "float64",
              progress: Progress | None = None) -> Any:
    """:func:`run` as the table ``linrnn verify train --sigma-w2s`` prints
    (:class:`linrnn.verify.claims.training.ErrorVsQTable`, its result as ``claim``)."""
    import numpy as np

    from linrnn.derive import nngp_variance, weights
    from linrnn.verify.claims.training import (
        ControlLine, DesignLine, ErrorVsQTable, TTest, choose_lr, control_entry, guard_draws, draw_rnn, expected_test_loss, make_data, resolve_backend, run_design, stable,
        t_summary, tick, wrong_weights,
    )
    from linrnn.verify.scnn import scnn_trajectory
    from linrnn.verify.stats import t_isf
    from linrnn.verify.threads import blas_threads
    from linrnn.verify.train import impulse_loss_and_grad, lagged_correlations, train_rnn

    check(config, model)
    backend = resolve_backend(backend, seed, dtype)
    qs = list(config.sigma_w2s)
    T, n = config.seq_len, config.width
    h = n // 2
    x, y, teacher = make_data(config, backend, seed)
    xt, yt, _ = make_data(config, backend, seed, config.n_test, stream=1)
    corr = lagged_correlations(x, y, None, config.loss, backend)
    ctest = lagged_correlations(xt, yt, None, config.loss, backend)
    base = 0.5 * ctest.ryy

    def test_loss(L: np.ndarray) -> float:
        return impulse_loss_and_grad(L, ctest)[0] / base

    theory, lrs, lams = [], [], []
    ctheory: dict[str, list[float | None]] = {}
    for q in qs:
        spec = model.replace(sigma_w2=q)
        lam = np.asarray(weights(spec, T), dtype=np.float64)
        nngp = np.asarray(nngp_variance(spec, T), dtype=np.float64)
        lr = choose_lr(config, corr, spec, guard=guard_draws(seed, spec, (n, h), backend))
        lrs.append(lr)
        lams.append(lam)
        theory.append(expected_test_loss(corr, ctest, lam, nngp, lr, config.steps) / base)
        for k, wl in wrong_weights(spec, T, lam, config.controls).items():
            val = expected_test_loss(corr, ctest, wl, nngp, lr, config.steps) / base if stable(corr, wl, lr) else None
            ctheory.setdefault(k, []).append(val)
    learned = np.zeros((len(qs), T))
    counted = [0]

    def replica(index: int) -> dict[str, float]:
        out: dict[str, float] = {}
        for iq, q in enumerate(qs):
            spec = model.replace(sigma_w2=q)
            diff, scnn_e = {}, {}
            for width in (n, h):
                res = train_rnn(draw_rnn(seed, spec, width, index, backend), None, None, loss=config.loss,
                                lr=lrs[iq], steps=config.steps, corr=corr, record_impulse=True)
                if res.diverged:  # this draw diverged at the step used: the replica is not finite
                    return {**{f"e{i}": math.nan for i in range(len(qs))}, **{f"s{i}": math.nan for i in range(len(qs))},
                            **{f"raw{i}@{w}": math.nan for i in range(len(qs)) for w in (n, h)}}
                res.raise_if_diverged()
                assert res.impulse is not None
                e_rnn = test_loss(res.impulse[-1])
                e_scnn = test_loss(scnn_trajectory(res.impulse[0], corr, lams[iq], lr=lrs[iq], at=[config.steps])[-1])
                diff[width] = e_rnn - e_scnn
                scnn_e[width] = e_scnn
                out[f"raw{iq}@{width}"] = e_rnn
                if width == n and index < 1_000_000:
                    learned[iq] += np.asarray(res.impulse[-1])[:, 0, 0]
            out[f"e{iq}"] = theory[iq] + 2.0 * diff[n] - diff[h]
            out[f"s{iq}"] = 2.0 * scnn_e[n] - scnn_e[h]
        if index < 1_000_000:
            counted[0] += 1
        tick(progress, float(len(qs) * (n * n + h * h)), f"replica {index % 1_000_000}")
        return out

    alpha = float(config.alpha)
    m = len(qs)
    # per q: the RNN's control-variate estimate against T(q), and the closed form T(q) itself against the SCNN
    # test errors over the same L(0) draws (Richardson-corrected): without it a wrong closed form would go unseen
    own = {**{f"q={q:g}": TTest(f"e{iq}", theory[iq], "two", alpha / (4 * m)) for iq, q in enumerate(qs)},
           **{f"closed_form:q={q:g}": TTest(f"s{iq}", theory[iq], "two", alpha / (4 * m)) for iq, q in enumerate(qs)}}
    ctrl: dict[str, Any] = {}
    unstable = []
    for k, vals in ctheory.items():
        if any(v is None for v in vals):
            unstable.append(k)
        else:
            ctrl[f"lag_weights:{k}"] = tuple(TTest(f"e{iq}", float(v), "two", alpha / (2 * m))
                                             for iq, v in enumerate(vals))
    with blas_threads(1):
        staged = run_design(replica, ctrl, config, progress, own=own)
    main, design, own, ctrl = staged.values, staged.record, staged.own, staged.controls  # tests at alpha / looks
    R = design["replicas"]
    a_look = design["alpha_per_look"]
    own_s = {k: t_summary(t, main[t.key], design["power_target"]) for k, t in own.items()}
    est = np.array([own_s[f"q={q:g}"]["mean"] for q in qs])
    se = np.array([own_s[f"q={q:g}"]["sd"] for q in qs]) / math.sqrt(R)
    theory_a = np.asarray(theory)
    z = (est - theory_a) / se
    crit = own_s[f"q={qs[0]:g}"]["crit"]
    # best q: the theory's best within the experiment's uncertainty (one-sided, alpha/2)
    best_th, best_ex = int(np.argmin(theory_a)), int(np.argmin(est))
    gap_v = main[f"e{best_th}"] - main[f"e{best_ex}"]
    gap = float(np.mean(gap_v))
    gap_se = float(np.std(gap_v, ddof=1) / math.sqrt(R)) if best_th != best_ex else 0.0
    gap_crit = t_isf(a_look / 2, R - 1)  # on the last stage; split like the others, as it may follow a first look
    best_ok = best_th == best_ex or gap <= gap_crit * gap_se
    finite = all(s["finite"] for s in own_s.values())
    cause = ("the test error of a trained RNN or of its SCNN is not finite (a diverging run, or a test set "
             "whose loss at L = 0 is zero)")
    statistic_verdict = ("error" if not finite else
                         ("fail" if (any(s["rejected"] for s in own_s.values()) or not best_ok) else "pass"))
    controls = []
    for k in unstable:
        controls.append({
            "id": f"lag_weights:{k}", "statement": f"The SCNN with the wrong lag weights {k} predicts the test error.",
            "statistic": {"name": "eta mu_max of the wrong weights at the step used (the theory predicts divergence)",
                          "value": None},
            "threshold": {"description": "eta mu_max < 2 at every q (else it predicts a diverging error, "
                                         "while the trained RNNs stay finite)", "value": 2.0},
            "verdict": "rejected", "power": 1.0,
        })
    zc_all: dict[str, list[float]] = {}
    for cid, tests in ctrl.items():
        i = design["decisive_test"][cid]
        entry = control_entry(
            cid, f"The SCNN with the wrong lag weights {cid.split(':', 1)[1]} predicts the test error.", tests[i],
            staged.values_for(cid)[tests[i].key], design,
            f"t of the mean control-variate test error at q = {qs[i]:g} (the q the "
            "pilot found most telling) against the wrong curve", cause)
        zc = [(float(est[j]) - t.null) / float(se[j]) for j, t in enumerate(tests)]
        entry["statistic"]["z"] = zc
        entry["statistic"]["decided_at_q"] = qs[i]
        zc_all[cid] = zc
        controls.append(entry)
    m_n = np.array([np.mean(main[f"raw{iq}@{n}"]) for iq in range(len(qs))])
    se_n = np.array([np.std(main[f"raw{iq}@{n}"], ddof=1) for iq in range(len(qs))]) / math.sqrt(R)
    m_h = np.array([np.mean(main[f"raw{iq}@{h}"]) for iq in range(len(qs))])
    learned = learned / max(counted[0], 1)
    max_abs_t = float(np.max(np.abs(z))) if finite else None
    claim = ClaimResult(
        id="short_memory",
        title="Short-memory bias vs sigma_W^2",
        statement=("The test error of trained wide linear RNNs after a fixed number of steps follows the SCNN "
                   "prediction averaged over the NNGP initialisation, across q = sigma_W^2, with the same best q."),
        formula=(r"\mathbb{E}\,\mathcal{L}_{\mathrm{test}}(L(K)) = \mathcal{L}_{\mathrm{test}}(R_{yx}P_K) + "
                 r"\tfrac{n_y}{2}\operatorname{tr}(A_K R^{\mathrm{test}}_{xx} A_K^\top S),\ "
                 r"P_K = D^{1/2}Q\,\eta\phi_K(\eta\mu)\,Q^\top D^{1/2},\ A_K = I - R_{xx}P_K"),
        statistic={"name": "max |t| over q of the control-variate, bias-corrected test error against the theory",
                   "value": max_abs_t, "z": z.tolist(),
                   "closed_form_t": [own_s[f"closed_form:q={q:g}"]["t"] for q in qs]},
        threshold={"description": f"two-sided t quantile at a/(4m) (a = alpha / {design['looks']} = {a_look:.3g} "
                                  f"per look, alpha = {alpha:g}, m = {m}, {R - 1} dof) for "
                                  "the RNN's estimate and, separately, for the closed form against the SCNN test "
                                  "errors over the same L(0) draws; "
                                  "best q of the theory within the experiment's uncertainty (one-sided, a/2)",
                   "value": crit},
        verdict=statistic_verdict,
        statistic_verdict=statistic_verdict,
        error=cause if statistic_verdict == "error" else None,
        alpha=alpha,
        design=design,
        figures={"learned_impulse": {
            "kind": "lines", "title": "Learned impulse responses against the teacher",
            "caption": (f"Mean learned impulse response L_j of the trained width-{n} RNNs ({R} replicas, {config.steps} "
                        "steps) for each q = sigma_W^2, against the teacher's L*_j: small q learns only the first "
                        "lags (short memory), q near 1 reaches further, q > 1 amplifies the noise of long lags."),
            "xlabel": "lag j (time steps)", "ylabel": "impulse response $L_j$ (output units per input unit)",
            "series": [{"label": "teacher L*", "x": list(range(T)), "y": np.asarray(teacher)[:, 0, 0].tolist(),
                        "style": "line"}]
                      + [{"label": f"trained RNNs, q = {q:g}", "x": list(range(T)), "y": learned[iq].tolist(),
                          "style": "points" if iq % 2 else "line"} for iq, q in enumerate(qs)],
        }, "test_error_vs_q": test_error_figure({
            "sigma_w2": qs, "theory": theory_a.tolist(), "experiment_mean": m_n.tolist(),
            "experiment_se": se_n.tolist(), "experiment_half_width_mean": m_h.tolist(),
            "bias_corrected": est.tolist(), "bias_corrected_se": se.tolist(), "z": z.tolist(),
            "controls": {k: v for k, v in ctheory.items()},
            "best_q_theory": qs[best_th], "best_q_experiment": qs[best_ex],
        })},
        controls=controls,
        config=result_config(model, config, seed=seed, backend=backend.describe(), lr_used=lrs),
        notes=[
            f"Best q by theory {qs[best_th]:g}, by experiment (control-variate estimate) {qs[best_ex]:g}"
            + ("" if best_th == best_ex else f"; gap {gap:.3g} vs allowance {gap_crit * gap_se:.3g}") + ".",
            "Test error = test loss / test loss of L = 0, on a separate test set from the same teacher.",
            f"{R} replicas in the deciding stage (pilot {design['pilot']}, stages "
            f"{[st['replicas'] for st in design['stages']]}, fresh draws each), each an RNN at widths {n} and {h} "
            "per q; "
            "estimate T(q) + 2 (e_rnn - e_scnn)_n - (e_rnn - e_scnn)_{n/2} (control variate and Richardson).",
        ],
        backend=backend.describe(),
    )
    return ErrorVsQTable(claim, tuple(qs), tuple(theory_a.tolist()), tuple(est.tolist()), tuple(se.tolist()),
                         tuple(z.tolist()), tuple(m_n.tolist()), tuple(se_n.tolist()), qs[best_th], qs[best_ex],
                         max_abs_t, crit, DesignLine.of(claim.design), tuple(ControlLine.of(c) for c in claim.controls))


def memory(config: Config, model: Any) -> int:
    """Peak bytes of one training run at the width (its test set of n_test sequences included), plus the
    per-replica values of the design (:func:`replica_memory`: four per q)."""
    return (training_memory(config, model, (config.width,), n_seq=config.n_seq + config.n_test)
            + replica_memory(config, 4 * len(config.sigma_w2s)))


CLAIM = Claim(name="short_memory", section="short_memory", experiment="short_memory",
              title="Short-memory bias vs sigma_W^2", config_type=Config, run=run, check=check,
              memory=memory)
